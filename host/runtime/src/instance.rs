//! One sandboxed instance of a component: its store, its limits, and the calls into it.
//!
//! Every call into the guest (instantiation, `init`, `detect`) runs on an async store under
//! one wall-clock deadline, enforced two ways: the epoch callback traps wasm code that runs
//! past it (a busy loop), and a `tokio` timeout drops the call when the guest is parked in a
//! host call instead (a WASI sleep or poll, native inference). Either way the call ends as
//! [`ExecError::Timeout`] and the instance is thrown away.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::transformer::TransformerLinks;
use super::bindings::{Annotation, ErrorKind, GuestError, HostLinks, InitInput, Item, Output};
use super::http::Outbound;
use super::inference::{InferenceFailure, NativeInference};
use super::{Artifacts, Capture, Grants, Limits};

/// Which guest call an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Instantiate,
    Init,
    Detect,
    Transform,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Instantiate => "instantiate",
            Phase::Init => "init",
            Phase::Detect => "detect",
            Phase::Transform => "transform",
        })
    }
}

/// How a call into a guest can fail. Only [`ExecError::Guest`] leaves the instance usable.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{phase} timed out after {}s (limit)", limit.as_secs_f64())]
    Timeout { phase: Phase, limit: Duration },
    #[error("{phase} exceeded the memory limit of {} MiB{}", limit >> 20, what.map(|w| format!(" ({w})")).unwrap_or_default())]
    MemoryLimit {
        phase: Phase,
        limit: usize,
        /// What went over, when it was not the guest's own memories and tables.
        what: Option<&'static str>,
    },
    #[error("guest trapped in {phase}: {message}")]
    Trap { phase: Phase, message: String },
    #[error("{phase} failed ({}): {message}", kind_name(*kind))]
    Guest {
        phase: Phase,
        kind: ErrorKind,
        message: String,
    },
    #[error("{phase}: native inference failed: {message}")]
    Inference { phase: Phase, message: String },
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
    pub(super) table: ResourceTable,
    limiter: Limiter,
    pub(super) artifacts: Artifacts,
    /// wasi:http's state, and the rule its requests are held to.
    http: WasiHttpCtx,
    outbound: Outbound,
    pub(super) inference: NativeInference,
    pub(super) capture: Capture,
    /// When the current call must end; checked by the epoch callback.
    deadline: Instant,
}

/// Bounds on what a component may create; generous for real components (a Rust guest has
/// a handful of core instances, one or two memories and tables), small enough that the
/// bookkeeping of a hostile one stays cheap.
const MAX_INSTANCES: usize = 64;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 64;
/// What wasmtime keeps per table element (a pointer), counted against the memory cap.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();
/// Host-side WASI resources (streams, pollables) a guest may hold at once. Each costs host
/// memory outside the guest's cap; a detector needs a handful (wasmtime's default: 10^6).
const MAX_HOST_RESOURCES: usize = 10_000;
/// The most the host copies out of the guest in one crossing (an import's arguments, or what
/// `init` or `detect` returns), whatever the Rust types the copy takes: a quarter of the cap,
/// at most this. Wasmtime counts it as it lifts (its "hostcall fuel"), before anything is
/// allocated, so a million annotations or a 100 MiB label end as the memory limit instead of
/// being copied first and refused after. A photo to decode or a tensor is far under it.
const MAX_CROSSING: usize = 64 << 20;

/// What one crossing from the guest to the host may copy, for a cap of `memory_bytes`.
pub(super) fn crossing_limit(memory_bytes: usize) -> usize {
    (memory_bytes / 4).min(MAX_CROSSING)
}

/// The words wasmtime's lifting ends with when a crossing is over [`crossing_limit`].
const CROSSING_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// One memory budget for the whole store: every linear memory and every table of every
/// core instance counts against the same cap, so that several memories (multi-memory) or a
/// huge table cannot add up past it, and so does what the host holds for the guest (wasi-nn
/// tensors and models, decoded images). A growth past the cap traps, and the trap is
/// reported as the limit it is.
struct Limiter {
    cap: usize,
    /// The guest's memories and tables.
    used: usize,
    /// What the host holds for the guest, the inference worker's charge included.
    held: usize,
    /// The inference worker's charge (part of `held`), as last measured.
    worker: usize,
    refused: bool,
}

/// The host would hold more for the guest than its memory cap leaves: a trap, reported as
/// the memory limit, naming what went over.
#[derive(Debug, thiserror::Error)]
#[error("{what} would take the guest over its memory cap")]
pub(super) struct OverCap {
    what: &'static str,
}

impl Limiter {
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let used = self.used.saturating_sub(current).saturating_add(desired);
        if used.saturating_add(self.held) > self.cap {
            self.refused = true;
            return Err(wasmtime::format_err!(
                "the guest's memories and tables would take {used} bytes, over the cap of {} bytes",
                self.cap
            ));
        }
        self.used = used;
        Ok(true)
    }
}

impl HostState {
    /// Counts `bytes` the host keeps for the guest (for `what`) against its memory cap.
    pub(super) fn hold(&mut self, bytes: usize, what: &'static str) -> wasmtime::Result<()> {
        let limiter = &mut self.limiter;
        let total = limiter
            .used
            .saturating_add(limiter.held)
            .saturating_add(bytes);
        if total > limiter.cap {
            return Err(wasmtime::Error::new(OverCap { what }));
        }
        limiter.held += bytes;
        Ok(())
    }

    /// Gives back what [`HostState::hold`] took.
    pub(super) fn release(&mut self, bytes: usize) {
        self.limiter.held = self.limiter.held.saturating_sub(bytes);
    }

    /// What the cap leaves: neither the guest's memories nor held by the host.
    pub(super) fn unheld(&self) -> usize {
        let limiter = &self.limiter;
        limiter
            .cap
            .saturating_sub(limiter.used.saturating_add(limiter.held))
    }

    /// Charges the inference worker's memory as it is now (after a request) in place of what
    /// was charged for it before; over the cap, the call ends as the memory limit.
    pub(super) fn charge_worker(&mut self) -> wasmtime::Result<()> {
        let now = self.inference.footprint();
        let before = std::mem::replace(&mut self.limiter.worker, now);
        self.release(before);
        self.hold(now, "native inference")
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }
    fn instances(&self) -> usize {
        MAX_INSTANCES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
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

/// A name the guest chose, cut to a length fit for an error message.
pub(super) fn shorten(name: &str) -> String {
    cut(name, 128)
}

/// `text` cut to at most `max` bytes (on a character boundary), saying how long it was.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// The longest error message a guest's `error` keeps (it is stored and printed).
const MAX_GUEST_MESSAGE: usize = 4096;

thread_local! {
    /// The executor that drives this thread's guest calls. A current-thread runtime: a
    /// call runs on the thread that makes it, as before, and only waits here when the guest
    /// is parked in a host call.
    static EXECUTOR: std::io::Result<tokio::runtime::Runtime> =
        tokio::runtime::Builder::new_current_thread().enable_all().build();
}

/// Runs `future` to its end on this thread's executor, or gives up at `limit`.
fn block_on<F: std::future::Future>(limit: Duration, future: F) -> Result<F::Output, Blocked> {
    EXECUTOR.with(|executor| match executor {
        Ok(executor) => executor
            .block_on(async { tokio::time::timeout(limit, future).await })
            .map_err(|_| Blocked::TimedOut),
        Err(e) => Err(Blocked::NoExecutor(e.to_string())),
    })
}

enum Blocked {
    TimedOut,
    NoExecutor(String),
}

impl Blocked {
    fn into_error(self, phase: Phase, limit: Duration) -> ExecError {
        match self {
            Blocked::TimedOut => ExecError::Timeout { phase, limit },
            Blocked::NoExecutor(e) => ExecError::Trap {
                phase,
                message: format!("cannot start the host's executor: {e}"),
            },
        }
    }
}

/// What a component exports: a detector's `detect`, or a transformer's `transform`.
enum Bindings {
    Detector(HostLinks),
    Transformer(TransformerLinks),
}

/// A live instance. Create it, call [`Instance::init`] once, then [`Instance::call`] per item.
pub struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
    limits: Limits,
    poisoned: bool,
}

impl Instance {
    pub(super) fn new(
        engine: &Engine,
        pre: &super::Pre,
        grants: Grants,
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
            // Random bytes are made on the host before they are copied in: 1 MiB a call.
            .max_random_size(1 << 20)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_RESOURCES);
        let state = HostState {
            wasi,
            table,
            limiter: Limiter {
                cap: limits.memory_bytes,
                used: 0,
                held: 0,
                worker: 0,
                refused: false,
            },
            artifacts: grants.artifacts,
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(grants.outbound, capture.clone(), limits.max_item_bytes),
            inference: NativeInference::new(&limits),
            capture,
            deadline: deadline_after(limits.init_timeout),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(crossing_limit(limits.memory_bytes));
        // Wasm that runs past the deadline traps at the next tick; before it, keep going.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        store.set_epoch_deadline(1);
        // Instantiation runs the guest's start code: bound it like init.
        let limit = limits.init_timeout;
        let _ = block_on(limit, async { store.data_mut().inference.prepare() });
        let instantiated = block_on(limit, async {
            match pre {
                super::Pre::Detector(pre) => pre
                    .instantiate_async(&mut store)
                    .await
                    .map(Bindings::Detector),
                super::Pre::Transformer(pre) => pre
                    .instantiate_async(&mut store)
                    .await
                    .map(Bindings::Transformer),
            }
        });
        let bindings = match instantiated {
            Ok(Ok(bindings)) => bindings,
            Ok(Err(e)) => return Err(classify(&store, e, Phase::Instantiate, limit)),
            Err(blocked) => return Err(blocked.into_error(Phase::Instantiate, limit)),
        };
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
        self.arm(limit)?;
        let store = &mut self.store;
        let outcome = block_on(limit, async {
            match &self.bindings {
                Bindings::Detector(b) => b.call_init(store, inputs).await,
                Bindings::Transformer(b) => b.call_init(store, inputs).await,
            }
        });
        self.finish(Phase::Init, limit, outcome)
    }

    /// Calls function `function` on one item: a detector's `detect` (which has one function,
    /// and is not given `annotations`), or a transformer's `transform` with the annotations
    /// stored on the item before.
    pub fn call(
        &mut self,
        function: &str,
        item: &Item,
        annotations: &[Annotation],
    ) -> Result<Output, ExecError> {
        let limit = self.limits.timeout;
        self.arm(limit)?;
        let store = &mut self.store;
        match &self.bindings {
            Bindings::Detector(b) => {
                let outcome = block_on(limit, b.call_detect(store, item));
                let outcome = outcome.map(|called| {
                    called.map(|answer| {
                        answer.map(|annotations| Output {
                            annotations,
                            items: Vec::new(),
                        })
                    })
                });
                self.finish(Phase::Detect, limit, outcome)
            }
            Bindings::Transformer(b) => {
                let outcome = block_on(limit, b.call_transform(store, function, item, annotations));
                self.finish(Phase::Transform, limit, outcome)
            }
        }
    }

    /// Whether a trap (or timeout) made this instance unusable.
    /// The native inference engine this instance ran models on, with its version.
    pub fn inference_engine(&self) -> Option<String> {
        self.store.data().inference.engine()
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The memory charged to the instance against its cap: its memories and tables, and what
    /// the host holds for it (its inference worker included, as last measured).
    pub fn memory_bytes(&self) -> usize {
        let limiter = &self.store.data().limiter;
        limiter.used.saturating_add(limiter.held)
    }

    /// What the guest printed and logged since the last call to this.
    pub fn take_logs(&mut self) -> String {
        self.store.data().capture.take()
    }

    /// Readies the next call: refused on a poisoned instance, else its deadline is set.
    fn arm(&mut self, limit: Duration) -> Result<(), ExecError> {
        if self.poisoned {
            return Err(ExecError::Poisoned);
        }
        self.store.data_mut().deadline = deadline_after(limit);
        self.store.data_mut().limiter.refused = false;
        self.store.data_mut().outbound.new_call();
        self.store.set_epoch_deadline(1);
        Ok(())
    }

    fn finish<R>(
        &mut self,
        phase: Phase,
        limit: Duration,
        outcome: Result<wasmtime::Result<Result<R, GuestError>>, Blocked>,
    ) -> Result<R, ExecError> {
        match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(ExecError::Guest {
                phase,
                kind: e.kind,
                message: cut(&e.message, MAX_GUEST_MESSAGE),
            }),
            Ok(Err(e)) => {
                // A trapped component instance cannot be entered again.
                self.poisoned = true;
                Err(classify(&self.store, e, phase, limit))
            }
            Err(blocked) => {
                // The call was dropped mid-way: the instance is in no state to go on.
                self.poisoned = true;
                Err(blocked.into_error(phase, limit))
            }
        }
    }
}

/// `limit` from now; a limit too large to represent is as good as none.
fn deadline_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

fn classify(
    store: &Store<HostState>,
    error: wasmtime::Error,
    phase: Phase,
    limit: Duration,
) -> ExecError {
    let capture = &store.data().capture;
    let memory = store.data().limiter.cap;
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return ExecError::Timeout { phase, limit };
    }
    if store.data().limiter.refused {
        return ExecError::MemoryLimit {
            phase,
            limit: memory,
            what: None,
        };
    }
    if let Some(OverCap { what }) = error.downcast_ref::<OverCap>() {
        return ExecError::MemoryLimit {
            phase,
            limit: memory,
            what: Some(what),
        };
    }
    if format!("{error:#}").contains(CROSSING_EXHAUSTED) {
        return ExecError::MemoryLimit {
            phase,
            limit: memory,
            what: Some("data the guest passed to the host"),
        };
    }
    if let Some(failure) = error.downcast_ref::<InferenceFailure>() {
        return match failure {
            InferenceFailure::MemoryLimit => ExecError::MemoryLimit {
                phase,
                limit: memory,
                what: Some("native inference"),
            },
            other => ExecError::Inference {
                phase,
                message: other.to_string(),
            },
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
