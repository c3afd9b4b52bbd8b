//! A service's settings: how its instances run (concurrency, their memory cap and
//! inference threads, timeouts, limits), their defaults and bounds, and the checks a deploy's
//! values pass (`service::Deploy` changes them).

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::runtime::{EngineChoice, Limits};

/// How a service runs. Defaults (see `Limits::default`): one execution at a time, 60 s per
/// call, 120 s for init, 1 attempt, 1 GiB of guest memory, 256 MiB items, 10000
/// annotations per result, 1 MiB of logs per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Settings {
    /// Executions at once, each on an instance of its own: the most instances.
    pub concurrency: u32,
    /// Instances kept once made, however idle (the rest are given back after `idle_ms`).
    pub min_instances: u32,
    /// How long an instance above `min_instances` may sit idle before it is given back.
    pub idle_ms: u64,
    pub timeout_ms: u64,
    pub init_timeout_ms: u64,
    pub max_attempts: u32,
    pub memory_mb: u32,
    pub max_item_mb: u32,
    pub max_annotations: u32,
    pub log_kb: u32,
    /// A permission: whether the guest may run ONNX artifacts natively (off by default).
    pub allow_inference: bool,
    /// The engine that runs them: `auto` (ONNX Runtime where it loads, else tract),
    /// `onnxruntime` or `tract`.
    pub inference_engine: EngineChoice,
    /// Threads one inference call may use (default 1: an instance per core).
    pub inference_threads: u32,
}

impl Default for Settings {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            concurrency: 1,
            min_instances: 0,
            idle_ms: DEFAULT_IDLE_MS,
            timeout_ms: limits.timeout.as_millis() as u64,
            init_timeout_ms: limits.init_timeout.as_millis() as u64,
            max_attempts: 1,
            memory_mb: (limits.memory_bytes >> 20) as u32,
            max_item_mb: (limits.max_item_bytes >> 20) as u32,
            max_annotations: limits.max_annotations as u32,
            log_kb: (limits.log_bytes >> 10) as u32,
            allow_inference: limits.allow_inference,
            inference_engine: limits.inference_engine,
            inference_threads: limits.inference_threads,
        }
    }
}

impl Settings {
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_millis(self.timeout_ms),
            init_timeout: Duration::from_millis(self.init_timeout_ms),
            memory_bytes: (self.memory_mb as usize) << 20,
            log_bytes: (self.log_kb as usize) << 10,
            max_item_bytes: u64::from(self.max_item_mb) << 20,
            max_annotations: self.max_annotations as usize,
            allow_inference: self.allow_inference,
            inference_engine: self.inference_engine,
            inference_threads: self.inference_threads,
        }
    }
}

/// Executions of one service at once: each is a thread with its own instance (and memory cap).
pub const MAX_CONCURRENCY: u32 = 64;

/// Threads one inference call may use.
pub const MAX_INFERENCE_THREADS: u32 = 64;

/// How long an instance may sit idle, by default, before it is given back: five minutes.
pub const DEFAULT_IDLE_MS: u64 = 300_000;

/// Seconds as given (by a flag or a JSON number) to stored milliseconds.
pub(crate) fn millis(seconds: f64, field: &'static str) -> Result<u64> {
    let t = Duration::try_from_secs_f64(seconds).map_err(|_| {
        Error::invalid(field, format!("must be a number of seconds, got {seconds}"))
    })?;
    if t.is_zero() {
        Err(Error::invalid(field, "must be positive"))
    } else {
        Ok(t.as_millis().max(1) as u64)
    }
}

/// At least 1 and at most `max` (`why` says what bounds it).
pub(crate) fn within(n: u32, max: u32, field: &'static str, why: &str) -> Result<u32> {
    if n > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max}{why}, got {n}"),
        ));
    }
    positive(n, field)
}

pub(crate) fn positive(n: u32, field: &'static str) -> Result<u32> {
    if n == 0 {
        Err(Error::invalid(field, "must be at least 1"))
    } else {
        Ok(n)
    }
}
