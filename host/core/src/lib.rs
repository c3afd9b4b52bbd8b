//! Prelabel: a local-first runtime for pre-annotation functions compiled to WebAssembly
//! components.
//!
//! Data flows one way: an [`item`] event → [`trigger`] → queued [`execution`] →
//! [`scheduler`] → an instance from the [`runtime`] (a [`package`] revision deployed as a
//! [`service`]) → [`annotation`]s in the [`store`].

pub mod annotation;
pub mod attempt;
pub mod batch;
pub mod coco;
pub mod compare;
pub mod cvat;
pub mod error;
pub mod evaluate;
pub mod event;
pub mod execution;
pub mod export;
pub mod ground_truth;
pub mod item;
pub mod labelstudio;
pub mod link;
pub mod local;
pub mod manifest;
pub mod named;
pub mod ops;
pub mod package;
pub mod predict;
pub mod replay;
pub mod review;
pub mod revision;
pub mod scaffold;
pub mod scheduler;
pub mod secret;
pub mod service;
pub mod thumbnail;
pub mod trigger;
pub mod watch;
pub mod worker;
pub mod workspace;

pub use error::{Error, Result};

// The layers below, under the names the core's modules use: rows and blobs, and where guests run.
pub use prelabel_files as files;
pub use prelabel_runtime as runtime;
pub use prelabel_store as store;

/// This host's version, recorded with every execution (provenance) and in exports.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");
