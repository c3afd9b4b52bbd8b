//! A user's own ONNX detector (issue 34), natively and inside the `onnx-detector` component:
//! its graph read for what `prelabel new onnx` and `--format auto` need (input, outputs and
//! their shapes, class names from the metadata), run by tract at each input size, and its
//! outputs decoded into labelled boxes by the decoder of its format (`vision`'s YOLO, SSD and
//! CenterNet decoders). No I/O and no WebAssembly here: the component asks the host for the
//! bytes and may run the network on the host instead.

mod graph;
mod model;
mod names;
mod pipeline;

pub use graph::Graph;
pub use model::{Model, Outputs};
pub use names::parse_names;
pub use pipeline::{Config, detect_with};
pub use vision::blob::{InputSize, Normalise, Resize};
pub use vision::format::Format;
pub use vision::yolo::{Labelled, Params};
pub use vision::{DEFAULT_MAX_PIXELS, Detection, Timings};

/// What can go wrong with a model or an image. Every variant names the cause in its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Image(#[from] vision::Error),
    #[error("cannot read the ONNX model: {0}")]
    Model(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("the model's outputs do not read as {format}: {error}")]
    Decode {
        format: &'static str,
        #[source]
        error: vision::yolo::DecodeError,
    },
}
