//! `prelabel annotations export`: a dataset's annotations as COCO, the seed's JSON or ours.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;

use prelabel::export;

use super::named;
use prelabel::ops::Home;

#[derive(Debug, Subcommand)]
pub enum Command {
    Export {
        #[arg(long)]
        dataset: String,
        #[arg(long, value_parser = named::<export::Format>(), default_value = "json")]
        format: export::Format,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let Command::Export {
            dataset,
            format,
            output,
        } = self;
        let value = home.export(&dataset, format)?;
        let text = serde_json::to_string_pretty(&value)?;
        match output {
            Some(path) => {
                std::fs::write(&path, text + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => println!("{text}"),
        }
        Ok(ExitCode::SUCCESS)
    }
}
