//! Executions: one run of a service's function on an item, from `queued` to an end state,
//! with attempts, timings, the error and the guest's captured logs.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::annotation::Annotation;
use crate::error::{Error, Result};
use crate::store::Store;

/// `queued` → `running` → `success` | `failed` | `timed-out`; `canceled` when its service goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Queued,
    Running,
    Success,
    Failed,
    TimedOut,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::TimedOut => "timed-out",
            Status::Canceled => "canceled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "success" => Status::Success,
            "timed-out" => Status::TimedOut,
            "canceled" => Status::Canceled,
            _ => Status::Failed,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
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
    #[serde(skip)]
    pub logs: String,
}

const SELECT: &str = "SELECT e.id, e.service_name, e.service_id, e.trigger_id, e.item_id, i.name, e.function, e.status,
        e.attempts, e.revision_id, e.error, e.queued_at, e.started_at, e.finished_at, e.duration_ms, e.logs
   FROM executions e JOIN items i ON i.id = e.item_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Execution> {
    let status: String = r.get(7)?;
    Ok(Execution {
        id: r.get(0)?,
        service: r.get(1)?,
        service_id: r.get(2)?,
        trigger_id: r.get(3)?,
        item_id: r.get(4)?,
        item: r.get(5)?,
        function: r.get(6)?,
        status: Status::parse(&status),
        attempts: r.get(8)?,
        revision_id: r.get(9)?,
        error: r.get(10)?,
        queued_at: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
        duration_ms: r.get::<_, Option<i64>>(14)?.map(|d| d as u64),
        logs: r.get(15)?,
    })
}

pub fn get(store: &Store, id: i64) -> Result<Execution> {
    store
        .conn()
        .query_row(&format!("{SELECT} WHERE e.id = ?1"), [id], from_row)
        .optional()?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no execution with id {id} (see: prelabel executions list)"
            ))
        })
}

pub fn list(store: &Store, status: Option<Status>) -> Result<Vec<Execution>> {
    let mut stmt = store.conn().prepare(&format!(
        "{SELECT} WHERE ?1 IS NULL OR e.status = ?1 ORDER BY e.id"
    ))?;
    let rows = stmt
        .query_map([status.map(Status::as_str)], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// How many executions are queued or running for services that are not paused.
pub fn pending(store: &Store) -> Result<i64> {
    Ok(store.conn().query_row(
        "SELECT COUNT(*) FROM executions e JOIN services s ON s.id = e.service_id
          WHERE e.status IN ('queued', 'running') AND s.paused = 0",
        [],
        |r| r.get(0),
    )?)
}

/// Queues a new execution for every execution with `status` (default: failed and timed-out);
/// the old ones stay as history. Returns the new ids.
pub fn rerun(store: &mut Store, status: Option<Status>) -> Result<Vec<i64>> {
    let statuses: Vec<&str> = match status {
        Some(s) => vec![s.as_str()],
        None => vec!["failed", "timed-out"],
    };
    let tx = store.write()?;
    let ids: Vec<i64> = {
        let mut stmt = tx.prepare(
            "SELECT e.id FROM executions e JOIN services s ON s.id = e.service_id
              WHERE e.status IN (SELECT value FROM json_each(?1)) ORDER BY e.id",
        )?;
        stmt.query_map(
            [serde_json::to_string(&statuses).expect("serializes")],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?
    };
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
    Ok(new)
}

/// Re-queues what a killed process left `running`. Only the home's one scheduler calls
/// this, while holding the scheduler lock. The interrupted attempt does not count.
pub fn requeue_interrupted(store: &mut Store) -> Result<usize> {
    Ok(store.conn().execute(
        "UPDATE executions SET status = 'queued', attempts = MAX(attempts - 1, 0), started_at = NULL,
                logs = logs || '[prelabel: the host stopped during this attempt; re-queued]' || char(10)
          WHERE status = 'running'",
        [],
    )?)
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
            "UPDATE executions SET status = 'running', attempts = ?2, revision_id = ?3,
                    started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
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
    store.conn().execute(
        "INSERT INTO executions (service_id, service_name, item_id, function, status, attempts, revision_id, started_at)
         VALUES (?1, ?2, ?3, ?4, 'running', 1, ?5, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        params![service_id, service, item_id, function, revision_id],
    )?;
    Ok(Claimed {
        id: store.conn().last_insert_rowid(),
        item_id,
        function: function.to_string(),
        attempts: 1,
    })
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

/// Records an attempt's end in one transaction: the execution's status, logs and timing,
/// and on success the annotations, replacing this service's earlier ones on the item.
pub fn finish(
    store: &mut Store,
    claimed: &Claimed,
    outcome: &Outcome,
    logs: &str,
    duration_ms: u64,
    component_digest: &str,
) -> Result<()> {
    let tx = store.write()?;
    let (service_id, service_name, revision_id): (i64, String, i64) = tx.query_row(
        "SELECT service_id, service_name, revision_id FROM executions WHERE id = ?1",
        [claimed.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    match outcome {
        Outcome::Success(annotations) => {
            tx.execute(
                "UPDATE executions SET status = 'success', error = NULL, logs = logs || ?2, duration_ms = ?3,
                        finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                params![claimed.id, logs, duration_ms as i64],
            )?;
            tx.execute(
                "DELETE FROM annotations WHERE item_id = ?1 AND service_id = ?2",
                params![claimed.item_id, service_id],
            )?;
            for a in annotations {
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
                "UPDATE executions SET status = ?2, error = ?3, logs = logs || ?4, duration_ms = ?5,
                        finished_at = CASE WHEN ?6 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END WHERE id = ?1",
                params![claimed.id, status.as_str(), error, logs, duration_ms as i64, finished],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}
