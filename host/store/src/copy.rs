//! `prelabel migrate`: a whole store copied into another (an embedded home into PostgreSQL,
//! say): every row with its id, every blob, in one transaction on the target, which must be
//! empty. Rows go by column name, so the two schemas need only the same columns, not the same
//! order or types (both hold the values of [`super::db::Value`]).

use serde::Serialize;

use super::{Dialect, Store, StoreError, params};

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
    "executions",
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
    let source_err = |e| from.err(e);
    let target_err = |source| StoreError::Db {
        at: target.clone(),
        source,
    };
    for table in ["packages", "datasets", "services", "executions", "secrets"] {
        let n: i64 = to
            .conn()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), params![], |r| {
                r.get(0)
            })
            .map_err(target_err)?;
        if n > 0 {
            return Err(StoreError::NotEmpty {
                at: target.clone(),
                table,
                rows: n,
            });
        }
    }
    let mut copied = Copied::default();
    // Blobs first: a row never names a blob the target lacks, whatever stops the copy. One
    // blob store for both (a shared folder or bucket): nothing to copy.
    let digests: Vec<String> = if from.location().blobs_at() == to.location().blobs_at() {
        Vec::new()
    } else {
        from.conn()
            .query_map(
                "SELECT digest FROM items WHERE url IS NULL OR digest != ''
                 UNION SELECT component_digest FROM revisions
                 UNION SELECT digest FROM revision_artifacts",
                params![],
                |r| r.get(0),
            )
            .map_err(source_err)?
    };
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
    let dialect = to.dialect();
    // Its transaction waits on the source's reads between inserts: no idle limit for it.
    to.conn()
        .limit_idle_transactions(None)
        .map_err(target_err)?;
    let tx = to.write()?;
    for table in TABLES {
        let rows = from
            .conn()
            .query_map(&format!("SELECT * FROM {table}"), params![], |r| {
                Ok(r.clone())
            })
            .map_err(source_err)?;
        if *table == "events" {
            // The target's own triggers wrote events while rows went in; the source's replace them.
            tx.execute("DELETE FROM events", params![])
                .map_err(target_err)?;
        }
        // Every row of a table has its columns: one statement for all of them.
        if let Some(first) = rows.first() {
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
                tx.execute(&insert, &values).map_err(target_err)?;
            }
        }
        copied.rows.push((table.to_string(), rows.len()));
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
