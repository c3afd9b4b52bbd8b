//! Executions: one run of a service's function on an item, from `queued` to an end state,
//! with attempts, timings, the error and the guest's captured logs.

mod claim;
mod requeue;
pub use claim::*;
pub use requeue::*;

use std::collections::BTreeMap;

use crate::store::{
    Db, Dialect, NOW, NOW_MS, OptionalExtension, Params, Row, Store, ToValue, Tx, params,
};
use crate::work::worker::Worker;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Kind, Result};
use crate::items::item::Content;
use crate::named::Named;
use crate::package::manifest::InputValue;
use crate::results::annotation::Annotation;

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
    /// How long making a new instance for it took (its `init` included), part of
    /// `duration_ms`; none when it ran on a warm one.
    pub cold_start_ms: Option<u64>,
    #[serde(skip)]
    #[schema(ignore)]
    pub logs: String,
    /// The annotations exactly as the attempt returned them, for `replay`.
    #[serde(skip)]
    #[schema(ignore)]
    pub result: Option<String>,
}

const SELECT: &str = "SELECT e.id, e.service_name, e.service_id, e.trigger_id, e.item_id, i.name AS item, e.function, e.status,
        e.attempts, e.revision_id, e.error, e.queued_at, e.started_at, e.finished_at, e.duration_ms, e.logs,
        e.init_inputs, e.host_version, e.result, e.inference_engine, e.cold_start_ms
   FROM executions e JOIN items i ON i.id = e.item_id";

fn from_row(r: &Row) -> crate::store::db::Result<Execution> {
    Ok(Execution {
        id: r.get("id")?,
        service: r.get("service_name")?,
        service_id: r.get("service_id")?,
        trigger_id: r.get("trigger_id")?,
        item_id: r.get("item_id")?,
        item: r.get("item")?,
        function: r.get("function")?,
        status: r.get("status")?,
        attempts: r.get("attempts")?,
        revision_id: r.get("revision_id")?,
        error: r.get("error")?,
        queued_at: r.get("queued_at")?,
        started_at: r.get("started_at")?,
        finished_at: r.get("finished_at")?,
        duration_ms: r.get::<Option<i64>>("duration_ms")?.map(|d| d as u64),
        logs: r.get("logs")?,
        init_inputs: r
            .get::<Option<String>>("init_inputs")?
            .and_then(|json| serde_json::from_str(&json).ok()),
        host_version: r.get("host_version")?,
        inference_engine: r.get("inference_engine")?,
        cold_start_ms: r.get::<Option<i64>>("cold_start_ms")?.map(|d| d as u64),
        result: r.get("result")?,
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

/// Keeps the items execution `id` made (their bytes are stored already), in order, inside the
/// transaction that records its success.
fn record_outputs(tx: &Tx<'_>, id: i64, made: &[Content]) -> Result<()> {
    for (position, content) in made.iter().enumerate() {
        tx.execute(
            "INSERT INTO execution_outputs (execution_id, position, name, digest, size, mimetype, metadata)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            params![
                id,
                position as i64,
                content.name,
                content.digest,
                content.size as i64,
                content.mimetype,
                content.metadata.to_string()
            ],
        )?;
    }
    Ok(())
}

/// The items execution `id` made, in the order it made them (none for a detector's).
pub fn outputs(conn: &Db, id: i64) -> Result<Vec<Content>> {
    Ok(conn.query_map(
        "SELECT name, digest, size, mimetype, metadata FROM execution_outputs
          WHERE execution_id = $1 ORDER BY position",
        params![id],
        |r| {
            Ok(Content {
                name: r.get("name")?,
                digest: r.get("digest")?,
                size: r.get::<i64>("size")? as u64,
                mimetype: r.get("mimetype")?,
                metadata: r.json("metadata")?,
                url: None,
            })
        },
    )?)
}

/// A page of the executions that match, newest first, and how many match in all.
pub fn page(
    store: &Store,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Execution>, u64)> {
    if let Some(dataset) = &filter.dataset {
        crate::items::item::dataset_id(store, dataset)?;
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
    /// Instances the live workers hold for it, as of their last heartbeats.
    pub instances: u64,
    /// Its last finished executions' times (what `/metrics` observes as they happen).
    pub recent: Recent,
}

/// The queue waits and run times of a service's last [`RECENT`] finished executions, in
/// milliseconds: medians and 95th percentiles (0 when none finished).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Recent {
    pub finished: usize,
    pub wait_p50_ms: u64,
    pub wait_p95_ms: u64,
    pub run_p50_ms: u64,
    pub run_p95_ms: u64,
}

/// How many finished executions [`Recent`] looks at.
pub const RECENT: i64 = 100;

fn recent(store: &Store, service: &str) -> Result<Recent> {
    let rows: Vec<(String, Option<String>, Option<i64>)> = store.conn().query_map(
        "SELECT queued_at, started_at, duration_ms FROM executions
          WHERE service_id = (SELECT id FROM services WHERE name = $1)
            AND finished_at IS NOT NULL AND direct = 0
          ORDER BY id DESC LIMIT $2",
        params![service, RECENT],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut waits: Vec<u64> = rows
        .iter()
        .filter_map(|(queued, started, _)| {
            Some(stored_ms(started.as_deref()?)? - stored_ms(queued)?)
        })
        .map(|w| w.max(0) as u64)
        .collect();
    let mut runs: Vec<u64> = rows
        .iter()
        .filter_map(|(_, _, took)| Some((*took)?.max(0) as u64))
        .collect();
    let pick = |samples: &mut Vec<u64>, q: f64| {
        samples.sort_unstable();
        let at = ((samples.len().max(1) - 1) as f64 * q).round() as usize;
        samples.get(at).copied().unwrap_or(0)
    };
    Ok(Recent {
        finished: rows.len(),
        wait_p50_ms: pick(&mut waits, 0.5),
        wait_p95_ms: pick(&mut waits, 0.95),
        run_p50_ms: pick(&mut runs, 0.5),
        run_p95_ms: pick(&mut runs, 0.95),
    })
}

/// One of the store's ISO 8601 times (`queued_at`, `2026-12-04T18:22:39.123Z`) in
/// milliseconds since the epoch; none for one that does not parse.
pub fn stored_ms(at: &str) -> Option<i64> {
    Some(at.parse::<jiff::Timestamp>().ok()?.as_millisecond())
}

/// Executions in the store by status.
pub fn by_status(store: &Store) -> Result<BTreeMap<String, i64>> {
    Ok(store
        .conn()
        .query_map(
            "SELECT status, COUNT(*) FROM executions GROUP BY status",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect())
}

/// Every service's queue depth and running executions, by name.
pub fn queues(store: &Store) -> Result<Vec<Queue>> {
    let mut queues = store.conn().query_map(
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
                instances: 0,
                recent: Recent::default(),
            })
        },
    )?;
    let held = held_instances(store)?;
    for queue in &mut queues {
        queue.recent = recent(store, &queue.service)?;
        queue.instances = held.get(&queue.service).copied().unwrap_or(0);
    }
    Ok(queues)
}

/// Instances by service that the workers still alive hold, summed over them (each reports
/// its own with its heartbeat; unreadable reports count for nothing).
fn held_instances(store: &Store) -> Result<BTreeMap<String, u64>> {
    let reports = store.conn().query_map(
        &format!(
            "SELECT instances FROM workers
              WHERE stopped_at IS NULL AND heartbeat_ms + lease_ms >= {NOW_MS}"
        ),
        params![],
        |r| r.get::<Option<String>>(0),
    )?;
    let mut held = BTreeMap::new();
    for report in reports.into_iter().flatten() {
        let counts: BTreeMap<String, u64> = serde_json::from_str(&report).unwrap_or_default();
        for (service, n) in counts {
            *held.entry(service).or_insert(0) += n;
        }
    }
    Ok(held)
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
/// status is `status` (default: failed and timed-out); the old ones stay as history. A
/// pipeline's execution stays its step's, so that the item's path resumes when it succeeds. An
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
            "INSERT INTO executions (service_id, service_name, trigger_id, item_id, function, status, pipeline_step_id)
             SELECT service_id, service_name, trigger_id, item_id, function, 'queued', pipeline_step_id
               FROM executions WHERE id = $1
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
