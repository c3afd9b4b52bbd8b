//! An execution's way through a worker: claimed from the queue (or started directly), released
//! or abandoned, and finished with its annotations, all in the store's transactions.

use super::*;

/// An execution taken off the queue to run now, by a worker's claim.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub item_id: i64,
    pub function: String,
    pub attempts: u32,
    pub worker_id: i64,
    pub claim: i64,
    /// When it was queued (the store's ISO 8601 time); none for a direct execution.
    pub queued_at: Option<String>,
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
    // A look first, without a transaction or a lock: nothing queued and nobody lost is the
    // common answer of an idle or saturated service, and costs one read.
    if !has_work(store, service_id, worker.id)? {
        return Ok(None);
    }
    let lost = lost_of_service();
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
    take_back_lost(&tx, &lost, service_id, worker.id)?;
    let running: i64 = tx.query_row(
        "SELECT COUNT(*) FROM executions WHERE service_id = $1 AND status = 'running' AND direct = 0",
        params![service_id],
        |r| r.get(0),
    )?;
    if running >= i64::from(concurrency) {
        tx.commit()?;
        return Ok(None);
    }
    let next = take_oldest(&tx, service_id, revision_id, worker, claim)?;
    tx.commit()?;
    Ok(next)
}

/// Whether a claim of the service could find anything: an execution queued, or one a lost
/// worker left running. One read, without a transaction or a lock.
pub fn has_work(store: &Store, service_id: i64, worker_id: i64) -> Result<bool> {
    let lost = lost_of_service();
    Ok(store.conn().query_row(
        &format!(
            "SELECT EXISTS (SELECT 1 FROM executions WHERE service_id = $1 AND status = 'queued')
                 OR EXISTS (SELECT 1 FROM executions WHERE {lost})"
        ),
        params![service_id, worker_id],
        |r| r.get(0),
    )?)
}

/// The condition of a service's (`$1`) executions that lost workers left running (seen by
/// worker `$2`).
fn lost_of_service() -> String {
    format!(
        "service_id = $1 AND status = 'running' AND {}",
        of_lost_workers(2)
    )
}

/// The running executions of the service's lost workers (`lost`), back on the queue; their
/// direct executions failed.
fn take_back_lost(tx: &Tx<'_>, lost: &str, service_id: i64, worker_id: i64) -> Result<()> {
    let any_lost: bool = tx.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM executions WHERE {lost})"),
        params![service_id, worker_id],
        |r| r.get(0),
    )?;
    if any_lost {
        requeue(
            tx,
            &format!("{lost} AND direct = 0"),
            params![service_id, worker_id],
        )?;
        // On the embedded store every process is on this machine: a direct execution whose
        // process lives is running, whatever its heartbeat says.
        fail_stopped_direct(
            tx,
            lost,
            params![service_id, worker_id],
            tx.dialect() == Dialect::Sqlite,
        )?;
    }
    Ok(())
}

/// The service's oldest queued execution, marked running on `revision_id` by this claim.
fn take_oldest(
    tx: &Tx<'_>,
    service_id: i64,
    revision_id: i64,
    worker: &Worker,
    claim: i64,
) -> Result<Option<Claimed>> {
    let next = tx
        .query_row(
            &format!(
                "SELECT id, item_id, function, attempts, queued_at FROM executions
                  WHERE service_id = $1 AND status = 'queued' ORDER BY id LIMIT 1{}",
                tx.dialect().skip_locked()
            ),
            params![service_id],
            |r| {
                Ok(Claimed {
                    id: r.get("id")?,
                    item_id: r.get("item_id")?,
                    function: r.get("function")?,
                    attempts: r.get::<u32>("attempts")? + 1,
                    worker_id: worker.id,
                    claim,
                    queued_at: r.get("queued_at")?,
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
        queued_at: None,
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
pub(super) fn fail_running(
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
    /// Its annotations, and the items it made (their bytes already stored).
    Success {
        annotations: Vec<Annotation>,
        made: Vec<Content>,
    },
    /// Failed; `retry` puts it back on the queue.
    Failed {
        status: Status,
        error: String,
        retry: bool,
    },
}

/// What an attempt ran: the component and the init values of its instance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ran<'a> {
    pub component_digest: &'a str,
    /// `None` when no instance was started (the revision could not be loaded).
    pub init_inputs: Option<&'a BTreeMap<String, InputValue>>,
    /// The native inference engine its models ran on, if any (`onnxruntime 1.22.1`).
    pub inference_engine: Option<&'a str>,
    /// How long making its instance took, if it made one.
    pub cold_start_ms: Option<u64>,
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
        Outcome::Success { annotations, .. } => {
            Some(serde_json::to_string(annotations).expect("annotations serialize"))
        }
        Outcome::Failed { .. } => None,
    };
    tx.execute(
        "UPDATE executions SET init_inputs = $2, host_version = $3, result = $4, inference_engine = $5,
                cold_start_ms = $6 WHERE id = $1",
        params![claimed.id, init_json, crate::HOST_VERSION, result, ran.inference_engine, ran.cold_start_ms],
    )?;
    let component_digest = ran.component_digest;
    match outcome {
        Outcome::Success { annotations, made } => {
            super::record_outputs(&tx, claimed.id, made)?;
            record_success(
                &tx,
                claimed,
                annotations,
                logs,
                duration_ms,
                component_digest,
            )?;
            // A pipeline's execution: the item goes on, in this same transaction.
            let found: Vec<(&str, f64)> = annotations
                .iter()
                .map(|a| (a.label.as_str(), f64::from(a.model.confidence)))
                .collect();
            crate::work::pipeline::after_success(&tx, claimed.id, &found)?;
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

/// A successful run's end: its logs and time, and its annotations in place of the service's
/// pending ones on the item, unless a newer result is there already (then only the logs say so).
fn record_success(
    tx: &Tx<'_>,
    claimed: &Claimed,
    annotations: &[Annotation],
    logs: &str,
    duration_ms: u64,
    component_digest: &str,
) -> Result<()> {
    let stale = is_stale(tx, claimed.id)?;
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
        replace_annotations(tx, claimed, annotations, component_digest)?;
    }
    Ok(())
}

/// With several executions of one item at once, an older one can end last. Its result is
/// history, not the item's annotations: the bytes it ran on are no longer the item's, or a
/// later execution already stored its own result.
pub(super) fn is_stale(tx: &Tx<'_>, id: i64) -> Result<bool> {
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
pub(super) fn replace_annotations(
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
    for a in &crate::results::review::unreviewed(tx, claimed.item_id, annotations)? {
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
