//! The platform's error: what an operation on the store can fail with, each variant carrying
//! the data that names its cause (the CLI prints it, the HTTP API maps it to a status).

use std::path::PathBuf;

use crate::ground_truth::GroundTruthError;
use crate::package::PackageError;
use crate::package::archive::ArchiveError;
use crate::package::manifest::InitError;
use crate::package::pipeline::SpecError;
use crate::runtime::{ExecError, LoadError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Sql(#[from] crate::store::DbError),
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{package}: {error}")]
    Load {
        package: String,
        #[source]
        error: LoadError,
    },
    /// Instantiating or initialising a guest failed.
    #[error("{package}: {error}")]
    Exec {
        package: String,
        #[source]
        error: ExecError,
    },
    #[error(transparent)]
    Init(#[from] InitError),
    #[error(transparent)]
    Pipeline(#[from] SpecError),
    #[error(transparent)]
    GroundTruth(#[from] GroundTruthError),
    /// The engine could not be set up (its compile cache, say).
    #[error("cannot set up the runtime: {0}")]
    Runtime(#[source] LoadError),
    /// A thing the user named does not exist: what kind, the name (or id) as given, and a
    /// message that says how to find the ones that do.
    #[error("{message}")]
    NotFound {
        kind: Kind,
        name: String,
        message: String,
    },
    /// An argument out of its range: which one (its name as a flag, which is also the
    /// API's field name with `-` for `_`) and why.
    #[error("--{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("invalid filter `{filter}`: {message}")]
    Filter { filter: String, message: String },
    /// A function the service's revision does not declare.
    #[error(
        "service `{service}` has no function `{function}` (package {package} revision {revision} declares: {})",
        declared.join(", ")
    )]
    NoFunction {
        service: String,
        function: String,
        package: String,
        revision: i64,
        declared: Vec<String>,
    },
    /// A name that is taken (a trigger), or a service asked to run another package.
    #[error("{message}")]
    Conflict {
        kind: Kind,
        name: String,
        message: String,
    },
    /// An account asked for what its role or assignment does not allow (an item of a task it
    /// is not assigned to).
    #[error("{message}")]
    Forbidden { message: String },
    /// A linked item's bytes could not be downloaded.
    #[error("download failed: {url}: {source}")]
    Download {
        url: String,
        #[source]
        source: crate::runtime::download::DownloadError,
    },
    /// An execution another tool waits on ended otherwise than in success.
    #[error("execution {execution} ended {status}: {error}")]
    Failed {
        execution: i64,
        /// The status it ended in, by name (`failed`, `timeout`, ...).
        status: &'static str,
        error: String,
    },
    /// An execution another tool waits on is still queued or running.
    #[error(
        "execution {execution} has not ended after {secs} s; it stays queued, and its annotations will be stored"
    )]
    Pending { execution: i64, secs: u64 },
    /// Another scheduler holds the home.
    #[error(
        "another `prelabel serve` or `prelabel work` is running on {} (one scheduler per home)",
        home.display()
    )]
    HomeBusy { home: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    Annotation,
    Batch,
    Secret,
    Pipeline,
    Task,
    User,
    Token,
}

impl Error {
    /// A write failed because a disk is full (the database's, the blobs', a file's).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Store(e) => e.is_disk_full(),
            Error::Sql(e) => e.is_disk_full(),
            Error::Io { source, .. } => crate::store::db::is_storage_full(source),
            _ => false,
        }
    }

    pub fn not_found(kind: Kind, name: impl ToString, message: String) -> Self {
        Error::NotFound {
            kind,
            name: name.to_string(),
            message,
        }
    }

    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// An I/O error on `path`, as a closure for `map_err`.
    pub fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
