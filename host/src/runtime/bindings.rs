//! Host-side bindings of the `prelabel:detector` world (`wit/detector.wit`).

wasmtime::component::bindgen!({
    world: "detector",
    path: "../wit",
});

pub use self::prelabel::detector::host::Level;
// `annotation`, `init-input` and `item` are used by the world itself, so they are
// already at the top of this module.
pub use self::prelabel::detector::types::{
    Bbox, Error as GuestError, ErrorKind, Geometry, ModelInfo, Point, Value,
};
