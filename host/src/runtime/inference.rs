//! The `inference` import: the host runs an ONNX artifact natively for a guest that opts in
//! (wasi-nn style), so the guest keeps its pre- and post-processing while the network gets
//! the host CPU's full speed.
//!
//! Native code is outside the wasm sandbox, and a model file is input like any other: a
//! malicious graph can ask tract for terabytes, panic it, or run for hours. So native
//! inference is a **permission** (off unless the deployer grants it), and it runs in a
//! **worker process** of its own, one per instance: its heap is capped by `RLIMIT_DATA` at
//! the service's memory cap, a panic becomes that call's error, a crash or an allocation
//! failure kills only the worker, and a call that outlives the deadline is abandoned by
//! killing it. Plans are optimised once per model and input shapes and kept (a few, least
//! recently used first out) for the instance's next items.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use super::bindings::prelabel::detector::inference::Tensor as WitTensor;

/// The hidden first argument that turns the `prelabel` binary into an inference worker.
pub const WORKER_ARG: &str = "__inference-worker";

/// What the worker may use beyond the cap: its own code's data, stacks and tract's
/// bookkeeping.
const WORKER_HEADROOM: usize = 64 << 20;
/// Optimised plans a worker keeps (each distinct input shape makes one).
const MAX_PLANS: usize = 4;
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

/// A dense f32 tensor, as it crosses the pipe.
#[derive(Serialize, Deserialize)]
struct Tensor {
    shape: Vec<u32>,
    data: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct Request {
    model: PathBuf,
    inputs: Vec<Tensor>,
}

type Response = Result<Vec<Tensor>, String>;

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u64>()
        .max_frame_length(max_frame)
        .new_codec()
}

/// The host side, one per instance: whether inference is granted, and its worker.
pub struct NativeInference {
    granted: bool,
    memory_bytes: usize,
    worker: Option<Worker>,
}

struct Worker {
    child: Child,
    requests: FramedWrite<ChildStdin, LengthDelimitedCodec>,
    replies: FramedRead<ChildStdout, LengthDelimitedCodec>,
}

impl NativeInference {
    pub fn new(granted: bool, memory_bytes: usize) -> Self {
        Self {
            granted,
            memory_bytes,
            worker: None,
        }
    }

    /// Runs the ONNX model in `path` on `inputs`. The outer `Err` is a failure of the
    /// worker (the call must end); the inner one is the model's error for the guest.
    pub async fn run(
        &mut self,
        path: &Path,
        inputs: Vec<WitTensor>,
    ) -> Result<Result<Vec<WitTensor>, String>, InferenceFailure> {
        if !self.granted {
            return Ok(Err("native inference is not granted to this service \
                 (deploy it with `--allow-inference`, or pass that flag to `prelabel detect`)"
                .into()));
        }
        // Taken out for the call: if the call is abandoned (its deadline passed), the
        // worker is dropped with it, and killed.
        let mut worker = match self.worker.take() {
            Some(worker) => worker,
            None => Worker::spawn(self.memory_bytes)?,
        };
        let request = Request {
            model: path.to_path_buf(),
            inputs: inputs
                .into_iter()
                .map(|t| Tensor {
                    shape: t.shape,
                    data: t.data,
                })
                .collect(),
        };
        let request = postcard::to_allocvec(&request)
            .map_err(|e| InferenceFailure::Protocol(e.to_string()))?;
        let reply = match worker.call(request.into()).await {
            Ok(reply) => reply,
            Err(Exchange::TooLarge) => return Err(InferenceFailure::MemoryLimit),
            Err(Exchange::Broken) => return Err(worker.post_mortem().await),
        };
        let response: Response =
            postcard::from_bytes(&reply).map_err(|e| InferenceFailure::Protocol(e.to_string()))?;
        self.worker = Some(worker);
        Ok(response.map(|outputs| {
            outputs
                .into_iter()
                .map(|t| WitTensor {
                    shape: t.shape,
                    data: t.data,
                })
                .collect()
        }))
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
            // A reply is copied into the guest's memory: it cannot be larger than the cap.
            replies: FramedRead::new(stdout, codec(memory_bytes)),
        })
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
    async fn post_mortem(mut self) -> InferenceFailure {
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
        let mut plans = Plans::new(memory_bytes);
        while let Some(frame) = requests.next().await {
            let frame = frame?;
            let response: Response = match postcard::from_bytes::<Request>(&frame) {
                Ok(request) => {
                    let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        plans.run(request)
                    }))
                    .unwrap_or_else(|panic| {
                        Err(format!(
                            "tract panicked: {}",
                            crate::error::panic_message(&*panic)
                        ))
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
/// A plan is specific to a model file and the shapes of its inputs.
type PlanKey = (PathBuf, Vec<Vec<usize>>);

/// The worker's plans, most recently used last.
struct Plans {
    memory_bytes: usize,
    plans: Vec<(PlanKey, Plan)>,
}

impl Plans {
    fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            plans: Vec::new(),
        }
    }

    fn run(&mut self, request: Request) -> Response {
        let shapes: Vec<Vec<usize>> = request
            .inputs
            .iter()
            .map(|t| t.shape.iter().map(|&d| d as usize).collect())
            .collect();
        let mut tensors = TVec::new();
        for (i, (input, shape)) in request.inputs.into_iter().zip(&shapes).enumerate() {
            let elements = shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .filter(|&n| n.saturating_mul(4) <= self.memory_bytes)
                .ok_or_else(|| format!("input {i}: shape {shape:?} is over the memory limit"))?;
            if elements != input.data.len() {
                return Err(format!(
                    "input {i}: shape {shape:?} needs {elements} values, got {}",
                    input.data.len()
                ));
            }
            let array = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), input.data)
                .map_err(|e| format!("input {i}: {e}"))?;
            tensors.push(array.into_tensor().into());
        }
        let plan = self.plan(&request.model, &shapes)?;
        let outputs = plan.run(tensors).map_err(|e| format!("{e:#}"))?;
        let mut total = 0usize;
        outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let view = o
                    .to_plain_array_view::<f32>()
                    .map_err(|e| format!("output {i}: {e:#}"))?;
                total = total.saturating_add(view.len().saturating_mul(4));
                if total > self.memory_bytes {
                    return Err(format!("output {i}: the outputs are over the memory limit"));
                }
                Ok(Tensor {
                    shape: view.shape().iter().map(|&d| d as u32).collect(),
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }

    fn plan(&mut self, path: &Path, shapes: &[Vec<usize>]) -> Result<Plan, String> {
        let key = (path.to_path_buf(), shapes.to_vec());
        if let Some(at) = self.plans.iter().position(|(k, _)| *k == key) {
            let entry = self.plans.remove(at);
            let plan = entry.1.clone();
            self.plans.push(entry);
            return Ok(plan);
        }
        // Read as bytes, not by path: a graph read by path may pull "external data" from files
        // beside it, and beside an artifact in the store lie other blobs (other packages'
        // artifacts, items). From bytes, external data is refused.
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| format!("cannot load the ONNX model: {e:#}"))?;
        check_inputs(&model, shapes)?;
        for (i, shape) in shapes.iter().enumerate() {
            model = model
                .with_input_fact(i, f32::fact(shape).into())
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

/// The inputs match what the model declares: their number, ranks and fixed dimensions.
fn check_inputs(model: &InferenceModel, shapes: &[Vec<usize>]) -> Result<(), String> {
    let declared = model.inputs.len();
    if shapes.len() != declared {
        return Err(format!(
            "the model has {declared} input(s), got {} tensor(s)",
            shapes.len()
        ));
    }
    for (i, shape) in shapes.iter().enumerate() {
        let fact = model
            .input_fact(i)
            .map_err(|e| format!("input {i}: {e:#}"))?;
        let dims: Vec<_> = fact.shape.dims().collect();
        if !fact.shape.is_open() && dims.len() != shape.len() {
            return Err(format!(
                "input {i}: the model declares rank {}, got shape {shape:?}",
                dims.len()
            ));
        }
        for (axis, (dim, &got)) in dims.iter().zip(shape).enumerate() {
            if let Some(want) = dim.concretize().and_then(|d| d.to_usize().ok())
                && want != got
            {
                return Err(format!(
                    "input {i}: axis {axis} must be {want}, got shape {shape:?}"
                ));
            }
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
        let mut plans = Plans::new(1 << 20);
        let run = |plans: &mut Plans, n: usize| {
            let outputs = plans
                .run(Request {
                    model: model.clone(),
                    inputs: vec![Tensor {
                        shape: vec![n as u32],
                        data: vec![1.0; n],
                    }],
                })
                .expect("runs");
            assert_eq!(outputs[0].data.len(), n);
        };
        // A guest that sends a new shape on every call keeps at most MAX_PLANS plans.
        for n in 1..=20 {
            run(&mut plans, n);
            assert!(plans.plans.len() <= MAX_PLANS);
        }
        let kept =
            |plans: &Plans| -> Vec<usize> { plans.plans.iter().map(|(k, _)| k.1[0][0]).collect() };
        assert_eq!(kept(&plans), [17, 18, 19, 20]);
        // Using one again makes it the most recent; the next new shape evicts the oldest.
        run(&mut plans, 17);
        run(&mut plans, 21);
        assert_eq!(kept(&plans), [19, 20, 17, 21]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
