//! wasi-nn (`wasi:nn@0.2.0-rc-2024-10-28`) for guests: graphs, tensors and execution
//! contexts as host resources, computed by the instance's inference worker
//! (`inference.rs`), so every limit of native inference holds on this path too.
//!
//! - A permission: without `--allow-inference`, `load` and `load-by-name` answer
//!   `security`, and nothing else can be reached without a graph.
//! - `load-by-name` takes one of the package's artifacts; `load` takes ONNX bytes (one
//!   builder), on the CPU.
//! - What the host holds for the guest (tensor bytes, model bytes passed to `load`) counts
//!   against the instance's memory cap; past it the call traps as the memory limit. Handles
//!   count against the instance's resource table bound, and at most 8 graphs are loaded at once.
//! - `compute` matches inputs by name (or index, as wasmtime's own backends do), answers
//!   every output named, and runs under the call's deadline.

use wasmtime::component::Resource;

use super::bindings::resources::{Error, ExecutionContext, Graph, Tensor};
use super::bindings::wasi::nn::errors::ErrorCode;
use super::bindings::wasi::nn::graph::{ExecutionTarget, GraphEncoding};
use super::bindings::wasi::nn::tensor::TensorType;
use super::bindings::wasi::nn::{errors, graph, inference, tensor};
use super::inference::{Element, Refused, Signature, Source};
use super::instance::HostState;
use super::instance::{cut, shorten};

/// What a guest's wasi-nn handles are, when they go over its memory cap.
const HOLDER: &str = "native inference";
/// The longest message a wasi-nn error keeps.
const MAX_ERROR_BYTES: usize = 4096;

type Answer<T> = wasmtime::Result<Result<Resource<T>, Resource<Error>>>;

impl HostState {
    fn nn_error<T>(
        &mut self,
        code: ErrorCode,
        data: impl Into<String>,
    ) -> wasmtime::Result<Result<T, Resource<Error>>> {
        // Messages name what the guest or the model chose (cut where they are made); a guest
        // may keep thousands of errors, so what they hold counts against its cap.
        let data = cut(&data.into(), MAX_ERROR_BYTES);
        tracing::debug!(target: "prelabel::guest", "wasi-nn: {data}");
        self.hold(data.len(), HOLDER)?;
        Ok(Err(self.table.push(Error { code, data })?))
    }

    /// Loads a graph; a refusal or the model's error is the guest's to handle, a worker's
    /// failure (or model bytes over the cap) ends the call.
    async fn nn_load(&mut self, source: Source) -> Answer<Graph> {
        // The model's bytes (passed to `load`) are the host's from the start.
        let mut held = source.held();
        self.hold(held, HOLDER)?;
        let budget = self.unheld();
        let loaded = self.inference.load(source, budget).await;
        let charged = self.charge_worker();
        let (id, signature) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Err(failure) => {
                self.release(held);
                return Err(failure.into());
            }
            Ok(Err(refused)) => {
                self.release(held);
                charged?;
                let code = match refused {
                    Refused::NotGranted => ErrorCode::Security,
                    Refused::TooMany => ErrorCode::TooLarge,
                    Refused::Model(_) => ErrorCode::InvalidEncoding,
                };
                return self.nn_error(code, refused.to_string());
            }
        };
        // The names the model gave its inputs and outputs, kept for every handle.
        let names = signature.weight();
        let kept = charged.and_then(|()| self.hold(names, HOLDER));
        if let Err(over) = kept {
            self.release(held);
            self.inference.release(id);
            return Err(over);
        }
        held += names;
        Ok(Ok(self.table.push(Graph {
            id,
            signature,
            held,
        })?))
    }
}

impl graph::Host for HostState {
    async fn load(
        &mut self,
        builders: Vec<Vec<u8>>,
        encoding: GraphEncoding,
        target: ExecutionTarget,
    ) -> Answer<Graph> {
        if !matches!(encoding, GraphEncoding::Onnx | GraphEncoding::Autodetect) {
            return self.nn_error(
                ErrorCode::InvalidEncoding,
                format!(
                    "this host runs ONNX models, not {}",
                    encoding_name(encoding)
                ),
            );
        }
        if target != ExecutionTarget::Cpu {
            return self.nn_error(
                ErrorCode::UnsupportedOperation,
                format!(
                    "this host runs models on the CPU, not the {}",
                    if target == ExecutionTarget::Gpu {
                        "GPU"
                    } else {
                        "TPU"
                    }
                ),
            );
        }
        let [model]: [Vec<u8>; 1] = match builders.try_into() {
            Ok(one) => one,
            Err(builders) => {
                return self.nn_error(
                    ErrorCode::InvalidArgument,
                    format!("an ONNX model is one builder, got {}", builders.len()),
                );
            }
        };
        self.nn_load(Source::Bytes(std::sync::Arc::new(model)))
            .await
    }

    async fn load_by_name(&mut self, name: String) -> Answer<Graph> {
        match self.artifact_path(&name) {
            Ok(path) => self.nn_load(Source::Artifact(path)).await,
            Err(e) => self.nn_error(ErrorCode::NotFound, e.message),
        }
    }
}

impl graph::HostGraph for HostState {
    fn init_execution_context(&mut self, graph: Resource<Graph>) -> Answer<ExecutionContext> {
        let graph = self.table.get(&graph)?;
        let context = ExecutionContext {
            id: graph.id,
            signature: graph.signature.clone(),
        };
        self.hold(context.signature.weight(), HOLDER)?;
        self.inference.acquire(context.id);
        Ok(Ok(self.table.push(context)?))
    }

    fn drop(&mut self, graph: Resource<Graph>) -> wasmtime::Result<()> {
        let graph = self.table.delete(graph)?;
        self.inference.release(graph.id);
        self.release(graph.held);
        Ok(())
    }
}

impl inference::Host for HostState {}

impl inference::HostGraphExecutionContext for HostState {
    async fn compute(
        &mut self,
        context: Resource<ExecutionContext>,
        inputs: Vec<(String, Resource<Tensor>)>,
    ) -> wasmtime::Result<Result<Vec<(String, Resource<Tensor>)>, Resource<Error>>> {
        let (id, signature) = {
            let context = self.table.get(&context)?;
            (context.id, context.signature.clone())
        };
        // The guest gave its tensors away: off the table, but charged until they are sent.
        let mut given = Vec::with_capacity(inputs.len());
        let mut held = 0usize;
        for (name, tensor) in inputs {
            let tensor = self.table.delete(tensor)?;
            held = held.saturating_add(tensor.held());
            given.push((name, tensor));
        }
        let ordered = match order_inputs(&signature, given) {
            Ok(ordered) => ordered,
            Err(message) => {
                self.release(held);
                return self.nn_error(ErrorCode::InvalidArgument, message);
            }
        };
        let budget = self.unheld();
        let ran = self.inference.run(id, ordered, budget).await;
        self.release(held);
        self.charge_worker()?;
        let outputs = match ran? {
            Ok(outputs) => outputs,
            Err(message) => return self.nn_error(ErrorCode::RuntimeError, message),
        };
        let mut named = Vec::with_capacity(outputs.len());
        for (at, output) in outputs.into_iter().enumerate() {
            let name = signature
                .outputs
                .get(at)
                .cloned()
                .unwrap_or_else(|| at.to_string());
            let tensor = Tensor {
                dimensions: output.shape,
                ty: tensor_type(output.element),
                data: output.data,
            };
            self.hold(tensor.held(), HOLDER)?;
            named.push((name, self.table.push(tensor)?));
        }
        Ok(Ok(named))
    }

    fn drop(&mut self, context: Resource<ExecutionContext>) -> wasmtime::Result<()> {
        let context = self.table.delete(context)?;
        self.inference.release(context.id);
        self.release(context.signature.weight());
        Ok(())
    }
}

/// The guest's named tensors in the model's input order; every input once.
fn order_inputs(
    signature: &Signature,
    given: Vec<(String, Tensor)>,
) -> Result<Vec<super::inference::Tensor>, String> {
    let mut slots: Vec<Option<super::inference::Tensor>> = vec![None; signature.inputs.len()];
    for (name, tensor) in given {
        let at = signature
            .inputs
            .iter()
            .position(|n| *n == name)
            .or_else(|| name.parse::<usize>().ok().filter(|&i| i < slots.len()))
            .ok_or_else(|| {
                format!(
                    "the model has no input named `{}` (it has: {})",
                    shorten(&name),
                    shorten(&signature.inputs.join(", "))
                )
            })?;
        let name = shorten(&name);
        let element = element(tensor.ty)
            .ok_or_else(|| format!("input `{name}`: BF16 tensors are not supported"))?;
        let tensor = super::inference::Tensor {
            element,
            shape: tensor.dimensions,
            data: tensor.data,
        };
        tensor.check().map_err(|e| format!("input `{name}`: {e}"))?;
        if slots[at].replace(tensor).is_some() {
            return Err(format!(
                "input `{}` given twice",
                shorten(&signature.inputs[at])
            ));
        }
    }
    slots
        .into_iter()
        .zip(&signature.inputs)
        .map(|(slot, name)| slot.ok_or_else(|| format!("input `{name}` is missing")))
        .collect()
}

fn encoding_name(encoding: GraphEncoding) -> &'static str {
    match encoding {
        GraphEncoding::Openvino => "OpenVINO",
        GraphEncoding::Onnx => "ONNX",
        GraphEncoding::Tensorflow => "TensorFlow",
        GraphEncoding::Pytorch => "PyTorch",
        GraphEncoding::Tensorflowlite => "TensorFlow Lite",
        GraphEncoding::Ggml => "GGML",
        GraphEncoding::Autodetect => "autodetect",
    }
}

fn element(ty: TensorType) -> Option<Element> {
    Some(match ty {
        TensorType::Fp16 => Element::F16,
        TensorType::Fp32 => Element::F32,
        TensorType::Fp64 => Element::F64,
        TensorType::U8 => Element::U8,
        TensorType::I32 => Element::I32,
        TensorType::I64 => Element::I64,
        TensorType::Bf16 => return None,
    })
}

fn tensor_type(element: Element) -> TensorType {
    match element {
        Element::F16 => TensorType::Fp16,
        Element::F32 => TensorType::Fp32,
        Element::F64 => TensorType::Fp64,
        Element::U8 => TensorType::U8,
        Element::I32 => TensorType::I32,
        Element::I64 => TensorType::I64,
    }
}

impl tensor::Host for HostState {}

impl tensor::HostTensor for HostState {
    fn new(
        &mut self,
        dimensions: Vec<u32>,
        ty: TensorType,
        data: Vec<u8>,
    ) -> wasmtime::Result<Resource<Tensor>> {
        let tensor = Tensor {
            dimensions,
            ty,
            data,
        };
        self.hold(tensor.held(), HOLDER)?;
        Ok(self.table.push(tensor)?)
    }

    fn dimensions(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.table.get(&tensor)?.dimensions.clone())
    }

    fn ty(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<TensorType> {
        Ok(self.table.get(&tensor)?.ty)
    }

    fn data(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&tensor)?.data.clone())
    }

    fn drop(&mut self, tensor: Resource<Tensor>) -> wasmtime::Result<()> {
        let tensor = self.table.delete(tensor)?;
        self.release(tensor.held());
        Ok(())
    }
}

impl errors::Host for HostState {}

impl errors::HostError for HostState {
    fn code(&mut self, error: Resource<Error>) -> wasmtime::Result<ErrorCode> {
        Ok(self.table.get(&error)?.code)
    }

    fn data(&mut self, error: Resource<Error>) -> wasmtime::Result<String> {
        Ok(self.table.get(&error)?.data.clone())
    }

    fn drop(&mut self, error: Resource<Error>) -> wasmtime::Result<()> {
        let error = self.table.delete(error)?;
        self.release(error.data.len());
        Ok(())
    }
}
