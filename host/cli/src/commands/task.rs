//! `prelabel task list | show NAME | items NAME [--decided] | complete NAME ITEM | discard NAME ITEM`:
//! the review tasks of pipelines' task nodes, and people's decisions on the items they hold.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::print_json;
use prelabel::ops::Home;
use prelabel::package::pipeline::Outcome;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every review task, with how many items wait and were decided.
    List,
    /// One task's counts and the pipelines that feed it.
    Show { name: String },
    /// The items a task holds, oldest first (with --decided: those decided, newest first).
    Items {
        name: String,
        #[arg(long)]
        decided: bool,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Complete an item a task holds: it goes on along the task's `completed` edges.
    Complete {
        name: String,
        item: i64,
        /// Who decided (recorded with the decision).
        #[arg(long)]
        by: Option<String>,
    },
    /// Discard an item a task holds: it goes on along the task's `discarded` edges.
    Discard {
        name: String,
        item: i64,
        #[arg(long)]
        by: Option<String>,
    },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match self {
            Command::List => print_json(&home.tasks()?)?,
            Command::Show { name } => print_json(&home.task(&name)?)?,
            Command::Items {
                name,
                decided,
                limit,
            } => print_json(&home.task_items(&name, decided, limit)?)?,
            Command::Complete { name, item, by } => {
                print_json(&home.decide(&name, item, Outcome::Completed, by.as_deref())?)?
            }
            Command::Discard { name, item, by } => {
                print_json(&home.decide(&name, item, Outcome::Discarded, by.as_deref())?)?
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
