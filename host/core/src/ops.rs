//! The operations: one method per user action on a home (push a package, deploy, create a
//! trigger, upload, rerun, execute, export, ...), taking typed arguments and returning typed,
//! serialisable results. The CLI formats them and the HTTP API serialises them; neither
//! holds logic of its own, the way cargo's commands are thin doors over `cargo::ops`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::batch::{self, Batch};
use crate::compare;
use crate::error::{Error, Result};
use crate::evaluate;
use crate::event::{self, Event};
use crate::execution::{self, Execution, Interrupted, Rerun, Status};
use crate::export::{self, Stored};
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

    /// Checks a package folder and stores it as its next revision. `root`: a wider folder
    /// its paths may reach into (see `Package::load_within`).
    pub fn push(&self, dir: &Path, root: Option<&Path>) -> Result<Revision> {
        let runtime = self.runtime()?;
        revision::push(&mut *self.store()?, &runtime, dir, root)
    }

    /// Pushes a package sent as one file (see [`archive::pack`]): unpacked into a fresh
    /// folder under HOME/tmp with at most `limit` bytes, read with the package folder's rule
    /// (its files inside it), removed afterwards whatever happened.
    pub fn push_archive(&self, bytes: &[u8], limit: u64) -> Result<Revision> {
        let tmp = self.location.home.join("tmp");
        let scratch = Scratch::new(&tmp, "package").map_err(Error::io(&tmp))?;
        let dir = archive::unpack(bytes, scratch.path(), limit)?;
        self.push(&dir, None)
    }

    /// Writes the package in `dir` as one `.tar.gz` (at `out`, or NAME-VERSION.tar.gz in the
    /// current folder), after checking that its component loads.
    pub fn pack(&self, dir: &Path, root: Option<&Path>, out: Option<&Path>) -> Result<Packed> {
        let package = Package::load_within(dir, root)?;
        package.compile(&*self.runtime()?)?;
        let (name, version) = (&package.manifest.name, &package.manifest.version);
        let path = out.map_or_else(
            || PathBuf::from(format!("{name}-{version}.tar.gz")),
            Path::to_path_buf,
        );
        let mut bytes = Vec::new();
        archive::pack(&package, &mut bytes)?;
        crate::files::write_atomically(&path, &bytes).map_err(Error::io(&path))?;
        Ok(Packed {
            package: name.clone(),
            version: version.clone(),
            path,
            bytes: bytes.len() as u64,
        })
    }

    /// Each package with its latest revision.
    pub fn packages(&self) -> Result<Vec<Revision>> {
        revision::list(&*self.store()?)
    }

    pub fn revisions(&self, package: &str) -> Result<Vec<Revision>> {
        revision::revisions(&*self.store()?, package)
    }

    // Services.

    pub fn deploy(&self, request: &Deploy) -> Result<Deployed> {
        let (service, created) = service::deploy(&mut *self.store()?, request)?;
        Ok(Deployed { service, created })
    }

    pub fn services(&self) -> Result<Vec<Service>> {
        service::list(&*self.store()?)
    }

    pub fn service(&self, name: &str) -> Result<Service> {
        service::get(&*self.store()?, name)
    }

    pub fn set_paused(&self, name: &str, paused: bool) -> Result<Service> {
        service::set_paused(&mut *self.store()?, name, paused)
    }

    pub fn delete_service(&self, name: &str) -> Result<Deleted> {
        let canceled = service::delete(&mut *self.store()?, name)?;
        Ok(Deleted {
            service: name.to_string(),
            canceled,
        })
    }

    /// One pass of `prelabel watch`: build, and unless the result is what the service runs,
    /// push it and deploy it live. What the user got wrong (a failing build, a refused
    /// package or deploy) is a [`Pass`] that keeps the service as it is, not an error.
    pub fn watch_pass(&self, watch: &Watch) -> Result<Pass> {
        let serving = match self.service(&watch.service) {
            Ok(service) => Some(service),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let label = serving
            .as_ref()
            .map(|s| format!("{} revision {}", s.package, s.revision));
        let refused = |error: String| Pass::Refused {
            error,
            serving: label.clone(),
        };
        let built = match watch.build() {
            Ok(built) => built,
            Err(NotBuilt::Failed { command, status }) => {
                return Ok(Pass::BuildFailed {
                    command,
                    status,
                    serving: label,
                });
            }
            Err(e) => return Ok(refused(e.to_string())),
        };
        let package = match watch.package() {
            Ok(package) => package,
            Err(e) => return Ok(refused(e.to_string())),
        };
        if let Some(service) = &serving {
            let current =
                revision::revision(&*self.store()?, &service.package, Some(service.revision))?;
            if crate::watch::same(&package, &current) {
                return Ok(Pass::Unchanged {
                    serving: current.label(),
                    built,
                });
            }
        }
        // The package as read above: the folder is not read a second time.
        let runtime = self.runtime()?;
        let pushed = revision::push_package(&mut *self.store()?, &runtime, &package);
        let revision = match pushed {
            Ok(revision) => revision,
            Err(e) => return Ok(refused(e.to_string())),
        };
        let deploy = Deploy {
            package: revision.package.clone(),
            name: watch.service.clone(),
            revision: Some(revision.revision),
            ..Deploy::default()
        };
        match self.deploy(&deploy) {
            Ok(_) => Ok(Pass::Deployed {
                revision: Box::new(revision),
                was: label,
                built,
            }),
            Err(e) => Ok(refused(format!(
                "{} was pushed but not deployed: {e}",
                revision.label()
            ))),
        }
    }

    pub fn rollback(&self, name: &str) -> Result<Service> {
        service::rollback(&mut *self.store()?, name)
    }

    // Triggers.

    pub fn create_trigger(&self, request: &Create) -> Result<Trigger> {
        trigger::create(&mut *self.store()?, request)
    }

    pub fn triggers(&self) -> Result<Vec<Trigger>> {
        trigger::list(&*self.store()?)
    }

    pub fn delete_trigger(&self, name: &str) -> Result<()> {
        trigger::delete(&mut *self.store()?, name)
    }

    // Items and annotations.

    /// Stores `bytes` as item `name` of `dataset` and fires the triggers that match.
    pub fn upload(&self, dataset: &str, name: &str, bytes: &[u8]) -> Result<Uploaded> {
        let (item, change, queued) = item::upload(&mut *self.store()?, dataset, name, bytes)?;
        Ok(Uploaded {
            item,
            change,
            queued,
        })
    }

    pub fn items(&self, dataset: Option<&str>) -> Result<Vec<ItemRecord>> {
        item::list(&*self.store()?, dataset)
    }

    pub fn datasets(&self) -> Result<Vec<Dataset>> {
        item::datasets(&*self.store()?)
    }

    pub fn item(&self, id: i64) -> Result<ItemRecord> {
        item::get(&*self.store()?, id)
    }

    /// An item's stored annotations, with where each came from.
    pub fn item_annotations(&self, id: i64) -> Result<Vec<Stored>> {
        let store = self.store()?;
        item::get(&store, id)?;
        export::item_annotations(&store, id)
    }

    /// An item and its original bytes (a linked item's downloaded first, see [`Home::fetch`]).
    pub fn item_bytes(&self, id: i64) -> Result<(ItemRecord, Vec<u8>)> {
        let (item, download) = self.item_to_read(id)?;
        if download {
            return self.fetched(id);
        }
        let bytes = self.store()?.read_blob(&item.digest)?;
        Ok((item, bytes))
    }

    /// The item, and whether its bytes must be downloaded before they can be read.
    fn item_to_read(&self, id: i64) -> Result<(ItemRecord, bool)> {
        let store = self.store()?;
        let item = item::get(&store, id)?;
        let download = link::needs_download(&store, &item)?;
        Ok((item, download))
    }

    /// Downloads a linked item's bytes unless the store has them (within the default item
    /// size limit and a minute), and returns the item as it is then.
    pub fn fetch(&self, id: i64) -> Result<ItemRecord> {
        match self.item_to_read(id)? {
            (item, false) => Ok(item),
            (_, true) => Ok(self.fetched(id)?.0),
        }
    }

    fn fetched(&self, id: i64) -> Result<(ItemRecord, Vec<u8>)> {
        // A connection of its own: a download must not hold the home's for a minute.
        let store = self.location.open()?;
        let item = item::get(&store, id)?;
        let limits = crate::runtime::Limits::default();
        let bytes = link::bytes(&store, &item, limits.max_item_bytes, limits.timeout)?;
        Ok((item::get(&store, id)?, bytes))
    }

    /// Links items to URLs (see [`crate::link`]); `access` stays with the dataset (private
    /// addresses, headers from secrets).
    pub fn link(
        &self,
        dataset: &str,
        links: &[Link],
        access: &link::Access,
    ) -> Result<Vec<Uploaded>> {
        let linked = link::link(&mut *self.store()?, dataset, links, access)?;
        Ok(linked
            .into_iter()
            .map(|(item, change, queued)| Uploaded {
                item,
                change,
                queued,
            })
            .collect())
    }

    // Secrets.

    pub fn set_secret(&self, name: &str, value: &str) -> Result<Secret> {
        secret::set(&mut *self.store()?, name, value)
    }

    pub fn secrets(&self) -> Result<Vec<Secret>> {
        secret::list(&*self.store()?)
    }

    /// A package's init values as its instance receives them when it runs outside a service
    /// (`prelabel detect`): each secret input names a secret of this home, read now.
    pub fn reveal(
        &self,
        manifest: &crate::manifest::Manifest,
        init: BTreeMap<String, InputValue>,
    ) -> Result<BTreeMap<String, InputValue>> {
        if manifest.secrets().next().is_none() {
            return Ok(init);
        }
        let store = self.store()?;
        secret::check_init(&store, manifest, &init)?;
        secret::reveal(&store, manifest, &init)
    }

    pub fn delete_secret(&self, name: &str) -> Result<()> {
        secret::delete(&mut *self.store()?, name)
    }

    /// A JPEG thumbnail of an item's image, made once and cached (see [`crate::thumbnail`]).
    pub fn thumbnail(&self, id: i64, side: u32) -> Result<Vec<u8>> {
        // Downloaded only when the store lacks the bytes: a cached thumbnail reads nothing else.
        let item = self.fetch(id)?;
        crate::thumbnail::get(&*self.store()?, &item, side)
    }

    /// Every item of a dataset with its stored annotations, by item name.
    pub fn annotated_items(&self, dataset: &str) -> Result<Vec<(ItemRecord, Vec<Stored>)>> {
        export::annotated_items(&*self.store()?, dataset)
    }

    /// A dataset's annotations in an export format; with `kept_only`, only those a person
    /// accepted, edited or drew.
    pub fn export(
        &self,
        dataset: &str,
        format: export::Format,
        kept_only: bool,
    ) -> Result<export::Exported> {
        export::export(&*self.store()?, dataset, format, kept_only)
    }

    /// A candidate package revision run on a dataset beside a service's annotations, storing
    /// nothing (see [`compare`](crate::compare)).
    pub fn compare(&self, request: &compare::Request) -> Result<compare::Comparison> {
        let runtime = self.runtime()?;
        // A connection of its own: the candidate runs for seconds per item, and the home's
        // (shared by the API's requests and the CLI's steps) must not wait on it. The
        // comparison only reads, and SQLite's WAL lets it read beside the writers.
        compare::compare(&self.location.open()?, &runtime, request)
    }

    /// A service's boxes on a dataset scored against ground truth (see
    /// [`evaluate`](crate::evaluate)).
    pub fn evaluate(&self, request: &evaluate::Request) -> Result<evaluate::Evaluation> {
        evaluate::evaluate(&*self.store()?, request)
    }

    /// A comparison as one self-contained HTML page of overlays.
    pub fn compare_html(&self, comparison: &compare::Comparison) -> Result<String> {
        compare::html(&*self.store()?, comparison)
    }

    /// A person's review of an annotation: accept, reject, relabel, move or resize.
    pub fn review(&self, id: i64, change: &review::Change) -> Result<Stored> {
        review::review(&mut *self.store()?, id, change)
    }

    /// An annotation a person drew on an item.
    pub fn add_annotation(&self, item: i64, manual: &review::Manual) -> Result<Stored> {
        review::add(&mut *self.store()?, item, manual)
    }

    // Executions.

    pub fn executions(&self, status: Option<Status>) -> Result<Vec<Execution>> {
        execution::list(&*self.store()?, status)
    }

    pub fn execution(&self, id: i64) -> Result<Execution> {
        execution::get(&*self.store()?, id)
    }

    /// A page of the executions that match, newest first, and how many match in all.
    pub fn execution_page(
        &self,
        filter: &execution::Filter,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<Execution>, u64)> {
        execution::page(&*self.store()?, filter, offset, limit)
    }

    /// Queues a service's function on every item of a dataset that matches the filters.
    pub fn batch(&self, request: &batch::Request) -> Result<Batch> {
        batch::queue(&mut *self.store()?, request)
    }

    /// A prediction another tool waits on (see [`predict`]): `bytes` stored as item `name` of
    /// `dataset`, the service's `function` run on it through the queue (the scheduler of
    /// `serve` runs it), its boxes once it ends, or an error after `wait`.
    pub fn predict(&self, request: &Prediction<'_>, wait: Duration) -> Result<Predicted> {
        let uploaded = self.upload(request.dataset, request.name, request.bytes)?;
        let item = uploaded.item;
        let id = predict::queue(
            &mut *self.store()?,
            request.service,
            request.function,
            &item,
        )?;
        let execution = predict::wait(|| execution::get(&*self.store()?, id), wait)?;
        let annotations = predict::answer(self.item_annotations(item.id)?, request.service);
        Ok(Predicted {
            item,
            execution,
            annotations,
        })
    }

    /// An image another tool names by URL (a Label Studio task's), downloaded within the
    /// service's item size limit and call timeout, with `grant`'s headers for its origin.
    /// Not stored: [`Home::predict`] stores it.
    pub fn download(
        &self,
        service: &str,
        url: &str,
        grant: Option<&crate::runtime::download::Grant>,
    ) -> Result<Vec<u8>> {
        let limits = self.service(service)?.settings.limits();
        let limits = crate::runtime::download::Limits {
            max_bytes: limits.max_item_bytes,
            allow_private: false,
            deadline: limits.timeout,
        };
        crate::runtime::download::fetch(url, &limits, grant).map_err(|source| Error::Download {
            url: url.to_string(),
            source,
        })
    }

    /// The labels a service gives (see [`predict::labels`]).
    pub fn labels(&self, service: &Service) -> Result<Vec<String>> {
        predict::labels(&*self.store()?, service)
    }

    /// A batch and its progress.
    pub fn batch_progress(&self, id: i64) -> Result<Batch> {
        batch::get(&*self.store()?, id)
    }

    /// Cancels a queued execution.
    pub fn cancel(&self, id: i64) -> Result<Execution> {
        execution::cancel(&mut *self.store()?, id)
    }

    /// Changes after event `after` (see [`crate::event`]).
    pub fn events_since(&self, after: i64, limit: usize) -> Result<Vec<Event>> {
        event::since(&*self.store()?, after, limit)
    }

    /// The latest event's id: where a new reader of changes starts.
    pub fn latest_event(&self) -> Result<i64> {
        event::latest(&*self.store()?)
    }

    pub fn prune_events(&self) -> Result<usize> {
        event::prune(&*self.store()?)
    }

    pub fn rerun(&self, status: Option<Status>) -> Result<Rerun> {
        execution::rerun(&mut *self.store()?, status)
    }

    /// Runs a service's function on an item now, in this process, and returns the finished
    /// execution with the annotations it stored.
    pub fn execute(&self, service: &str, function: &str, item: i64) -> Result<Executed> {
        let runtime = self.runtime()?;
        let execution = scheduler::execute_now(&self.location, &runtime, service, function, item)?;
        let annotations = export::item_annotations(&*self.store()?, item)?
            .into_iter()
            .filter(|a| a.execution_id == Some(execution.id))
            .collect();
        Ok(Executed {
            execution,
            annotations,
        })
    }

    /// Runs exactly what an execution ran again, storing nothing, and says whether its
    /// annotations are byte-identical to the recorded ones (see [`replay`](crate::replay)).
    pub fn replay(&self, execution: i64) -> Result<replay::Replay> {
        let runtime = self.runtime()?;
        replay::replay(&*self.store()?, &runtime, execution)
    }

    /// Runs the scheduler until `stop` is set or, with `until_idle`, until nothing is left
    /// to do. Returns what it found left running by stopped processes.
    pub fn serve(&self, stop: Arc<AtomicBool>, until_idle: bool) -> Result<Interrupted> {
        self.schedule(self.lock()?, stop, until_idle)
    }

    /// The home's scheduler lock: one scheduler per home.
    pub fn lock(&self) -> Result<HomeLock> {
        scheduler::lock_home(&self.location.home)
    }

    /// [`Home::serve`] with the lock already taken.
    pub fn schedule(
        &self,
        lock: HomeLock,
        stop: Arc<AtomicBool>,
        until_idle: bool,
    ) -> Result<Interrupted> {
        scheduler::run_locked(lock, &self.location, self.runtime()?, stop, until_idle)
    }

    /// The store, its workers (with their leases and heartbeats) and each service's queue.
    pub fn status(&self) -> Result<StoreStatus> {
        let store = self.store()?;
        Ok(StoreStatus {
            store: self.location.describe(),
            blobs: self.location.blobs_at().describe(),
            workers: crate::worker::list(&store, 5)?,
            queues: execution::queues(&store)?,
        })
    }

    /// Copies the store at `from` (every row with its id, every blob) into this home's store,
    /// which must be empty, then checks the target.
    pub fn migrate(&self, from: &Location) -> Result<Migrated> {
        let source = from.open()?;
        let mut target = self.store()?;
        let copied = crate::store::copy::copy(&source, &mut target)?;
        Ok(Migrated {
            from: from.describe(),
            to: self.location.describe(),
            copied,
            problems: target.check()?,
        })
    }

    /// SQLite's integrity check and every blob on disk: the problems found.
    pub fn check(&self) -> Result<Vec<String>> {
        Ok(self.store()?.check()?)
    }
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
