//! CenterFace as a Prelabel component: the detector (this crate's library, built natively for
//! the tests and the bench too) and, inside the component only, the WIT glue around it.
//! Decoding, the resize and NMS are the shared [`vision`] crate's.

mod detector;

#[cfg(target_family = "wasm")]
mod component;

pub use detector::{
    ALIGN, DEFAULT_MAX_SIDE, INPUT, LANDMARKS, Model, OUTPUTS, Params, detect_with, input_size,
    maps, preprocess,
};
pub use tract_onnx::prelude::Tensor;
pub use vision::Timings;
pub use vision::centernet::{Face, Maps};

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

/// The whole pipeline with this crate's tract model.
pub fn detect(model: &Model, bytes: &[u8], params: &Params) -> Result<Vec<Face>, Error> {
    detect_with(bytes, params, |blob| model.infer(blob)).map(|(faces, _)| faces)
}
