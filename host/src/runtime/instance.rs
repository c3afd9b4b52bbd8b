//! One sandboxed instance of a component: its store, its limits, and the calls into it.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::prelabel::detector::{host, inference, types};
use super::bindings::{
    Annotation, Detector, DetectorPre, ErrorKind, GuestError, InitInput, Item, Level,
};
use super::{Artifacts, Capture, EPOCH_TICK, Limits, NativeModels};
use std::sync::Arc;

/// Which guest call an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Instantiate,
    Init,
    Detect,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Instantiate => "instantiate",
            Phase::Init => "init",
            Phase::Detect => "detect",
        })
    }
}

/// How a call into a guest can fail. Only [`ExecError::Guest`] leaves the instance usable.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{phase} timed out after {}s (limit)", limit.as_secs_f64())]
    Timeout { phase: Phase, limit: Duration },
    #[error("{phase} exceeded the memory limit of {} MiB", limit >> 20)]
    MemoryLimit { phase: Phase, limit: usize },
    #[error("guest trapped in {phase}: {message}")]
    Trap { phase: Phase, message: String },
    #[error("{phase} failed ({}): {message}", kind_name(*kind))]
    Guest {
        phase: Phase,
        kind: ErrorKind,
        message: String,
    },
    #[error("the instance cannot be used after an earlier failure; create a new one")]
    Poisoned,
}

impl ExecError {
    /// Whether the instance survives this error (the guest reported it; nothing trapped).
    pub fn instance_survives(&self) -> bool {
        matches!(self, ExecError::Guest { .. })
    }
}

fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidInput => "invalid input",
        ErrorKind::InvalidItem => "invalid item",
        ErrorKind::Artifact => "artifact",
        ErrorKind::NotInitialized => "not initialized",
        ErrorKind::Internal => "internal",
    }
}

/// The data of a store: WASI state, the limiter, artifacts and captured output.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    artifacts: Artifacts,
    models: Arc<NativeModels>,
    capture: Capture,
}

/// Store limits that remember whether a memory growth was refused, so that the trap that
/// follows can be reported as the limit it is.
struct Limiter {
    limits: StoreLimits,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.refused |= !allowed;
        Ok(allowed)
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl inference::Host for HostState {
    fn run(
        &mut self,
        model: String,
        inputs: Vec<inference::Tensor>,
    ) -> Result<Vec<inference::Tensor>, GuestError> {
        let path = self.artifact_path(&model)?;
        self.models
            .run(&path, inputs)
            .map_err(|message| GuestError {
                kind: ErrorKind::Artifact,
                message: format!("artifact `{model}`: {message}"),
            })
    }
}

impl HostState {
    fn artifact_path(&self, name: &str) -> Result<std::path::PathBuf, GuestError> {
        self.artifacts.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.artifacts.keys().map(String::as_str).collect();
            GuestError {
                kind: ErrorKind::Artifact,
                message: format!(
                    "no artifact named `{name}` (the package has: {})",
                    known.join(", ")
                ),
            }
        })
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        tracing::debug!(target: "prelabel::guest", "[{level}] {message}");
        self.capture
            .append(format!("[{level}] {message}\n").as_bytes());
    }

    fn artifact(&mut self, name: String) -> Result<Vec<u8>, GuestError> {
        let path = self.artifact_path(&name)?;
        std::fs::read(&path).map_err(|e| GuestError {
            kind: ErrorKind::Artifact,
            message: format!("artifact `{name}` ({}): {e}", path.display()),
        })
    }
}

/// A live instance. Create it, call [`Instance::init`] once, then [`Instance::detect`] per item.
pub struct Instance {
    store: Store<HostState>,
    bindings: Detector,
    limits: Limits,
    poisoned: bool,
}

impl Instance {
    pub(super) fn new(
        engine: &Engine,
        pre: &DetectorPre<HostState>,
        artifacts: Artifacts,
        models: Arc<NativeModels>,
        limits: Limits,
    ) -> Result<Self, ExecError> {
        let capture = Capture::new(limits.log_bytes);
        // Sandbox: no preopened dirs, no env, no args, no sockets, no name lookup.
        let wasi = WasiCtx::builder()
            .stdout(capture.clone())
            .stderr(capture.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limiter = Limiter {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .build(),
            refused: false,
        };
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter,
            artifacts,
            models,
            capture,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        // Instantiation runs the guest's start code: bound it like init.
        store.set_epoch_deadline(ticks(limits.init_timeout));
        store.epoch_deadline_trap();
        let bindings = pre.instantiate(&mut store).map_err(|e| {
            classify(
                &store,
                e,
                Phase::Instantiate,
                limits.init_timeout,
                limits.memory_bytes,
            )
        })?;
        Ok(Self {
            store,
            bindings,
            limits,
            poisoned: false,
        })
    }

    /// Calls the guest's `init` with the service's init inputs.
    pub fn init(&mut self, inputs: &[InitInput]) -> Result<(), ExecError> {
        let limit = self.limits.init_timeout;
        self.call(Phase::Init, limit, |bindings, store| {
            bindings.call_init(store, inputs)
        })
    }

    /// Calls the guest's `detect` on one item.
    pub fn detect(&mut self, item: &Item) -> Result<Vec<Annotation>, ExecError> {
        let limit = self.limits.timeout;
        self.call(Phase::Detect, limit, |bindings, store| {
            bindings.call_detect(store, item)
        })
    }

    /// Whether a trap (or timeout) made this instance unusable.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// What the guest printed and logged since the last call to this.
    pub fn take_logs(&mut self) -> String {
        self.store.data().capture.take()
    }

    fn call<R>(
        &mut self,
        phase: Phase,
        limit: Duration,
        f: impl FnOnce(&Detector, &mut Store<HostState>) -> wasmtime::Result<Result<R, GuestError>>,
    ) -> Result<R, ExecError> {
        if self.poisoned {
            return Err(ExecError::Poisoned);
        }
        self.store.set_epoch_deadline(ticks(limit));
        self.store.data_mut().limiter.refused = false;
        match f(&self.bindings, &mut self.store) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ExecError::Guest {
                phase,
                kind: e.kind,
                message: e.message,
            }),
            Err(e) => {
                // A trapped component instance cannot be entered again.
                self.poisoned = true;
                Err(classify(
                    &self.store,
                    e,
                    phase,
                    limit,
                    self.limits.memory_bytes,
                ))
            }
        }
    }
}

fn ticks(limit: Duration) -> u64 {
    (limit.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

fn classify(
    store: &Store<HostState>,
    error: wasmtime::Error,
    phase: Phase,
    limit: Duration,
    memory: usize,
) -> ExecError {
    let capture = &store.data().capture;
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return ExecError::Timeout { phase, limit };
    }
    if store.data().limiter.refused {
        return ExecError::MemoryLimit {
            phase,
            limit: memory,
        };
    }
    // The short reason for the error, the full wasm backtrace for the logs.
    capture.append(format!("[prelabel] {error:?}\n").as_bytes());
    let reason = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    let message = match capture.panic_message() {
        Some(panic) => format!("{reason} (guest {panic})"),
        None => reason,
    };
    ExecError::Trap { phase, message }
}
