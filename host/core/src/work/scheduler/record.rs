//! Recording an execution's outcome when the store is not well: again on a new session if
//! the database ended the one it ran on, and, when the disk is full, back on the queue once
//! there is room.

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

/// Puts an execution whose outcome could not be written back on the queue as soon as the
/// disk has room again (it runs again then, counted as an interruption); if the process
/// stops first, its next start does so.
pub(super) fn requeue_when_room(store: &mut Store, claimed: &Claimed, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match execution::release(store, claimed.worker_id, claimed.claim) {
            Ok(_) => {
                return tracing::warn!("execution #{}: queued again, with room", claimed.id);
            }
            Err(_) => std::thread::sleep(POLL * 10),
        }
    }
}
