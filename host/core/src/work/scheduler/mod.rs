//! The scheduler: takes queued executions off the store and runs them, per service at most
//! `concurrency` at once (across every worker sharing the store), each on an instance that
//! was initialised once and is reused.
//!
//! One worker thread per (service, slot). A worker re-reads its service before each claim: a
//! new generation (deploy, rollback) means a fresh instance of the new revision for the next
//! execution, while the one already running finishes where it started. A trap or timeout
//! fails that execution only (retried up to `max_attempts`) and the next one gets a fresh
//! instance. One scheduler runs per home (a lock file). The process is a worker in the store
//! (see [`crate::work::worker`]): at start it re-queues what a killed scheduler of its home left
//! `running`; on a shared database, claims also take back the executions of lost workers.
//!
//! Idle, it costs next to nothing: the scheduler's loop waits for the store to change
//! (SQLite's `data_version`, read every 100 ms, moves when any other connection commits;
//! PostgreSQL notifies channel `prelabel`) and wakes the idle workers only then ([`Wake`]); a
//! worker does not open a write transaction to find that nothing is queued.

pub mod budget;
mod idle;
mod record;
mod run;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::catalog::revision::Revision;
use crate::catalog::service::{self, Service};
use crate::error::Result;
use crate::runtime::{Instance, Loaded, Runtime};
use crate::store::{Dialect, Location, Store};
use crate::work::execution;
use crate::work::metrics::{self, Stage};
use crate::work::worker::{self, HomeLock, Registration, Worker, lock_home};
use budget::{Budget, Host, Need, Room, Take};
use idle::{Keep, release_when_idle};
use record::requeue_when_able;
pub use run::execute_now;
use run::{run_claimed, warm_up as start_ahead};

/// How often the scheduler looks at the store for changes (new work, new services).
const POLL: Duration = Duration::from_millis(100);
/// How long an idle worker sleeps when nothing wakes it: a bound, not the way it finds work.
const IDLE: Duration = Duration::from_secs(5);

/// Tells idle workers that the store changed: a count of changes seen by the scheduler's
/// loop, and a condition variable. A worker notes the count before it looks for work and, if
/// it found none, waits for the count to move, so a change between its look and its wait is
/// never missed.
#[derive(Default)]
struct Wake {
    changes: Mutex<u64>,
    changed: std::sync::Condvar,
}

impl Wake {
    fn seen(&self) -> u64 {
        *self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        *self.changes.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.changed.notify_all();
    }

    /// Waits until the count is no longer `seen`, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        let changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .changed
            .wait_timeout_while(changes, timeout, |now| *now == seen);
    }
}

/// Compiled components by revision id, shared by every worker of the process.
#[derive(Default)]
pub struct Components {
    loaded: Mutex<HashMap<i64, Loaded>>,
}

impl Components {
    fn get(&self, store: &Store, runtime: &Runtime, revision: &Revision) -> Result<Loaded> {
        if let Some(l) = self.lock().get(&revision.id) {
            return Ok(l.clone());
        }
        let loaded = revision.load(store, runtime)?;
        self.lock().insert(revision.id, loaded.clone());
        Ok(loaded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Loaded>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a worker keeps between executions: the instance of one service generation.
struct Slot {
    generation: i64,
    revision: Revision,
    loaded: Loaded,
    instance: Option<Instance>,
}

/// What a worker holds: its slot, and the host's room for its instance (see [`budget`]).
#[derive(Default)]
struct Held {
    slot: Option<Slot>,
    room: Option<Room>,
    /// Whether it said that its service's instance can never fit this host.
    told_never: bool,
    /// The service generation whose instance it last made ahead of work (once each).
    warmed: Option<i64>,
}

impl Held {
    fn has_instance(&self) -> bool {
        self.slot.as_ref().is_some_and(|s| s.instance.is_some())
    }

    /// Gives back the instance and its room.
    fn give_back(&mut self, service_id: i64, slot: u32) {
        if let Some(s) = self.slot.as_mut() {
            s.instance = None;
        }
        self.room = None;
        worker::hold(service_id, slot, None);
    }
}

/// Runs until `stop` is set (then drains: running executions finish, no new ones start),
/// or, with `until_idle`, until nothing is queued or running for an unpaused service.
/// Returns what it found left `running` by stopped processes, and what it did with them.
pub fn run(
    home: &Location,
    runtime: Arc<Runtime>,
    host: Host,
    stop: Arc<AtomicBool>,
    until_idle: bool,
) -> Result<execution::Interrupted> {
    run_locked(
        lock_home(&home.home)?,
        home,
        runtime,
        host,
        stop,
        until_idle,
    )
}

/// [`run`], with the home's lock already taken (so that a server can refuse to start before
/// it listens).
pub fn run_locked(
    _lock: HomeLock,
    home: &Location,
    runtime: Arc<Runtime>,
    host: Host,
    stop: Arc<AtomicBool>,
    until_idle: bool,
) -> Result<execution::Interrupted> {
    let mut store = home.open()?;
    // On the embedded store this is the home's one scheduler (its lock says so): whatever is
    // still running was left by a process that stopped. On a shared database other workers
    // are running; theirs are found lost by their leases, one claim at a time.
    let registration = Registration::start(home)?;
    let interrupted = match store.dialect() {
        Dialect::Sqlite => execution::requeue_interrupted(&mut store)?,
        Dialect::Postgres => execution::requeue_home(
            &mut store,
            &worker::home_key(&home.home),
            &registration.worker,
        )?,
    };
    let context = Context::new(home, runtime, registration.worker.clone(), host);
    let wake = context.wake.clone();
    let mut workers: HashMap<(i64, u32), JoinHandle<()>> = HashMap::new();
    let mut version = store.conn().changes_within(Duration::ZERO)?;
    let mut changed = true;
    while !stop.load(Ordering::Relaxed) {
        // One round; `Ok(false)` when `until_idle` finds nothing left to do.
        let round = (|| -> Result<bool> {
            let running = workers.len();
            workers.retain(|_, w| !w.is_finished());
            // Services are read again only when the store changed or a worker ended.
            if changed || workers.len() < running {
                start_workers(&store, &mut workers, &context, &stop)?;
                if until_idle && execution::pending(&store)? == 0 {
                    return Ok(false);
                }
            }
            let now = store.conn().changes_within(POLL)?;
            changed = now != version;
            if changed {
                version = now;
                wake.bump();
            }
            Ok(true)
        })();
        match round {
            Ok(true) => {}
            Ok(false) => break,
            // The database ended this session (a restart, a failover, an operator): a new
            // one, and the services read again; while it cannot be reached, a try a second.
            // The worker threads replace theirs alike.
            Err(e) => match store.reconnect_if_lost() {
                Ok(false) => return Err(e),
                Ok(true) => {
                    tracing::warn!("the scheduler's session ended ({e}); connected again");
                    changed = true;
                }
                Err(cannot) => {
                    tracing::error!("the scheduler's session ended ({e}): {cannot}");
                    std::thread::sleep(POLL * 10);
                    changed = true;
                }
            },
        }
    }
    stop.store(true, Ordering::Relaxed);
    wake.bump();
    for (_, w) in workers {
        let _ = w.join();
    }
    Ok(interrupted)
}

/// A worker thread for each slot of each running service that has none (its concurrency).
fn start_workers(
    store: &Store,
    workers: &mut HashMap<(i64, u32), JoinHandle<()>>,
    context: &Context,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    for service in service::list(store)?.into_iter().filter(|s| !s.paused) {
        for slot in 0..service.settings.concurrency {
            workers.entry((service.id, slot)).or_insert_with(|| {
                let (context, stop) = (context.clone(), stop.clone());
                std::thread::spawn(move || worker(context, service.id, slot, stop))
            });
        }
    }
    Ok(())
}

/// What every worker thread of a scheduler shares.
#[derive(Clone)]
struct Context {
    home: Location,
    runtime: Arc<Runtime>,
    components: Arc<Components>,
    wake: Arc<Wake>,
    worker: Arc<Worker>,
    budget: Arc<Budget>,
}

impl Context {
    fn new(home: &Location, runtime: Arc<Runtime>, worker: Arc<Worker>, host: Host) -> Context {
        let wake = Arc::new(Wake::default());
        let budget = {
            // A worker that starts to wait for room wakes the idle ones: they may give it up.
            let wake = wake.clone();
            Budget::new(host, move || wake.bump())
        };
        Context {
            home: home.clone(),
            runtime,
            components: Arc::new(Components::default()),
            wake,
            worker,
            budget,
        }
    }
}

fn worker(context: Context, service_id: i64, slot: u32, stop: Arc<AtomicBool>) {
    let (home, wake, budget) = (&context.home, &context.wake, &context.budget);
    let mut store = match home.open() {
        Ok(s) => s,
        Err(e) => return tracing::error!("worker cannot open the store: {e}"),
    };
    let mut held = Held::default();
    let mut last_ran = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let seen = wake.seen();
        match step(&mut store, &context, service_id, slot, &mut held) {
            Ok(Step::Ran) => last_ran = Instant::now(),
            // Bounded by the lease too: a lost worker changes nothing in the store, and its
            // executions come back only when a claim sees its lease run out.
            Ok(Step::Idle(keep)) => {
                let wanted = budget.should_yield(service_id);
                let left = release_when_idle(&mut held, service_id, slot, keep, last_ran, wanted);
                wake.wait(seen, IDLE.min(home.lease).min(left));
            }
            // Looks at its queue again now and then: the work may have gone elsewhere.
            Ok(Step::Waiting) => budget.wait(POLL * 10),
            Ok(Step::Exit) => break,
            Ok(Step::Unended { claim, why }) => {
                requeue_when_able(&mut store, context.worker.id, claim, why, &stop)
            }
            Err(e) => {
                tracing::error!("worker for service #{service_id}: {e}");
                std::thread::sleep(POLL * 10);
                // A session the database ended (this worker sat inside a transaction past its
                // lease, or a restart, a failover) is replaced.
                if let Err(e) = store.reconnect_if_lost() {
                    tracing::error!("worker cannot reach the store: {e}");
                }
            }
        }
    }
    // Its instance goes with it, and its room.
    budget.leave(service_id, slot);
    held.give_back(service_id, slot);
}

enum Step {
    Ran,
    /// Nothing to claim; how long an idle instance of this slot is kept.
    Idle(Keep),
    /// Work, but no room on this host for its instance yet.
    Waiting,
    Exit,
    /// What claim number `claim` took could be neither recorded nor failed (a full disk, a
    /// session the database ended and no new one yet): see [`requeue_when_able`].
    Unended {
        claim: i64,
        why: String,
    },
}

fn step(
    store: &mut Store,
    context: &Context,
    service_id: i64,
    slot: u32,
    held: &mut Held,
) -> Result<Step> {
    let (runtime, components, worker) = (&context.runtime, &context.components, &context.worker);
    let Some(service) = service::by_id(store, service_id)? else {
        return Ok(Step::Exit);
    };
    if service.paused || slot >= service.settings.concurrency {
        return Ok(Step::Exit);
    }
    let keep = Keep::of(slot, &service.settings);
    if let Some(step) = make_room(store, context, &service, slot, held, keep)? {
        return Ok(step);
    }
    // Numbered before it is made: if the session ends during the claim, its commit may have
    // reached the server all the same, and this number finds what it took.
    let claim = worker.next_claim();
    let claimed = match execution::claim_next(
        store,
        service.id,
        service.settings.concurrency,
        service.revision_id,
        worker,
        claim,
    ) {
        Ok(claimed) => claimed,
        // Its commit may have reached the server all the same: what it took goes back on the
        // queue, on a new session, now or once there is one.
        Err(e) if store.conn().is_lost() => {
            return Ok(Step::Unended {
                claim,
                why: format!("the session ended during a claim ({e})"),
            });
        }
        Err(e) => return Err(e),
    };
    let Some(claimed) = claimed else {
        return Ok(Step::Idle(keep));
    };
    let metrics = metrics::global();
    if let Some(wait) = claimed.queued_at.as_deref().and_then(metrics::since) {
        metrics.stage(&service.name, Stage::queue_wait, wait);
    }
    // Whatever happens from here, the execution ends: a panic in this worker or an outcome
    // that cannot be recorded (a store busy past its wait) fails it with the cause rather
    // than leaving it `running` until a restart; one a full disk kept out goes back on the
    // queue once there is room.
    let current = &mut held.slot;
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_claimed(store, runtime, components, &service, current, &claimed)
    }));
    let live = current.as_ref().and_then(|s| s.instance.as_ref());
    let held = live.map(|i| (service.name.as_str(), i.memory_bytes()));
    worker::hold(service.id, slot, held);
    let cause = match ran {
        Ok(Ok(())) => return Ok(Step::Ran),
        // Failing it would need the room it lacks, and the item is not at fault.
        Ok(Err(e)) if e.is_disk_full() => {
            return Ok(Step::Unended {
                claim: claimed.claim,
                why: format!("execution #{}: the disk is full: {e}", claimed.id),
            });
        }
        Ok(Err(e)) => format!("could not record the outcome: {e}"),
        Err(panic) => {
            *current = None;
            format!(
                "the host's worker panicked: {}",
                crate::runtime::panic_message(&*panic)
            )
        }
    };
    Ok(fail(store, &claimed, &cause))
}

/// Fails a claimed execution for `cause`. Never left `running` under a worker that lives on:
/// if it cannot be failed either, it goes back on the queue once the store answers.
fn fail(store: &mut Store, claimed: &execution::Claimed, cause: &str) -> Step {
    tracing::error!("execution #{}: {cause}", claimed.id);
    match execution::abandon(store, claimed, cause) {
        Ok(_) => Step::Ran,
        Err(e) => Step::Unended {
            claim: claimed.claim,
            why: format!("execution #{}: cannot be failed ({e})", claimed.id),
        },
    }
}

/// Before a claim: room on this host for the worker's instance (see [`budget`]). Gives its
/// room up when its service holds more instances than a waiting one (its turn is over), or
/// when the service's cap changed; takes room when it holds none and there is work. `None`:
/// go on and claim.
fn make_room(
    store: &Store,
    context: &Context,
    service: &Service,
    slot: u32,
    held: &mut Held,
    keep: Keep,
) -> Result<Option<Step>> {
    let budget = &context.budget;
    let need = Need::of(&service.settings);
    if let Some(room) = &held.room {
        let changed = room.need() != need;
        if !changed && !budget.should_yield(service.id) {
            return Ok(None);
        }
        held.give_back(service.id, slot);
        if !changed {
            tracing::info!(
                "service {}: instance {slot} gave its room to a service holding fewer",
                service.name
            );
        }
    }
    if !execution::has_work(store, service.id, context.worker.id)? {
        budget.leave(service.id, slot);
        if matches!(keep, Keep::Always) {
            warm_up(store, context, service, slot, held);
        }
        return Ok(Some(Step::Idle(keep)));
    }
    Ok(match budget.take(service.id, slot, need) {
        Take::Taken(room) => {
            held.room = Some(room);
            None
        }
        Take::Wait => Some(Step::Waiting),
        // Its work is left to workers on hosts that have room.
        Take::Never => {
            if !held.told_never && slot == 0 {
                tracing::warn!(
                    "service {}: an instance's cap ({} MiB) is more than this host offers \
                     (--host-memory, --host-cores): its executions are left to other hosts",
                    service.name,
                    service.settings.memory_mb
                );
            }
            held.told_never = true;
            Some(Step::Idle(keep))
        }
    })
}

/// Makes an idle worker's instance ahead of work when `min_instances` keeps it (it holds no
/// room, so no instance): once per service generation, and only with room nobody waits for
/// (else it is made when work comes).
fn warm_up(store: &Store, context: &Context, service: &Service, slot: u32, held: &mut Held) {
    if held.warmed == Some(service.generation) {
        return;
    }
    held.warmed = Some(service.generation);
    let need = Need::of(&service.settings);
    let Some(room) = context.budget.try_take(service.id, need) else {
        return;
    };
    let (runtime, components) = (&context.runtime, &context.components);
    match start_ahead(store, runtime, components, service, &mut held.slot) {
        Ok(bytes) => {
            held.room = Some(room);
            worker::hold(service.id, slot, Some((&service.name, bytes)));
            tracing::info!(
                "service {}: instance {slot} made ahead of work",
                service.name
            );
        }
        Err(e) => tracing::warn!(
            "service {}: instance {slot} could not be made ahead of work (it will be when work \
             comes): {e}",
            service.name
        ),
    }
}
