//! `prelabel trigger create | list | delete`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use prelabel::work::trigger;

use super::{named, print_json};
use prelabel::ops::Home;

#[derive(Debug, Subcommand)]
pub enum Command {
    Create {
        name: String,
        #[arg(long)]
        service: String,
        #[arg(long, default_value = "detect")]
        function: String,
        #[arg(long, value_parser = named::<trigger::Action>(), value_delimiter = ',', default_value = "created")]
        actions: Vec<trigger::Action>,
        /// Only items of this dataset (default: all).
        #[arg(long)]
        dataset: Option<String>,
        /// PATH=GLOB, PATH!=GLOB or PATH in A,B (repeatable, joined by AND).
        #[arg(long = "filter")]
        filters: Vec<String>,
        #[arg(long, value_parser = named::<trigger::Mode>(), default_value = "once")]
        mode: trigger::Mode,
    },
    /// Every trigger with its service, actions, filters and mode.
    List,
    /// Delete a trigger (executions it queued stay).
    Delete { name: String },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match &self {
            Command::Create {
                name,
                service,
                function,
                actions,
                dataset,
                filters,
                mode,
            } => {
                let t = home.create_trigger(&trigger::Create {
                    name: name.clone(),
                    service: service.clone(),
                    function: function.clone(),
                    actions: actions.clone(),
                    dataset: dataset.clone(),
                    filters: filters.clone(),
                    mode: *mode,
                })?;
                println!(
                    "created trigger {} -> {}.{}",
                    t.spec.name, t.spec.service, t.spec.function
                );
            }
            Command::List => print_json(&home.triggers()?)?,
            Command::Delete { name } => {
                home.delete_trigger(name)?;
                println!("deleted trigger {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
