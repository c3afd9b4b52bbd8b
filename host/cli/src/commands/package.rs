//! `prelabel package push | pack | list | show`: packages and their revisions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use prelabel::ops::Home;
use prelabel::package::build;

/// A local archive is the user's own file: bounded only against a runaway decompression.
const LOCAL_ARCHIVE_LIMIT: u64 = 16 << 30;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check and store a package as a new revision.
    Push {
        /// A package folder, or a `.tar.gz` written by `package pack`.
        dir: PathBuf,
        #[command(flatten)]
        root: RootArg,
        #[command(flatten)]
        build: BuildArg,
    },
    /// Write a package as one self-contained `.tar.gz`, to push it to another home
    /// (`POST /api/packages`, or `package push FILE`).
    Pack {
        dir: PathBuf,
        /// The archive to write (default: NAME-VERSION.tar.gz here).
        #[arg(short, long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        root: RootArg,
        #[command(flatten)]
        build: BuildArg,
    },
    /// Every package with its latest revision.
    List,
    /// Revisions of a package, with digests.
    Show { name: String },
}

/// Where a package's files may come from, beyond its own folder.
#[derive(Debug, clap::Args)]
pub struct RootArg {
    /// A folder holding the package that its `component` and `artifacts` paths may reach
    /// into (for example a source checkout with `target/` and `models/`). Without it a
    /// package reads only files inside its own folder.
    #[arg(long, value_name = "DIR", env = "PRELABEL_PACKAGE_ROOT")]
    root: Option<PathBuf>,
}

impl RootArg {
    pub fn get(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

/// Whether to run the manifest's `build` first.
#[derive(Debug, clap::Args)]
pub struct BuildArg {
    /// Read the component as it is; without this, a manifest's `build` command (a Python
    /// package's componentize-py, say) runs first, in the package folder.
    #[arg(long)]
    no_build: bool,
}

impl BuildArg {
    /// Builds the package in `dir` unless told not to, or it has no `build` (or `dir` is
    /// an archive, which is built already). A folder whose manifest does not read is left
    /// to the package's loading, which names what is wrong with it.
    pub fn run(&self, dir: &Path) -> Result<()> {
        if self.no_build || !dir.is_dir() {
            return Ok(());
        }
        match build::run(dir, build::Fallback::Nothing) {
            Ok(_) | Err(build::NotBuilt::Manifest(_)) => Ok(()),
            Err(failed) => Err(failed.into()),
        }
    }
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match self {
            Command::Push { dir, root, build } => {
                build.run(&dir)?;
                let r = if dir.is_file() {
                    let bytes = std::fs::read(&dir)
                        .with_context(|| format!("cannot read {}", dir.display()))?;
                    home.push_archive(&bytes, LOCAL_ARCHIVE_LIMIT)?
                } else {
                    home.push(&dir, root.get())?
                };
                println!(
                    "pushed {} revision {} (version {}, component sha256:{})",
                    r.package, r.revision, r.version, r.component_digest
                );
                for (name, (digest, size)) in &r.artifacts {
                    println!("  artifact {name}: sha256:{digest} ({size} bytes)");
                }
            }
            Command::Pack {
                dir,
                out,
                root,
                build,
            } => {
                build.run(&dir)?;
                let packed = home.pack(&dir, root.get(), out.as_deref())?;
                println!(
                    "packed {} {} into {} ({} bytes)",
                    packed.package,
                    packed.version,
                    packed.path.display(),
                    packed.bytes
                );
            }
            Command::List => {
                println!(
                    "{:<24} {:>8}  {:<12} created",
                    "package", "revision", "version"
                );
                for r in home.packages()? {
                    println!(
                        "{:<24} {:>8}  {:<12} {}",
                        r.package, r.revision, r.version, r.created_at
                    );
                }
            }
            Command::Show { name } => {
                for r in home.revisions(&name)? {
                    println!(
                        "{} revision {} (version {}), {}",
                        r.package, r.revision, r.version, r.created_at
                    );
                    println!("  component sha256:{}", r.component_digest);
                    for (a, (digest, size)) in &r.artifacts {
                        println!("  artifact {a}: sha256:{digest} ({size} bytes)");
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
