//! `prelabel check`: SQLite's integrity check and every blob on disk.

use std::process::ExitCode;

use anyhow::Result;

use super::Context;

pub fn run(ctx: &Context) -> Result<ExitCode> {
    let problems = ctx.store()?.check()?;
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
