//! Building a package's component from its sources: the manifest's `build` command (a
//! program and its arguments, no shell, run in the package folder), which `package push`,
//! `detect` and `watch` run before they read the component. A Python package's command
//! runs componentize-py; `watch` also builds a Cargo crate without one.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::package::manifest::{self, Manifest, ManifestError};
use crate::package::workspace::GUEST_TARGET;

/// What to run for a folder whose manifest has no `build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Nothing: the component is made some other way.
    Nothing,
    /// `cargo build --release --target wasm32-wasip2` when the folder is a crate.
    Cargo,
}

/// Why there is no component to read.
#[derive(Debug, thiserror::Error)]
pub enum NotBuilt {
    /// The manifest that says how to build does not read.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the package's build `{command}` failed: {status}")]
    Failed { command: String, status: String },
}

/// A build that ran and succeeded.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub command: String,
    pub secs: f64,
}

/// The command that builds the package in `dir`, if there is one.
pub fn command(dir: &Path, fallback: Fallback) -> Result<Option<Command>, NotBuilt> {
    let manifest = Manifest::from_file(&dir.join(manifest::FILE_NAME))?;
    let argv: Vec<String> = match manifest.build {
        Some(argv) => argv,
        None if fallback == Fallback::Cargo && dir.join("Cargo.toml").is_file() => {
            ["cargo", "build", "--release", "--target", GUEST_TARGET]
                .map(String::from)
                .to_vec()
        }
        None => return Ok(None),
    };
    let Some((program, args)) = argv.split_first() else {
        // The manifest refuses an empty `build`; this one was edited since.
        return Ok(None);
    };
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    Ok(Some(command))
}

/// Runs the package's build, if it has one. What the build prints goes to this process's
/// stderr, so that a command's own output (JSON, say) stays clean.
pub fn run(dir: &Path, fallback: Fallback) -> Result<Option<Built>, NotBuilt> {
    let Some(mut command) = command(dir, fallback)? else {
        return Ok(None);
    };
    let shown = show(&command);
    command.stdout(std::io::stderr());
    tracing::info!("building {}: {shown}", dir.display());
    let started = Instant::now();
    let status = command.status();
    let secs = started.elapsed().as_secs_f64();
    match status {
        Ok(status) if status.success() => Ok(Some(Built {
            command: shown,
            secs,
        })),
        Ok(status) => Err(NotBuilt::Failed {
            command: shown,
            status: status.to_string(),
        }),
        Err(e) => Err(NotBuilt::Failed {
            command: shown,
            status: format!("could not start: {e}"),
        }),
    }
}

/// The command as a person would type it.
fn show(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
