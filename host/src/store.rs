//! The embedded default store: SQLite (WAL) for state, content-addressed files for blobs.
//!
//! ```text
//! HOME/prelabel.db                 packages, services, triggers, items, executions, annotations
//! HOME/blobs/sha256/ab/cdef...     items, components and artifacts, stored once by digest
//! HOME/cache/components/           compiled components (see runtime)
//! ```
//! Every state change that must not be lost together (an item and the executions it
//! triggers; an execution's outcome and its annotations) commits in one transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::files;
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Schema migrations, applied in order; `PRAGMA user_version` is how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("store/001_initial.sql"),
    include_str!("store/002_sandbox.sql"),
    include_str!("store/003_events.sql"),
    include_str!("store/004_review.sql"),
    include_str!("store/005_batches.sql"),
    include_str!("store/006_links.sql"),
    include_str!("store/007_secrets.sql"),
    include_str!("store/008_provenance.sql"),
    include_str!("store/009_outbound.sql"),
];

/// The one timestamp expression every write uses: UTC, milliseconds, ISO 8601 (what the
/// schema's defaults write too, so stored times sort and compare as text).
pub const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {}: {source}", path.display())]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blob {digest} is missing from the store ({})", path.display())]
    MissingBlob { digest: String, path: PathBuf },
    #[error("the store at {} has schema version {found}; this prelabel knows up to {known}", path.display())]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
}

/// A JSON column, read strictly: text that does not parse is an error naming the column and
/// the text, never a silent default (a dropped filter would make a trigger match more).
pub fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| bad_column(row, index, &text, e))
}

/// A column read strictly (an enum kept by name, say): a value `T` does not accept is an
/// error naming the column and the value, never a default.
pub fn column<T: rusqlite::types::FromSql>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let value = row.get_ref(index)?;
    T::column_result(value).map_err(|e| {
        let text = match value {
            rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("{other:?}"),
        };
        bad_column(row, index, &text, e)
    })
}

/// A column whose text is not one of the values it may hold.
pub fn bad_column(
    row: &rusqlite::Row<'_>,
    index: usize,
    text: &str,
    problem: impl std::fmt::Display,
) -> rusqlite::Error {
    let column = row.as_ref().column_name(index).unwrap_or("?").to_string();
    let shown: String = text.chars().take(80).collect();
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("stored column `{column}` holds `{shown}`: {problem}").into(),
    )
}

/// An open store. One per thread: SQLite connections are not shared.
pub struct Store {
    home: PathBuf,
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store under `home` and brings its schema up to date.
    pub fn open(home: &Path) -> Result<Self, StoreError> {
        let io = |what, source| StoreError::Io {
            what,
            path: home.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(home.join("blobs/sha256"))
            .map_err(|e| io("cannot create the home", e))?;
        let path = home.join("prelabel.db");
        let db = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        // WAL: readers never block the writer, and a killed process leaves a consistent db.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        // FULL: a committed execution survives a power cut, not only a process kill.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        let mut store = Self {
            home: home.to_path_buf(),
            conn,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.db_path();
        let db = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let version: usize = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                path,
                found: version,
                known: MIGRATIONS.len(),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql).map_err(db)?;
            tx.pragma_update(None, "user_version", i + 1).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn db_path(&self) -> PathBuf {
        self.home.join("prelabel.db")
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.home.join("cache/components")
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Wraps a database error with the database's path.
    pub fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.db_path(),
            source,
        }
    }

    /// A write transaction, taken at once so that two processes never deadlock upgrading.
    pub fn write(&mut self) -> Result<Transaction<'_>, StoreError> {
        let path = self.db_path();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Db { path, source })
    }

    /// Stores bytes by their sha256 (once: an existing blob is not written again).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let digest = files::sha256_hex(bytes);
        self.put_blob_as(bytes, &digest)?;
        Ok(digest)
    }

    /// [`Store::put_blob`] when the caller has already computed the digest of `bytes`.
    pub fn put_blob_as(&self, bytes: &[u8], digest: &str) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        files::write_atomically(&path, bytes).map_err(|source| StoreError::Io {
            what: "cannot write blob",
            path,
            source,
        })
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (head, tail) = digest.split_at(digest.len().min(2));
        self.home.join("blobs/sha256").join(head).join(tail)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(|_| StoreError::MissingBlob {
            digest: digest.to_string(),
            path,
        })
    }

    /// Every problem found: SQLite's integrity check, then items and revisions whose blobs
    /// are missing. Empty when the store is sound.
    pub fn check(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let integrity = self.integrity_check()?;
        if integrity != "ok" {
            problems.push(format!("integrity check: {integrity}"));
        }
        let digests: Vec<(String, String)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT 'item ' || id, digest FROM items WHERE url IS NULL
                     UNION ALL SELECT 'component of revision #' || id, component_digest FROM revisions
                     UNION ALL SELECT 'artifact ' || name || ' of revision #' || revision_id, digest FROM revision_artifacts",
                )
                .map_err(|e| self.err(e))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
                .map_err(|e| self.err(e))?
        };
        for (what, digest) in digests {
            if !self.blob_path(&digest).is_file() {
                problems.push(format!("{what}: blob {digest} is missing"));
            }
        }
        Ok(problems)
    }

    /// SQLite's own consistency check: "ok" when the database is sound.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before review existed (schema 3) opens with its annotations intact,
    /// pending review, provenance kept.
    #[test]
    fn annotations_from_before_review_survive_the_table_rebuild() {
        let home = std::env::temp_dir().join(format!("prelabel-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("a temp dir");
        {
            let conn = Connection::open(home.join("prelabel.db")).expect("open");
            for sql in &MIGRATIONS[..3] {
                conn.execute_batch(sql).expect("old migration");
            }
            conn.pragma_update(None, "user_version", 3)
                .expect("version");
            conn.execute_batch(
                "INSERT INTO packages (id, name) VALUES (1, 'p');
                 INSERT INTO revisions (id, package_id, revision, version, manifest, component_digest)
                      VALUES (1, 1, 1, '0.1.0', '{}', 'c0ffee');
                 INSERT INTO datasets (id, name) VALUES (1, 'd');
                 INSERT INTO items (id, dataset_id, name, digest, size, mimetype, metadata)
                      VALUES (1, 1, 'a.png', 'ab', 2, 'image/png', '{}');
                 INSERT INTO executions (id, service_id, service_name, item_id, function, status)
                      VALUES (1, 1, 's', 1, 'detect', 'success');
                 INSERT INTO annotations (item_id, service_id, service_name, execution_id, revision_id,
                                          component_digest, label, geometry, model_name, model_version, confidence)
                      VALUES (1, 1, 's', 1, 1, 'c0ffee', 'face',
                              '{\"type\":\"box\",\"left\":1,\"top\":2,\"right\":3,\"bottom\":4}', 'res10', '1', 0.9);",
            )
            .expect("old rows");
        }
        let store = Store::open(&home).expect("migrates");
        let stored = crate::export::item_annotations(&store, 1).expect("reads");
        assert_eq!(stored.len(), 1);
        let a = &stored[0];
        assert_eq!(a.review, crate::annotation::Review::Pending);
        assert_eq!(a.service.as_deref(), Some("s"));
        assert_eq!(a.package.as_deref(), Some("p"));
        assert_eq!(a.execution_id, Some(1));
        assert_eq!(a.annotation.label, "face");
        // From before provenance (migration 8): no init values or host version, and the
        // revision's artifacts (none here) still read.
        assert_eq!(a.init_inputs, None);
        assert_eq!(a.host_version, None);
        assert_eq!(a.artifacts, Some(Default::default()));
        let execution = crate::execution::get(&store, 1).expect("old execution reads");
        assert_eq!((execution.init_inputs, execution.result), (None, None));
        let _ = std::fs::remove_dir_all(&home);
    }
}
