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

mod confine;
pub mod engine;
mod onnxruntime;
mod tract;
mod worker;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use engine::{Engine, EngineChoice};
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

/// The element types native inference computes with (wasi-nn's, but BF16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Element {
    F16,
    F32,
    F64,
    U8,
    I32,
    I64,
}

impl Element {
    pub fn size(self) -> usize {
        match self {
            Element::U8 => 1,
            Element::F16 => 2,
            Element::F32 | Element::I32 => 4,
            Element::F64 | Element::I64 => 8,
        }
    }
}

/// A dense tensor: row-major elements, little-endian bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tensor {
    pub element: Element,
    pub shape: Vec<u32>,
    /// As bytes on the wire (one copy), not a sequence of numbers (one call per byte).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Tensor {
    /// The number of elements, if it is representable and the bytes hold exactly that many.
    pub fn check(&self) -> Result<usize, String> {
        let elements = self
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
            .ok_or_else(|| format!("shape {:?} has too many elements", self.shape))?;
        let bytes = elements.checked_mul(self.element.size());
        if bytes != Some(self.data.len()) {
            return Err(format!(
                "shape {:?} of {:?} needs {} bytes, got {}",
                self.shape,
                self.element,
                bytes.map_or("more than 2^64".to_string(), |b| b.to_string()),
                self.data.len()
            ));
        }
        Ok(elements)
    }

    pub fn from_f32(shape: Vec<u32>, values: &[f32]) -> Self {
        Tensor {
            element: Element::F32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        if self.element != Element::F32 {
            return Err(format!("an output is {:?}, not F32", self.element));
        }
        Ok(values(&self.data, f32::from_le_bytes))
    }
}

/// Little-endian bytes as values of `N` bytes each: a tensor's data as either engine takes it.
fn values<T, const N: usize>(data: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(c);
            from(bytes)
        })
        .collect()
}

/// Where a graph comes from: a package artifact (read by the host, which sends its bytes:
/// the worker opens no file) or bytes the guest passed.
#[derive(Clone)]
pub enum Source {
    Artifact(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

impl Source {
    /// What tells two sources apart: the path, or the bytes' digest.
    fn key(&self) -> String {
        match self {
            Source::Artifact(path) => format!("artifact:{}", path.display()),
            Source::Bytes(bytes) => format!("bytes:{}", prelabel_files::sha256_hex(bytes)),
        }
    }

    /// Bytes of this source the host holds in memory.
    pub fn held(&self) -> usize {
        match self {
            Source::Artifact(_) => 0,
            Source::Bytes(bytes) => bytes.len(),
        }
    }
}

/// A loaded graph's inputs and outputs, by name, in the model's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl Signature {
    /// What a copy of it holds: the model chose how many names, and how long.
    pub fn weight(&self) -> usize {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .map(|name| name.len() + std::mem::size_of::<String>())
            .sum()
    }
}

/// A graph as the host tracks it (the worker knows it by `id`).
pub type GraphId = u32;

#[derive(Serialize, Deserialize)]
enum Request {
    /// Read a model's bytes, `size` of them in the frame that follows this one, and keep it
    /// as `graph`; answers its signature. The bytes travel as a frame of their own, streamed
    /// from the file, so neither side copies a model whole into a message (each 10 MB copy
    /// page-faults fresh memory: res10's load took a third longer that way).
    Load { graph: GraphId, size: u64 },
    /// Runs `graph` on `inputs`, given in the model's input order.
    Run { graph: GraphId, inputs: Vec<Tensor> },
    /// Forget graphs the instance let go of (sent ahead of the next request).
    Forget { graphs: Vec<GraphId> },
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Loaded(Signature),
    /// The outputs, and how long the engine took to compute them (the rest of a call is the
    /// crossing: `PRELABEL_LOG=prelabel=debug` shows both).
    Outputs {
        outputs: Vec<Tensor>,
        engine_us: u64,
    },
    Forgotten,
    /// An allocation failed at the worker's limit (tract asks fallibly, then panics; ONNX
    /// Runtime throws): the memory limit, as when the Rust runtime aborts the worker on one.
    OverMemory,
}

type Response = Result<Answer, String>;

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u64>()
        .max_frame_length(max_frame)
        .new_codec()
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

struct Worker {
    child: Child,
    requests: FramedWrite<ChildStdin, LengthDelimitedCodec>,
    replies: FramedRead<ChildStdout, LengthDelimitedCodec>,
    loaded: HashSet<GraphId>,
    /// Its hard `RLIMIT_DATA`: the cap plus [`WORKER_HEADROOM`].
    hard: usize,
    /// Left mid-request: to be dropped (and so killed), not used again.
    spent: bool,
}

/// The buffer of each pipe to a worker.
const PIPE_BYTES: libc::c_int = 1 << 20;

/// The smallest answer always let through (a signature, an error, small outputs).
const MIN_REPLY: usize = 1 << 20;

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
        let engine = match &self.engine {
            Some(engine) => engine.clone(),
            None => match engine::resolve(self.choice) {
                Ok(engine) => engine,
                Err(_) => return,
            },
        };
        match Worker::spawn(self.memory_bytes, &engine, self.threads) {
            Ok(worker) => {
                self.engine = Some(engine);
                self.worker = Some(worker);
                self.forgotten.clear();
            }
            Err(e) => tracing::debug!("inference worker not started ahead: {e}"),
        }
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
            None => {
                // A new worker knows no graph: nothing to forget.
                self.forgotten.clear();
                let engine = match &self.engine {
                    Some(engine) => engine.clone(),
                    None => engine::resolve(self.choice).map_err(InferenceFailure::Engine)?,
                };
                let worker = Worker::spawn(self.memory_bytes, &engine, self.threads)?;
                self.engine = Some(engine);
                worker
            }
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

enum Exchange {
    /// The reply is larger than the memory cap.
    TooLarge,
    /// The pipe broke: the worker died.
    Broken,
    /// The model's file could not be read (or changed) while it was sent.
    Unreadable(String),
}

impl From<std::io::Error> for Exchange {
    fn from(_: std::io::Error) -> Self {
        Exchange::Broken
    }
}

impl Worker {
    fn spawn(
        memory_bytes: usize,
        engine: &Engine,
        threads: usize,
    ) -> Result<Self, InferenceFailure> {
        let exe = std::env::current_exe().map_err(|e| InferenceFailure::Spawn(e.to_string()))?;
        // Nothing of the host's environment is the worker's business.
        let mut child = Command::new(exe)
            .env_clear()
            .arg(WORKER_ARG)
            .arg(memory_bytes.to_string())
            .arg(engine.kind.to_string())
            .arg(threads.to_string())
            .args(engine.library())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| InferenceFailure::Spawn(e.to_string()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(InferenceFailure::Spawn("no pipes to the worker".into()));
        };
        // A tensor crosses in a few writes rather than sixteen 64 KiB wake-ups (1 MiB is what
        // an unprivileged process may ask for; where refused, the default stays).
        for pipe in [
            std::os::fd::AsRawFd::as_raw_fd(&stdin),
            std::os::fd::AsRawFd::as_raw_fd(&stdout),
        ] {
            // SAFETY: F_SETPIPE_SZ on a pipe this process holds; it changes only its buffer.
            unsafe { libc::fcntl(pipe, libc::F_SETPIPE_SZ, PIPE_BYTES) };
        }
        Ok(Self {
            child,
            requests: FramedWrite::new(stdin, codec(usize::MAX)),
            // Bounded by what the instance has left, request by request.
            replies: FramedRead::new(stdout, codec(memory_bytes)),
            loaded: HashSet::new(),
            hard: memory_bytes.saturating_add(WORKER_HEADROOM),
            spent: false,
        })
    }

    /// The worker's data size now (`/proc/PID/statm`), if it can be read.
    fn data_size(&self) -> Option<usize> {
        let pid = self.child.id()?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let pages: usize = statm.split_whitespace().nth(5)?.parse().ok()?;
        // SAFETY: sysconf reads a constant of the system.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        Some(pages.saturating_mul(page))
    }

    /// Lets the worker grow by half of `budget` from what it holds now (never below its
    /// headroom), and no further: its soft `RLIMIT_DATA`, set from here (its hard limit, the
    /// cap plus the headroom, it set itself at start).
    fn limit(&self, budget: usize) -> Result<(), InferenceFailure> {
        let Some(pid) = self.child.id() else {
            return Ok(());
        };
        let now = self.data_size().unwrap_or(0).max(WORKER_HEADROOM);
        let soft = now.saturating_add(budget / 2).min(self.hard);
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: self.hard as libc::rlim_t,
        };
        // SAFETY: prlimit on our own child reads the struct we pass and writes nothing back.
        let set = unsafe {
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_DATA,
                &limit,
                std::ptr::null_mut(),
            )
        };
        if set != 0 {
            return Err(InferenceFailure::Spawn(format!(
                "cannot limit the worker's memory: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// One request and its answer; a dead or lying worker is the failure it is.
    async fn exchange(
        &mut self,
        request: &Request,
        model: Option<&Source>,
        budget: usize,
    ) -> Result<Response, InferenceFailure> {
        let request = postcard::to_allocvec(request)
            .map_err(|e| InferenceFailure::Protocol(e.to_string()))?;
        // A copy of what the guest gave (already charged): it must fit in what is left.
        if request.len() > budget / 2 {
            return Err(InferenceFailure::MemoryLimit);
        }
        self.replies
            .decoder_mut()
            .set_max_frame_length((budget / 4).max(MIN_REPLY));
        let reply = match self.call(request.into(), model).await {
            Ok(reply) => reply,
            Err(Exchange::TooLarge) => return Err(InferenceFailure::MemoryLimit),
            Err(Exchange::Broken) => return Err(self.post_mortem().await),
            Err(Exchange::Unreadable(e)) => {
                // Mid-frame: this worker cannot be spoken to again.
                self.spent = true;
                return Ok(Err(e));
            }
        };
        postcard::from_bytes(&reply).map_err(|e| InferenceFailure::Protocol(e.to_string()))
    }

    async fn call(
        &mut self,
        request: Bytes,
        model: Option<&Source>,
    ) -> Result<bytes::BytesMut, Exchange> {
        self.requests
            .send(request)
            .await
            .map_err(|_| Exchange::Broken)?;
        if let Some(model) = model {
            self.send_model(model).await?;
        }
        match self.replies.next().await {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => Err(Exchange::TooLarge),
            _ => Err(Exchange::Broken),
        }
    }

    /// A model's bytes as one frame, written to the pipe as they are (a file in 1 MiB reads,
    /// one buffer reused). A file that changed size while it was sent leaves the worker
    /// mid-frame: that worker is done for (the caller drops it) and the load fails by name.
    async fn send_model(&mut self, model: &Source) -> Result<(), Exchange> {
        use tokio::io::AsyncWriteExt;
        let pipe = self.requests.get_mut();
        match model {
            Source::Bytes(bytes) => {
                let size = bytes.len() as u64;
                pipe.write_all(&size.to_be_bytes()).await?;
                pipe.write_all(bytes).await?;
            }
            Source::Artifact(path) => {
                let unreadable =
                    |e: std::io::Error| Exchange::Unreadable(format!("{}: {e}", path.display()));
                // Plain reads: from the page cache, as the rest of the host reads artifacts.
                let mut file = std::fs::File::open(path).map_err(unreadable)?;
                let size = file.metadata().map_err(unreadable)?.len();
                pipe.write_all(&size.to_be_bytes()).await?;
                let mut buffer = vec![0u8; 1 << 20];
                let mut left = size;
                while left > 0 {
                    let want = buffer
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let read =
                        std::io::Read::read(&mut file, &mut buffer[..want]).map_err(unreadable)?;
                    if read == 0 {
                        return Err(unreadable(std::io::Error::other(
                            "it became shorter while it was read",
                        )));
                    }
                    pipe.write_all(&buffer[..read]).await?;
                    left -= read as u64;
                }
            }
        }
        pipe.flush().await?;
        Ok(())
    }

    /// Why the worker died: an allocation over its cap, or a crash with what it printed.
    async fn post_mortem(&mut self) -> InferenceFailure {
        let status = match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => "did not exit".to_string(),
        };
        let mut stderr = Vec::new();
        if let Some(pipe) = self.child.stderr.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                pipe.take(1 << 20).read_to_end(&mut stderr),
            )
            .await;
        }
        let stderr = String::from_utf8_lossy(&stderr);
        if stderr.contains("memory allocation of") {
            return InferenceFailure::MemoryLimit;
        }
        let tail = stderr.trim();
        let tail = &tail[tail
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| tail.len() - i <= STDERR_TAIL)
            .unwrap_or(tail.len())..];
        InferenceFailure::Died {
            status,
            stderr: tail.to_string(),
        }
    }
}
