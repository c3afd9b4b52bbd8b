//! `prelabel executions list | logs | rerun`, and `prelabel execute` (one item, now).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use prelabel::named::Named;
use prelabel::{work::batch, work::execution};

use super::{named, print_json, printable};
use prelabel::ops::Home;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every execution: service, item, status, attempts, duration, error.
    List {
        /// Only executions with this status.
        #[arg(long, value_parser = named::<execution::Status>())]
        status: Option<execution::Status>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The captured logs of an execution (guest output, log calls, attempts).
    Logs { id: i64 },
    /// Queue again every execution with a status (default: failed and timed-out).
    Rerun {
        #[arg(long, value_parser = named::<execution::Status>())]
        status: Option<execution::Status>,
    },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match &self {
            Command::List { status, json } => {
                let all = home.executions(*status)?;
                if *json {
                    print_json(&all)?;
                } else {
                    println!(
                        "{:>6}  {:<20} {:<28} {:<10} {:>8} {:>9} {:>7}  error",
                        "id", "service", "item", "status", "attempts", "ms", "cold ms"
                    );
                    for e in all {
                        println!(
                            "{:>6}  {:<20} {:<28} {:<10} {:>8} {:>9} {:>7}  {}",
                            e.id,
                            e.service,
                            e.item,
                            e.status.name(),
                            e.attempts,
                            e.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                            // Of the time, what making its instance took (none: a warm one).
                            e.cold_start_ms.map(|d| d.to_string()).unwrap_or_default(),
                            // Errors quote guests: no escape sequence reaches the terminal.
                            printable(&e.error.unwrap_or_default())
                        );
                    }
                }
            }
            Command::Logs { id } => print!("{}", home.execution(*id)?.logs),
            Command::Rerun { status } => {
                let rerun = home.rerun(*status)?;
                println!(
                    "queued {} executions again; skipped {} (already rerun, or a later execution exists)",
                    rerun.queued.len(),
                    rerun.skipped
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, clap::Args)]
pub struct Execute {
    service: String,
    #[arg(long, default_value = "detect")]
    function: String,
    /// Run on this item now, in this process, and print the result.
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    item: Option<i64>,
    /// Queue on every item of this dataset (that matches every --filter), in one transaction,
    /// for the scheduler (`serve` or `work`) to run.
    #[arg(long)]
    dataset: Option<String>,
    /// PATH=GLOB, PATH!=GLOB or PATH in A,B (repeatable, joined by AND), as for triggers.
    #[arg(long = "filter", requires = "dataset")]
    filters: Vec<String>,
}

impl Execute {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let Some(item) = self.item else {
            let batch = home.batch(&batch::Request {
                service: self.service,
                function: self.function,
                dataset: self.dataset.unwrap_or_default(),
                filters: self.filters,
            })?;
            print_json(&batch)?;
            eprintln!(
                "queued {} executions as batch {} (progress: GET /api/batches/{}; a running \
                 `prelabel serve` or `prelabel work` runs them)",
                batch.total, batch.id, batch.id
            );
            return Ok(ExitCode::SUCCESS);
        };
        let executed = home.execute(&self.service, &self.function, item)?;
        let e = &executed.execution;
        print_json(&serde_json::json!({
            "execution": e,
            "logs": e.logs,
            "annotations": executed.annotations
        }))?;
        Ok(if e.status == execution::Status::Success {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// Run exactly what an execution ran (component, artifacts, init values, the item's bytes)
/// again, storing nothing, and say whether the annotations are byte-identical.
#[derive(Debug, clap::Args)]
pub struct Replay {
    execution: i64,
}

impl Replay {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let replay = home.replay(self.execution)?;
        print_json(&replay)?;
        eprintln!(
            "execution {} on {} ({}): {}",
            replay.execution_id,
            replay.item,
            replay.revision,
            match (&replay.error, replay.identical) {
                (Some(error), _) => format!("the replay failed: {error}"),
                (None, true) => format!("identical ({} annotations)", replay.recorded),
                (None, false) => format!(
                    "different: {} annotations recorded, {} now",
                    replay.recorded, replay.replayed
                ),
            }
        );
        Ok(if replay.identical {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
