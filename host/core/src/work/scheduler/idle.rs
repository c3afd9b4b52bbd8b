//! Elastic instances (issue 35): a service's `concurrency` is its most instances; each worker
//! makes its instance when work comes, and gives it back once it has sat idle for the service's
//! `idle_ms`, except the first `min_instances`, which stay. A given-back instance's memory (the
//! guest's, and its inference worker's) is the host's again.

use std::time::{Duration, Instant};

use super::Slot;
use crate::work::metrics;

/// How long an idle instance is kept: for ever below the service's `min_instances`.
#[derive(Clone, Copy)]
pub(super) enum Keep {
    Always,
    For(Duration),
}

/// Gives back the worker's instance (its memory: the guest's, and its inference worker's) once
/// idle past what `keep` allows; the next execution makes a new one. Returns how long until it
/// would, for the worker's wait.
pub(super) fn release_when_idle(
    current: &mut Option<Slot>,
    service_id: i64,
    slot: u32,
    keep: Keep,
    last_ran: Instant,
) -> Duration {
    let Some(held) = current.as_mut().filter(|s| s.instance.is_some()) else {
        return Duration::MAX;
    };
    let Keep::For(idle) = keep else {
        return Duration::MAX;
    };
    let left = idle.saturating_sub(last_ran.elapsed());
    if left.is_zero() {
        held.instance = None;
        metrics::global().instance(service_id, slot, None);
        give_back_freed();
        tracing::info!(
            "service #{service_id}: instance {slot} idle for {:.0} s, given back",
            idle.as_secs_f64()
        );
        return Duration::MAX;
    }
    left
}

/// Returns the allocator's freed pages to the system: glibc keeps what a thread freed in its
/// arena (an instance's item copies, its host-side buffers), so without this the process's RSS
/// would hardly move when instances go.
fn give_back_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
