//! Host-side bindings of the `prelabel:detector` world (`wit/detector.wit`), as the host
//! links it: with wasi-nn (`wit/deps/wasi-nn`) and the older `inference` interface.

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
        "wasi:nn/graph.graph": super::nn::Graph,
        "wasi:nn/tensor.tensor": super::nn::Tensor,
        "wasi:nn/inference.graph-execution-context": super::nn::ExecutionContext,
        "wasi:nn/errors.error": super::nn::Error,
    },
});

pub use self::prelabel::detector::host::Level;
// `annotation`, `init-input` and `item` are used by the world itself, so they are
// already at the top of this module.
pub use self::prelabel::detector::types::{
    Bbox, Error as GuestError, ErrorKind, Geometry, ModelInfo, Point, Value,
};
