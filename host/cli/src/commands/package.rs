//! `prelabel package push | list | show`: packages and their revisions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use prelabel::ops::Home;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check and store a package directory as a new revision.
    Push {
        dir: PathBuf,
        #[command(flatten)]
        root: RootArg,
    },
    List,
    /// Revisions of a package, with digests.
    Show {
        name: String,
    },
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

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match self {
            Command::Push { dir, root } => {
                let r = home.push(&dir, root.get())?;
                println!(
                    "pushed {} revision {} (version {}, component sha256:{})",
                    r.package, r.revision, r.version, r.component_digest
                );
                for (name, (digest, size)) in &r.artifacts {
                    println!("  artifact {name}: sha256:{digest} ({size} bytes)");
                }
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
