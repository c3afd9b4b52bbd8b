//! The ONNX Runtime engine in the worker: one session per graph, made from the model's bytes
//! (never a path), on the instance's threads. A model whose declared input shape differs from
//! what the guest sends (exporters write the example they traced: CenterFace declares
//! [10, 3, 32, 32] and runs on any [1, 3, H, W]) gets a session per input shape from a copy of
//! the model whose inputs say so, as tract makes a plan per shape; a few are kept.

use std::collections::HashMap;

use bytes::Bytes;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::tensor::{PrimitiveTensorElementType, TensorElementType};
use ort::value::{DynValue, ValueType};
use prost::Message;
use tract_onnx::pb;

use super::backend::Backend;
use super::{Element, GraphId, Signature, Tensor};

/// Sessions made for input shapes a model does not declare, kept per worker.
const MAX_RESHAPED: usize = 4;

/// A graph and the input shapes a session was made for.
type ShapesKey = (GraphId, Vec<Vec<i64>>);

pub struct Sessions {
    memory_bytes: usize,
    threads: usize,
    models: HashMap<GraphId, Model>,
    /// Made for a graph and the shapes it was given, most recently used last.
    reshaped: Vec<(ShapesKey, Session)>,
}

struct Model {
    /// Kept to make a session for other input shapes (the frame they came in, not a copy).
    bytes: Bytes,
    session: Session,
    /// Each input's declared dimensions (-1 where free).
    declared: Vec<Vec<i64>>,
}

impl Sessions {
    /// Loads ONNX Runtime from `library` (checked first: a version whose C API this build
    /// does not speak is refused by name) and sets up its environment.
    pub fn new(library: &str, memory_bytes: usize, threads: usize) -> Result<Self, String> {
        super::engine::probe_library(library)?;
        ort::init_from(library)
            .with_name("prelabel")
            .with_telemetry(false)
            .commit()
            .map_err(|e| format!("cannot start ONNX Runtime from {library}: {e}"))?;
        Ok(Self {
            memory_bytes,
            threads,
            models: HashMap::new(),
            reshaped: Vec::new(),
        })
    }

    fn session(&self, bytes: &[u8]) -> Result<Session, String> {
        Session::builder()
            .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3))
            .and_then(|b| b.with_intra_threads(self.threads))
            .and_then(|b| b.with_inter_threads(1))
            // Between items an instance waits: its threads sleep rather than spin.
            .and_then(|b| b.with_intra_op_spinning(false))
            .and_then(|b| b.commit_from_memory(bytes))
            .map_err(|e| format!("cannot load the ONNX model: {e}"))
    }

    /// The session for `graph` at `shapes`: its own where the model declares them, else one
    /// made from a copy whose inputs declare exactly them.
    fn session_for(&mut self, graph: GraphId, shapes: &[Vec<i64>]) -> Result<&mut Session, String> {
        let model = self.models.get(&graph).ok_or("that graph is not loaded")?;
        let declared = model.declared.iter().zip(shapes).all(|(declared, given)| {
            declared.len() == given.len()
                && declared.iter().zip(given).all(|(&d, &g)| d < 0 || d == g)
        });
        if declared {
            return self
                .models
                .get_mut(&graph)
                .map(|m| &mut m.session)
                .ok_or_else(|| "that graph is not loaded".into());
        }
        let key = (graph, shapes.to_vec());
        if let Some(at) = self.reshaped.iter().position(|(k, _)| *k == key) {
            let entry = self.reshaped.remove(at);
            self.reshaped.push(entry);
        } else {
            let bytes = reshaped(&model.bytes, &model.session, shapes)?;
            let session = self.session(&bytes)?;
            if self.reshaped.len() >= MAX_RESHAPED {
                self.reshaped.remove(0);
            }
            self.reshaped.push((key, session));
        }
        self.reshaped
            .last_mut()
            .map(|(_, session)| session)
            .ok_or_else(|| "no session".into())
    }
}

impl Backend for Sessions {
    fn load(&mut self, graph: GraphId, bytes: Bytes) -> Result<Signature, String> {
        let session = self.session(&bytes)?;
        let declared = session
            .inputs
            .iter()
            .map(|input| match &input.input_type {
                ValueType::Tensor { shape, .. } => Ok(shape.to_vec()),
                other => Err(format!("input `{}` is a {other}, not a tensor", input.name)),
            })
            .collect::<Result<_, String>>()?;
        let signature = Signature {
            inputs: session.inputs.iter().map(|i| i.name.clone()).collect(),
            outputs: session.outputs.iter().map(|o| o.name.clone()).collect(),
        };
        self.models.insert(
            graph,
            Model {
                bytes,
                session,
                declared,
            },
        );
        Ok(signature)
    }

    fn run(&mut self, graph: GraphId, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
        let model = self.models.get(&graph).ok_or("that graph is not loaded")?;
        if inputs.len() != model.declared.len() {
            return Err(format!(
                "the model has {} input(s), got {} tensor(s)",
                model.declared.len(),
                inputs.len()
            ));
        }
        let mut shapes = Vec::with_capacity(inputs.len());
        for (i, (input, declared)) in inputs.iter().zip(&model.declared).enumerate() {
            let elements = input.check().map_err(|e| format!("input {i}: {e}"))?;
            let shape: Vec<i64> = input.shape.iter().map(|&d| i64::from(d)).collect();
            if elements.saturating_mul(input.element.size()) > self.memory_bytes {
                return Err(format!(
                    "input {i}: shape {shape:?} is over the memory limit"
                ));
            }
            if declared.len() != shape.len() {
                return Err(format!(
                    "input {i}: the model declares rank {}, got shape {shape:?}",
                    declared.len()
                ));
            }
            shapes.push(shape);
        }
        let values = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| to_ort(input).map_err(|e| format!("input {i}: {e}")))
            .collect::<Result<Vec<SessionInputValue>, String>>()?;
        let memory_bytes = self.memory_bytes;
        let session = self.session_for(graph, &shapes)?;
        let outputs = session.run(values.as_slice()).map_err(|e| e.to_string())?;
        let mut total = 0usize;
        (0..outputs.len())
            .map(|i| {
                let tensor = from_ort(&outputs[i]).map_err(|e| format!("output {i}: {e}"))?;
                total = total.saturating_add(tensor.data.len());
                if total > memory_bytes {
                    return Err(format!("output {i}: the outputs are over the memory limit"));
                }
                Ok(tensor)
            })
            .collect()
    }

    fn forget(&mut self, graph: GraphId) {
        self.models.remove(&graph);
        self.reshaped.retain(|((g, _), _)| *g != graph);
    }
}

/// A copy of the model whose inputs declare `shapes` exactly.
fn reshaped(bytes: &[u8], session: &Session, shapes: &[Vec<i64>]) -> Result<Vec<u8>, String> {
    use pb::tensor_shape_proto::{Dimension, dimension};
    let mut model =
        pb::ModelProto::decode(bytes).map_err(|e| format!("cannot read the ONNX model: {e}"))?;
    let graph = model.graph.as_mut().ok_or("the ONNX model has no graph")?;
    for (input, shape) in session.inputs.iter().zip(shapes) {
        let Some(declared) = graph.input.iter_mut().find(|i| i.name == input.name) else {
            return Err(format!("the model has no input named `{}`", input.name));
        };
        if let Some(pb::type_proto::Value::TensorType(tensor)) =
            declared.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            tensor.shape = Some(pb::TensorShapeProto {
                dim: shape
                    .iter()
                    .map(|&d| Dimension {
                        value: Some(dimension::Value::DimValue(d)),
                        ..Default::default()
                    })
                    .collect(),
            });
        }
    }
    Ok(model.encode_to_vec())
}

/// A checked tensor as ONNX Runtime's, element by element from little-endian bytes.
fn to_ort(tensor: Tensor) -> Result<SessionInputValue<'static>, String> {
    fn build<T: PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static, const N: usize>(
        shape: Vec<i64>,
        data: &[u8],
        from: fn([u8; N]) -> T,
    ) -> Result<SessionInputValue<'static>, String> {
        let values = super::values(data, from);
        let value: DynValue = ort::value::Tensor::from_array((shape, values))
            .map_err(|e| e.to_string())?
            .into_dyn();
        Ok(value.into())
    }
    let shape: Vec<i64> = tensor.shape.iter().map(|&d| i64::from(d)).collect();
    let data = &tensor.data;
    match tensor.element {
        Element::F16 => build(shape, data, |b| half::f16::from_bits(u16::from_le_bytes(b))),
        Element::F32 => build(shape, data, f32::from_le_bytes),
        Element::F64 => build(shape, data, f64::from_le_bytes),
        Element::U8 => build(shape, data, u8::from_le_bytes),
        Element::I32 => build(shape, data, i32::from_le_bytes),
        Element::I64 => build(shape, data, i64::from_le_bytes),
    }
}

/// An output as a tensor of little-endian bytes.
fn from_ort(value: &DynValue) -> Result<Tensor, String> {
    fn bytes<T: PrimitiveTensorElementType + Copy, const N: usize>(
        value: &DynValue,
        element: Element,
        to: fn(T) -> [u8; N],
    ) -> Result<Tensor, String> {
        let (shape, values) = value.try_extract_tensor::<T>().map_err(|e| e.to_string())?;
        let shape = shape
            .iter()
            .map(|&d| u32::try_from(d).map_err(|_| format!("dimension {d} is out of range")))
            .collect::<Result<_, _>>()?;
        Ok(Tensor {
            element,
            shape,
            data: values.iter().flat_map(|&v| to(v)).collect(),
        })
    }
    match value.dtype().tensor_type() {
        Some(TensorElementType::Float16) => bytes(value, Element::F16, |v: half::f16| {
            v.to_bits().to_le_bytes()
        }),
        Some(TensorElementType::Float32) => bytes(value, Element::F32, f32::to_le_bytes),
        Some(TensorElementType::Float64) => bytes(value, Element::F64, f64::to_le_bytes),
        Some(TensorElementType::Uint8) => bytes(value, Element::U8, u8::to_le_bytes),
        Some(TensorElementType::Int32) => bytes(value, Element::I32, i32::to_le_bytes),
        Some(TensorElementType::Int64) => bytes(value, Element::I64, i64::to_le_bytes),
        _ => Err(format!(
            "its type {} has no wasi-nn tensor type",
            value.dtype()
        )),
    }
}
