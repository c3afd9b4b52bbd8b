//! Native inference: the host runs an ONNX model for a guest that opts in (through wasi-nn,
//! `nn.rs`, or the older `inference` import), so the guest keeps its pre- and
//! post-processing while the network gets the host CPU's full speed.
//!
//! Native code is outside the wasm sandbox, and a model file is input like any other: a
//! malicious graph can ask tract for terabytes, panic it, or run for hours. So native
//! inference is a **permission** (off unless the deployer grants it), and it runs in a
//! **worker process** of its own, one per instance, counted against the instance's one
//! memory cap: before each request the host lowers the worker's `RLIMIT_DATA` to what it
//! holds now plus half of what the instance has left, and after it charges the worker's data
//! size to the instance (see [`NativeInference::footprint`]). A panic becomes that call's
//! error, a crash or an allocation failure kills only the worker, and a call that outlives
//! the deadline is abandoned by killing it. The host remembers where each loaded graph came
//! from, so a new worker loads it again. Plans are optimised once per graph and input shapes
//! and kept (a few, least recently used first out) for the instance's next items.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tract_onnx::prelude::*;

/// The hidden first argument that turns the `prelabel` binary into an inference worker.
pub const WORKER_ARG: &str = "__inference-worker";

/// What the worker may use uncharged: its own code's data, its executor and tract's
/// bookkeeping (a fresh worker's data size is about 5 MiB). Part of the margin over the cap
/// that docs/guarantees.md states.
pub const WORKER_HEADROOM: usize = 64 << 20;
/// Optimised plans a worker keeps (each graph and distinct input shape makes one).
const MAX_PLANS: usize = 4;
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

    fn datum(self) -> DatumType {
        match self {
            Element::F16 => DatumType::F16,
            Element::F32 => DatumType::F32,
            Element::F64 => DatumType::F64,
            Element::U8 => DatumType::U8,
            Element::I32 => DatumType::I32,
            Element::I64 => DatumType::I64,
        }
    }

    fn of(datum: DatumType) -> Option<Self> {
        Some(match datum {
            DatumType::F16 => Element::F16,
            DatumType::F32 => Element::F32,
            DatumType::F64 => Element::F64,
            DatumType::U8 => Element::U8,
            DatumType::I32 => Element::I32,
            DatumType::I64 => Element::I64,
            _ => return None,
        })
    }
}

/// A dense tensor: row-major elements, little-endian bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tensor {
    pub element: Element,
    pub shape: Vec<u32>,
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
        Ok(self
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Where a graph comes from: a package artifact (read by the worker) or bytes the guest
/// passed.
#[derive(Clone, Serialize, Deserialize)]
pub enum Source {
    Artifact(PathBuf),
    Bytes(#[serde(with = "shared_bytes")] Arc<Vec<u8>>),
}

/// Model bytes the host shares between its graphs and sends to a worker as they are.
mod shared_bytes {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Arc<Vec<u8>>, to: S) -> Result<S::Ok, S::Error> {
        to.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Arc<Vec<u8>>, D::Error> {
        Vec::<u8>::deserialize(from).map(Arc::new)
    }
}

impl Source {
    /// What tells two sources apart: the path, or the bytes' digest.
    fn key(&self) -> String {
        match self {
            Source::Artifact(path) => format!("artifact:{}", path.display()),
            Source::Bytes(bytes) => format!("bytes:{}", crate::files::sha256_hex(bytes)),
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
    /// Read a model and keep it as `graph`; answers its signature.
    Load { graph: GraphId, source: Source },
    /// Runs `graph` on `inputs`, given in the model's input order.
    Run { graph: GraphId, inputs: Vec<Tensor> },
    /// Forget graphs the instance let go of (sent ahead of the next request).
    Forget { graphs: Vec<GraphId> },
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Loaded(Signature),
    Outputs(Vec<Tensor>),
    Forgotten,
    /// An allocation failed at the worker's limit (tract asks fallibly, then panics): the
    /// memory limit, as when the Rust runtime aborts the worker on one.
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
}

/// The smallest answer always let through (a signature, an error, small outputs).
const MIN_REPLY: usize = 1 << 20;

/// The outer `Err` is a failure of the worker (the call must end); the inner one is the
/// model's error, for the guest.
pub type Outcome<T> = Result<Result<T, String>, InferenceFailure>;

impl NativeInference {
    pub fn new(granted: bool, memory_bytes: usize) -> Self {
        Self {
            granted,
            memory_bytes,
            worker: None,
            graphs: HashMap::new(),
            by_source: HashMap::new(),
            next: 0,
            forgotten: Vec::new(),
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
        match self.exchange(request, budget).await? {
            Ok(Answer::Outputs(outputs)) => Ok(Ok(outputs)),
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

    async fn load_in_worker(
        &mut self,
        id: GraphId,
        source: &Source,
        budget: usize,
    ) -> Outcome<Signature> {
        let request = Request::Load {
            graph: id,
            source: source.clone(),
        };
        match self.exchange(request, budget).await? {
            Ok(Answer::Loaded(signature)) => {
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
        // Taken out for the call: if the call is abandoned (its deadline passed), the
        // worker is dropped with it, and killed.
        let mut worker = match self.worker.take() {
            Some(worker) => worker,
            None => {
                // A new worker knows no graph: nothing to forget.
                self.forgotten.clear();
                Worker::spawn(self.memory_bytes)?
            }
        };
        worker.limit(budget)?;
        if !self.forgotten.is_empty() {
            let graphs = std::mem::take(&mut self.forgotten);
            let forgot = worker.exchange(&Request::Forget { graphs }, budget).await?;
            forgot.map_err(InferenceFailure::Protocol)?;
        }
        let response = worker.exchange(&request, budget).await?;
        self.worker = Some(worker);
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
}

impl Worker {
    fn spawn(memory_bytes: usize) -> Result<Self, InferenceFailure> {
        let exe = std::env::current_exe().map_err(|e| InferenceFailure::Spawn(e.to_string()))?;
        // Nothing of the host's environment is the worker's business.
        let mut child = Command::new(exe)
            .env_clear()
            .arg(WORKER_ARG)
            .arg(memory_bytes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| InferenceFailure::Spawn(e.to_string()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(InferenceFailure::Spawn("no pipes to the worker".into()));
        };
        Ok(Self {
            child,
            requests: FramedWrite::new(stdin, codec(usize::MAX)),
            // Bounded by what the instance has left, request by request.
            replies: FramedRead::new(stdout, codec(memory_bytes)),
            loaded: HashSet::new(),
            hard: memory_bytes.saturating_add(WORKER_HEADROOM),
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
        let reply = match self.call(request.into()).await {
            Ok(reply) => reply,
            Err(Exchange::TooLarge) => return Err(InferenceFailure::MemoryLimit),
            Err(Exchange::Broken) => return Err(self.post_mortem().await),
        };
        postcard::from_bytes(&reply).map_err(|e| InferenceFailure::Protocol(e.to_string()))
    }

    async fn call(&mut self, request: Bytes) -> Result<bytes::BytesMut, Exchange> {
        self.requests
            .send(request)
            .await
            .map_err(|_| Exchange::Broken)?;
        match self.replies.next().await {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => Err(Exchange::TooLarge),
            _ => Err(Exchange::Broken),
        }
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

/// The worker process: reads requests on stdin, answers on stdout, until stdin closes.
/// `memory` is the service's memory cap in bytes (the first argument after [`WORKER_ARG`]).
pub fn worker_main(memory: &str) -> ExitCode {
    let Ok(memory_bytes) = memory.parse::<usize>() else {
        eprintln!("usage: prelabel {WORKER_ARG} MEMORY_BYTES");
        return ExitCode::from(2);
    };
    // A host killed mid-call (kill -9) must not leave its worker computing for hours.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG reads one integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    if let Err(e) = limit_heap(memory_bytes.saturating_add(WORKER_HEADROOM)) {
        eprintln!("cannot cap the worker's memory: {e}");
        return ExitCode::from(1);
    }
    // A panic in tract is that request's error, not a message on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let executor = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(executor) => executor,
        Err(e) => {
            eprintln!("cannot start the worker's executor: {e}");
            return ExitCode::from(1);
        }
    };
    let served = executor.block_on(async {
        let mut requests = FramedRead::new(tokio::io::stdin(), codec(usize::MAX));
        let mut replies = FramedWrite::new(tokio::io::stdout(), codec(usize::MAX));
        let mut graphs = Graphs::new(memory_bytes);
        while let Some(frame) = requests.next().await {
            let frame = frame?;
            let response: Response = match postcard::from_bytes::<Request>(&frame) {
                Ok(request) => {
                    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        graphs.serve(request)
                    }))
                    .unwrap_or_else(|panic| {
                        let message = crate::error::panic_message(&*panic);
                        if message.starts_with("failed to allocate") {
                            return Ok(Answer::OverMemory);
                        }
                        Err(format!("tract panicked: {message}"))
                    });
                    // tract's AVX kernels leave the upper state dirty (measured with
                    // `vector_state::dirty` after every run on an Intel Xeon); the worker's
                    // own code (the reply, the next request) is SSE.
                    super::vector_state::clear();
                    response
                }
                Err(e) => Err(format!("unreadable request: {e}")),
            };
            let reply = postcard::to_allocvec(&response)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            replies.send(Bytes::from(reply)).await?;
        }
        std::io::Result::Ok(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inference worker: {e}");
            ExitCode::from(1)
        }
    }
}

/// Caps the process's heap (brk and private anonymous mappings, since Linux 4.7): an
/// allocation past it fails, and the Rust runtime aborts the worker with
/// `memory allocation of N bytes failed`, which the host reports as the memory limit.
fn limit_heap(bytes: usize) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

type Plan = Arc<TypedRunnableModel>;
/// A plan is specific to a graph and the shapes and types of its inputs.
type PlanKey = (GraphId, Vec<(Element, Vec<usize>)>);

/// The worker's graphs, and its plans, most recently used last.
struct Graphs {
    memory_bytes: usize,
    graphs: HashMap<GraphId, InferenceModel>,
    plans: Vec<(PlanKey, Plan)>,
}

impl Graphs {
    fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            graphs: HashMap::new(),
            plans: Vec::new(),
        }
    }

    fn serve(&mut self, request: Request) -> Response {
        match request {
            Request::Load { graph, source } => self.load(graph, source).map(Answer::Loaded),
            Request::Run { graph, inputs } => self.run(graph, inputs).map(Answer::Outputs),
            Request::Forget { graphs } => {
                for graph in graphs {
                    self.graphs.remove(&graph);
                    self.plans.retain(|((g, _), _)| *g != graph);
                }
                Ok(Answer::Forgotten)
            }
        }
    }

    fn load(&mut self, graph: GraphId, source: Source) -> Result<Signature, String> {
        // Read as bytes, not by path: a graph read by path may pull "external data" from files
        // beside it, and beside an artifact in the store lie other blobs (other packages'
        // artifacts, items). From bytes, external data is refused.
        let bytes = match source {
            Source::Artifact(path) => {
                std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Source::Bytes(bytes) => Arc::unwrap_or_clone(bytes),
        };
        let model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| format!("cannot load the ONNX model: {e:#}"))?;
        let name = |outlet: &OutletId| {
            model
                .outlet_label(*outlet)
                .unwrap_or(&model.node(outlet.node).name)
                .to_string()
        };
        let signature = Signature {
            inputs: model
                .input_outlets()
                .map_err(|e| format!("{e:#}"))?
                .iter()
                .map(|o| model.node(o.node).name.clone())
                .collect(),
            outputs: model
                .output_outlets()
                .map_err(|e| format!("{e:#}"))?
                .iter()
                .map(name)
                .collect(),
        };
        self.graphs.insert(graph, model);
        Ok(signature)
    }

    fn run(&mut self, graph: GraphId, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
        let shapes: Vec<(Element, Vec<usize>)> = inputs
            .iter()
            .map(|t| (t.element, t.shape.iter().map(|&d| d as usize).collect()))
            .collect();
        let mut tensors = TVec::new();
        for (i, (input, (_, shape))) in inputs.into_iter().zip(&shapes).enumerate() {
            let elements = input.check().map_err(|e| format!("input {i}: {e}"))?;
            if elements.saturating_mul(input.element.size()) > self.memory_bytes {
                return Err(format!(
                    "input {i}: shape {shape:?} is over the memory limit"
                ));
            }
            tensors.push(
                to_tract(&input, shape)
                    .map_err(|e| format!("input {i}: {e}"))?
                    .into(),
            );
        }
        let plan = self.plan(graph, &shapes)?;
        let outputs = plan.run(tensors).map_err(|e| format!("{e:#}"))?;
        let mut total = 0usize;
        outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                total = total.saturating_add(o.len().saturating_mul(o.datum_type().size_of()));
                if total > self.memory_bytes {
                    return Err(format!("output {i}: the outputs are over the memory limit"));
                }
                from_tract(o).map_err(|e| format!("output {i}: {e}"))
            })
            .collect()
    }

    fn plan(&mut self, graph: GraphId, shapes: &[(Element, Vec<usize>)]) -> Result<Plan, String> {
        let key = (graph, shapes.to_vec());
        if let Some(at) = self.plans.iter().position(|(k, _)| *k == key) {
            let entry = self.plans.remove(at);
            let plan = entry.1.clone();
            self.plans.push(entry);
            return Ok(plan);
        }
        let mut model = self
            .graphs
            .get(&graph)
            .ok_or("that graph is not loaded")?
            .clone();
        check_inputs(&model, shapes)?;
        for (i, (element, shape)) in shapes.iter().enumerate() {
            model = model
                .with_input_fact(i, InferenceFact::dt_shape(element.datum(), shape))
                .map_err(|e| format!("{e:#}"))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("cannot optimise the ONNX model: {e:#}"))?;
        if self.plans.len() >= MAX_PLANS {
            self.plans.remove(0);
        }
        self.plans.push((key, plan.clone()));
        Ok(plan)
    }
}

/// A checked tensor as tract's, element by element from little-endian bytes.
fn to_tract(tensor: &Tensor, shape: &[usize]) -> TractResult<tract_onnx::prelude::Tensor> {
    fn build<T: Datum + Copy, const N: usize>(
        shape: &[usize],
        data: &[u8],
        from: fn([u8; N]) -> T,
    ) -> TractResult<tract_onnx::prelude::Tensor> {
        let values: Vec<T> = data
            .chunks_exact(N)
            .map(|c| {
                let mut bytes = [0u8; N];
                bytes.copy_from_slice(c);
                from(bytes)
            })
            .collect();
        // The values become the tensor's storage as they are, not a second copy.
        Ok(tract_ndarray::ArrayD::from_shape_vec(shape, values)?.into_tensor())
    }
    let data = &tensor.data;
    match tensor.element {
        Element::F16 => build(shape, data, |b| f16::from_bits(u16::from_le_bytes(b))),
        Element::F32 => build(shape, data, f32::from_le_bytes),
        Element::F64 => build(shape, data, f64::from_le_bytes),
        Element::U8 => build(shape, data, u8::from_le_bytes),
        Element::I32 => build(shape, data, i32::from_le_bytes),
        Element::I64 => build(shape, data, i64::from_le_bytes),
    }
}

/// A tract output as a tensor of little-endian bytes.
fn from_tract(tensor: &tract_onnx::prelude::Tensor) -> Result<Tensor, String> {
    fn bytes<T: Datum + Copy, const N: usize>(
        tensor: &tract_onnx::prelude::Tensor,
        to: fn(T) -> [u8; N],
    ) -> Result<Vec<u8>, String> {
        let view = tensor
            .to_plain_array_view::<T>()
            .map_err(|e| format!("{e:#}"))?;
        Ok(view.iter().flat_map(|&v| to(v)).collect())
    }
    let element = Element::of(tensor.datum_type()).ok_or_else(|| {
        format!(
            "its type {:?} has no wasi-nn tensor type",
            tensor.datum_type()
        )
    })?;
    let data = match element {
        Element::F16 => bytes(tensor, |v: f16| v.to_bits().to_le_bytes())?,
        Element::F32 => bytes(tensor, f32::to_le_bytes)?,
        Element::F64 => bytes(tensor, f64::to_le_bytes)?,
        Element::U8 => bytes(tensor, u8::to_le_bytes)?,
        Element::I32 => bytes(tensor, i32::to_le_bytes)?,
        Element::I64 => bytes(tensor, i64::to_le_bytes)?,
    };
    Ok(Tensor {
        element,
        shape: tensor.shape().iter().map(|&d| d as u32).collect(),
        data,
    })
}

/// The inputs match what the model declares: their number and ranks. Declared dimensions are
/// not enforced: exporters often write the shape of the example they traced (CenterFace
/// declares [10, 3, 32, 32] and runs on any [1, 3, H, W]), and tract derives every shape from
/// the input it is given; an input the network cannot take fails the plan's optimisation with
/// tract's message, and what a plan allocates is bounded by the worker's memory limit.
fn check_inputs(model: &InferenceModel, shapes: &[(Element, Vec<usize>)]) -> Result<(), String> {
    let declared = model.inputs.len();
    if shapes.len() != declared {
        return Err(format!(
            "the model has {declared} input(s), got {} tensor(s)",
            shapes.len()
        ));
    }
    for (i, (_, shape)) in shapes.iter().enumerate() {
        let fact = model
            .input_fact(i)
            .map_err(|e| format!("input {i}: {e:#}"))?;
        let rank = fact.shape.dims().count();
        if !fact.shape.is_open() && rank != shape.len() {
            return Err(format!(
                "input {i}: the model declares rank {rank}, got shape {shape:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use tract_onnx::pb;

    /// `y = x` for x of shape [n]: any length is a new shape, so a new plan.
    fn identity_of_any_length(dir: &Path) -> PathBuf {
        use pb::tensor_shape_proto::{Dimension, dimension};
        let tensor = |name: &str| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![Dimension {
                            value: Some(dimension::Value::DimParam("n".into())),
                            ..Default::default()
                        }],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let model = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            graph: Some(pb::GraphProto {
                name: "identity".into(),
                node: vec![pb::NodeProto {
                    op_type: "Identity".into(),
                    input: vec!["x".into()],
                    output: vec!["y".into()],
                    ..Default::default()
                }],
                input: vec![tensor("x")],
                output: vec![tensor("y")],
                ..Default::default()
            }),
            ..Default::default()
        };
        let path = dir.join("identity.onnx");
        std::fs::write(&path, model.encode_to_vec()).expect("write model");
        path
    }

    #[test]
    fn plans_are_bounded_and_the_least_recently_used_goes_first() {
        let dir = std::env::temp_dir().join(format!("prelabel-plans-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let model = identity_of_any_length(&dir);
        let mut plans = Graphs::new(1 << 20);
        let signature = plans.load(7, Source::Artifact(model)).expect("loads");
        // The names wasi-nn's `compute` matches inputs by and answers outputs with.
        assert_eq!(
            (signature.inputs, signature.outputs),
            (vec!["x".into()], vec!["y".into()])
        );
        let run = |plans: &mut Graphs, n: usize| {
            let outputs = plans
                .run(7, vec![Tensor::from_f32(vec![n as u32], &vec![1.0; n])])
                .expect("runs");
            assert_eq!(outputs[0].to_f32().expect("f32"), vec![1.0; n]);
        };
        // A guest that sends a new shape on every call keeps at most MAX_PLANS plans.
        for n in 1..=20 {
            run(&mut plans, n);
            assert!(plans.plans.len() <= MAX_PLANS);
        }
        let kept = |plans: &Graphs| -> Vec<usize> {
            plans.plans.iter().map(|(k, _)| k.1[0].1[0]).collect()
        };
        assert_eq!(kept(&plans), [17, 18, 19, 20]);
        // Using one again makes it the most recent; the next new shape evicts the oldest.
        run(&mut plans, 17);
        run(&mut plans, 21);
        assert_eq!(kept(&plans), [19, 20, 17, 21]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
