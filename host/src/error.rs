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
    /// A thing the user named does not exist: what kind, the name (or id) as given, and a
    /// message that says how to find the ones that do.
    #[error("{message}")]
    NotFound {
        kind: Kind,
        name: String,
        message: String,
    },
    /// An argument that does not make sense; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error("invalid filter `{filter}`: {message}")]
    Filter { filter: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of things a user names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Package,
    Revision,
    Service,
    Trigger,
    Dataset,
    Item,
    Execution,
}

impl Error {
    pub fn not_found(kind: Kind, name: impl ToString, message: String) -> Self {
        Error::NotFound {
            kind,
            name: name.to_string(),
            message,
        }
    }
}

/// The message of a caught panic, when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
