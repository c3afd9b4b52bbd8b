//! `prelabel serve` and `prelabel work`: the scheduler, until Ctrl-C or until idle.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};

use prelabel::ops::Home;

#[derive(Debug, clap::Args)]
pub struct Work {
    #[arg(long)]
    pub until_idle: bool,
}

pub fn run(home: &Home, until_idle: bool) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Ctrl-C: stop taking work, let running executions finish.
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let interrupted = home.serve(stop, until_idle)?;
    if interrupted.requeued > 0 {
        eprintln!(
            "re-queued {} executions interrupted by a stopped host",
            interrupted.requeued
        );
    }
    if interrupted.failed > 0 {
        eprintln!(
            "failed {} executions: the host had stopped during them more often than their max_attempts \
             (or the process running them directly is gone)",
            interrupted.failed
        );
    }
    Ok(ExitCode::SUCCESS)
}
