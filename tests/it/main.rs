//! The integration tests: one binary (one link of wasmtime and tract on a two-core machine,
//! not one per file), a module per area, each driving the real `prelabel` binary.

mod support;

mod access;
mod api;
mod backup;
mod browser;
mod centerface;
mod compare;
mod cvat;
mod deploy;
mod detect;
mod evaluate;
mod faults;
mod fuzz_smoke;
mod house;
mod labelstudio;
mod link;
mod manifest;
mod metrics;
mod new;
mod onnx;
mod outbound;
mod people;
mod pipeline;
mod platform;
mod postgres;
mod provenance;
mod python;
mod queue;
mod remote;
mod review_browser;
mod sandbox;
mod scaling;
mod watch;
