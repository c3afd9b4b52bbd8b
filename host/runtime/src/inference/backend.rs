//! What an engine does inside the inference worker: one trait, implemented by each engine
//! (`tract.rs`, `onnxruntime.rs`) and driven by the worker's loop (`worker.rs`).

use bytes::Bytes;

use super::{GraphId, Signature, Tensor};

/// What an engine does in the worker. Errors are the model's, for the guest.
pub trait Backend {
    /// Reads a model (its bytes; the worker opens no file) and keeps it as `graph`.
    fn load(&mut self, graph: GraphId, bytes: Bytes) -> Result<Signature, String>;
    /// Runs `graph` on `inputs`, given in the model's input order.
    fn run(&mut self, graph: GraphId, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String>;
    /// Lets go of `graph` and whatever was made for it.
    fn forget(&mut self, graph: GraphId);
}
