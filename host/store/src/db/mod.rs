//! One SQL interface over the store's two backends: SQLite (rusqlite, the embedded default)
//! and PostgreSQL (the `postgres` crate, when workers on several machines share one queue).
//!
//! Every query is written once, in the SQL both engines speak: `$1`-style parameters (SQLite
//! takes `$1` as a parameter's name, and binds by that name here, so the order they appear in
//! does not matter), `RETURNING id` for new rows, `ON CONFLICT` for upserts, and
//! [`NOW`](crate::NOW) for the time. What the two spell differently lives in
//! [`Dialect`]. Values cross as [`Value`]: integers, reals, text, bytes and NULL, which is
//! what the schema stores in both (booleans as 0/1, JSON as text).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

mod transaction;
mod value;
pub use transaction::{Snapshot, Tx};
pub use value::{Column, FromValue, Params, Row, ToValue, Value};
use value::{from_sqlite, refs, values};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    // Not sources: their words are the message, and would be printed twice.
    #[error("{0}")]
    Sqlite(rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(postgres::Error),
    #[error("the query returned no rows")]
    NoRows,
    #[error("stored column `{column}` holds `{value}`: {problem}")]
    Column {
        column: String,
        value: String,
        problem: String,
    },
    /// A column the code asks for that the query does not give (once): a mistake in the code,
    /// named so it is found at once.
    #[error("the query has no single column `{column}`: {reason}")]
    NoColumn { column: String, reason: String },
}

impl DbError {
    /// The database could not write because its disk is full (SQLite's `SQLITE_FULL`,
    /// PostgreSQL's `disk_full`).
    pub fn is_disk_full(&self) -> bool {
        match self {
            DbError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            DbError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::DISK_FULL),
            _ => false,
        }
    }
}

/// A file could not be written because its disk is full.
pub fn is_storage_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

/// PostgreSQL's own words for a server error (its severity, message, detail and hint), which
/// the driver's `Display` leaves out.
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" hint: {hint}"));
            }
            text
        }
        // A client-side error (a TLS handshake, a connection refused): its causes too.
        None => {
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            text
        }
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// `.optional()`: a query's "no rows" as `None`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Which engine a connection speaks to, for the few statements the two spell differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// What a `SELECT` that claims a row ends with: PostgreSQL locks the row and skips rows
    /// that other transactions hold; SQLite's write lock already excludes them.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// An object of `key: value` text pairs aggregated from a query's rows, as JSON text.
    pub fn json_object_agg(self, key: &str, value: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_group_object({key}, {value})"),
            Dialect::Postgres => format!("CAST(json_object_agg({key}, {value}) AS text)"),
        }
    }
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres {
        // Boxed: the client is large, and most connections are SQLite's.
        client: RefCell<Box<postgres::Client>>,
        /// Statements prepared on this connection, by their text: a query is planned once.
        prepared: RefCell<HashMap<String, postgres::Statement>>,
        /// Notifications on channel `prelabel` received so far, once [`Db::changes_within`]
        /// listens.
        notified: std::cell::Cell<Option<i64>>,
    },
}

/// A connection to the store's database. One per thread, as rusqlite's and postgres's are.
pub struct Db {
    backend: Backend,
}

impl Db {
    pub fn sqlite(conn: rusqlite::Connection) -> Self {
        Self {
            backend: Backend::Sqlite(conn),
        }
    }

    pub fn postgres(client: postgres::Client) -> Self {
        Self {
            backend: Backend::Postgres {
                client: RefCell::new(Box::new(client)),
                prepared: RefCell::default(),
                notified: std::cell::Cell::new(None),
            },
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// Waits up to `wait` (less when there is news) and returns a number that has moved if
    /// another connection (of this process or another) committed a change a scheduler cares
    /// about meanwhile: SQLite's `data_version`, read after sleeping; on PostgreSQL, the count
    /// of notifications on channel `prelabel` (the schema's triggers send one when an
    /// execution is queued or ends, and when a service changes), listened to from the first
    /// call, which returns as soon as one arrives.
    pub fn changes_within(&self, wait: Duration) -> Result<i64> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                std::thread::sleep(wait);
                Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
            }
            Backend::Postgres {
                client, notified, ..
            } => {
                let mut client = client.borrow_mut();
                let seen = match notified.get() {
                    Some(seen) => seen,
                    None => {
                        client.batch_execute("LISTEN prelabel")?;
                        0
                    }
                };
                let mut notifications = client.notifications();
                // A blocking wait: it reads the connection (a non-blocking look sees only
                // what earlier reads brought in).
                let mut new = 0;
                if notifications.timeout_iter(wait).next()?.is_some() {
                    new += 1;
                    let mut more = notifications.iter();
                    while more.next()?.is_some() {
                        new += 1;
                    }
                }
                notified.set(Some(seen + new));
                Ok(seen + new)
            }
        }
    }

    /// Whether a commit waits until it is on disk (the default) or may be lost to a power
    /// cut (never to a process kill): SQLite's `synchronous`, PostgreSQL's
    /// `synchronous_commit`, for writes that a restart would redo anyway.
    pub fn set_durable(&self, durable: bool) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn.pragma_update(
                None,
                "synchronous",
                if durable { "FULL" } else { "NORMAL" },
            )?),
            Backend::Postgres { .. } => self.execute_batch(if durable {
                "SET synchronous_commit TO on"
            } else {
                "SET synchronous_commit TO off"
            }),
        }
    }

    /// Ends this connection's session if it sits inside a transaction, doing nothing, for
    /// longer than `limit` (PostgreSQL's `idle_in_transaction_session_timeout`). A worker
    /// stopped or cut off in the middle of a claim would otherwise hold its locks, and every
    /// other worker's claims behind them, for as long as its connection lasts. Nothing on
    /// SQLite, whose workers share one machine and one home.
    ///
    /// `None` lifts the limit (a copy that reads another store inside its transaction).
    pub fn limit_idle_transactions(&self, limit: Option<Duration>) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            // 0 is PostgreSQL's "no limit"; a limit rounds up to a millisecond at least.
            Backend::Postgres { .. } => self.execute_batch(&format!(
                "SET idle_in_transaction_session_timeout = {}",
                limit.map_or(0, |l| l.as_millis().max(1))
            )),
        }
    }

    /// Whether the session is gone (the server ended it or went away): it cannot be used
    /// again, only replaced. For after an error: the error that the server sends as it ends
    /// a session can arrive before the client sees the connection close, so a session not
    /// yet known closed is asked (one round trip, at most five seconds).
    pub fn is_lost(&self) -> bool {
        match &self.backend {
            Backend::Sqlite(_) => false,
            Backend::Postgres { client, .. } => {
                let mut client = client.borrow_mut();
                client.is_closed() || client.is_valid(Duration::from_secs(5)).is_err()
            }
        }
    }

    /// Runs statements without parameters (a migration, a transaction's BEGIN).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Backend::Postgres { client, .. } => Ok(client.borrow_mut().batch_execute(sql)?),
        }
    }

    /// Runs one statement; how many rows it changed.
    pub fn execute(&self, sql: &str, params: Params<'_>) -> Result<usize> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                bind(&mut stmt, params)?;
                Ok(stmt.raw_execute()?)
            }
            Backend::Postgres {
                client, prepared, ..
            } => {
                let stmt = prepare(client, prepared, sql)?;
                let values = values(params);
                let n = client.borrow_mut().execute(&stmt, &refs(&values))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Every row of a query, each mapped by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                bind(&mut stmt, params)?;
                let columns: Arc<[String]> =
                    stmt.column_names().into_iter().map(String::from).collect();
                let n = columns.len();
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let values = (0..n)
                        .map(|i| r.get_ref(i).map(from_sqlite))
                        .collect::<rusqlite::Result<_>>()?;
                    out.push(f(&Row {
                        columns: columns.clone(),
                        values,
                    })?);
                }
                Ok(out)
            }
            Backend::Postgres {
                client, prepared, ..
            } => {
                let stmt = prepare(client, prepared, sql)?;
                let values = values(params);
                let rows = client.borrow_mut().query(&stmt, &refs(&values))?;
                let columns: Arc<[String]> = stmt
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect();
                rows.iter()
                    .map(|r| {
                        let values = (0..columns.len())
                            .map(|i| r.try_get::<_, Value>(i))
                            .collect::<Result<_, _>>()?;
                        f(&Row {
                            columns: columns.clone(),
                            values,
                        })
                    })
                    .collect()
            }
        }
    }

    /// The first row of a query, mapped by `f`; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: Params<'_>,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        let mut f = Some(f);
        let mut first = None;
        // Every row is read, the first mapped: the queries that use this return one row.
        self.query_map(sql, params, |row| {
            if let Some(f) = f.take() {
                first = Some(f(row)?);
            }
            Ok(())
        })?;
        first.ok_or(DbError::NoRows)
    }
}

/// A statement prepared on the connection, planned once per connection and text.
fn prepare(
    client: &RefCell<Box<postgres::Client>>,
    prepared: &RefCell<HashMap<String, postgres::Statement>>,
    sql: &str,
) -> Result<postgres::Statement> {
    if let Some(stmt) = prepared.borrow().get(sql) {
        return Ok(stmt.clone());
    }
    let stmt = client.borrow_mut().prepare(sql)?;
    prepared.borrow_mut().insert(sql.to_string(), stmt.clone());
    Ok(stmt)
}

/// Binds `$1`, `$2`, ... by name, so that the order they appear in the text does not matter.
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, params: Params<'_>) -> rusqlite::Result<()> {
    stmt.clear_bindings();
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (i, p) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt
            .parameter_index(&name)?
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name))?;
        stmt.raw_bind_parameter(index, p.to_value())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params;

    fn db() -> Db {
        Db::sqlite(rusqlite::Connection::open_in_memory().expect("an in-memory database"))
    }

    #[test]
    fn parameters_bind_by_number_whatever_their_order_in_the_text() {
        let db = db();
        let row = db
            .query_row("SELECT $2, $1, $2 || $1", params!["a", "b"], |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<String>(2)?,
                ))
            })
            .expect("a row");
        assert_eq!(row, ("b".into(), "a".into(), "ba".into()));
        // Too few or too many: an error, never a NULL in place of the missing one.
        assert!(
            db.query_row("SELECT $1, $2", params![1], |r| r.get::<i64>(0))
                .is_err()
        );
        assert!(
            db.query_row("SELECT $1", params![1, 2], |r| r.get::<i64>(0))
                .is_err()
        );
        assert!(matches!(
            db.query_row("SELECT 1 WHERE 0", params![], |r| r.get::<i64>(0)),
            Err(DbError::NoRows)
        ));
    }

    #[test]
    fn columns_are_read_strictly_naming_the_column_and_the_value() {
        let db = db();
        db.execute_batch("CREATE TABLE t (flag INTEGER, name TEXT); INSERT INTO t VALUES (7, 'x')")
            .expect("a table");
        let err = db
            .query_row("SELECT flag FROM t", params![], |r| r.get::<bool>(0))
            .expect_err("7 is not a boolean");
        assert_eq!(
            err.to_string(),
            "stored column `flag` holds `7`: expected 0 or 1, found 7"
        );
        let err = db
            .query_row("SELECT name FROM t", params![], |r| r.get::<u32>(0))
            .expect_err("text is not a number");
        assert!(err.to_string().contains("column `name` holds `x`"), "{err}");
        let err = db
            .query_row("SELECT -1", params![], |r| r.get::<u32>(0))
            .expect_err("out of range");
        assert!(err.to_string().contains("out of range for u32"), "{err}");
        let none: Option<i64> = db
            .query_row("SELECT NULL", params![], |r| r.get(0))
            .expect("NULL is None");
        assert_eq!(none, None);
    }

    #[test]
    fn a_transaction_dropped_without_commit_rolls_back() {
        let mut db = db();
        db.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("a table");
        {
            let tx = db.transaction().expect("begins");
            tx.execute("INSERT INTO t VALUES ($1)", params![1])
                .expect("inserts");
        }
        let n: i64 = db
            .query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0))
            .expect("counts");
        assert_eq!(n, 0);
        let tx = db.transaction().expect("begins");
        tx.execute("INSERT INTO t VALUES ($1)", params![2])
            .expect("inserts");
        tx.commit().expect("commits");
        let n: i64 = db
            .query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0))
            .expect("counts");
        assert_eq!(n, 1);
    }
}
