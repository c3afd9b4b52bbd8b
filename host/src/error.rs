//! The platform's error: what a command on the store can fail with, each naming its cause.

use crate::manifest::InitError;
use crate::package::PackageError;
use crate::runtime::{ExecError, LoadError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("{package}: {error}")]
    Load { package: String, error: LoadError },
    /// Instantiating or initialising a guest failed.
    #[error("{package}: {error}")]
    Exec { package: String, error: ExecError },
    #[error(transparent)]
    Init(#[from] InitError),
    /// A named thing does not exist; the message says what and how to list them.
    #[error("{0}")]
    NotFound(String),
    /// An argument that does not make sense; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("invalid filter `{filter}`: {message}")]
    Filter { filter: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of a caught panic, when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
