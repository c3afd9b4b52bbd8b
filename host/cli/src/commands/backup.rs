//! `prelabel backup DIR` and `prelabel restore DIR`: a store copied while it serves into a
//! folder that is a home of its own, and back into an empty home.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use prelabel::ops::Home;

use super::migrate::{print_copied, report};

#[derive(Debug, clap::Args)]
pub struct Backup {
    /// The backup's folder (made if missing). A backup already there is replaced; the blobs
    /// it holds are kept, so a second backup copies only the new ones.
    dir: PathBuf,
}

impl Backup {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let backed_up = home.backup(&self.dir)?;
        print_copied(&backed_up.from, &backed_up.to, &backed_up.copied);
        println!(
            "a home of its own: `prelabel --home {} check` reads every blob",
            self.dir.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, clap::Args)]
pub struct Restore {
    /// A folder `prelabel backup` wrote. It is copied into the store of --home (or
    /// --store/--blobs), which must be empty, and that store is checked.
    dir: PathBuf,
}

impl Restore {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        report(&home.restore(&self.dir)?)
    }
}
