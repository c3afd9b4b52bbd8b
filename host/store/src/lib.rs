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

use prelabel_files as files;

pub mod backup;
pub mod blobs;
pub mod copy;
pub mod db;
pub mod tls;
pub use blobs::{Blobs, BlobsAt};
pub use db::{Db, DbError, Dialect, OptionalExtension, Params, Row, ToValue, Tx};

/// How long a worker's lease lasts without a heartbeat, by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// SQLite's schema migrations, applied in order; `PRAGMA user_version` is how many have run.
pub const MIGRATIONS: &[&str] = &[
    include_str!("001_initial.sql"),
    include_str!("002_sandbox.sql"),
    include_str!("003_events.sql"),
    include_str!("004_review.sql"),
    include_str!("005_batches.sql"),
    include_str!("006_links.sql"),
    include_str!("007_secrets.sql"),
    include_str!("008_provenance.sql"),
    include_str!("009_outbound.sql"),
    include_str!("010_workers.sql"),
    include_str!("011_inference.sql"),
    include_str!("012_pipelines.sql"),
    include_str!("013_pipeline_runs.sql"),
    include_str!("014_pipeline_outputs.sql"),
    include_str!("015_people.sql"),
    include_str!("016_sessions_audit.sql"),
    include_str!("017_task_qa.sql"),
    include_str!("018_elastic.sql"),
    include_str!("019_instances.sql"),
];

/// PostgreSQL's schema migrations (its first is SQLite's 001-009 at once); table
/// `prelabel_schema` holds how many have run.
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("postgres/001_schema.sql"),
    include_str!("postgres/002_workers.sql"),
    include_str!("postgres/003_inference.sql"),
    include_str!("postgres/004_pipelines.sql"),
    include_str!("postgres/005_pipeline_runs.sql"),
    include_str!("postgres/006_pipeline_outputs.sql"),
    include_str!("postgres/007_people.sql"),
    include_str!("postgres/008_sessions_audit.sql"),
    include_str!("postgres/009_task_qa.sql"),
    include_str!("postgres/010_elastic.sql"),
    include_str!("postgres/011_instances.sql"),
];

/// The one timestamp expression every write uses: UTC, milliseconds, ISO 8601 (what the
/// schema's defaults write too, so stored times sort and compare as text). A view on both
/// backends (per connection on SQLite), so that queries spell it once.
pub const NOW: &str = "(SELECT now FROM prelabel_clock)";

/// The same clock in milliseconds since the epoch, for leases (the database's clock: one for
/// every machine that shares it).
pub const NOW_MS: &str = "(SELECT ms FROM prelabel_clock)";

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {at}: {source}")]
    Db { at: String, source: DbError },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blob {digest} is missing from the store ({})", path.display())]
    MissingBlob { digest: String, path: PathBuf },
    #[error("blob {digest} is corrupt: its bytes ({}) have sha256 {found}", path.display())]
    CorruptBlob {
        digest: String,
        path: PathBuf,
        found: String,
    },
    #[error("the store at {at} has schema version {found}; this prelabel knows up to {known}")]
    TooNew {
        at: String,
        found: usize,
        known: usize,
    },
    #[error("blob store {at}: blob {digest}: {reason}")]
    Bucket {
        at: String,
        digest: String,
        reason: String,
    },
    #[error("cannot connect to {at}: {source}")]
    Connect { at: String, source: DbError },
    #[error("{at} is not empty ({table} has {rows} rows): a migration copies into an empty store")]
    NotEmpty {
        at: String,
        table: &'static str,
        rows: i64,
    },
    #[error("`{given}` is not a store: {reason}")]
    Location { given: String, reason: String },
    #[error("{} holds no backup (no {SQLITE_FILE}): `prelabel backup DIR` makes one", dir.display())]
    NoBackup { dir: PathBuf },
    #[error("{} is the store's own home or blob folder: a backup goes into a folder of its own", dir.display())]
    BackupIntoItself { dir: PathBuf },
}

impl StoreError {
    /// The store could not write because a disk is full: its database's or its blobs'.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db { source, .. } | StoreError::Connect { source, .. } => {
                source.is_disk_full()
            }
            StoreError::Io { source, .. } => db::is_storage_full(source),
            _ => false,
        }
    }
}

/// Where a store lives: its home folder (blobs, compile cache, and the SQLite database by
/// default) and, when scaled out, the PostgreSQL database that holds its rows instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub home: PathBuf,
    pub database: Database,
    /// Where blobs live when not in `HOME/blobs`: a folder every worker mounts, or a bucket.
    pub blobs: Option<BlobsAt>,
    /// How long this process may go unheard before other workers take its executions back:
    /// its worker's lease, and on PostgreSQL the longest any of its sessions may sit idle
    /// inside a transaction (see [`Db::limit_idle_transactions`]).
    pub lease: Duration,
}

/// The database of a [`Location`].
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// `HOME/prelabel.db`.
    Sqlite,
    /// A `postgres://` URL (its password never printed).
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite => f.write_str("Sqlite"),
            Database::Postgres(url) => write!(f, "Postgres({})", redact(url)),
        }
    }
}

impl Database {
    /// `--store`: empty or `sqlite` for the home's own database, else a `postgres://` or
    /// `postgresql://` URL.
    pub fn parse(given: &str) -> Result<Self, StoreError> {
        let given = given.trim();
        if given.is_empty() || given == "sqlite" {
            return Ok(Database::Sqlite);
        }
        if given.starts_with("postgres://") || given.starts_with("postgresql://") {
            let (_, tls) = tls::split(given).map_err(|reason| StoreError::Location {
                given: redact(given),
                reason,
            })?;
            // A root file that cannot be read is named now, not at the first connection.
            tls::connector(&tls).map_err(|reason| StoreError::Location {
                given: redact(given),
                reason,
            })?;
            return Ok(Database::Postgres(given.to_string()));
        }
        Err(StoreError::Location {
            given: redact(given),
            reason: "expected `sqlite` or a postgres://USER@HOST/DATABASE URL".into(),
        })
    }
}

/// A URL as it may be printed: its password replaced (and, in one that does not parse,
/// everything before its host).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &url[..scheme + 3], &url[at..])
            }
            _ => url.to_string(),
        },
    }
}

impl Location {
    /// The embedded default: SQLite in `home`.
    pub fn home(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            database: Database::Sqlite,
            blobs: None,
            lease: DEFAULT_LEASE,
        }
    }

    /// What errors and `status` call the database.
    pub fn describe(&self) -> String {
        match &self.database {
            Database::Sqlite => self.home.join(SQLITE_FILE).display().to_string(),
            Database::Postgres(url) => redact(url),
        }
    }

    pub fn open(&self) -> Result<Store, StoreError> {
        Store::open_at(self)
    }

    /// Where blobs are kept: `--blobs`, else `HOME/blobs`.
    pub fn blobs_at(&self) -> BlobsAt {
        self.blobs
            .clone()
            .unwrap_or_else(|| BlobsAt::Folder(self.home.join("blobs")))
    }
}

/// An open store. One per thread: database connections are not shared.
pub struct Store {
    location: Location,
    db: Db,
    blobs: Blobs,
}

impl Store {
    /// Opens (creating if needed) the embedded store under `home`, schema up to date.
    pub fn open(home: &Path) -> Result<Self, StoreError> {
        Self::open_at(&Location::home(home))
    }

    /// Opens the store at `location` and brings its schema up to date.
    pub fn open_at(location: &Location) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&location.home).map_err(|source| StoreError::Io {
            what: "cannot create the home",
            path: location.home.clone(),
            source,
        })?;
        let blobs = Blobs::open(&location.blobs_at(), &location.home)?;
        let at = location.describe();
        let connect = |source| StoreError::Connect {
            at: at.clone(),
            source,
        };
        let db = match &location.database {
            Database::Sqlite => Db::sqlite(open_sqlite(&location.home).map_err(connect)?),
            Database::Postgres(url) => {
                let location_err = |reason| StoreError::Location {
                    given: redact(url),
                    reason,
                };
                let (mut config, tls) = tls::split(url).map_err(location_err)?;
                let connector = tls::connector(&tls).map_err(location_err)?;
                // Named in `pg_stat_activity`, so that an operator (and a test) can tell
                // which process holds which session and lock.
                if config.get_application_name().is_none() {
                    config.application_name(&format!("prelabel {}", std::process::id()));
                }
                let client = config.connect(connector).map_err(|e| connect(e.into()))?;
                Db::postgres(client)
            }
        };
        // Before anything else, the migrations' transaction included.
        db.limit_idle_transactions(Some(location.lease))
            .map_err(|source| StoreError::Db {
                at: at.clone(),
                source,
            })?;
        let mut store = Self {
            location: location.clone(),
            db,
            blobs,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let at = self.location.describe();
        let db = |source| StoreError::Db {
            at: at.clone(),
            source,
        };
        let dialect = self.db.dialect();
        let (migrations, version) = match dialect {
            Dialect::Sqlite => (MIGRATIONS, "PRAGMA user_version"),
            Dialect::Postgres => {
                // Two workers starting at once: the first creates the table, the second
                // waits for it (CREATE ... IF NOT EXISTS alone races).
                self.db
                    .execute_batch(
                        "BEGIN; SELECT pg_advisory_xact_lock(1);
                         CREATE TABLE IF NOT EXISTS prelabel_schema (version BIGINT NOT NULL);
                         INSERT INTO prelabel_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM prelabel_schema);
                         COMMIT;",
                    )
                    .map_err(db)?;
                (POSTGRES_MIGRATIONS, "SELECT version FROM prelabel_schema")
            }
        };
        let tx = self.db.transaction().map_err(db)?;
        let found: usize = tx.query_row(version, params![], |r| r.get(0)).map_err(db)?;
        if found > migrations.len() {
            return Err(StoreError::TooNew {
                at,
                found,
                known: migrations.len(),
            });
        }
        for (i, sql) in migrations.iter().enumerate().skip(found) {
            tx.execute_batch(sql).map_err(db)?;
            let done = i + 1;
            match dialect {
                Dialect::Sqlite => tx.execute_batch(&format!("PRAGMA user_version = {done}")),
                Dialect::Postgres => tx
                    .execute("UPDATE prelabel_schema SET version = $1", params![done])
                    .map(drop),
            }
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// A new session in place of one the database ended (a server restart, a failover, an
    /// operator's `pg_terminate_backend`, or [`Db::limit_idle_transactions`]); whatever the
    /// old one had not committed, the server rolled back. Whether it reconnected.
    pub fn reconnect_if_lost(&mut self) -> Result<bool, StoreError> {
        if !self.db.is_lost() {
            return Ok(false);
        }
        *self = Store::open_at(&self.location)?;
        Ok(true)
    }

    pub fn home(&self) -> &Path {
        &self.location.home
    }

    /// Where compiled components are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.location.home.join("cache/components")
    }

    pub fn conn(&self) -> &Db {
        &self.db
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Wraps a database error with where the database is.
    pub fn err(&self, source: DbError) -> StoreError {
        StoreError::Db {
            at: self.location.describe(),
            source,
        }
    }

    /// A write transaction (see [`Db::transaction`]).
    pub fn write(&mut self) -> Result<Tx<'_>, StoreError> {
        let at = self.location.describe();
        self.db
            .transaction()
            .map_err(|source| StoreError::Db { at, source })
    }

    /// A transaction for claims: not flushed to disk, and without the store-wide lock (see
    /// [`Db::relaxed_transaction`]).
    pub fn claim_transaction(&mut self) -> Result<Tx<'_>, StoreError> {
        let at = self.location.describe();
        self.db
            .relaxed_transaction()
            .map_err(|source| StoreError::Db { at, source })
    }

    /// Stores bytes by their sha256 (once: an existing blob is not written again).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let digest = files::sha256_hex(bytes);
        self.put_blob_as(bytes, &digest)?;
        Ok(digest)
    }

    /// [`Store::put_blob`] when the caller has already computed the digest of `bytes`.
    pub fn put_blob_as(&self, bytes: &[u8], digest: &str) -> Result<(), StoreError> {
        self.blobs.put(digest, bytes)
    }

    /// A local file holding the blob (for a bucket, the home's cached copy).
    pub fn blob_file(&self, digest: &str) -> Result<PathBuf, StoreError> {
        self.blobs.local(digest)
    }

    pub fn has_blob(&self, digest: &str) -> Result<bool, StoreError> {
        self.blobs.has(digest)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        self.blobs.read(digest)
    }

    /// Every problem found: SQLite's integrity check, then items and revisions whose blobs
    /// are missing or whose bytes are not what their digest says. Empty when the store is
    /// sound. (Every blob in a folder is read; a bucket checks what it sends as it is read.)
    pub fn check(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = Vec::new();
        let integrity = self.integrity_check()?;
        if integrity != "ok" {
            problems.push(format!("integrity check: {integrity}"));
        }
        let digests: Vec<(String, String)> = self
            .db
            .query_map(
                "SELECT 'item ' || id, digest FROM items WHERE url IS NULL
                 UNION ALL SELECT 'component of revision #' || id, component_digest FROM revisions
                 UNION ALL SELECT 'artifact ' || name || ' of revision #' || revision_id, digest FROM revision_artifacts",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        for (what, digest) in digests {
            if !self.has_blob(&digest)? {
                problems.push(format!("{what}: blob {digest} is missing"));
                continue;
            }
            if matches!(self.blobs, Blobs::Bucket(_)) {
                continue;
            }
            match self.read_blob(&digest) {
                Ok(_) => {}
                Err(e @ (StoreError::CorruptBlob { .. } | StoreError::MissingBlob { .. })) => {
                    problems.push(format!("{what}: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(problems)
    }

    /// SQLite's own consistency check: "ok" when the database is sound. PostgreSQL keeps
    /// its own consistency (checksums, WAL); there it is "ok" once the server answers.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "PRAGMA integrity_check",
            Dialect::Postgres => "SELECT 'ok'",
        };
        self.db
            .query_row(sql, params![], |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

/// The home's SQLite database, set up as every connection to it must be.
/// The embedded store's database file, in its home.
pub const SQLITE_FILE: &str = "prelabel.db";

fn open_sqlite(home: &Path) -> Result<rusqlite::Connection, DbError> {
    let conn = rusqlite::Connection::open(home.join(SQLITE_FILE))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer, and a killed process leaves a consistent db.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a committed execution survives a power cut, not only a process kill.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // The clock every write reads (`NOW`): a view of this connection only, so that the
    // database file itself is as before.
    conn.execute_batch(
        "CREATE TEMP VIEW prelabel_clock AS
             SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS now,
                    CAST(unixepoch('subsec') * 1000 AS INTEGER) AS ms",
    )?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_a_printed_store() {
        for (given, shown) in [
            (
                "postgres://u:secret@db:5432/p",
                "postgres://u:***@db:5432/p",
            ),
            (
                "postgres://u:secret@db:notaport/p",
                "postgres://***@db:notaport/p",
            ),
            ("postgres://u@db/p", "postgres://u@db/p"),
        ] {
            assert_eq!(redact(given), shown);
        }
        let err = Database::parse("postgres://u:secret@db:notaport/p").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert_eq!(Database::parse("sqlite").ok(), Some(Database::Sqlite));
        assert!(Database::parse("mysql://u@db/p").is_err());
    }
}
