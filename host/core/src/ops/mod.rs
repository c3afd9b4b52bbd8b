//! The operations: one method per user action on a home (push a package, deploy, create a
//! trigger, upload, rerun, execute, export, ...), taking typed arguments and returning typed,
//! serialisable results. The CLI formats them and the HTTP API serialises them; neither
//! holds logic of its own, the way cargo's commands are thin doors over `cargo::ops`.

mod catalog;
mod items;
mod work;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::annotation::{self, Stored};
use crate::batch::{self, Batch};
use crate::compare;
use crate::error::{Error, Result};
use crate::evaluate;
use crate::event::{self, Event};
use crate::execution::{self, Execution, Interrupted, Rerun, Status};
use crate::export;
use crate::files::Scratch;
use crate::item::{self, Change, Dataset, ItemRecord};
use crate::link::{self, Link};
use crate::manifest::InputValue;
use crate::package::build::NotBuilt;
use crate::package::{Package, archive};
use crate::predict;
use crate::replay;
use crate::review;
use crate::revision::{self, Revision};
use crate::runtime::Runtime;
use crate::scheduler::{self, HomeLock};
use crate::secret::{self, Secret};
use crate::service::{self, Deploy, Service};
use crate::store::{Location, Store};
use crate::trigger::{self, Create, Trigger};
use crate::watch::{Pass, Watch};
use crate::worker::WorkerStatus;

/// A home (a store, its blobs and compile cache) and the operations on it. The store is
/// opened on first use and shared by the operations (behind a lock: one writer at a time is
/// what SQLite allows anyway); the runtime (one wasmtime engine) is created on first use.
pub struct Home {
    location: Location,
    cache_dir: PathBuf,
    store: Mutex<Option<Store>>,
    runtime: OnceLock<Arc<Runtime>>,
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
            store: Mutex::new(None),
            runtime: OnceLock::new(),
        }
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

    /// The store, opened (and migrated) on first use.
    pub fn store(&self) -> Result<StoreGuard<'_>> {
        // A panic while the store was held cannot leave it half-written: every write is
        // one transaction, rolled back when dropped.
        let mut guard = self.store.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            // A session the database ended since the last operation: a new one.
            Some(store) => {
                store.reconnect_if_lost()?;
            }
            None => *guard = Some(self.location.open()?),
        }
        Ok(StoreGuard(guard))
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

/// The home's store, held for one operation.
pub struct StoreGuard<'h>(MutexGuard<'h, Option<Store>>);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        self.0.as_ref().expect("opened before the guard is made")
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        self.0.as_mut().expect("opened before the guard is made")
    }
}
