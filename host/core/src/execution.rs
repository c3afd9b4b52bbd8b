//! Executions: one run of a service's function on an item, from `queued` to an end state,
//! with attempts, timings, the error and the guest's captured logs.

use std::collections::BTreeMap;

use crate::store::{
    Db, Dialect, NOW, NOW_MS, OptionalExtension, Params, Row, Store, ToValue, Tx, params,
};
use crate::worker::Worker;
use serde::Serialize;
use serde_json::Value;

use crate::annotation::Annotation;
use crate::error::{Error, Kind, Result};
use crate::manifest::InputValue;
use crate::named::Named;

/// `queued` → `running` → `success` | `failed` | `timed-out`; `canceled` when its service goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Queued,
    Running,
    Success,
    Failed,
    TimedOut,
    Canceled,
}

crate::named::named!(Status {
    Queued => "queued",
    Running => "running",
    Success => "success",
    Failed => "failed",
    TimedOut => "timed-out",
    Canceled => "canceled",
});

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Execution {
    pub id: i64,
    pub service: String,
    pub service_id: i64,
    pub trigger_id: Option<i64>,
    pub item_id: i64,
    pub item: String,
    pub function: String,
    pub status: Status,
    pub attempts: u32,
    pub revision_id: Option<i64>,
    pub error: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// The init values its instance ran with (none before provenance was recorded).
    #[schema(value_type = Option<Object>)]
    pub init_inputs: Option<Value>,
    /// The `prelabel` version that ran it.
    pub host_version: Option<String>,
    /// The engine that ran its models natively, with its version (none: it ran none).
    pub inference_engine: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub logs: String,
    /// The annotations exactly as the attempt returned them, for `replay`.
    #[serde(skip)]
    #[schema(ignore)]
    pub result: Option<String>,
}

const SELECT: &str = "SELECT e.id, e.service_name, e.service_id, e.trigger_id, e.item_id, i.name, e.function, e.status,
        e.attempts, e.revision_id, e.error, e.queued_at, e.started_at, e.finished_at, e.duration_ms, e.logs,
        e.init_inputs, e.host_version, e.result, e.inference_engine
   FROM executions e JOIN items i ON i.id = e.item_id";

fn from_row(r: &Row) -> crate::store::db::Result<Execution> {
    Ok(Execution {
        id: r.get(0)?,
        service: r.get(1)?,
        service_id: r.get(2)?,
        trigger_id: r.get(3)?,
        item_id: r.get(4)?,
        item: r.get(5)?,
        function: r.get(6)?,
        status: r.get(7)?,
        attempts: r.get(8)?,
        revision_id: r.get(9)?,
        error: r.get(10)?,
        queued_at: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
        duration_ms: r.get::<Option<i64>>(14)?.map(|d| d as u64),
        logs: r.get(15)?,
        init_inputs: r
            .get::<Option<String>>(16)?
            .and_then(|json| serde_json::from_str(&json).ok()),
        host_version: r.get(17)?,
        inference_engine: r.get(19)?,
        result: r.get(18)?,
    })
}

pub fn get(store: &Store, id: i64) -> Result<Execution> {
    store
        .conn()
        .query_row(&format!("{SELECT} WHERE e.id = $1"), params![id], from_row)
        .optional()?
        .ok_or_else(|| {
            Error::not_found(
                Kind::Execution,
                id,
                format!("no execution with id {id} (see: prelabel executions list)"),
            )
        })
}

pub fn list(store: &Store, status: Option<Status>) -> Result<Vec<Execution>> {
    let rows = store.conn().query_map(
        &format!("{SELECT} WHERE CAST($1 AS TEXT) IS NULL OR e.status = $1 ORDER BY e.id"),
        params![status.map(Status::name)],
        from_row,
    )?;
    Ok(rows)
}

/// Which executions to list; `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub service: Option<String>,
    pub item: Option<i64>,
    pub dataset: Option<String>,
}

/// A page of the executions that match, newest first, and how many match in all.
pub fn page(
    store: &Store,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Execution>, u64)> {
    if let Some(dataset) = &filter.dataset {
        crate::item::dataset_id(store, dataset)?;
    }
    let condition = "(CAST($1 AS TEXT) IS NULL OR e.status = $1) AND (CAST($2 AS TEXT) IS NULL OR e.service_name = $2)
        AND (CAST($3 AS BIGINT) IS NULL OR e.item_id = $3)
        AND (CAST($4 AS TEXT) IS NULL OR i.dataset_id = (SELECT id FROM datasets WHERE name = $4))";
    let args = params![filter.status, filter.service, filter.item, filter.dataset];
    let total: i64 = store.conn().query_row(
        &format!(
            "SELECT COUNT(*) FROM executions e JOIN items i ON i.id = e.item_id WHERE {condition}"
        ),
        args,
        |r| r.get(0),
    )?;
    let rows = store.conn().query_map(
        &format!("{SELECT} WHERE {condition} ORDER BY e.id DESC LIMIT $5 OFFSET $6"),
        params![
            filter.status,
            filter.service,
            filter.item,
            filter.dataset,
            limit.min(i64::MAX as u64) as i64,
            offset.min(i64::MAX as u64) as i64
        ],
        from_row,
    )?;
    Ok((rows, total as u64))
}

/// Cancels a queued execution. One that is not queued (running, finished) is left as it is,
/// and saying so is an error naming its status.
pub fn cancel(store: &mut Store, id: i64) -> Result<Execution> {
    let changed = store.conn().execute(
        &format!(
            "UPDATE executions SET status = 'canceled', error = 'canceled', finished_at = {NOW}
              WHERE id = $1 AND status = 'queued'"
        ),
        params![id],
    )?;
    let execution = get(store, id)?;
    if changed == 0 {
        return Err(Error::Conflict {
            kind: Kind::Execution,
            name: id.to_string(),
            message: format!(
                "execution {id} is {}, not queued: only a queued execution can be canceled",
                execution.status.name()
            ),
        });
    }
    Ok(execution)
}

/// How many executions are queued or running for services that are not paused.
pub fn pending(store: &Store) -> Result<i64> {
    Ok(store.conn().query_row(
        "SELECT COUNT(*) FROM executions e JOIN services s ON s.id = e.service_id
          WHERE e.status IN ('queued', 'running') AND s.paused = 0 AND e.direct = 0",
        params![],
        |r| r.get(0),
    )?)
}

/// A service's queue, across every worker.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Queue {
    pub service: String,
    pub paused: bool,
    /// How many of its executions may run at once, on all workers together.
    pub concurrency: u32,
    pub queued: i64,
    pub running: i64,
}

/// Every service's queue depth and running executions, by name.
pub fn queues(store: &Store) -> Result<Vec<Queue>> {
    Ok(store.conn().query_map(
        "SELECT s.name, s.paused, s.concurrency,
                (SELECT COUNT(*) FROM executions e WHERE e.service_id = s.id AND e.status = 'queued'),
                (SELECT COUNT(*) FROM executions e WHERE e.service_id = s.id AND e.status = 'running' AND e.direct = 0)
           FROM services s ORDER BY s.name",
        params![],
        |r| {
            Ok(Queue {
                service: r.get(0)?,
                paused: r.get(1)?,
                concurrency: r.get(2)?,
                queued: r.get(3)?,
                running: r.get(4)?,
            })
        },
    )?)
}

/// What `rerun` did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Rerun {
    /// The new executions, queued.
    pub queued: Vec<i64>,
    /// Executions with the status asked for that were not rerun: a later execution of the
    /// same service, item and function exists (a rerun already queued, or a later success).
    pub skipped: usize,
}

/// Queues a new execution for the latest execution of each (service, item, function) whose
/// status is `status` (default: failed and timed-out); the old ones stay as history. An
/// execution that was already rerun, or whose item has since succeeded, is skipped: reruns
/// never multiply.
pub fn rerun(store: &mut Store, status: Option<Status>) -> Result<Rerun> {
    // One status or two: the query takes two (the same one twice for one).
    let statuses: [&str; 2] = match status {
        Some(s) => [s.name(), s.name()],
        None => ["failed", "timed-out"],
    };
    let tx = store.write()?;
    // One pass: every execution with the status, and whether it is the latest of its
    // (service, item, function); only the latest are rerun, the rest are counted.
    let found: Vec<(i64, bool)> = {
        tx.query_map(
            "SELECT e.id, e.id = (SELECT MAX(l.id) FROM executions l
                                   WHERE l.service_id = e.service_id AND l.item_id = e.item_id
                                     AND l.function = e.function)
               FROM executions e JOIN services s ON s.id = e.service_id
              WHERE e.status IN ($1, $2)
              ORDER BY e.id",
            params![statuses[0], statuses[1]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
    };
    let (latest, earlier): (Vec<_>, Vec<_>) = found.into_iter().partition(|(_, latest)| *latest);
    let skipped = earlier.len();
    let ids = latest.into_iter().map(|(id, _)| id);
    let mut new = Vec::new();
    for id in ids {
        new.push(tx.query_row(
            "INSERT INTO executions (service_id, service_name, trigger_id, item_id, function, status)
             SELECT service_id, service_name, trigger_id, item_id, function, 'queued' FROM executions WHERE id = $1
             RETURNING id",
            params![id],
            |r| r.get(0),
        )?);
    }
    tx.commit()?;
    Ok(Rerun {
        queued: new,
        skipped,
    })
}

/// What a scheduler found left `running` by processes that stopped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Interrupted {
    /// Re-queued: the interrupted attempt is not charged.
    pub requeued: usize,
    /// Failed: the host stopped during them more often than their service allows
    /// (`max_attempts`), which is how an item that crashes the host ends.
    pub failed: usize,
}

/// Deals with what a killed process left `running`, on the embedded store, where one
/// scheduler runs per home: only it calls this, at its start, while holding the home's lock,
/// so every queue execution still `running` was left by a process that stopped. Direct
/// executions (`prelabel execute`) are not queue work: one whose process is gone is failed,
/// one whose process lives is left alone. (With a shared database, workers find each other's
/// lost executions by their leases instead: see [`claim_next`].)
pub fn requeue_interrupted(store: &mut Store) -> Result<Interrupted> {
    let tx = store.write()?;
    let failed = fail_stopped_direct(&tx, "status = 'running'", params![], true)?;
    let mut interrupted = requeue(&tx, "status = 'running' AND direct = 0", params![])?;
    interrupted.failed += failed;
    tx.commit()?;
    Ok(interrupted)
}

/// What a scheduler starting on a shared database finds left `running` by earlier
/// schedulers of its own home (killed: the home's lock says they are gone) goes back on the
/// queue at once, as on the embedded store; other workers' lost executions wait for their
/// leases to run out.
pub fn requeue_home(store: &mut Store, home_key: &str, worker: &Worker) -> Result<Interrupted> {
    let tx = store.write()?;
    let interrupted = requeue(
        &tx,
        "status = 'running' AND direct = 0
         AND worker_id IN (SELECT id FROM workers WHERE home = $1 AND id != $2 AND stopped_at IS NULL)",
        params![home_key, worker.id],
    )?;
    tx.commit()?;
    Ok(interrupted)
}

/// Executions of lost workers (see [`crate::worker`]), by the database's clock, other than
/// the worker whose id is parameter `${me}`. A process knows that it is running: a heartbeat
/// that could not be written in time (SQLite's write lock waited on past the lease, a machine
/// too loaded to schedule the thread) says nothing about the worker asking, and taking its
/// own running executions for interrupted lost their outcomes (issue 36: a healthy `serve`
/// failed an execution as "host stopped during this execution 2 times").
fn of_lost_workers(me: usize) -> String {
    format!(
        "worker_id IN (SELECT id FROM workers WHERE stopped_at IS NULL AND id != ${me}
                          AND heartbeat_ms + lease_ms < {NOW_MS})"
    )
}

/// Puts the running executions that `condition` selects back on the queue: an interrupted
/// attempt is not charged, so a one-off kill costs nothing; but each execution may be
/// interrupted at most its service's `max_attempts` times: the next interruption fails it, so
/// that an item that crashes its host does not loop through every restart.
fn requeue(tx: &Tx<'_>, condition: &str, args: Params<'_>) -> Result<Interrupted> {
    let n = args.len();
    let note = format!("${}", n + 1);
    let mut with_note: Vec<&dyn ToValue> = args.to_vec();
    let text = "[prelabel: the host stopped during this attempt]\n";
    with_note.push(&text);
    tx.execute(
        &format!("UPDATE executions SET interrupted = interrupted + 1, logs = logs || {note} WHERE {condition}"),
        &with_note,
    )?;
    let failed = tx.execute(
        &format!("UPDATE executions SET status = 'failed',
                error = 'host stopped during this execution ' || interrupted || ' times',
                finished_at = {NOW}
          WHERE {condition}
            AND interrupted > COALESCE((SELECT max_attempts FROM services s WHERE s.id = service_id), 0)"),
        args,
    )?;
    let requeued = tx.execute(
        &format!(
            "UPDATE executions SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
                    started_at = NULL, worker_id = NULL, claim = NULL
              WHERE {condition}"
        ),
        args,
    )?;
    Ok(Interrupted { requeued, failed })
}

/// Fails the direct executions that `condition` selects, as stopped; with `local_pids` (every
/// process is on this machine), not those whose process still lives. How many it failed.
fn fail_stopped_direct(
    tx: &Tx<'_>,
    condition: &str,
    args: Params<'_>,
    local_pids: bool,
) -> Result<usize> {
    let direct = tx.query_map(
        &format!("SELECT id, direct_pid FROM executions WHERE {condition} AND direct = 1"),
        args,
        |r| Ok((r.get::<i64>(0)?, r.get::<Option<i64>>(1)?)),
    )?;
    let mut failed = 0;
    for (id, pid) in direct {
        if local_pids && pid.is_some_and(process_is_alive) {
            continue;
        }
        failed += fail_running(
            tx,
            id,
            None,
            "the process running this direct execution stopped",
        )?;
    }
    Ok(failed)
}

/// Whether a process with this id exists (signal 0 checks without sending anything).
fn process_is_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe {
        libc::kill(pid, 0) == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// An execution taken off the queue to run now, by a worker's claim.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub item_id: i64,
    pub function: String,
    pub attempts: u32,
    pub worker_id: i64,
    pub claim: i64,
}

/// Takes the oldest queued execution of a service (FIFO) for `worker` and marks it running on
/// `revision_id`, unless `concurrency` of the service's executions are running already, on
/// any worker. First, the running executions of the service's lost workers go back on the
/// queue (or fail, past `max_attempts` interruptions); a lost worker's direct execution fails.
///
/// On PostgreSQL the claim holds an advisory lock of the service for its transaction (claims
/// of one service are one at a time, so the count holds across workers), takes the row with
/// `FOR UPDATE SKIP LOCKED`, and leaves the store-wide write lock to other writes. A claim is
/// not flushed to disk (see `Store::claim_transaction`).
pub fn claim_next(
    store: &mut Store,
    service_id: i64,
    concurrency: u32,
    revision_id: i64,
    worker: &Worker,
    claim: i64,
) -> Result<Option<Claimed>> {
    let dialect = store.dialect();
    let lost = format!(
        "service_id = $1 AND status = 'running' AND {}",
        of_lost_workers(2)
    );
    // A look first, without a transaction or a lock: nothing queued and nobody lost is the
    // common answer of an idle or saturated service, and costs one read.
    let work: bool = store.conn().query_row(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM executions WHERE service_id = $1 AND status = 'queued')
                 OR EXISTS (SELECT 1 FROM executions WHERE {lost})"
        ),
        params![service_id, worker.id],
        |r| r.get(0),
    )?;
    if !work {
        return Ok(None);
    }
    let tx = store.claim_transaction()?;
    if dialect == Dialect::Postgres {
        // The class of the advisory locks that serialise one service's claims: two 32-bit
        // keys, a key space apart from the store-wide lock's 64-bit one.
        const CLAIM_LOCK: i32 = 0x706c; // "pl"
        let key = (service_id % i64::from(i32::MAX)) as i32;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            params![CLAIM_LOCK, key],
        )?;
    }
    let any_lost: bool = tx.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM executions WHERE {lost})"),
        params![service_id, worker.id],
        |r| r.get(0),
    )?;
    if any_lost {
        requeue(
            &tx,
            &format!("{lost} AND direct = 0"),
            params![service_id, worker.id],
        )?;
        // On the embedded store every process is on this machine: a direct execution whose
        // process lives is running, whatever its heartbeat says.
        fail_stopped_direct(
            &tx,
            &lost,
            params![service_id, worker.id],
            dialect == Dialect::Sqlite,
        )?;
    }
    let running: i64 = tx.query_row(
        "SELECT COUNT(*) FROM executions WHERE service_id = $1 AND status = 'running' AND direct = 0",
        params![service_id],
        |r| r.get(0),
    )?;
    if running >= i64::from(concurrency) {
        tx.commit()?;
        return Ok(None);
    }
    let next = tx
        .query_row(
            &format!(
                "SELECT id, item_id, function, attempts FROM executions
                  WHERE service_id = $1 AND status = 'queued' ORDER BY id LIMIT 1{}",
                dialect.skip_locked()
            ),
            params![service_id],
            |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    item_id: r.get(1)?,
                    function: r.get(2)?,
                    attempts: r.get::<u32>(3)? + 1,
                    worker_id: worker.id,
                    claim,
                })
            },
        )
        .optional()?;
    if let Some(c) = &next {
        tx.execute(
            &format!(
                "UPDATE executions SET status = 'running', attempts = $2, revision_id = $3,
                    item_digest = (SELECT digest FROM items WHERE id = item_id),
                    started_at = {NOW}, worker_id = $4, claim = $5 WHERE id = $1"
            ),
            params![c.id, c.attempts, revision_id, c.worker_id, c.claim],
        )?;
    }
    tx.commit()?;
    Ok(next)
}

/// Puts back on the queue the execution that `claim` of worker `worker_id` holds, if it still
/// does, as an interruption: the session that claimed or ran it ended (a restart, a
/// failover), so that a claim whose commit reached the server but whose answer did not, or an
/// attempt whose reads failed with the session, is neither stuck nor charged to the item.
pub fn release(store: &mut Store, worker_id: i64, claim: i64) -> Result<Interrupted> {
    let tx = store.write()?;
    let released = requeue(
        &tx,
        "status = 'running' AND worker_id = $1 AND claim = $2",
        params![worker_id, claim],
    )?;
    tx.commit()?;
    Ok(released)
}

/// Creates an execution that is already running (a direct `execute`, never on the queue).
pub fn start_direct(
    store: &mut Store,
    service_id: i64,
    service: &str,
    item_id: i64,
    function: &str,
    revision_id: i64,
    worker: &Worker,
) -> Result<Claimed> {
    // Marked direct, with this process's id and worker: a scheduler never takes it for queue
    // work that a killed host left running, and fails it only if this process is gone.
    let claim = worker.next_claim();
    let id: i64 = store.conn().query_row(
        &format!(
            "INSERT INTO executions (service_id, service_name, item_id, function, status, attempts, revision_id, started_at,
                                 direct, direct_pid, item_digest, worker_id, claim)
         VALUES ($1, $2, $3, $4, 'running', 1, $5, {NOW}, 1, $6,
                 (SELECT digest FROM items WHERE id = $3), $7, $8) RETURNING id"
        ),
        params![service_id, service, item_id, function, revision_id, std::process::id(), worker.id, claim],
        |r| r.get(0),
    )?;
    Ok(Claimed {
        id,
        item_id,
        function: function.to_string(),
        attempts: 1,
        worker_id: worker.id,
        claim,
    })
}

/// Ends an execution whose outcome could not be recorded: `failed`, with the cause, and
/// nothing else written (a smaller write than the outcome, which may still go through).
pub fn abandon(store: &mut Store, claimed: &Claimed, cause: &str) -> Result<()> {
    fail_running(store.conn(), claimed.id, Some(claimed), cause)?;
    Ok(())
}

/// Fails an execution that is still `running` (by `claim`, when given), with `cause`; how
/// many it failed (0 or 1).
fn fail_running(
    conn: &Db,
    id: i64,
    claim: Option<&Claimed>,
    cause: &str,
) -> crate::store::db::Result<usize> {
    conn.execute(
        &format!(
            "UPDATE executions SET status = 'failed', error = $2,
                finished_at = {NOW} WHERE id = $1 AND status = 'running'
                AND (CAST($3 AS BIGINT) IS NULL OR (worker_id = $3 AND claim = $4))"
        ),
        params![
            id,
            cause,
            claim.map(|c| c.worker_id),
            claim.map(|c| c.claim)
        ],
    )
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    Success(Vec<Annotation>),
    /// Failed; `retry` puts it back on the queue.
    Failed {
        status: Status,
        error: String,
        retry: bool,
    },
}

/// What an attempt ran: the component and the init values of its instance.
#[derive(Debug, Clone, Copy)]
pub struct Ran<'a> {
    pub component_digest: &'a str,
    /// `None` when no instance was started (the revision could not be loaded).
    pub init_inputs: Option<&'a BTreeMap<String, InputValue>>,
    /// The native inference engine its models ran on, if any (`onnxruntime 1.22.1`).
    pub inference_engine: Option<&'a str>,
}

/// Records an attempt's end in one transaction: the execution's status, logs and timing, what
/// it ran with (provenance), and on success the annotations, replacing this service's earlier
/// ones on the item.
pub fn finish(
    store: &mut Store,
    claimed: &Claimed,
    outcome: &Outcome,
    logs: &str,
    duration_ms: u64,
    ran: Ran<'_>,
) -> Result<()> {
    let tx = store.write()?;
    // Only the claim that still holds the execution records its end: a worker that lost its
    // lease (stopped past it, cut off) finds its execution queued again or run by another.
    let held: Option<i64> = tx
        .query_row(
            "SELECT id FROM executions WHERE id = $1 AND status = 'running' AND worker_id = $2 AND claim = $3",
            params![claimed.id, claimed.worker_id, claimed.claim],
            |r| r.get(0),
        )
        .optional()?;
    if held.is_none() {
        tracing::warn!(
            "execution #{}: this worker's claim on it lapsed (its lease ran out); its outcome is not stored",
            claimed.id
        );
        return Ok(());
    }
    let init_json = ran
        .init_inputs
        .map(|init| serde_json::to_string(init).expect("init values serialize"));
    let result = match outcome {
        Outcome::Success(annotations) => {
            Some(serde_json::to_string(annotations).expect("annotations serialize"))
        }
        Outcome::Failed { .. } => None,
    };
    tx.execute(
        "UPDATE executions SET init_inputs = $2, host_version = $3, result = $4, inference_engine = $5 WHERE id = $1",
        params![claimed.id, init_json, crate::HOST_VERSION, result, ran.inference_engine],
    )?;
    let component_digest = ran.component_digest;
    match outcome {
        Outcome::Success(annotations) => {
            let stale = is_stale(&tx, claimed.id)?;
            let logs = if stale {
                format!(
                    "{logs}[prelabel] the item changed or a later execution finished first: \
                     these {} annotations are not stored over the newer ones\n",
                    annotations.len()
                )
            } else {
                logs.to_string()
            };
            tx.execute(
                &format!(
                    "UPDATE executions SET status = 'success', error = NULL, logs = logs || $2, duration_ms = $3,
                            finished_at = {NOW} WHERE id = $1"
                ),
                params![claimed.id, logs, duration_ms as i64],
            )?;
            if !stale {
                replace_annotations(&tx, claimed, annotations, component_digest)?;
            }
        }
        Outcome::Failed {
            status,
            error,
            retry,
        } => {
            let (status, finished) = if *retry {
                (Status::Queued, false)
            } else {
                (*status, true)
            };
            tx.execute(
                &format!(
                    "UPDATE executions SET status = $2, error = $3, logs = logs || $4, duration_ms = $5,
                            finished_at = CASE WHEN $6 THEN {NOW} END WHERE id = $1"
                ),
                params![claimed.id, status, error, logs, duration_ms as i64, finished],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// With several executions of one item at once, an older one can end last. Its result is
/// history, not the item's annotations: the bytes it ran on are no longer the item's, or a
/// later execution already stored its own result.
fn is_stale(tx: &Tx<'_>, id: i64) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT e.item_digest IS DISTINCT FROM (SELECT digest FROM items WHERE id = e.item_id)
                OR EXISTS (SELECT 1 FROM executions l
                            WHERE l.service_id = e.service_id AND l.item_id = e.item_id
                              AND l.id > e.id AND l.status = 'success')
           FROM executions e WHERE e.id = $1",
        params![id],
        |r| r.get(0),
    )?)
}

/// The execution's annotations become the item's for its service, replacing earlier ones.
fn replace_annotations(
    tx: &Tx<'_>,
    claimed: &Claimed,
    annotations: &[Annotation],
    component_digest: &str,
) -> Result<()> {
    let (service_id, service_name, revision_id): (i64, String, i64) = tx.query_row(
        "SELECT service_id, service_name, revision_id FROM executions WHERE id = $1",
        params![claimed.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    // Reviewed annotations are a person's: a run replaces only the pending ones, and leaves out
    // new boxes that a reviewed one already covers.
    tx.execute(
        "DELETE FROM annotations WHERE item_id = $1 AND service_id = $2 AND review = 'pending'",
        params![claimed.item_id, service_id],
    )?;
    for a in &crate::review::unreviewed(tx, claimed.item_id, annotations)? {
        tx.execute(
            "INSERT INTO annotations (item_id, service_id, service_name, execution_id, revision_id, component_digest,
                                      label, geometry, model_name, model_version, confidence)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            params![
                claimed.item_id,
                service_id,
                service_name,
                claimed.id,
                revision_id,
                component_digest,
                a.label,
                serde_json::to_string(&a.geometry).expect("serializes"),
                a.model.name,
                a.model.version,
                f64::from(a.model.confidence),
            ],
        )?;
    }
    Ok(())
}
