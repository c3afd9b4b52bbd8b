//! Executions: one run of a service's function on an item, from `queued` to an end state,
//! with attempts, timings, the error and the guest's captured logs.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use crate::annotation::Annotation;
use crate::error::{Error, Kind, Result};
use crate::manifest::InputValue;
use crate::named::Named;
use crate::store::{NOW, Store};

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
        e.init_inputs, e.host_version, e.result
   FROM executions e JOIN items i ON i.id = e.item_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Execution> {
    Ok(Execution {
        id: r.get(0)?,
        service: r.get(1)?,
        service_id: r.get(2)?,
        trigger_id: r.get(3)?,
        item_id: r.get(4)?,
        item: r.get(5)?,
        function: r.get(6)?,
        status: crate::store::column(r, 7)?,
        attempts: r.get(8)?,
        revision_id: r.get(9)?,
        error: r.get(10)?,
        queued_at: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
        duration_ms: r.get::<_, Option<i64>>(14)?.map(|d| d as u64),
        logs: r.get(15)?,
        init_inputs: r
            .get::<_, Option<String>>(16)?
            .and_then(|json| serde_json::from_str(&json).ok()),
        host_version: r.get(17)?,
        result: r.get(18)?,
    })
}

pub fn get(store: &Store, id: i64) -> Result<Execution> {
    store
        .conn()
        .query_row(&format!("{SELECT} WHERE e.id = ?1"), [id], from_row)
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
    let mut stmt = store.conn().prepare(&format!(
        "{SELECT} WHERE ?1 IS NULL OR e.status = ?1 ORDER BY e.id"
    ))?;
    let rows = stmt
        .query_map([status.map(Status::name)], from_row)?
        .collect::<rusqlite::Result<_>>()?;
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
    let condition = "(?1 IS NULL OR e.status = ?1) AND (?2 IS NULL OR e.service_name = ?2)
        AND (?3 IS NULL OR e.item_id = ?3)
        AND (?4 IS NULL OR i.dataset_id = (SELECT id FROM datasets WHERE name = ?4))";
    let args = params![filter.status, filter.service, filter.item, filter.dataset];
    let total: i64 = store.conn().query_row(
        &format!(
            "SELECT COUNT(*) FROM executions e JOIN items i ON i.id = e.item_id WHERE {condition}"
        ),
        args,
        |r| r.get(0),
    )?;
    let mut stmt = store.conn().prepare(&format!(
        "{SELECT} WHERE {condition} ORDER BY e.id DESC LIMIT ?5 OFFSET ?6"
    ))?;
    let rows = stmt
        .query_map(
            params![
                filter.status,
                filter.service,
                filter.item,
                filter.dataset,
                limit.min(i64::MAX as u64) as i64,
                offset.min(i64::MAX as u64) as i64
            ],
            from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows, total as u64))
}

/// Cancels a queued execution. One that is not queued (running, finished) is left as it is,
/// and saying so is an error naming its status.
pub fn cancel(store: &mut Store, id: i64) -> Result<Execution> {
    let changed = store.conn().execute(
        &format!(
            "UPDATE executions SET status = 'canceled', error = 'canceled', finished_at = {NOW}
              WHERE id = ?1 AND status = 'queued'"
        ),
        [id],
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
        [],
        |r| r.get(0),
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
    let statuses: Vec<&str> = match status {
        Some(s) => vec![s.name()],
        None => vec!["failed", "timed-out"],
    };
    let tx = store.write()?;
    let statuses = serde_json::to_string(&statuses).expect("serializes");
    // One pass: every execution with the status, and whether it is the latest of its
    // (service, item, function); only the latest are rerun, the rest are counted.
    let found: Vec<(i64, bool)> = {
        let mut stmt = tx.prepare(
            "SELECT e.id, e.id = (SELECT MAX(l.id) FROM executions l
                                   WHERE l.service_id = e.service_id AND l.item_id = e.item_id
                                     AND l.function = e.function)
               FROM executions e JOIN services s ON s.id = e.service_id
              WHERE e.status IN (SELECT value FROM json_each(?1))
              ORDER BY e.id",
        )?;
        stmt.query_map([&statuses], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let (latest, earlier): (Vec<_>, Vec<_>) = found.into_iter().partition(|(_, latest)| *latest);
    let skipped = earlier.len();
    let ids = latest.into_iter().map(|(id, _)| id);
    let mut new = Vec::new();
    for id in ids {
        tx.execute(
            "INSERT INTO executions (service_id, service_name, trigger_id, item_id, function, status)
             SELECT service_id, service_name, trigger_id, item_id, function, 'queued' FROM executions WHERE id = ?1",
            [id],
        )?;
        new.push(tx.last_insert_rowid());
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

/// Deals with what a killed process left `running`. Only the home's one scheduler calls
/// this, while holding the scheduler lock. An interrupted attempt is not charged, so a
/// one-off kill costs nothing; but each execution may be interrupted at most its service's
/// `max_attempts` times: the next interruption fails it, so that an item that crashes the
/// host does not loop through every restart. Direct executions (`prelabel execute`) are not
/// queue work: one whose process is gone is failed, one whose process lives is left alone.
pub fn requeue_interrupted(store: &mut Store) -> Result<Interrupted> {
    let tx = store.write()?;
    let dead_direct: Vec<i64> = {
        let mut stmt = tx.prepare(
            "SELECT id, direct_pid FROM executions WHERE status = 'running' AND direct = 1",
        )?;
        stmt.query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter(|(_, pid)| !pid.is_some_and(process_is_alive))
        .map(|(id, _)| id)
        .collect()
    };
    let mut failed = 0;
    for id in dead_direct {
        failed += fail_running(&tx, id, "the process running this direct execution stopped")?;
    }
    tx.execute(
        "UPDATE executions SET interrupted = interrupted + 1,
                logs = logs || '[prelabel: the host stopped during this attempt]' || char(10)
          WHERE status = 'running' AND direct = 0",
        [],
    )?;
    failed += tx.execute(
        &format!("UPDATE executions SET status = 'failed',
                error = 'host stopped during this execution ' || interrupted || ' times',
                finished_at = {NOW}
          WHERE status = 'running' AND direct = 0
            AND interrupted > COALESCE((SELECT max_attempts FROM services s WHERE s.id = service_id), 0)"),
        [],
    )?;
    let requeued = tx.execute(
        "UPDATE executions SET status = 'queued', attempts = MAX(attempts - 1, 0), started_at = NULL
          WHERE status = 'running' AND direct = 0",
        [],
    )?;
    tx.commit()?;
    Ok(Interrupted { requeued, failed })
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

/// An execution taken off the queue to run now.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub item_id: i64,
    pub function: String,
    pub attempts: u32,
}

/// Atomically takes the oldest queued execution of a service (FIFO) and marks it running
/// on `revision_id`.
pub fn claim_next(store: &mut Store, service_id: i64, revision_id: i64) -> Result<Option<Claimed>> {
    // A claim need not survive a power cut: lost, its execution is still queued, and a
    // restart re-queues a `running` one anyway. So no fsync here; the next durable commit
    // (the outcome) flushes the log up to and including it.
    store.conn().pragma_update(None, "synchronous", "NORMAL")?;
    let claimed = claim(store, service_id, revision_id);
    store.conn().pragma_update(None, "synchronous", "FULL")?;
    claimed
}

fn claim(store: &mut Store, service_id: i64, revision_id: i64) -> Result<Option<Claimed>> {
    let tx = store.write()?;
    let next: Option<Claimed> = tx
        .query_row(
            "SELECT id, item_id, function, attempts FROM executions
              WHERE service_id = ?1 AND status = 'queued' ORDER BY id LIMIT 1",
            [service_id],
            |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    item_id: r.get(1)?,
                    function: r.get(2)?,
                    attempts: r.get::<_, u32>(3)? + 1,
                })
            },
        )
        .optional()?;
    if let Some(c) = &next {
        tx.execute(
            &format!(
                "UPDATE executions SET status = 'running', attempts = ?2, revision_id = ?3,
                    item_digest = (SELECT digest FROM items WHERE id = item_id),
                    started_at = {NOW} WHERE id = ?1"
            ),
            params![c.id, c.attempts, revision_id],
        )?;
    }
    tx.commit()?;
    Ok(next)
}

/// Creates an execution that is already running (a direct `execute`, never on the queue).
pub fn start_direct(
    store: &mut Store,
    service_id: i64,
    service: &str,
    item_id: i64,
    function: &str,
    revision_id: i64,
) -> Result<Claimed> {
    // Marked direct, with this process's id: a scheduler never takes it for queue work
    // that a killed host left running, and fails it only if this process is gone.
    store.conn().execute(
        &format!("INSERT INTO executions (service_id, service_name, item_id, function, status, attempts, revision_id, started_at,
                                 direct, direct_pid, item_digest)
         VALUES (?1, ?2, ?3, ?4, 'running', 1, ?5, {NOW}, 1, ?6,
                 (SELECT digest FROM items WHERE id = ?3))"),
        params![service_id, service, item_id, function, revision_id, std::process::id()],
    )?;
    Ok(Claimed {
        id: store.conn().last_insert_rowid(),
        item_id,
        function: function.to_string(),
        attempts: 1,
    })
}

/// Ends an execution whose outcome could not be recorded: `failed`, with the cause, and
/// nothing else written (a smaller write than the outcome, which may still go through).
pub fn abandon(store: &mut Store, id: i64, cause: &str) -> Result<()> {
    fail_running(store.conn(), id, cause)?;
    Ok(())
}

/// Fails an execution that is still `running`, with `cause`; how many it failed (0 or 1).
fn fail_running(conn: &rusqlite::Connection, id: i64, cause: &str) -> rusqlite::Result<usize> {
    conn.execute(
        &format!(
            "UPDATE executions SET status = 'failed', error = ?2,
                finished_at = {NOW} WHERE id = ?1 AND status = 'running'"
        ),
        params![id, cause],
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
        "UPDATE executions SET init_inputs = ?2, host_version = ?3, result = ?4 WHERE id = ?1",
        params![claimed.id, init_json, crate::HOST_VERSION, result],
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
                    "UPDATE executions SET status = 'success', error = NULL, logs = logs || ?2, duration_ms = ?3,
                            finished_at = {NOW} WHERE id = ?1"
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
                    "UPDATE executions SET status = ?2, error = ?3, logs = logs || ?4, duration_ms = ?5,
                            finished_at = CASE WHEN ?6 THEN {NOW} END WHERE id = ?1"
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
fn is_stale(tx: &Transaction<'_>, id: i64) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT e.item_digest IS NOT (SELECT digest FROM items WHERE id = e.item_id)
                OR EXISTS (SELECT 1 FROM executions l
                            WHERE l.service_id = e.service_id AND l.item_id = e.item_id
                              AND l.id > e.id AND l.status = 'success')
           FROM executions e WHERE e.id = ?1",
        [id],
        |r| r.get(0),
    )?)
}

/// The execution's annotations become the item's for its service, replacing earlier ones.
fn replace_annotations(
    tx: &Transaction<'_>,
    claimed: &Claimed,
    annotations: &[Annotation],
    component_digest: &str,
) -> Result<()> {
    let (service_id, service_name, revision_id): (i64, String, i64) = tx.query_row(
        "SELECT service_id, service_name, revision_id FROM executions WHERE id = ?1",
        [claimed.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    // Reviewed annotations are a person's: a run replaces only the pending ones, and leaves out
    // new boxes that a reviewed one already covers.
    tx.execute(
        "DELETE FROM annotations WHERE item_id = ?1 AND service_id = ?2 AND review = 'pending'",
        params![claimed.item_id, service_id],
    )?;
    for a in &crate::review::unreviewed(tx, claimed.item_id, annotations)? {
        tx.execute(
            "INSERT INTO annotations (item_id, service_id, service_name, execution_id, revision_id, component_digest,
                                      label, geometry, model_name, model_version, confidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
