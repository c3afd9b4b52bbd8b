//! Host-side bindings of the `prelabel:detector` world (`wit/detector.wit`), as the host
//! links it: with wasi-nn (`wit/deps/wasi-nn`) and the older `inference` interface; and the
//! host's side of wasi-nn's resources (graphs, contexts, tensors, errors), which the
//! bindings name, so that `nn.rs`, their methods, sits above both.

wasmtime::component::bindgen!({
    world: "host-links",
    path: "../../wit",
    // Calls into the guest are async so that a deadline can end one that is parked in a
    // host call; native inference is awaited (it runs in a worker process) and may trap.
    imports: {
        "prelabel:detector/inference.run": async | trappable,
        // Decoding runs off the wasm thread, under the call's deadline and the memory cap.
        "prelabel:detector/image.blob": async | trappable,
        "wasi:nn/graph.load": async | trappable,
        "wasi:nn/graph.load-by-name": async | trappable,
        "wasi:nn/inference.[method]graph-execution-context.compute": async | trappable,
        "wasi:nn": trappable,
        // Reading an artifact is charged to the memory cap, which may trap.
        "prelabel:detector/host.artifact": trappable,
    },
    exports: { default: async },
    with: {
        "wasi:nn/graph.graph": crate::bindings::resources::Graph,
        "wasi:nn/tensor.tensor": crate::bindings::resources::Tensor,
        "wasi:nn/inference.graph-execution-context": crate::bindings::resources::ExecutionContext,
        "wasi:nn/errors.error": crate::bindings::resources::Error,
    },
});

/// The `transformer-links` world: the same imports (mapped onto the module above, so that one
/// linker and one set of host implementations serve both), exporting `transform` instead of
/// `detect`.
pub mod transformer {
    wasmtime::component::bindgen!({
        world: "transformer-links",
        path: "../../wit",
        exports: { default: async },
        with: {
            "prelabel:detector/types": super::prelabel::detector::types,
            "prelabel:detector/host": super::prelabel::detector::host,
            "prelabel:detector/image": super::prelabel::detector::image,
            "prelabel:detector/inference": super::prelabel::detector::inference,
            "wasi:nn/tensor": super::wasi::nn::tensor,
            "wasi:nn/graph": super::wasi::nn::graph,
            "wasi:nn/inference": super::wasi::nn::inference,
            "wasi:nn/errors": super::wasi::nn::errors,
        },
    });
}

pub use self::prelabel::detector::host::Level;
// `annotation`, `init-input` and `item` are used by the world itself, so they are
// already at the top of this module.
pub use self::prelabel::detector::types::{
    Bbox, Error as GuestError, ErrorKind, Geometry, MadeItem, ModelInfo, Output, Point, Value,
};

/// The host's side of wasi-nn's resources, as the bindings name them; their methods are in
/// `nn.rs`.
pub mod resources {
    use super::wasi::nn::errors::ErrorCode;
    use super::wasi::nn::tensor::TensorType;
    use crate::inference::{GraphId, Signature};

    /// A loaded graph: the worker's id for it, and its inputs' and outputs' names.
    pub struct Graph {
        pub(crate) id: GraphId,
        pub(crate) signature: Signature,
        /// Model bytes the host holds for it (passed to `load`), counted against the cap.
        pub(crate) held: usize,
    }

    /// A graph ready to compute (it holds its own use of the graph).
    pub struct ExecutionContext {
        pub(crate) id: GraphId,
        pub(crate) signature: Signature,
    }

    /// A tensor, held by the host for the guest.
    pub struct Tensor {
        pub(crate) dimensions: Vec<u32>,
        pub(crate) ty: TensorType,
        pub(crate) data: Vec<u8>,
    }

    impl Tensor {
        /// What the host holds for it: its bytes and its dimension list, both the guest's choice.
        pub(crate) fn held(&self) -> usize {
            self.data
                .len()
                .saturating_add(self.dimensions.len() * std::mem::size_of::<u32>())
        }
    }

    /// wasi-nn's error: a code, and what happened in words.
    pub struct Error {
        pub(crate) code: ErrorCode,
        pub(crate) data: String,
    }
}
