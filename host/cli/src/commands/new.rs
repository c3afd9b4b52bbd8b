//! `prelabel new python|rust NAME`: a package folder to start from (`prelabel::package::scaffold`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use prelabel::package::scaffold::{self, Language};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `python` (a class, built with componentize-py, installed on first build) or `rust`
    /// (a crate, built with cargo for wasm32-wasip2).
    #[arg(value_parser = super::named::<Language>())]
    language: Language,
    /// The package's name (lowercase letters, digits and `-`).
    name: String,
    /// The folder to make (default: NAME here).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Args {
    pub fn run(self) -> Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(&self.name));
        let files = scaffold::create(&dir, &self.name, self.language)?;
        println!("created {} ({} files):", dir.display(), files.len());
        for file in files {
            println!("  {}", file.display());
        }
        println!(
            "try it: prelabel detect {} IMAGE... (builds it first)",
            dir.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
