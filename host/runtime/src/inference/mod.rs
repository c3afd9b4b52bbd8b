//! Native inference: the host runs an ONNX model for a guest that opts in (through wasi-nn,
//! `nn.rs`, or the older `inference` import), so the guest keeps its pre- and
//! post-processing while the network gets the host CPU's full speed.
//!
//! Native code is outside the wasm sandbox, and a model file is input like any other: a
//! malicious graph can ask an engine for terabytes, panic or crash it, or run for hours. So
//! native inference is a **permission** (off unless the deployer grants it), and it runs in a
//! **worker process** of its own (`worker.rs`), on the engine its service chose (`engine.rs`:
//! tract, `tract.rs`, or ONNX Runtime, `onnxruntime.rs`), confined once that engine is loaded
//! (`confine.rs`: no file, socket or program), one per instance, counted against the instance's
//! one memory cap: before each request the host lowers the worker's `RLIMIT_DATA` to what it
//! holds now plus half of what the instance has left, and after it charges the worker's data
//! size to the instance (see [`NativeInference::footprint`]). A panic becomes that call's
//! error, a crash or an allocation failure kills only the worker, and a call that outlives the
//! deadline is abandoned by killing it. The host remembers where each loaded graph came from,
//! so a new worker loads it again. Plans are optimised once per graph and input shapes and kept
//! (a few, least recently used first out) for the instance's next items.

mod backend;
mod confine;
pub mod engine;
mod onnxruntime;
mod process;
mod protocol;
mod tract;
mod worker;

use std::collections::HashMap;
use std::path::Path;

use engine::{Engine, EngineChoice};
use process::Worker;
use protocol::{Answer, Request, Response, codec, values};
pub use protocol::{Element, GraphId, Signature, Source, Tensor};
pub use worker::worker_main;

/// The hidden first argument that turns the `prelabel` binary into an inference worker.
pub const WORKER_ARG: &str = "__inference-worker";

/// What the worker may use uncharged: its own code's data, its executor and tract's
/// bookkeeping (a fresh worker's data size is about 5 MiB). Part of the margin over the cap
/// that docs/guarantees.md states.
pub const WORKER_HEADROOM: usize = 64 << 20;
/// Graphs an instance may hold loaded at once (a detector needs one or two).
const MAX_GRAPHS: usize = 8;
/// What is kept of a dead worker's stderr for the error message.
const STDERR_TAIL: usize = 2048;

/// Why a native inference call could not give the guest an answer at all. These end the
/// call (a trap), unlike a model's own errors, which the guest gets as an `error`.
#[derive(Debug, thiserror::Error)]
pub enum InferenceFailure {
    #[error("native inference exceeded the memory limit")]
    MemoryLimit,
    #[error("cannot start the inference worker: {0}")]
    Spawn(String),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("the inference worker died ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Died { status: String, stderr: String },
    #[error("the inference worker answered nonsense: {0}")]
    Protocol(String),
}

/// Why a graph was not loaded: refused before its model was read, or the model's error.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "native inference is not granted to this service \
         (deploy it with `--allow-inference`, or pass that flag to `prelabel detect`)"
    )]
    NotGranted,
    #[error("at most {MAX_GRAPHS} graphs may be loaded at once; drop one first")]
    TooMany,
    #[error("{0}")]
    Model(String),
}

/// The host side, one per instance: whether inference is granted, the graphs the instance
/// loaded, and its worker.
pub struct NativeInference {
    granted: bool,
    memory_bytes: usize,
    choice: EngineChoice,
    threads: usize,
    /// The engine, once a worker needed one (`auto` is decided then).
    engine: Option<Engine>,
    /// Whether a request went to a worker: only then did the engine run anything.
    used: bool,
    worker: Option<Worker>,
    graphs: HashMap<GraphId, Held>,
    by_source: HashMap<String, GraphId>,
    next: GraphId,
    /// Graphs let go of that the current worker still keeps.
    forgotten: Vec<GraphId>,
}

struct Held {
    source: Source,
    key: String,
    signature: Signature,
    /// Graph and execution-context handles that use it.
    users: usize,
}

/// The outer `Err` is a failure of the worker (the call must end); the inner one is the
/// model's error, for the guest.
pub type Outcome<T> = Result<Result<T, String>, InferenceFailure>;

impl NativeInference {
    pub fn new(limits: &super::Limits) -> Self {
        Self {
            granted: limits.allow_inference,
            memory_bytes: limits.memory_bytes,
            choice: limits.inference_engine,
            threads: limits.inference_threads.max(1) as usize,
            engine: None,
            used: false,
            worker: None,
            graphs: HashMap::new(),
            by_source: HashMap::new(),
            next: 0,
            forgotten: Vec::new(),
        }
    }

    /// Starts the worker ahead of the guest's first `load` (an instance granted inference
    /// loads its model in init, nearly always): the process start and the engine's own
    /// loading (~30 ms for ONNX Runtime) then overlap the component's instantiation instead
    /// of delaying the model. Must run inside the executor. A failure here is left for that
    /// `load` to meet and report.
    pub fn prepare(&mut self) {
        if !self.granted || self.worker.is_some() {
            return;
        }
        match self.start_worker() {
            Ok(worker) => self.worker = Some(worker),
            Err(e) => tracing::debug!("inference worker not started ahead: {e}"),
        }
    }

    /// A new worker on the service's engine (resolved on first use and kept). A new worker
    /// knows no graph: nothing is left to forget.
    fn start_worker(&mut self) -> Result<Worker, InferenceFailure> {
        let engine = match &self.engine {
            Some(engine) => engine.clone(),
            None => engine::resolve(self.choice).map_err(InferenceFailure::Engine)?,
        };
        let worker = Worker::spawn(self.memory_bytes, &engine, self.threads)?;
        self.engine = Some(engine);
        self.forgotten.clear();
        Ok(worker)
    }

    /// Loads a graph (once per source: loading the same model again shares it) and takes
    /// one use of it; [`NativeInference::release`] gives it back.
    pub async fn load(
        &mut self,
        source: Source,
        budget: usize,
    ) -> Result<Result<(GraphId, Signature), Refused>, InferenceFailure> {
        if !self.granted {
            return Ok(Err(Refused::NotGranted));
        }
        let key = source.key();
        if let Some(&id) = self.by_source.get(&key)
            && let Some(held) = self.graphs.get_mut(&id)
        {
            held.users += 1;
            return Ok(Ok((id, held.signature.clone())));
        }
        if self.graphs.len() >= MAX_GRAPHS {
            return Ok(Err(Refused::TooMany));
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        let signature = match self.load_in_worker(id, &source, budget).await? {
            Ok(signature) => signature,
            Err(e) => return Ok(Err(Refused::Model(e))),
        };
        self.by_source.insert(key.clone(), id);
        self.graphs.insert(
            id,
            Held {
                source,
                key,
                signature: signature.clone(),
                users: 1,
            },
        );
        Ok(Ok((id, signature)))
    }

    /// One more user of a loaded graph (an execution context).
    pub fn acquire(&mut self, id: GraphId) {
        if let Some(held) = self.graphs.get_mut(&id) {
            held.users += 1;
        }
    }

    /// Gives back one use of a graph; the last one lets the worker forget it.
    pub fn release(&mut self, id: GraphId) {
        let Some(held) = self.graphs.get_mut(&id) else {
            return;
        };
        held.users = held.users.saturating_sub(1);
        if held.users > 0 {
            return;
        }
        if let Some(held) = self.graphs.remove(&id) {
            self.by_source.remove(&held.key);
        }
        if let Some(worker) = &mut self.worker
            && worker.loaded.remove(&id)
        {
            self.forgotten.push(id);
        }
    }

    /// Runs a loaded graph on `inputs`, given in the model's input order.
    pub async fn run(
        &mut self,
        id: GraphId,
        inputs: Vec<Tensor>,
        budget: usize,
    ) -> Outcome<Vec<Tensor>> {
        let Some(held) = self.graphs.get(&id) else {
            return Ok(Err("that graph is no longer loaded".into()));
        };
        let source = held.source.clone();
        let loaded = self.worker.as_ref().is_some_and(|w| w.loaded.contains(&id));
        if !loaded && let Err(e) = self.load_in_worker(id, &source, budget).await? {
            return Ok(Err(e));
        }
        let request = Request::Run { graph: id, inputs };
        let started = std::time::Instant::now();
        match self.exchange(request, budget).await? {
            Ok(Answer::Outputs { outputs, engine_us }) => {
                tracing::debug!(
                    "inference: {:.1} ms in the engine, {:.1} ms the whole call",
                    engine_us as f64 / 1e3,
                    started.elapsed().as_secs_f64() * 1e3
                );
                Ok(Ok(outputs))
            }
            Ok(_) => Err(InferenceFailure::Protocol("not outputs".into())),
            Err(e) => Ok(Err(e)),
        }
    }

    /// The older `inference` import: runs artifact `path` on f32 tensors. The graph stays
    /// loaded for the instance's next calls.
    pub async fn run_artifact(
        &mut self,
        path: &Path,
        inputs: Vec<Tensor>,
        budget: usize,
    ) -> Outcome<Vec<(Vec<u32>, Vec<f32>)>> {
        let source = Source::Artifact(path.to_path_buf());
        let id = match self.by_source.get(&source.key()) {
            Some(&id) => id,
            None => match self.load(source, budget).await? {
                Ok((id, _)) => id,
                Err(refused) => return Ok(Err(refused.to_string())),
            },
        };
        Ok(match self.run(id, inputs, budget).await? {
            Ok(outputs) => outputs
                .into_iter()
                .map(|t| Ok((t.shape.clone(), t.to_f32()?)))
                .collect(),
            Err(e) => Err(e),
        })
    }

    /// The engine that ran this instance's models, with its version (provenance); `None`
    /// while it ran none.
    pub fn engine(&self) -> Option<String> {
        self.engine
            .as_ref()
            .filter(|_| self.used)
            .map(Engine::to_string)
    }

    async fn load_in_worker(
        &mut self,
        id: GraphId,
        source: &Source,
        budget: usize,
    ) -> Outcome<Signature> {
        let size = match source {
            Source::Bytes(bytes) => bytes.len() as u64,
            // Read by the host, checked against what the instance has left, and sent as bytes.
            Source::Artifact(path) => match std::fs::metadata(path) {
                Ok(metadata) => metadata.len(),
                Err(e) => return Ok(Err(format!("{}: {e}", path.display()))),
            },
        };
        if size > (budget / 2) as u64 {
            return Err(InferenceFailure::MemoryLimit);
        }
        let request = Request::Load { graph: id, size };
        let started = std::time::Instant::now();
        match self.exchange_with(request, Some(source), budget).await? {
            Ok(Answer::Loaded(signature)) => {
                tracing::debug!(
                    "inference: the model loaded in {:.1} ms",
                    started.elapsed().as_secs_f64() * 1e3
                );
                if let Some(worker) = &mut self.worker {
                    worker.loaded.insert(id);
                }
                Ok(Ok(signature))
            }
            Ok(_) => Err(InferenceFailure::Protocol("not a signature".into())),
            Err(e) => Ok(Err(e)),
        }
    }

    /// What the worker holds that counts against the instance's cap: its data size (heap and
    /// private mappings, what `RLIMIT_DATA` bounds) past [`WORKER_HEADROOM`]; nothing without
    /// a worker.
    pub fn footprint(&self) -> usize {
        self.worker
            .as_ref()
            .and_then(Worker::data_size)
            .map_or(0, |data| data.saturating_sub(WORKER_HEADROOM))
    }

    /// Sends one request (after the graphs to forget, if any) and reads its answer. `budget`
    /// is what the instance's cap leaves, the worker's own charge aside: the request's
    /// encoding may take half of it, the worker may grow by half of it, and the answer may
    /// take a quarter (its frame and its decoded copy are both in memory for a moment).
    async fn exchange(
        &mut self,
        request: Request,
        budget: usize,
    ) -> Result<Response, InferenceFailure> {
        self.exchange_with(request, None, budget).await
    }

    /// [`NativeInference::exchange`], with a model's bytes sent after the request.
    async fn exchange_with(
        &mut self,
        request: Request,
        model: Option<&Source>,
        budget: usize,
    ) -> Result<Response, InferenceFailure> {
        self.used = true;
        // Taken out for the call: if the call is abandoned (its deadline passed), the
        // worker is dropped with it, and killed.
        let mut worker = match self.worker.take() {
            Some(worker) => worker,
            None => self.start_worker()?,
        };
        worker.limit(budget)?;
        if !self.forgotten.is_empty() {
            let graphs = std::mem::take(&mut self.forgotten);
            let forgot = worker
                .exchange(&Request::Forget { graphs }, None, budget)
                .await?;
            forgot.map_err(InferenceFailure::Protocol)?;
        }
        let response = worker.exchange(&request, model, budget).await?;
        if !worker.spent {
            self.worker = Some(worker);
        }
        if let Ok(Answer::OverMemory) = response {
            return Err(InferenceFailure::MemoryLimit);
        }
        Ok(response)
    }
}
