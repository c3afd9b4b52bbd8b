//! `prelabel new python|rust NAME`: a package folder to start from (`prelabel::scaffold`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::ValueEnum;

use prelabel::scaffold::{self, Language};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lang {
    /// A Python class, built with componentize-py (installed on first build).
    Python,
    /// A Rust crate, built with cargo for wasm32-wasip2.
    Rust,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    language: Lang,
    /// The package's name (lowercase letters, digits and `-`).
    name: String,
    /// The folder to make (default: NAME here).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl Args {
    pub fn run(self) -> Result<ExitCode> {
        let language = match self.language {
            Lang::Python => Language::Python,
            Lang::Rust => Language::Rust,
        };
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(&self.name));
        let files = scaffold::create(&dir, &self.name, language)?;
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
