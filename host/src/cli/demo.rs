//! `prelabel demo`: the seed tutorial's whole flow on the sample photos (see `crate::demo`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the annotated photos and the exports (default: HOME/demo).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Args {
    pub fn run(self, ctx: &Context) -> Result<ExitCode> {
        let out = self.out.unwrap_or_else(|| ctx.home.join("demo"));
        crate::demo::run(ctx.runtime()?, &out)?;
        Ok(ExitCode::SUCCESS)
    }
}
