//! The operations: one method per user action on a home (push a package, deploy, create a
//! trigger, upload, rerun, execute, export, ...), taking typed arguments and returning typed,
//! serialisable results. The CLI formats them and the HTTP API serialises them; neither
//! holds logic of its own, the way cargo's commands are thin doors over `cargo::ops`.

mod catalog;
mod detect;
mod items;
mod people;
mod work;

pub use detect::Detect;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::catalog::instance_type::InstanceTypes;
use crate::catalog::revision::{self, Revision};
use crate::catalog::secret::{self, Secret};
use crate::catalog::service::{self, Deploy, Service};
use crate::catalog::watch::{Pass, Watch};
use crate::error::{Error, Result};
use crate::files::Scratch;
use crate::items::event::{self, Event};
use crate::items::item::{self, Change, Dataset, ItemRecord};
use crate::items::link::{self, Link};
use crate::package::build::NotBuilt;
use crate::package::manifest::InputValue;
use crate::package::pipeline::{Outcome, Spec};
use crate::package::{Package, archive};
use crate::people::Scope;
use crate::results::annotation::{self, Stored};
use crate::results::evaluate;
use crate::results::export;
use crate::results::review;
use crate::runtime::Runtime;
use crate::store::{Location, Store};
use crate::work::batch::{self, Batch};
use crate::work::compare;
use crate::work::execution::{self, Execution, Interrupted, Rerun, Status};
use crate::work::pipeline::{self, Applied, Pipeline, RunPath, Shown};
use crate::work::predict;
use crate::work::replay;
use crate::work::scheduler::{self, budget::Host};
use crate::work::task::{self, Decided, Held, Task};
use crate::work::trigger::{self, Create, Trigger};
use crate::work::worker::HomeLock;
use crate::work::worker::WorkerStatus;

/// A home (a store, its blobs and compile cache) and the operations on it. The store is
/// opened on first use, then each operation takes a connection of a pool (r2d2), so that
/// concurrent operations (the API's requests) do not wait on one another: on SQLite in WAL
/// mode readers go side by side and writers one at a time (the store's busy wait), on
/// PostgreSQL each has a session. The runtime (one wasmtime engine) is created on first use.
pub struct Home {
    location: Location,
    cache_dir: PathBuf,
    pool: OnceLock<r2d2::Pool<Connections>>,
    runtime: OnceLock<Arc<Runtime>>,
    /// What this host offers its scheduler's instances (`--host-memory`, `--host-cores`).
    host: Host,
}

/// Connections the pool holds at most: enough for the API's blocking threads to read side
/// by side, few enough for PostgreSQL's `max_connections` with several workers.
const POOL_SIZE: u32 = 8;

/// How long an operation waits for a connection when all are taken.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// What the pool opens: the home's store, one connection each, the first being the one
/// `Home::store` opened itself (so a command that needs one connection opens one); one whose
/// session the database ended is opened again when taken.
struct Connections {
    location: Location,
    first: std::sync::Mutex<Option<Store>>,
}

impl r2d2::ManageConnection for Connections {
    type Connection = Store;
    type Error = crate::store::StoreError;

    fn connect(&self) -> Result<Store, Self::Error> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        first.map_or_else(|| self.location.open(), Ok)
    }

    fn is_valid(&self, store: &mut Store) -> Result<(), Self::Error> {
        store.reconnect_if_lost().map(|_| ())
    }

    fn has_broken(&self, _: &mut Store) -> bool {
        false
    }
}

/// What `deploy` did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deployed {
    pub service: Service,
    /// A new service, rather than an update of one.
    pub created: bool,
}

/// What another tool asks a service for (see [`Home::predict`]).
#[derive(Debug, Clone, Copy)]
pub struct Prediction<'a> {
    pub service: &'a str,
    pub function: &'a str,
    pub dataset: &'a str,
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// A prediction's answer: the item, the execution that answered, the item's boxes from the
/// service that a person did not reject.
#[derive(Debug, Clone)]
pub struct Predicted {
    pub item: ItemRecord,
    pub execution: Execution,
    pub annotations: Vec<Stored>,
}

/// A package written as one archive.
#[derive(Debug, Clone, Serialize)]
pub struct Packed {
    pub package: String,
    pub version: String,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Where the store is, who works on it and how much is waiting: `prelabel status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoreStatus {
    /// The database (a PostgreSQL URL without its password, or the SQLite file).
    pub store: String,
    /// The blob folder, or the bucket's `s3://` URL.
    pub blobs: String,
    /// Running and lost workers, and the last few that stopped.
    pub workers: Vec<WorkerStatus>,
    pub queues: Vec<execution::Queue>,
    /// Executions in the store by status.
    pub executions: BTreeMap<String, i64>,
}

/// What `migrate` did: rows and blobs copied, and what `check` found on the target after.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
    pub from: String,
    pub to: String,
    pub copied: crate::store::copy::Copied,
    /// Empty when the target checks sound.
    pub problems: Vec<String>,
}

/// What `backup` copied, from where to where.
#[derive(Debug, Clone, Serialize)]
pub struct BackedUp {
    pub from: String,
    pub to: String,
    pub copied: crate::store::copy::Copied,
}

/// What deleting a service did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub service: String,
    /// Its queued executions, canceled.
    pub canceled: usize,
}

/// What an upload did to one item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    pub item: ItemRecord,
    pub change: Change,
    /// Executions its triggers queued.
    pub queued: usize,
}

/// Uploads of many files, counted.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Uploads {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub queued: usize,
}

impl Uploads {
    pub fn add(&mut self, uploaded: &Uploaded) {
        *match uploaded.change {
            Change::Created => &mut self.created,
            Change::Updated => &mut self.updated,
            Change::Unchanged => &mut self.unchanged,
        } += 1;
        self.queued += uploaded.queued;
    }
}

/// A function run on an item now, with what it stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Executed {
    pub execution: Execution,
    /// The annotations this execution stored on the item (none unless it succeeded).
    pub annotations: Vec<Stored>,
}

impl Home {
    /// `cache_dir`: where compiled components are cached (default `dir/cache/components`).
    pub fn new(dir: impl Into<PathBuf>, cache_dir: Option<PathBuf>) -> Self {
        Self::at(Location::home(dir), cache_dir)
    }

    /// A home whose store is at `location` (its rows in PostgreSQL, say).
    pub fn at(location: Location, cache_dir: Option<PathBuf>) -> Self {
        let cache_dir = cache_dir.unwrap_or_else(|| location.home.join("cache/components"));
        Self {
            location,
            cache_dir,
            pool: OnceLock::new(),
            runtime: OnceLock::new(),
            host: Host::default(),
        }
    }

    /// This home, its scheduler's instances held within what `host` offers.
    pub fn on_host(self, host: Host) -> Self {
        Self { host, ..self }
    }

    /// A home whose operations use `runtime` (one engine shared by several homes).
    pub fn with_runtime(dir: impl Into<PathBuf>, runtime: Arc<Runtime>) -> Self {
        Self::new(dir, None).using_runtime(runtime)
    }

    /// This home, its operations using `runtime`.
    pub fn using_runtime(self, runtime: Arc<Runtime>) -> Self {
        let _ = self.runtime.set(runtime);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.location.home
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// A connection to the store, of the pool; the first opens (and migrates) the store, so
    /// that what is wrong with it is its own error, not the pool's.
    pub fn store(&self) -> Result<StoreGuard> {
        let pool = match self.pool.get() {
            Some(pool) => pool,
            None => {
                let first = self.location.open()?;
                let pool = r2d2::Pool::builder()
                    .max_size(POOL_SIZE)
                    .min_idle(Some(0))
                    .connection_timeout(POOL_WAIT)
                    .error_handler(Box::new(r2d2::LoggingErrorHandler))
                    .build_unchecked(Connections {
                        location: self.location.clone(),
                        first: std::sync::Mutex::new(Some(first)),
                    });
                self.pool.get_or_init(|| pool)
            }
        };
        let store = pool.get().map_err(|e| {
            // The pool keeps the cause of a connection that failed only as words.
            Error::Store(crate::store::StoreError::Location {
                given: self.location.describe(),
                reason: format!(
                    "no connection to the store within {} s: {e}",
                    POOL_WAIT.as_secs()
                ),
            })
        })?;
        Ok(StoreGuard(store))
    }

    /// The runtime: one engine per home in this process, compiled components cached.
    pub fn runtime(&self) -> Result<Arc<Runtime>> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime.clone());
        }
        let runtime = Arc::new(Runtime::new(Some(self.cache_dir.clone())).map_err(Error::Runtime)?);
        Ok(self.runtime.get_or_init(|| runtime).clone())
    }

    // Packages.
}

/// A connection to the home's store, held for one operation, then back in the pool.
pub struct StoreGuard(r2d2::PooledConnection<Connections>);

impl std::ops::Deref for StoreGuard {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.0
    }
}

impl std::ops::DerefMut for StoreGuard {
    fn deref_mut(&mut self) -> &mut Store {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two operations hold connections at once: the second does not wait for the first to
    /// end (it did, on one connection behind a lock), and both read the same store.
    #[test]
    fn operations_take_connections_side_by_side() {
        let dir = std::env::temp_dir().join(format!("prelabel-pool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let home = Arc::new(Home::new(&dir, None));
        let held = home.store().expect("a connection");
        let (sent, got) = std::sync::mpsc::channel();
        let other = home.clone();
        std::thread::spawn(move || {
            let _ = sent.send(other.store().map(|s| s.dialect()).is_ok());
        });
        let answer = got.recv_timeout(Duration::from_secs(20));
        assert_eq!(answer, Ok(true), "a second operation waited on the first");
        assert_eq!(held.dialect(), crate::store::Dialect::Sqlite);
        drop(held);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
