//! The res10 SSD face detector (OpenCV's `res10_300x300_ssd_iter_140000` Caffe model, as
//! ONNX), reproducing the seed's OpenCV pipeline in plain Rust.
//!
//! This crate does no I/O and knows nothing of WebAssembly: the `face-detector` component
//! wraps it, and it also builds natively, which is the baseline benchmarks compare against.
//! Decoding, the resize and NMS are the shared [`vision`] crate's. Each stage is public so that
//! it can be tested and timed alone:
//! [`decode`] → [`preprocess`] → [`Model::infer`] → [`detection_output`] → [`to_detections`].

mod model;
mod nms;

pub use model::{INPUT_SIZE, Model, RawOutput, preprocess};
pub use nms::{Candidate, DetectionOutputParams, detection_output};
pub use tract_onnx::prelude::Tensor;
pub use vision::{DEFAULT_MAX_PIXELS, Detection, Timings, decode, resize_linear};

use vision::Laps;

/// What can go wrong while detecting. Every variant names the cause in its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] vision::Error),
    #[error("cannot load the ONNX model: {0}")]
    Model(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Turns the kept candidates into boxes on a `width` x `height` image, as the seed does
/// (`confidence > min_confidence`, normalised box times (w, h, w, h)), then applies
/// Prelabel's box policy: clip to the image and drop what is left with under 1 px².
pub fn to_detections(
    kept: &[Candidate],
    width: u32,
    height: u32,
    min_confidence: f32,
) -> Vec<Detection> {
    let (w, h) = (width as f32, height as f32);
    kept.iter()
        .filter(|c| c.score > min_confidence)
        .filter_map(|c| {
            Detection {
                left: c.bbox[0] * w,
                top: c.bbox[1] * h,
                right: c.bbox[2] * w,
                bottom: c.bbox[3] * h,
                confidence: c.score,
            }
            .clipped(width, height)
        })
        .collect()
}

/// The whole pipeline for encoded image bytes (PNG, JPEG, GIF, BMP, WebP).
pub fn detect(
    model: &Model,
    bytes: &[u8],
    max_pixels: u64,
    min_confidence: f32,
) -> Result<Vec<Detection>, Error> {
    detect_timed(model, bytes, max_pixels, min_confidence).map(|(d, _)| d)
}

/// [`detect`], timing each stage.
pub fn detect_timed(
    model: &Model,
    bytes: &[u8],
    max_pixels: u64,
    min_confidence: f32,
) -> Result<(Vec<Detection>, Timings), Error> {
    detect_with(bytes, max_pixels, min_confidence, |blob| model.infer(blob))
}

/// The pipeline with inference done by `infer` (this library's tract model, or another
/// engine such as the host's), timing each stage.
pub fn detect_with(
    bytes: &[u8],
    max_pixels: u64,
    min_confidence: f32,
    infer: impl FnOnce(Tensor) -> Result<RawOutput, Error>,
) -> Result<(Vec<Detection>, Timings), Error> {
    let mut t = Timings::default();
    let mut laps = Laps::start();
    let image = decode(bytes, max_pixels)?;
    laps.lap(&mut t.decode);
    let blob = preprocess(&image);
    laps.lap(&mut t.preprocess);
    let raw = infer(blob)?;
    laps.lap(&mut t.infer);
    let kept = detection_output(&raw.boxes, &raw.scores, &DetectionOutputParams::default());
    let detections = to_detections(&kept, image.width(), image.height(), min_confidence);
    laps.lap(&mut t.postprocess);
    Ok((detections, t))
}
