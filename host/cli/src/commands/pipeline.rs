//! `prelabel pipeline apply FILE | list | show NAME | pause NAME | resume NAME | delete NAME |
//! path ITEM`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::print_json;
use prelabel::items::item::Change;
use prelabel::ops::Home;
use prelabel::package::pipeline::Spec;
use prelabel::work::pipeline::Applied;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store a pipeline file (pipeline.toml): a new pipeline, or a new version of it when it
    /// changed; refused, naming what is wrong, when its graph or a service it names is not right.
    Apply { file: PathBuf },
    /// Every pipeline: its newest version and whether it is paused.
    List,
    /// One pipeline, with its graph.
    Show { name: String },
    /// Stop new items entering a pipeline (items on their way finish).
    Pause { name: String },
    /// Let new items enter a paused pipeline again.
    Resume { name: String },
    /// Delete a pipeline and its versions.
    Delete { name: String },
    /// An item's path: every run it took part in, with the nodes it entered and how each went.
    Path { item: i64 },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match self {
            Command::Apply { file } => {
                let Applied { change, pipeline } = home.apply_pipeline(&Spec::from_file(&file)?)?;
                let what = match change {
                    Change::Created => "created",
                    Change::Updated => "updated",
                    Change::Unchanged => "unchanged",
                };
                println!(
                    "{what} pipeline {} version {} ({} nodes, {} edges)",
                    pipeline.name,
                    pipeline.version,
                    pipeline.spec.nodes.len(),
                    pipeline.spec.edges.len()
                );
            }
            Command::List => print_json(&home.pipelines()?)?,
            Command::Show { name } => print_json(&home.pipeline(&name)?)?,
            Command::Pause { name } => print_json(&home.pause_pipeline(&name, true)?)?,
            Command::Resume { name } => print_json(&home.pause_pipeline(&name, false)?)?,
            Command::Path { item } => print_json(&home.item_paths(item)?)?,
            Command::Delete { name } => {
                home.delete_pipeline(&name)?;
                println!("deleted pipeline {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
