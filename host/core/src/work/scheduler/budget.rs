//! The host's budget (issue 35): the memory (and, when given, the cores) this process may
//! promise its instances. An instance is made only when its service's cap fits what is left
//! unpromised; the room is held while the instance lives and is the host's again when it goes
//! (given back idle, or for another service). So a host never promises more than it has.
//!
//! When room is short, services share it by one rule, in two halves: the next room goes to the
//! waiting service that holds the fewest instances (among equals, the one waiting longest), and,
//! between two executions, an instance gives its room up when a service that holds fewer
//! instances than its own waits. Every service with work thus gets an instance, then the
//! shares even out; on a host that fits one instance, services take turns an execution each.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::catalog::service::Settings;
use crate::work::metrics;

/// What a host offers its instances; `None` is the machine's memory (its cgroup's limit where
/// lower), and cores without a limit: CPU time is shared among instances (they slow down),
/// memory is not (one too many is killed), so cores are counted only when given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Host {
    pub memory_mb: Option<u64>,
    pub cores: Option<u32>,
}

impl Host {
    /// The memory this host may promise, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mb
            .map(|mb| mb.saturating_mul(1 << 20))
            .unwrap_or_else(machine_memory)
    }
}

/// The machine's physical memory, or its cgroup's (a container's) limit where lower.
pub fn machine_memory() -> u64 {
    #[cfg(unix)]
    // SAFETY: sysconf only reads system configuration.
    let physical = unsafe {
        let pages = libc::sysconf(libc::_SC_PHYS_PAGES);
        let size = libc::sysconf(libc::_SC_PAGESIZE);
        u64::try_from(pages).unwrap_or(0) * u64::try_from(size).unwrap_or(0)
    };
    #[cfg(not(unix))]
    let physical = u64::MAX;
    // cgroup v2 writes `max` or a number of bytes.
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (physical, cgroup) {
        (0, None) => u64::MAX,
        (0, Some(c)) => c,
        (p, c) => c.map_or(p, |c| c.min(p)),
    }
}

/// What one instance of a service is promised: its memory cap, and the cores its inference
/// calls may use (one for the guest's own, single-threaded, inference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub memory: u64,
    pub cores: u32,
}

impl Need {
    pub fn of(settings: &Settings) -> Need {
        Need {
            memory: u64::from(settings.memory_mb) << 20,
            cores: if settings.allow_inference {
                settings.inference_threads.max(1)
            } else {
                1
            },
        }
    }
}

/// A worker of a service, as the budget knows it: (service id, slot).
type Seat = (i64, u32);

#[derive(Default)]
struct State {
    memory: u64,
    cores: u32,
    /// Instances holding room, by service id.
    held: HashMap<i64, u32>,
    /// Workers with work that wait for room, and since when.
    waiting: BTreeMap<Seat, Instant>,
}

impl State {
    fn held(&self, service: i64) -> u32 {
        self.held.get(&service).copied().unwrap_or(0)
    }
}

/// The room this process's instances hold, against what the host offers.
pub struct Budget {
    memory: u64,
    cores: u32,
    state: Mutex<State>,
    freed: Condvar,
    /// Called when a worker starts to wait: the idle instances that could give room up look.
    on_wait: Box<dyn Fn() + Send + Sync>,
}

/// What [`Budget::take`] answers.
pub enum Take {
    Taken(Room),
    /// Not now: the room is promised, or it is another service's turn.
    Wait,
    /// Never on this host: one instance needs more than it has.
    Never,
}

impl Budget {
    pub fn new(host: Host, on_wait: impl Fn() + Send + Sync + 'static) -> Arc<Budget> {
        let budget = Budget {
            memory: host.memory_bytes(),
            cores: host.cores.unwrap_or(u32::MAX),
            state: Mutex::default(),
            freed: Condvar::new(),
            on_wait: Box::new(on_wait),
        };
        metrics::global().host_memory(budget.memory, 0);
        Arc::new(budget)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one instance of `service` at worker `slot`, if it fits and it is this
    /// service's turn; otherwise the worker is counted as waiting until it takes or leaves.
    pub fn take(self: &Arc<Self>, service: i64, slot: u32, need: Need) -> Take {
        if need.memory > self.memory || need.cores > self.cores {
            self.leave(service, slot);
            return Take::Never;
        }
        let mut state = self.lock();
        let new = !state.waiting.contains_key(&(service, slot));
        state
            .waiting
            .entry((service, slot))
            .or_insert_with(Instant::now);
        // Whose turn: the waiting service that holds the fewest, the longest waiting first.
        let turn = state
            .waiting
            .iter()
            .min_by_key(|((s, _), since)| (state.held(*s), **since))
            .map(|(seat, _)| *seat);
        if turn != Some((service, slot)) || !self.fits(&state, need) {
            drop(state);
            if new {
                (self.on_wait)();
            }
            return Take::Wait;
        }
        state.waiting.remove(&(service, slot));
        Take::Taken(self.grant(&mut state, service, need))
    }

    /// Room for an instance made ahead of work: only when it fits and nobody waits (an
    /// instance kept idle never takes room that work is waiting for).
    pub fn try_take(self: &Arc<Self>, service: i64, need: Need) -> Option<Room> {
        let mut state = self.lock();
        let free = state.waiting.is_empty() && self.fits(&state, need);
        free.then(|| self.grant(&mut state, service, need))
    }

    /// Whether `need` fits beside what `state` has promised.
    fn fits(&self, state: &State, need: Need) -> bool {
        state.memory.saturating_add(need.memory) <= self.memory
            && state.cores.saturating_add(need.cores) <= self.cores
    }

    fn grant(self: &Arc<Self>, state: &mut State, service: i64, need: Need) -> Room {
        state.memory += need.memory;
        state.cores += need.cores;
        *state.held.entry(service).or_insert(0) += 1;
        metrics::global().host_memory(self.memory, state.memory);
        Room {
            budget: self.clone(),
            service,
            need,
        }
    }

    /// The worker no longer waits (it has no work, or stops).
    pub fn leave(&self, service: i64, slot: u32) {
        if self.lock().waiting.remove(&(service, slot)).is_some() {
            // It may have been the one whose turn it was.
            self.freed.notify_all();
        }
    }

    /// Whether an instance of `service` should give its room up: a service holding fewer
    /// instances than `service` waits.
    pub fn should_yield(&self, service: i64) -> bool {
        let state = self.lock();
        let mine = state.held(service);
        state
            .waiting
            .keys()
            .any(|(s, _)| *s != service && state.held(*s) < mine)
    }

    /// Waits until room is given back, or `timeout`.
    pub fn wait(&self, timeout: Duration) {
        let state = self.lock();
        let _ = self.freed.wait_timeout(state, timeout);
    }
}

/// Room an instance holds; dropping it gives it back.
pub struct Room {
    budget: Arc<Budget>,
    service: i64,
    need: Need,
}

impl Room {
    pub fn need(&self) -> Need {
        self.need
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let budget = &self.budget;
        let mut state = budget.lock();
        state.memory -= self.need.memory;
        state.cores -= self.need.cores;
        if let Some(n) = state.held.get_mut(&self.service) {
            *n -= 1;
        }
        metrics::global().host_memory(budget.memory, state.memory);
        drop(state);
        budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(mb: u64) -> Arc<Budget> {
        Budget::new(
            Host {
                memory_mb: Some(mb),
                cores: None,
            },
            || {},
        )
    }

    const NEED: Need = Need {
        memory: 400 << 20,
        cores: 1,
    };

    fn taken(take: Take) -> Room {
        match take {
            Take::Taken(room) => room,
            _ => panic!("not taken"),
        }
    }

    #[test]
    fn room_is_taken_only_while_it_fits_and_comes_back_when_dropped() {
        let budget = budget(600);
        let a = taken(budget.take(1, 0, NEED));
        assert!(matches!(budget.take(1, 1, NEED), Take::Wait));
        drop(a);
        let _b = taken(budget.take(1, 1, NEED));
    }

    #[test]
    fn more_than_the_host_has_is_never() {
        let budget = budget(300);
        assert!(matches!(budget.take(1, 0, NEED), Take::Never));
        // And it is not left waiting, where it would make others give room up.
        let _a = taken(budget.take(
            2,
            0,
            Need {
                memory: 1,
                cores: 1,
            },
        ));
        assert!(!budget.should_yield(2));
    }

    #[test]
    fn the_service_holding_fewer_goes_first_and_makes_the_other_yield() {
        let budget = budget(1000);
        let a1 = taken(budget.take(1, 0, NEED));
        let _a2 = taken(budget.take(1, 1, NEED));
        // Service 1 waits for a third, then service 2 for its first: 2 holds none.
        assert!(matches!(budget.take(1, 2, NEED), Take::Wait));
        assert!(matches!(budget.take(2, 0, NEED), Take::Wait));
        assert!(budget.should_yield(1), "1 holds two, 2 none");
        drop(a1);
        // The freed room is 2's though 1 waited longer.
        assert!(matches!(budget.take(1, 2, NEED), Take::Wait));
        let _b = taken(budget.take(2, 0, NEED));
        assert!(!budget.should_yield(2), "1 holds as many");
    }
}
