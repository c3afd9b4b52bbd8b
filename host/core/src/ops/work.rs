//! The work on items: executions and batches, predictions, events, reruns and replays, the
//! scheduler, and the store's own status, migration and check.

use super::*;

impl Home {
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

    /// A batch and its progress.
    pub fn batch_progress(&self, id: i64) -> Result<Batch> {
        batch::get(&*self.store()?, id)
    }

    /// Cancels a queued execution.
    pub fn cancel(&self, id: i64) -> Result<Execution> {
        execution::cancel(&mut *self.store()?, id)
    }

    /// Changes after event `after` (see [`crate::items::event`]).
    /// Changes after event `after`, only those about datasets `scope` sees, and the id read
    /// up to.
    pub fn events_since(
        &self,
        after: i64,
        limit: usize,
        scope: &Scope,
    ) -> Result<(Vec<Event>, i64)> {
        event::since_in(&*self.store()?, after, limit, scope)
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
        let annotations = annotation::item_annotations(&*self.store()?, item)?
            .into_iter()
            .filter(|a| a.execution_id == Some(execution.id))
            .collect();
        Ok(Executed {
            execution,
            annotations,
        })
    }

    /// Runs exactly what an execution ran again, storing nothing, and says whether its
    /// annotations are byte-identical to the recorded ones (see [`replay`](crate::work::replay)).
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
        crate::work::worker::lock_home(&self.location.home)
    }

    /// [`Home::serve`] with the lock already taken.
    pub fn schedule(
        &self,
        lock: HomeLock,
        stop: Arc<AtomicBool>,
        until_idle: bool,
    ) -> Result<Interrupted> {
        let runtime = self.runtime()?;
        scheduler::run_locked(lock, &self.location, runtime, self.host, stop, until_idle)
    }

    /// The store, its workers (with their leases and heartbeats) and each service's queue.
    pub fn status(&self) -> Result<StoreStatus> {
        let store = self.store()?;
        Ok(StoreStatus {
            store: self.location.describe(),
            blobs: self.location.blobs_at().describe(),
            workers: crate::work::worker::list(&store, 5)?,
            queues: execution::queues(&store)?,
            executions: execution::by_status(&store)?,
        })
    }

    /// `/metrics`: the store's numbers as [`Home::status`] reads them, and this process's.
    pub fn metrics(&self) -> Result<String> {
        let status = self.status()?;
        let metrics = crate::work::metrics::global();
        let states: Vec<&str> = status.workers.iter().map(|w| w.state.as_str()).collect();
        Ok(metrics.render(&status.queues, &status.executions, &states))
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

    /// A copy of this store, taken while it serves, into `dir` as a home of its own (see
    /// [`crate::store::backup`]): every row committed before it began, and their blobs.
    pub fn backup(&self, dir: &Path) -> Result<BackedUp> {
        // A connection of its own: its snapshot and unlimited idle time end with it.
        let source = self.location.open()?;
        let copied = crate::store::backup::backup(&source, dir)?;
        Ok(BackedUp {
            from: self.location.describe(),
            to: dir.display().to_string(),
            copied,
        })
    }

    /// The backup in `dir` copied into this home's store, which must be empty; then checked.
    pub fn restore(&self, dir: &Path) -> Result<Migrated> {
        let mut target = self.store()?;
        let copied = crate::store::backup::restore(dir, &mut target)?;
        Ok(Migrated {
            from: dir.display().to_string(),
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
