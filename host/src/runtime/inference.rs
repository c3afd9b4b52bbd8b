//! The `inference` import: the host runs an ONNX artifact natively for a guest that opts in
//! (wasi-nn style), so the guest keeps its pre- and post-processing while the network gets
//! the host CPU's full speed. Plans are optimised once per model file and input shapes, and
//! shared by every instance of the process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use super::bindings::prelabel::detector::inference::Tensor as WitTensor;

type Plan = Arc<TypedRunnableModel>;
/// A plan is specific to a model file and the shapes of its inputs.
type PlanKey = (PathBuf, Vec<Vec<usize>>);

#[derive(Default)]
pub struct NativeModels {
    plans: Mutex<HashMap<PlanKey, Plan>>,
}

impl NativeModels {
    /// Runs the ONNX model in `path` on `inputs`.
    pub fn run(&self, path: &Path, inputs: Vec<WitTensor>) -> Result<Vec<WitTensor>, String> {
        let shapes: Vec<Vec<usize>> = inputs
            .iter()
            .map(|t| t.shape.iter().map(|&d| d as usize).collect())
            .collect();
        let mut tensors = TVec::new();
        for (input, shape) in inputs.into_iter().zip(&shapes) {
            if shape.iter().product::<usize>() != input.data.len() {
                return Err(format!(
                    "an input of shape {shape:?} has {} values",
                    input.data.len()
                ));
            }
            let array = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), input.data)
                .map_err(|e| e.to_string())?;
            tensors.push(array.into_tensor().into());
        }
        let plan = self.plan(path, &shapes)?;
        let outputs = plan.run(tensors).map_err(|e| format!("{e:#}"))?;
        outputs
            .iter()
            .map(|o| {
                let view = o
                    .to_plain_array_view::<f32>()
                    .map_err(|e| format!("{e:#}"))?;
                Ok(WitTensor {
                    shape: view.shape().iter().map(|&d| d as u32).collect(),
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }

    fn plan(&self, path: &Path, shapes: &[Vec<usize>]) -> Result<Plan, String> {
        let key = (path.to_path_buf(), shapes.to_vec());
        if let Some(plan) = self.lock().get(&key) {
            return Ok(plan.clone());
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| format!("cannot load the ONNX model: {e:#}"))?;
        for (i, shape) in shapes.iter().enumerate() {
            model = model
                .with_input_fact(i, f32::fact(shape).into())
                .map_err(|e| format!("{e:#}"))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("cannot optimise the ONNX model: {e:#}"))?;
        self.lock().insert(key, plan.clone());
        Ok(plan)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PlanKey, Plan>> {
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }
}
