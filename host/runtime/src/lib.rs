//! The sandbox: one wasmtime [`Engine`] for the process, components compiled once (and
//! cached on disk), and instances that run under explicit limits.
//!
//! A guest gets WASI with no files, no environment, no arguments and no network, plus the
//! `prelabel:detector/host` import (logging and artifacts by name), `image` (decoding and
//! blobs at native speed), wasi-nn (a permission) and wasi:http (its service's hosts only).
//! Everything it prints or logs is captured per call.

pub mod bindings;
mod capture;
mod http;
mod image;
mod imports;
mod inference;
mod instance;
mod nn;
pub mod vector_state;

pub mod download;
pub mod outbound;

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::outbound::AllowedHosts;
use serde::{Deserialize, Serialize};
use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, OptLevel};

pub use bindings::{ErrorKind, GuestError, InitInput, Item, MadeItem, Output, Value};
pub use capture::Capture;
pub use inference::engine::{self, EngineChoice};
pub use inference::{InferenceFailure, WORKER_ARG, worker_main};
pub use instance::{ExecError, HostState, Instance, Phase};

use bindings::transformer::TransformerLinksPre;
use bindings::{HostLinks, HostLinksPre};

/// A typed init input value.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum InputValue {
    Boolean(bool),
    Integer(i64),
    Float(f64),
    String(String),
}

impl fmt::Display for InputValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputValue::Boolean(v) => write!(f, "{v}"),
            InputValue::Integer(v) => write!(f, "{v}"),
            InputValue::Float(v) => write!(f, "{v}"),
            InputValue::String(v) => write!(f, "{v:?}"),
        }
    }
}

/// The WIT form of resolved init inputs.
pub fn init_inputs(values: &BTreeMap<String, InputValue>) -> Vec<InitInput> {
    values
        .iter()
        .map(|(name, value)| InitInput {
            name: name.clone(),
            value: match value {
                InputValue::String(s) => Value::String(s.clone()),
                InputValue::Float(f) => Value::Float(*f),
                InputValue::Integer(i) => Value::Integer(*i),
                InputValue::Boolean(b) => Value::Boolean(*b),
            },
        })
        .collect()
}

/// The message of a caught panic, when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The worlds a Prelabel function implements: one that annotates, or one that may also make
/// items.
pub const WORLD: &str = "prelabel:detector/detector@0.1.1";
pub const TRANSFORMER_WORLD: &str = "prelabel:detector/transformer@0.1.1";

/// How often the epoch ticks: the resolution of every timeout.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-instance limits. Defaults are documented in `docs/guarantees.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock limit of one `detect` call.
    pub timeout: Duration,
    /// Wall-clock limit of `init` (model loading is slower than a call).
    pub init_timeout: Duration,
    /// Cap on the guest's linear memory.
    pub memory_bytes: usize,
    /// Captured output kept per call; the rest is dropped with a marker.
    pub log_bytes: usize,
    /// Items larger than this are failed without calling the guest.
    pub max_item_bytes: u64,
    /// A result with more annotations than this is rejected.
    pub max_annotations: usize,
    /// A permission, not a limit: whether the guest may run ONNX artifacts natively (the
    /// `inference` import), which is code outside the wasm sandbox.
    pub allow_inference: bool,
    /// Which engine runs those models (`auto`: ONNX Runtime where it loads, else tract).
    pub inference_engine: EngineChoice,
    /// Threads for one inference call (one by default: an instance per core).
    pub inference_threads: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            init_timeout: Duration::from_secs(120),
            memory_bytes: 1 << 30,
            log_bytes: 1 << 20,
            max_item_bytes: 256 << 20,
            max_annotations: 10_000,
            allow_inference: false,
            inference_engine: EngineChoice::Auto,
            inference_threads: 1,
        }
    }
}

/// Artifacts a guest may ask for, by name, and where their bytes are.
pub type Artifacts = Arc<BTreeMap<String, PathBuf>>;

/// What a guest may reach beyond its sandbox: artifacts by name, and the hosts it may call
/// over `wasi:http` (none unless its service allows some).
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub artifacts: Artifacts,
    pub outbound: Arc<AllowedHosts>,
}

impl Grants {
    /// Artifacts, and no network.
    pub fn artifacts(artifacts: BTreeMap<String, PathBuf>) -> Self {
        Self {
            artifacts: Arc::new(artifacts),
            outbound: Arc::default(),
        }
    }

    /// These grants with the hosts `outbound` allows.
    pub fn with_outbound(self, outbound: AllowedHosts) -> Self {
        Self {
            outbound: Arc::new(outbound),
            ..self
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component implements neither the world {WORLD} nor {TRANSFORMER_WORLD}: {0}")]
    WrongWorld(String),
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// The process's engine, linker and compiled-component cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    ticker: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

/// A compiled component that implements the world, ready to instantiate.
#[derive(Clone)]
pub struct Loaded {
    /// sha256 of the component's bytes.
    pub digest: String,
    /// The functions the component exports.
    pub exports: Vec<String>,
    pre: Pre,
}

/// A component ready to instantiate, by the world it implements.
#[derive(Clone)]
pub(crate) enum Pre {
    Detector(HostLinksPre<HostState>),
    Transformer(TransformerLinksPre<HostState>),
}

impl Loaded {
    /// Whether it implements the `transformer` world: its functions are names it is called
    /// with, not exports of their own.
    pub fn is_transformer(&self) -> bool {
        matches!(self.pre, Pre::Transformer(_))
    }
}

impl Runtime {
    /// Sets up the engine. `cache_dir`, when given, keeps compiled components across runs.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, LoadError> {
        let mut config = Config::new();
        // Detectors are components (WIT contract), not core modules.
        config.wasm_component_model(true);
        // Timeouts: a guest that loops is interrupted at the next epoch past its deadline;
        // one parked in a host call (a WASI sleep, native inference) is dropped by the
        // executor at the deadline, which needs async calls (see `instance`).
        config.epoch_interruption(true);
        // Inference is the hot path: let Cranelift optimise for speed.
        config.cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| LoadError::Engine(e.to_string()))?;

        let mut linker = Linker::new(&engine);
        // WASI for std (stdout, clocks, random); what it grants is decided per store.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        HostLinks::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        // wasi:http for every component; each request is held to its service's allowed
        // hosts (`http.rs`), so one with none may link it and call nothing.
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| LoadError::Engine(e.to_string()))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("prelabel-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?
        };
        Ok(Self {
            engine,
            linker,
            cache_dir,
            ticker: Some((stop, ticker)),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or loads from the cache) a component and checks that it implements the world.
    pub fn load(&self, wasm: &[u8]) -> Result<Loaded, LoadError> {
        self.load_with_digest(wasm, &prelabel_files::sha256_hex(wasm))
    }

    /// [`Runtime::load`] for a component whose sha256 is already known (the store keeps
    /// it), which saves hashing megabytes of wasm on every load.
    pub fn load_with_digest(&self, wasm: &[u8], digest: &str) -> Result<Loaded, LoadError> {
        if is_core_module(wasm) {
            return Err(LoadError::NotAComponent(
                "this is a core WebAssembly module; build it as a component (target wasm32-wasip2)"
                    .into(),
            ));
        }
        let digest = digest.to_string();
        let component = self.compile_cached(wasm, &digest)?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .filter(|(_, export)| matches!(export.ty, ComponentItem::ComponentFunc(_)))
            .map(|(name, _)| name.to_string())
            .collect();
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        // A detector if it exports `detect`, else a transformer; the error named is the
        // detector's (what most components mean to be) unless it exports `transform`.
        let pre = match HostLinksPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::Detector(pre),
            Err(detector) => match TransformerLinksPre::new(instance_pre) {
                Ok(pre) => Pre::Transformer(pre),
                Err(transformer) if exports.iter().any(|e| e == "transform") => {
                    return Err(LoadError::WrongWorld(format!("{transformer:#}")));
                }
                Err(_) => return Err(LoadError::WrongWorld(format!("{detector:#}"))),
            },
        };
        Ok(Loaded {
            digest,
            exports,
            pre,
        })
    }

    fn compile_cached(&self, wasm: &[u8], digest: &str) -> Result<Component, LoadError> {
        let cached = self
            .cache_dir
            .as_ref()
            .map(|dir| self.cache_path(dir, digest));
        if let Some(path) = &cached
            && path.is_file()
        {
            // SAFETY: only files this host wrote itself live under the cache dir, keyed by
            // the component digest and the engine's compatibility hash; wasmtime also checks
            // the header and refuses artifacts of another version or configuration. The file
            // is mapped, not read: nothing rewrites it in place (new ones are renamed in).
            match unsafe { Component::deserialize_file(&self.engine, path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!("ignoring stale compiled component {}: {e}", path.display())
                }
            }
        }
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
        if let Some(path) = &cached
            && let Err(e) = component
                .serialize()
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    prelabel_files::write_atomically(path, &bytes).map_err(|e| e.to_string())
                })
        {
            tracing::warn!(
                "cannot cache the compiled component at {}: {e}",
                path.display()
            );
        }
        Ok(component)
    }

    fn cache_path(&self, dir: &Path, digest: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }

    /// A fresh instance, initialised once with `inputs`. Also returns what the guest
    /// printed and logged meanwhile, which is kept even when init fails.
    pub fn start(
        &self,
        loaded: &Loaded,
        grants: Grants,
        limits: Limits,
        inputs: &BTreeMap<String, InputValue>,
    ) -> (Result<Instance, ExecError>, String) {
        let mut instance = match self.instantiate(loaded, grants, limits) {
            Ok(instance) => instance,
            Err(e) => return (Err(e), String::new()),
        };
        let init = instance.init(&init_inputs(inputs));
        let logs = instance.take_logs();
        (init.map(|()| instance), logs)
    }

    /// A fresh, sandboxed instance of a loaded component.
    pub fn instantiate(
        &self,
        loaded: &Loaded,
        grants: Grants,
        limits: Limits,
    ) -> Result<Instance, ExecError> {
        Instance::new(&self.engine, &loaded.pre, grants, limits)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}

/// Core modules start with version 1, components with a layer-1 header.
fn is_core_module(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && wasm[..4] == *b"\0asm" && wasm[4..8] == [1, 0, 0, 0]
}
