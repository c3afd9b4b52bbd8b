//! A model run by tract. The graph is planned for each input size it meets (a fully
//! convolutional model runs at the image's own size), the last few plans kept.

use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::Error;

/// A network's outputs as (name, shape, values), from whichever engine ran it.
pub type Outputs = Vec<(String, Vec<usize>, Vec<f32>)>;

/// How many input sizes keep their plan (optimising one takes a while).
const PLANS: usize = 4;

type Plan = ((u32, u32), Arc<TypedRunnableModel>);

/// A loaded model. Loading parses the graph; each new input size optimises it once.
pub struct Model {
    model: InferenceModel,
    plans: Mutex<Vec<Plan>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").finish_non_exhaustive()
    }
}

impl Model {
    /// Parses the model and plans it for a first input of `width` x `height`, so that a
    /// model tract cannot run fails here rather than on the first image.
    pub fn from_onnx(bytes: &[u8], (width, height): (u32, u32)) -> Result<Self, Error> {
        // Dynamic exports declare intermediate shapes over a symbolic batch, which the
        // concrete input would contradict: the input's fact alone decides them.
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| Error::Model(format!("{e:#}")))?;
        let model = Self {
            model,
            plans: Mutex::new(Vec::new()),
        };
        model.plan(width, height)?;
        Ok(model)
    }

    /// The plan for a [1, 3, height, width] input, made when none is kept.
    fn plan(&self, width: u32, height: u32) -> Result<Arc<TypedRunnableModel>, Error> {
        // A panic while planning leaves the list as it was: still usable.
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = plans.iter().position(|(size, _)| *size == (width, height)) {
            let entry = plans.remove(at);
            let plan = entry.1.clone();
            plans.push(entry);
            return Ok(plan);
        }
        let shape = [1, 3, height as usize, width as usize];
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::Model(format!("{e:#}")))?;
        if plans.len() >= PLANS {
            plans.remove(0);
        }
        plans.push(((width, height), plan.clone()));
        Ok(plan)
    }

    /// Runs the network on a `[1, 3, height, width]` input; its outputs by name.
    pub fn infer(&self, input: Vec<f32>, (width, height): (u32, u32)) -> Result<Outputs, Error> {
        let failed = |e: TractError| Error::Inference(format!("{e:#}"));
        let plan = self.plan(width, height)?;
        let shape = [1, 3, height as usize, width as usize];
        let blob = tract_ndarray::Array4::from_shape_vec(shape, input)
            .map_err(|e| Error::Inference(format!("input for {shape:?}: {e}")))?
            .into_tensor();
        let model = plan.model();
        let names: Vec<String> = model
            .output_outlets()
            .map_err(failed)?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .unwrap_or(&model.node(o.node).name)
                    .to_string()
            })
            .collect();
        let outputs = plan.run(tvec!(blob.into())).map_err(failed)?;
        let mut named = Vec::with_capacity(outputs.len());
        for (name, output) in names.into_iter().zip(&outputs) {
            // Some exports give class ids or counts as integers: read every output as f32.
            let output = output.cast_to::<f32>().map_err(failed)?;
            let view = output.to_plain_array_view::<f32>().map_err(failed)?;
            named.push((name, view.shape().to_vec(), view.iter().copied().collect()));
        }
        Ok(named)
    }
}
