//! `prelabel migrate` and `backup`: a whole store copied into another (an embedded home into
//! PostgreSQL, say): every row with its id, every blob, read from one snapshot of the source
//! (which may go on serving) and written in one transaction on the target, which must be
//! empty. Rows go by column name, so the two schemas need only the same columns, not the same
//! order or types (both hold the values of [`super::db::Value`]).

use serde::Serialize;

use super::{DbError, Dialect, Store, StoreError, Tx, params};

/// The tables, parents before children (foreign keys hold at every insert).
const TABLES: &[&str] = &[
    "packages",
    "revisions",
    "revision_artifacts",
    "datasets",
    "items",
    "services",
    "triggers",
    "trigger_runs",
    "batches",
    "workers",
    // Accounts before the pipeline steps a reviewer holds.
    "users",
    "user_tokens",
    "grants",
    "sessions",
    "audit",
    "task_assignees",
    "task_settings",
    "pipelines",
    "pipeline_versions",
    "pipeline_runs",
    "pipeline_steps",
    "executions",
    "execution_outputs",
    "annotations",
    "secrets",
    "events",
];

/// The tables whose ids a PostgreSQL sequence hands out.
const IDENTITIES: &[&str] = &[
    "packages",
    "revisions",
    "datasets",
    "items",
    "services",
    "triggers",
    "batches",
    "workers",
    "executions",
    "annotations",
    "events",
    "pipelines",
    "pipeline_versions",
    "pipeline_runs",
    "pipeline_steps",
    "execution_outputs",
    "users",
    "user_tokens",
    "sessions",
    "audit",
];

/// What a migration copied.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Copied {
    /// Rows per table, in the order copied.
    pub rows: Vec<(String, usize)>,
    pub blobs: usize,
    pub blob_bytes: u64,
}

/// Copies every row and blob of `from` into `to`, whose database must hold no rows yet.
pub fn copy(from: &Store, to: &mut Store) -> Result<Copied, StoreError> {
    let target = to.location().describe();
    let target_err = |source| StoreError::Db {
        at: target.clone(),
        source,
    };
    ensure_empty(to)?;
    // One moment of the source, which may be serving and writing (a backup): rows that
    // name one another come together, and every blob a row names was written before it.
    // The snapshot waits on the target's writes between reads: no idle limit for it.
    let source = from.conn();
    source
        .limit_idle_transactions(None)
        .map_err(|e| from.err(e))?;
    let _snapshot = source.snapshot().map_err(|e| from.err(e))?;
    let mut copied = Copied::default();
    // Blobs first: a row never names a blob the target lacks, whatever stops the copy.
    copy_blobs(from, to, &mut copied)?;
    let dialect = to.dialect();
    // Its transaction waits on the source's reads between inserts: no idle limit for it.
    to.conn()
        .limit_idle_transactions(None)
        .map_err(target_err)?;
    let tx = to.write()?;
    for table in TABLES {
        let rows = copy_rows(from, &tx, table).map_err(|e| match e {
            Side::Source(e) => from.err(e),
            Side::Target(e) => target_err(e),
        })?;
        copied.rows.push((table.to_string(), rows));
    }
    if dialect == Dialect::Postgres {
        // The next id each sequence hands out is past the copied ones.
        for table in IDENTITIES {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                   COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                ),
                params![],
            )
            .map_err(target_err)?;
        }
    }
    tx.commit().map_err(target_err)?;
    Ok(copied)
}

/// A copy writes into an empty store only: nothing of the target's is overwritten or mixed.
fn ensure_empty(to: &Store) -> Result<(), StoreError> {
    for table in ["packages", "datasets", "services", "executions", "secrets"] {
        let n: i64 = to
            .conn()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), params![], |r| {
                r.get(0)
            })
            .map_err(|source| StoreError::Db {
                at: to.location().describe(),
                source,
            })?;
        if n > 0 {
            return Err(StoreError::NotEmpty {
                at: to.location().describe(),
                table,
                rows: n,
            });
        }
    }
    Ok(())
}

/// Every blob a row of `from` names, into `to`; nothing when both share one blob store (a
/// shared folder or bucket).
fn copy_blobs(from: &Store, to: &Store, copied: &mut Copied) -> Result<(), StoreError> {
    if from.location().blobs_at() == to.location().blobs_at() {
        return Ok(());
    }
    let digests: Vec<String> = from
        .conn()
        .query_map(
            "SELECT digest FROM items WHERE url IS NULL OR digest != ''
             UNION SELECT component_digest FROM revisions
             UNION SELECT digest FROM revision_artifacts",
            params![],
            |r| r.get(0),
        )
        .map_err(|e| from.err(e))?;
    for digest in &digests {
        // Already there, or missing at the source (the target's check says so).
        if to.has_blob(digest)? || !from.has_blob(digest)? {
            continue;
        }
        let bytes = from.read_blob(digest)?;
        to.put_blob_as(&bytes, digest)?;
        copied.blobs += 1;
        copied.blob_bytes += bytes.len() as u64;
    }
    Ok(())
}

/// Which database a copy's error came from.
enum Side {
    Source(DbError),
    Target(DbError),
}

/// One table's rows from `from` into the target's transaction; how many.
fn copy_rows(from: &Store, tx: &Tx<'_>, table: &str) -> Result<usize, Side> {
    let rows = from
        .conn()
        .query_map(&format!("SELECT * FROM {table}"), params![], |r| {
            Ok(r.clone())
        })
        .map_err(Side::Source)?;
    if table == "events" {
        // The target's own triggers wrote events while rows went in; the source's replace them.
        tx.execute("DELETE FROM events", params![])
            .map_err(Side::Target)?;
    }
    // Every row of a table has its columns: one statement for all of them.
    let Some(first) = rows.first() else {
        return Ok(0);
    };
    let marks: Vec<String> = (1..=first.values().len())
        .map(|i| format!("${i}"))
        .collect();
    let insert = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        first.columns().join(", "),
        marks.join(", ")
    );
    for row in &rows {
        let values: Vec<&dyn super::ToValue> = row
            .values()
            .iter()
            .map(|v| v as &dyn super::ToValue)
            .collect();
        tx.execute(&insert, &values).map_err(Side::Target)?;
    }
    Ok(rows.len())
}
