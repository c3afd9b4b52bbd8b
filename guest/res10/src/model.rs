//! The res10 network run by tract: the seed's input blob in, decoded boxes and scores out.

use std::sync::Arc;

use image::RgbImage;
use tract_onnx::prelude::*;

use crate::{Error, resize_linear};

/// The network's input is 300x300.
pub const INPUT_SIZE: u32 = 300;
/// Per-channel means subtracted from B, G and R (`blobFromImage(..., (104, 177, 123))`).
const MEAN_BGR: [f32; 3] = [104.0, 177.0, 123.0];

/// The blob the seed feeds the network: the image resized to 300x300 with INTER_LINEAR,
/// as f32 NCHW in **BGR** order, no scaling, means subtracted.
pub fn preprocess(image: &RgbImage) -> Tensor {
    let resized = resize_linear(image, INPUT_SIZE, INPUT_SIZE);
    let plane = (INPUT_SIZE * INPUT_SIZE) as usize;
    let mut data = vec![0f32; 3 * plane];
    let (blue, rest) = data.split_at_mut(plane);
    let (green, red) = rest.split_at_mut(plane);
    let planes = blue.iter_mut().zip(green.iter_mut()).zip(red.iter_mut());
    for (px, ((b, g), r)) in resized.as_raw().chunks_exact(3).zip(planes) {
        *b = f32::from(px[2]) - MEAN_BGR[0];
        *g = f32::from(px[1]) - MEAN_BGR[1];
        *r = f32::from(px[0]) - MEAN_BGR[2];
    }
    let side = INPUT_SIZE as usize;
    tract_ndarray::Array4::from_shape_vec((1, 3, side, side), data)
        .expect("3 planes of 300x300")
        .into_tensor()
}

/// What the network says about the 8892 prior boxes.
#[derive(Debug, Clone)]
pub struct RawOutput {
    /// Normalised (x1, y1, x2, y2), priors already decoded.
    pub boxes: Vec<[f32; 4]>,
    /// Face probability per box.
    pub scores: Vec<f32>,
}

/// The optimised, runnable network. Loading takes a while; load once, run per image.
#[derive(Clone)]
pub struct Model {
    plan: Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").finish_non_exhaustive()
    }
}

impl Model {
    /// Loads the ONNX bytes and optimises the graph for the fixed [1, 3, 300, 300] input.
    pub fn from_onnx(bytes: &[u8]) -> Result<Self, Error> {
        let side = INPUT_SIZE as usize;
        let plan = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, side, side]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| Error::Model(format!("{e:#}")))?;
        Ok(Self { plan })
    }

    /// Runs the network on a blob from [`preprocess`].
    pub fn infer(&self, blob: Tensor) -> Result<RawOutput, Error> {
        let outputs = self
            .plan
            .run(tvec!(blob.into()))
            .map_err(|e| Error::Inference(format!("{e:#}")))?;
        let mut tensors = Vec::with_capacity(outputs.len());
        for output in &outputs {
            let view = output
                .to_plain_array_view::<f32>()
                .map_err(|e| Error::Inference(format!("{e:#}")))?;
            tensors.push((
                view.shape().to_vec(),
                view.iter().copied().collect::<Vec<f32>>(),
            ));
        }
        RawOutput::from_tensors(tensors)
    }
}

impl RawOutput {
    /// The network's outputs as (shape, data) pairs, from whichever engine ran it.
    pub fn from_tensors(tensors: Vec<(Vec<usize>, Vec<f32>)>) -> Result<Self, Error> {
        let mut boxes = None;
        let mut scores = None;
        // Told apart by rank: `boxes` is [1, N, 4], `scores` is [1, N].
        for (shape, flat) in tensors {
            if shape.iter().product::<usize>() != flat.len() {
                return Err(Error::Inference(format!(
                    "output of shape {shape:?} has {} values",
                    flat.len()
                )));
            }
            match shape.as_slice() {
                [1, _, 4] => {
                    boxes = Some(
                        flat.chunks_exact(4)
                            .map(|c| [c[0], c[1], c[2], c[3]])
                            .collect::<Vec<_>>(),
                    )
                }
                [1, _] => scores = Some(flat),
                other => {
                    return Err(Error::Inference(format!(
                        "unexpected output shape {other:?}"
                    )));
                }
            }
        }
        match (boxes, scores) {
            (Some(boxes), Some(scores)) if boxes.len() == scores.len() => {
                Ok(RawOutput { boxes, scores })
            }
            _ => Err(Error::Inference(
                "expected outputs `boxes` [1, N, 4] and `scores` [1, N]".into(),
            )),
        }
    }
}
