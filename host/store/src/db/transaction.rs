//! Transactions on a [`Db`]: serialised writes, relaxed ones (a claim), and read snapshots
//! (a backup).

use super::{Backend, Db, Result};
use crate::params;

impl Db {
    /// Starts a write transaction. On SQLite it takes the write lock at once (so that two
    /// processes never deadlock upgrading); on PostgreSQL it takes one advisory lock that
    /// every write transaction takes, so that writes are serialised exactly as on SQLite and
    /// a check-then-write inside one is as safe. The hot paths of a scaled-out queue (claims,
    /// heartbeats) do not go through it.
    pub fn transaction(&mut self) -> Result<Tx<'_>> {
        match self.backend {
            Backend::Sqlite(_) => self.execute_batch("BEGIN IMMEDIATE")?,
            Backend::Postgres { .. } => {
                self.execute_batch("BEGIN")?;
                if let Err(e) =
                    self.execute("SELECT pg_advisory_xact_lock($1)", params![WRITE_LOCK])
                {
                    let _ = self.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(Tx {
            db: self,
            done: false,
            restore_durable: false,
        })
    }

    /// A transaction whose commit need not survive a power cut (a claim: lost, its
    /// execution is still queued, and a restart re-queues a `running` one anyway; the next
    /// durable commit flushes the log up to and including it), and that does not take the
    /// store-wide write lock (what runs in it takes its own). SQLite can change `synchronous`
    /// only outside a transaction, so it is relaxed before and restored after; PostgreSQL's
    /// `SET LOCAL` ends with the transaction.
    pub fn relaxed_transaction(&mut self) -> Result<Tx<'_>> {
        let sqlite = matches!(self.backend, Backend::Sqlite(_));
        if sqlite {
            self.set_durable(false)?;
            if let Err(e) = self.execute_batch("BEGIN IMMEDIATE") {
                let _ = self.set_durable(true);
                return Err(e);
            }
        } else {
            self.execute_batch("BEGIN; SET LOCAL synchronous_commit TO off")?;
        }
        Ok(Tx {
            db: self,
            done: false,
            restore_durable: sqlite,
        })
    }
}

impl Db {
    /// A read-only view of one moment of the database, for every read through this
    /// connection until the [`Snapshot`] drops, while other connections go on writing: a
    /// read transaction on SQLite (WAL: its snapshot is fixed by its first read, made here),
    /// `REPEATABLE READ` on PostgreSQL (fixed by its first statement, made here). What a
    /// backup reads, so that rows that name one another come together.
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        match self.backend {
            Backend::Sqlite(_) => self.execute_batch("BEGIN DEFERRED")?,
            Backend::Postgres { .. } => {
                self.execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?
            }
        }
        let snapshot = Snapshot { db: self };
        self.query_row("SELECT COUNT(*) FROM items", params![], |r| r.get::<i64>(0))?;
        Ok(snapshot)
    }
}

/// A read transaction over one moment (see [`Db::snapshot`]); ended when dropped.
pub struct Snapshot<'a> {
    db: &'a Db,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // It wrote nothing; a connection that fails this is broken and its transaction ends
        // with it.
        let _ = self.db.execute_batch("ROLLBACK");
    }
}

/// The advisory lock every serialised write transaction takes on PostgreSQL.
const WRITE_LOCK: i64 = 0x7072_656c_6162_656c; // "prelabel"

/// A write transaction: rolled back when dropped without [`Tx::commit`]. Reads and writes
/// through it as through the [`Db`] it derefs to.
pub struct Tx<'a> {
    db: &'a Db,
    done: bool,
    /// SQLite's `synchronous` to set back to durable when it ends.
    restore_durable: bool,
}

impl Tx<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        self.db.execute_batch("COMMIT")?;
        if self.restore_durable {
            self.restore_durable = false;
            self.db.set_durable(true)?;
        }
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Nothing to do if it fails: the connection is then broken, and its transaction
            // dies with it.
            let _ = self.db.execute_batch("ROLLBACK");
        }
        if self.restore_durable {
            let _ = self.db.set_durable(true);
        }
    }
}
