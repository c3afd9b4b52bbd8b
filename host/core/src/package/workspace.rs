//! The source checkout this binary was built from: where the demo finds guest packages and
//! sample images, and how guests are built (`cargo build --target wasm32-wasip2`), installing
//! the target first when it is missing, so that a fresh clone needs no manual step.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target detectors are compiled to.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "no Prelabel source checkout found (looked for wit/detector.wit above {0}); the demo and guest builds need one"
    )]
    NoCheckout(PathBuf),
    #[error("`{command}` could not run: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed with {status}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
    },
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    /// The checkout this binary was built in, if it is still there, else the nearest
    /// checkout above the current directory.
    pub fn find() -> Result<Self, BuildError> {
        let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        std::iter::once(built_in.as_path())
            .chain(cwd.ancestors())
            .find(|dir| dir.join("wit/detector.wit").is_file() && dir.join("Cargo.toml").is_file())
            .map(|dir| Self {
                root: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
            })
            .ok_or(BuildError::NoCheckout(cwd))
    }

    /// The package directory of a guest crate (`guest/<name>`).
    pub fn package_dir(&self, name: &str) -> PathBuf {
        self.root.join("guest").join(name)
    }

    /// The sample photos shipped with the repository.
    pub fn samples_dir(&self) -> PathBuf {
        self.root.join("tests/fixtures/images")
    }

    /// Builds the component of a guest crate in release mode. Cheap when nothing changed.
    pub fn build_guest(&self, package: &str) -> Result<(), BuildError> {
        ensure_target()?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(&self.root).args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "-p",
            package,
        ]);
        run(&mut command)
    }
}

/// Installs the guest target with rustup when it is missing. Without rustup, cargo's own
/// error will say what is missing.
fn ensure_target() -> Result<(), BuildError> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    if String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|l| l.trim() == GUEST_TARGET)
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", GUEST_TARGET]))
}

fn run(command: &mut Command) -> Result<(), BuildError> {
    let text = format!("{command:?}").replace('"', "");
    let status = command.status().map_err(|source| BuildError::Spawn {
        command: text.clone(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed {
            command: text,
            status,
        })
    }
}
