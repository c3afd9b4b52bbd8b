//! Recording an execution's outcome when the store is not well: again on a new session if
//! the database ended the one it ran on, and, when it cannot be (a full disk, no session),
//! back on the queue once the store answers.

use std::sync::atomic::{AtomicBool, Ordering};

use super::POLL;
use crate::error::Result;
use crate::store::Store;
use crate::work::execution::{self, Claimed, Outcome};

/// [`execution::finish`], again on a new session if the database ended this one while the
/// guest ran (a restart, a failover): the claim still holds the execution, so its outcome
/// is recorded rather than lost.
pub(super) fn record(
    store: &mut Store,
    claimed: &Claimed,
    outcome: &Outcome,
    logs: &str,
    duration_ms: u64,
    ran: execution::Ran<'_>,
) -> Result<()> {
    // The session ended during the attempt, and its reads failed with it: not the item's
    // failure. The execution goes back on the queue, as after a restart.
    if matches!(outcome, Outcome::Failed { .. }) && store.reconnect_if_lost()? {
        tracing::warn!(
            "execution #{}: the session ended during the attempt; queued again",
            claimed.id
        );
        execution::release(store, claimed.worker_id, claimed.claim)?;
        return Ok(());
    }
    match execution::finish(store, claimed, outcome, logs, duration_ms, ran) {
        Err(e) if store.reconnect_if_lost()? => {
            tracing::warn!("execution #{}: recorded on a new session ({e})", claimed.id);
            execution::finish(store, claimed, outcome, logs, duration_ms, ran)
        }
        ended => ended,
    }
}

/// Puts what claim `claim` of `worker_id` took (an execution whose outcome could not be
/// written, or a claim whose answer was lost with its session) back on the queue as soon as
/// the store answers again, on a new session if the database ended this one, or with room
/// on the disk (it runs again then, counted as an interruption); if the process stops first,
/// its next start does so. Until then the worker does nothing else.
pub(super) fn requeue_when_able(
    store: &mut Store,
    worker_id: i64,
    claim: i64,
    why: String,
    stop: &AtomicBool,
) {
    tracing::warn!("{why}: what claim {claim} took goes back on the queue");
    while !stop.load(Ordering::Relaxed) {
        let released = match store.reconnect_if_lost() {
            Ok(_) => execution::release(store, worker_id, claim).is_ok(),
            Err(_) => false,
        };
        if released {
            return tracing::warn!("claim {claim}: queued again");
        }
        std::thread::sleep(POLL * 10);
    }
}
