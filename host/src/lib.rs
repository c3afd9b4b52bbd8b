//! Prelabel: a local-first runtime for pre-annotation functions compiled to WebAssembly
//! components.
//!
//! Data flows one way: a package (component + manifest + artifacts) is loaded by the
//! [`runtime`], an instance is initialised once with the service's init inputs, and each
//! item goes through `detect` to become [`annotation`]s.

pub mod annotation;
pub mod coco;
pub mod item;
pub mod local;
pub mod manifest;
pub mod package;
pub mod runtime;
pub mod workspace;
