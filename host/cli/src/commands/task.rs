//! `prelabel task list | show | items | create | assign | unassign | qa | complete | discard`: review
//! tasks (pipelines' task nodes, or made over a dataset), who they are assigned to, and
//! people's decisions on the items they hold.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::print_json;
use prelabel::ops::Home;
use prelabel::package::pipeline::Outcome;
use prelabel::work::task::queue::Create;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every review task, with how many items wait and were decided, and by whom.
    List,
    /// One task's counts, assignees, each reviewer's progress and the pipelines that feed it.
    Show { name: String },
    /// The items a task holds, oldest first (with --decided: those decided, newest first).
    Items {
        name: String,
        #[arg(long)]
        decided: bool,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Make a task over a dataset's items, those there now and those to come (a pipeline of
    /// its own); reviewers then take its items one at a time ("next item").
    Create {
        name: String,
        #[arg(long)]
        dataset: String,
        /// Only items matching this trigger filter (repeatable).
        #[arg(long = "filter")]
        filters: Vec<String>,
        /// Assign it to this account (repeatable; none: any reviewer granted the dataset).
        #[arg(long = "assign", value_name = "USER")]
        assign: Vec<String>,
        /// The share of completions, in percent, that a second reviewer checks (QA).
        #[arg(long = "qa", value_name = "PERCENT", default_value_t = 0)]
        qa_percent: u8,
    },
    /// Set the share of completions, in percent, that a second reviewer checks (QA).
    Qa { name: String, percent: u8 },
    /// Assign a task to an account.
    Assign { name: String, user: String },
    /// Take a task back from an account.
    Unassign { name: String, user: String },
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
            Command::Create {
                name,
                dataset,
                filters,
                assign,
                qa_percent,
            } => print_json(&home.create_task(&Create {
                name,
                dataset,
                filters,
                assign,
                qa_percent,
            })?)?,
            Command::Qa { name, percent } => print_json(&home.set_task_qa(&name, percent)?)?,
            Command::Assign { name, user } => print_json(&home.assign_task(&name, &user, true)?)?,
            Command::Unassign { name, user } => {
                print_json(&home.assign_task(&name, &user, false)?)?
            }
            Command::Complete { name, item, by } => {
                print_json(&home.decide(&name, item, Outcome::Completed, by.as_deref(), None)?)?
            }
            Command::Discard { name, item, by } => {
                print_json(&home.decide(&name, item, Outcome::Discarded, by.as_deref(), None)?)?
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
