//! The tract engine in the worker: graphs parsed by tract, a plan optimised per graph and
//! input shapes (a few kept, least recently used first out).

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::backend::Backend;
use super::{Element, GraphId, Signature, Tensor};

/// Optimised plans a worker keeps (each graph and distinct input shape makes one).
const MAX_PLANS: usize = 4;

impl Element {
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

type Plan = Arc<TypedRunnableModel>;
/// A plan is specific to a graph and the shapes and types of its inputs.
type PlanKey = (GraphId, Vec<(Element, Vec<usize>)>);

/// The worker's graphs, and its plans, most recently used last.
pub struct Graphs {
    memory_bytes: usize,
    graphs: HashMap<GraphId, InferenceModel>,
    plans: Vec<(PlanKey, Plan)>,
}

impl Graphs {
    /// `threads` above one runs tract's matrix products on a pool of that many threads.
    pub fn new(memory_bytes: usize, threads: usize) -> Self {
        // tract sizes its matrix blocks by the CPU's caches, read from /sys once, lazily:
        // read now, before the worker is confined and can open no file.
        let _ = tract_linalg::cache::cache_info();
        let _ = tract_linalg::cache::last_level_cache();
        if threads > 1 {
            tract_linalg::multithread::set_default_executor(
                tract_linalg::multithread::Executor::multithread(threads),
            );
        }
        Self {
            memory_bytes,
            graphs: HashMap::new(),
            plans: Vec::new(),
        }
    }
}

impl Backend for Graphs {
    fn forget(&mut self, graph: GraphId) {
        self.graphs.remove(&graph);
        self.plans.retain(|((g, _), _)| *g != graph);
    }

    /// From bytes, never by path: tract refuses "external data" in a model read from bytes
    /// (the worker opens no file anyway, `confine.rs`).
    fn load(&mut self, graph: GraphId, bytes: bytes::Bytes) -> Result<Signature, String> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
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
}

impl Graphs {
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
        let values = super::values(data, from);
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
    use std::path::{Path, PathBuf};

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
        let mut plans = Graphs::new(1 << 20, 1);
        let bytes = std::fs::read(model).expect("read");
        let signature = plans.load(7, bytes.into()).expect("loads");
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
