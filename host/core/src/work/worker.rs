//! Workers: every process that runs executions (a scheduler, a direct `execute`) registers
//! itself in the store and renews a lease with a heartbeat. An execution it runs names it and
//! the claim (`worker_id`, `claim`); a worker whose heartbeat is older than its lease is
//! *lost* (killed, stopped, cut off from the database), and the next claim on its executions'
//! service puts them back on the queue (see `execution::claim_next`). Its late result, if it
//! comes back, is not stored: the execution is no longer its claim.
//!
//! Times are the database's clock (`store::NOW_MS`), so machines whose clocks differ agree.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::{Location, NOW, NOW_MS, Store, params};

pub use crate::store::DEFAULT_LEASE;

/// The instances this process's scheduler holds: (service id, slot) → (service, the bytes
/// charged to it against its cap). Its heartbeat reports them; `/metrics` shows them.
static HELD: Mutex<BTreeMap<(i64, u32), (String, u64)>> = Mutex::new(BTreeMap::new());

fn held_lock() -> std::sync::MutexGuard<'static, BTreeMap<(i64, u32), (String, u64)>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// What slot `slot` of service `service_id` holds now: an instance of `service` charged
/// `bytes`, or nothing.
pub fn hold(service_id: i64, slot: u32, held: Option<(&str, usize)>) {
    let mut all = held_lock();
    match held {
        Some((service, bytes)) => {
            all.insert((service_id, slot), (service.to_string(), bytes as u64));
        }
        None => {
            all.remove(&(service_id, slot));
        }
    }
}

/// Each instance this process holds: its service's name and its charged bytes.
pub fn held() -> Vec<(String, u64)> {
    held_lock().values().cloned().collect()
}

/// The instances this process holds, by service name (what its heartbeat reports).
fn held_counts() -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (service, _) in held() {
        *counts.entry(service).or_insert(0) += 1;
    }
    counts
}

/// A registered worker: its id, and the count of its claims (a claim names the execution's
/// attempt by this worker, so that a re-claim by the same worker is another claim).
#[derive(Debug)]
pub struct Worker {
    pub id: i64,
    claims: AtomicI64,
}

impl Worker {
    /// The next claim's number.
    pub fn next_claim(&self) -> i64 {
        self.claims.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A home as workers name it: host and absolute path. One scheduler runs per home (its lock
/// file), so a scheduler that starts knows that earlier ones of its home are gone.
pub fn home_key(home: &Path) -> String {
    let path = std::path::absolute(home).unwrap_or_else(|_| home.to_path_buf());
    format!("{}:{}", host(), path.display())
}

/// How many ended workers (stopped, or lost a day ago with nothing left running) are kept for
/// `status`; older ones are pruned when a worker registers (their executions keep the id).
const ENDED_KEPT: i64 = 100;

/// Registers this process as a worker of `home` holding a lease of `lease`.
pub fn register(store: &mut Store, home: &Path, lease: Duration) -> Result<Worker> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let ended = format!(
        "stopped_at IS NOT NULL
         OR (heartbeat_ms + lease_ms < {NOW_MS} - 86400000
             AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.worker_id = w.id AND e.status = 'running'))"
    );
    store.conn().execute(
        &format!(
            "DELETE FROM workers WHERE id IN (SELECT w.id FROM workers w WHERE {ended})
                AND id <= COALESCE((SELECT w.id FROM workers w WHERE {ended}
                                     ORDER BY w.id DESC LIMIT 1 OFFSET $1), 0)"
        ),
        params![ENDED_KEPT],
    )?;
    let name = format!("{}:{}", host(), std::process::id());
    let id: i64 = store.conn().query_row(
        &format!(
            "INSERT INTO workers (name, home, lease_ms, heartbeat_ms) VALUES ($1, $2, $3, {NOW_MS}) RETURNING id"
        ),
        params![name, home_key(home), lease_ms],
        |r| r.get(0),
    )?;
    Ok(Worker {
        id,
        claims: AtomicI64::new(0),
    })
}

/// A registered worker and the thread that renews its lease, every third of it, until
/// dropped; then the worker is marked stopped (a clean stop, not a lost worker).
pub struct Registration {
    pub worker: Arc<Worker>,
    stop: Arc<AtomicBool>,
    beat: Option<JoinHandle<()>>,
    location: Location,
}

impl Registration {
    pub fn start(location: &Location) -> Result<Self> {
        let lease = location.lease;
        let mut store = location.open()?;
        let worker = Arc::new(register(&mut store, &location.home, lease)?);
        let stop = Arc::new(AtomicBool::new(false));
        let beat = {
            let (stop, id) = (stop.clone(), worker.id);
            std::thread::spawn(move || heartbeat(store, id, lease, &stop))
        };
        Ok(Self {
            worker,
            stop,
            beat: Some(beat),
            location: location.clone(),
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(beat) = self.beat.take() {
            beat.thread().unpark();
            let _ = beat.join();
        }
        let stopped = (|| -> Result<()> {
            self.location.open()?.conn().execute(
                &format!("UPDATE workers SET stopped_at = {NOW} WHERE id = $1"),
                params![self.worker.id],
            )?;
            Ok(())
        })();
        if let Err(e) = stopped {
            tracing::warn!("worker #{} could not record its stop: {e}", self.worker.id);
        }
    }
}

fn heartbeat(mut store: Store, id: i64, lease: Duration, stop: &AtomicBool) {
    // A heartbeat need not survive a power cut: a lost one only shortens the lease.
    let relax = |store: &Store| {
        if let Err(e) = store.conn().set_durable(false) {
            tracing::warn!("worker #{id}: {e}");
        }
    };
    relax(&store);
    let mut renewed = Instant::now();
    let mut renew = |store: &Store| match beat(store, id) {
        Ok(()) => {
            late(id, renewed.elapsed(), lease);
            renewed = Instant::now();
            true
        }
        Err(e) => {
            tracing::error!(
                "worker #{id} could not renew its lease ({:.1} s since the last renewal, lease {:.1} s): {e}",
                renewed.elapsed().as_secs_f64(),
                lease.as_secs_f64()
            );
            false
        }
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(lease / 3);
        if renew(&store) {
            continue;
        }
        // A session the database ended: a new one, or this worker is soon lost.
        match store.reconnect_if_lost() {
            Ok(true) => {
                relax(&store);
                renew(&store);
            }
            Ok(false) => {}
            Err(e) => tracing::error!("worker #{id} cannot reach the store: {e}"),
        }
    }
}

/// Says so when a renewal came later than a heartbeat's period allows: the store's write lock
/// was held long (SQLite under many writers), the database was slow, or the machine too busy
/// to run the thread. Past the lease, other workers may have taken this one for lost and
/// queued its executions again (this worker itself never does; see `execution::claim_next`).
fn late(id: i64, since_last: Duration, lease: Duration) {
    let every = lease / 3;
    if since_last <= every * 2 {
        return;
    }
    let (since, lease_s) = (since_last.as_secs_f64(), lease.as_secs_f64());
    if since_last > lease {
        tracing::warn!(
            "worker #{id}: its heartbeat was {since:.1} s apart, past its lease of {lease_s:.1} s \
             (the store was busy or the machine overloaded): other workers may have queued its \
             running executions again, and their outcomes here will not be stored"
        );
    } else {
        tracing::warn!(
            "worker #{id}: its heartbeat was {since:.1} s apart (lease {lease_s:.1} s): the store \
             is slow to take writes"
        );
    }
}

/// One heartbeat: the worker's lease runs from now.
pub fn beat(store: &Store, id: i64) -> Result<()> {
    // What it holds goes with each beat, for `status` on any machine.
    let instances = serde_json::to_string(&held_counts()).unwrap_or_default();
    store.conn().execute(
        &format!("UPDATE workers SET heartbeat_ms = {NOW_MS}, instances = $2 WHERE id = $1"),
        params![id, instances],
    )?;
    Ok(())
}

/// A worker as `prelabel status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerStatus {
    pub id: i64,
    /// host:pid
    pub name: String,
    pub started_at: String,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: i64,
    pub lease_ms: i64,
    /// `running`, `lost` (its lease ran out) or `stopped` (it stopped cleanly).
    pub state: String,
    /// Executions it is running now.
    pub running: Vec<i64>,
}

/// Workers that are running or lost, and the last `stopped` ones (most recent first), up to
/// `stopped` of them.
pub fn list(store: &Store, stopped: usize) -> Result<Vec<WorkerStatus>> {
    let workers = store.conn().query_map(
        &format!(
            "SELECT w.id, w.name, w.started_at, {NOW_MS} - w.heartbeat_ms AS heartbeat_age_ms, w.lease_ms,
                    CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
                         WHEN w.heartbeat_ms + w.lease_ms < {NOW_MS} THEN 'lost'
                         ELSE 'running' END AS state
               FROM workers w ORDER BY w.id DESC"
        ),
        params![],
        |r| {
            Ok(WorkerStatus {
                id: r.get("id")?,
                name: r.get("name")?,
                started_at: r.get("started_at")?,
                heartbeat_age_ms: r.get("heartbeat_age_ms")?,
                lease_ms: r.get("lease_ms")?,
                state: r.get("state")?,
                running: Vec::new(),
            })
        },
    )?;
    // What every worker runs, in one query rather than one per worker.
    let mut running: std::collections::HashMap<i64, Vec<i64>> = Default::default();
    for (worker, execution) in store.conn().query_map(
        "SELECT worker_id, id FROM executions
          WHERE worker_id IS NOT NULL AND status = 'running' ORDER BY id",
        params![],
        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
    )? {
        running.entry(worker).or_default().push(execution);
    }
    let mut shown = Vec::new();
    let mut stopped_shown = 0;
    for mut w in workers {
        if w.state == "stopped" {
            if stopped_shown >= stopped {
                continue;
            }
            stopped_shown += 1;
        }
        w.running = running.remove(&w.id).unwrap_or_default();
        shown.push(w);
    }
    shown.reverse();
    Ok(shown)
}

/// Holds the home's scheduler lock for as long as it lives.
pub struct HomeLock {
    _file: File,
}

pub fn lock_home(home: &Path) -> Result<HomeLock> {
    std::fs::create_dir_all(home).map_err(Error::io(home))?;
    let path = home.join("scheduler.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(HomeLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::HomeBusy {
            home: home.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io(&path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ended workers are pruned to the last [`ENDED_KEPT`] when one registers; running ones
    /// never are.
    #[test]
    fn ended_workers_are_pruned_and_running_ones_kept() {
        let home = std::env::temp_dir().join(format!("prelabel-workers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        let mut store = Store::open(&home).expect("a store");
        let first = register(&mut store, &home, DEFAULT_LEASE).expect("registers");
        for _ in 0..ENDED_KEPT + 20 {
            let w = register(&mut store, &home, DEFAULT_LEASE).expect("registers");
            store
                .conn()
                .execute(
                    &format!("UPDATE workers SET stopped_at = {NOW} WHERE id = $1"),
                    params![w.id],
                )
                .expect("stops");
        }
        register(&mut store, &home, DEFAULT_LEASE).expect("registers");
        let listed = list(&store, usize::MAX).expect("lists");
        let stopped = listed.iter().filter(|w| w.state == "stopped").count();
        assert_eq!(stopped as i64, ENDED_KEPT);
        assert!(
            listed
                .iter()
                .any(|w| w.id == first.id && w.state == "running")
        );
        let _ = std::fs::remove_dir_all(&home);
    }
}
