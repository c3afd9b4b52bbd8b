//! Prelabel: a local-first runtime for pre-annotation functions compiled to WebAssembly
//! components.
//!
//! The folders follow the flow. A [`package`] is pushed into the [`catalog`] as a revision
//! and deployed as a service; [`items`] come in, and each change fires the triggers of
//! [`work`], which queue executions that the scheduler runs in instances from the
//! [`runtime`]; what they find are the [`results`] (annotations, reviewed and exported),
//! which the labelling tools read through the [`integrations`]. [`ops`] is the one door the
//! API and the CLI use; [`people`] are the accounts that share a home. Below it all: the [`store`] (rows and blobs) and the [`files`].

pub mod catalog;
pub mod error;
pub mod ground_truth;
pub mod integrations;
pub mod items;
pub mod named;
pub mod ops;
pub mod package;
pub mod people;
pub mod results;
pub mod work;

pub use error::{Error, Result};

// The layers below, under the names the core's modules use: rows and blobs, and where guests run.
pub use prelabel_files as files;
pub use prelabel_runtime as runtime;
pub use prelabel_store as store;

/// This host's version, recorded with every execution (provenance) and in exports.
pub const HOST_VERSION: &str = env!("CARGO_PKG_VERSION");
