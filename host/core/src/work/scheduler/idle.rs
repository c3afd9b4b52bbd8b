//! Elastic instances (issue 35): a service's `concurrency` is its most instances; each worker
//! makes its instance when work comes, and gives it back once it has sat idle for the service's
//! `idle_ms`, except the first `min_instances`, which stay unless another service waits for
//! their room (see [`super::budget`]). A given-back instance's memory (the guest's, and its
//! inference worker's) is the host's again.

use std::time::{Duration, Instant};

use super::Held;
use crate::catalog::service::Settings;

/// How long an idle instance is kept: for ever below the service's `min_instances`.
#[derive(Clone, Copy)]
pub(super) enum Keep {
    Always,
    For(Duration),
}

impl Keep {
    /// How long worker `slot`'s idle instance is kept, by its service's settings.
    pub(super) fn of(slot: u32, settings: &Settings) -> Keep {
        if slot < settings.min_instances {
            Keep::Always
        } else {
            Keep::For(Duration::from_millis(settings.idle_ms))
        }
    }
}

/// Gives back the worker's instance (its memory: the guest's, and its inference worker's) and
/// its room on the host once idle past what `keep` allows, or at once when another service
/// `wants` the room (see [`super::budget`]); the next execution makes a new one. Room held
/// without an instance (its claim found nothing) goes at once. Returns how long until it would,
/// for the worker's wait.
pub(super) fn release_when_idle(
    held: &mut Held,
    service_id: i64,
    slot: u32,
    keep: Keep,
    last_ran: Instant,
    wanted: bool,
) -> Duration {
    if !held.has_instance() {
        held.room = None;
        return Duration::MAX;
    }
    let left = match keep {
        _ if wanted => Duration::ZERO,
        Keep::Always => return Duration::MAX,
        Keep::For(idle) => idle.saturating_sub(last_ran.elapsed()),
    };
    if left.is_zero() {
        held.give_back(service_id, slot);
        give_back_freed();
        let why = if wanted {
            "another service waits for its room".to_string()
        } else {
            format!("idle for {:.0} s", last_ran.elapsed().as_secs_f64())
        };
        tracing::info!("service #{service_id}: instance {slot} given back: {why}");
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
