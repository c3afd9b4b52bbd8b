//! Host-side bindings of the `prelabel:detector` world (`wit/detector.wit`).

wasmtime::component::bindgen!({
    world: "detector",
    path: "../wit",
    // Calls into the guest are async so that a deadline can end one that is parked in a
    // host call; native inference is awaited (it runs in a worker process) and may trap.
    imports: { "prelabel:detector/inference.run": async | trappable },
    exports: { default: async },
});

pub use self::prelabel::detector::host::Level;
// `annotation`, `init-input` and `item` are used by the world itself, so they are
// already at the top of this module.
pub use self::prelabel::detector::types::{
    Bbox, Error as GuestError, ErrorKind, Geometry, ModelInfo, Point, Value,
};
