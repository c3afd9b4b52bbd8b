//! `prelabel annotations list | review | add | export`: an item's annotations, a person's
//! review of them, and a dataset's annotations as COCO, the seed's JSON or ours.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use prelabel::ops::Home;
use prelabel::results::annotation::{Geometry, Review};
use prelabel::results::export;
use prelabel::results::review::{Change, Manual};

use super::{named, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// An item's annotations, with where each came from and its review.
    List {
        #[arg(long)]
        item: i64,
    },
    /// Accept, reject, relabel or move an annotation (a new label or box makes it `edited`).
    Review {
        id: i64,
        #[arg(long, conflicts_with_all = ["reject", "pending"])]
        accept: bool,
        #[arg(long, conflicts_with = "pending")]
        reject: bool,
        /// Back to unreviewed.
        #[arg(long)]
        pending: bool,
        #[arg(long)]
        label: Option<String>,
        /// A new box: LEFT,TOP,RIGHT,BOTTOM in pixels.
        #[arg(long = "box", value_name = "L,T,R,B", value_parser = parse_box)]
        bbox: Option<Geometry>,
        /// Who reviews.
        #[arg(long)]
        by: Option<String>,
    },
    /// Draw an annotation no service made (`manual`).
    Add {
        #[arg(long)]
        item: i64,
        #[arg(long)]
        label: String,
        #[arg(long = "box", value_name = "L,T,R,B", value_parser = parse_box)]
        bbox: Geometry,
        #[arg(long)]
        by: Option<String>,
    },
    /// A dataset's annotations, each with its review state.
    Export {
        #[arg(long)]
        dataset: String,
        /// `json` (Prelabel's, with provenance), `coco`, `dataloop` (the seed platform's) or
        /// `cvat` (CVAT for images 1.1 XML).
        #[arg(long, value_parser = named::<export::Format>(), default_value = "json")]
        format: export::Format,
        /// Only annotations a person accepted, edited or drew.
        #[arg(long)]
        accepted_only: bool,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match self {
            Command::List { item } => print_json(&home.item_annotations(item)?)?,
            Command::Review {
                id,
                accept,
                reject,
                pending,
                label,
                bbox,
                by,
            } => {
                let state = [
                    (accept, Review::Accepted),
                    (reject, Review::Rejected),
                    (pending, Review::Pending),
                ]
                .into_iter()
                .find_map(|(given, state)| given.then_some(state));
                let change = Change {
                    state,
                    label,
                    geometry: bbox,
                    by,
                };
                print_json(&home.review(id, &change)?)?;
            }
            Command::Add {
                item,
                label,
                bbox,
                by,
            } => {
                let manual = Manual {
                    label,
                    geometry: bbox,
                    by,
                };
                print_json(&home.add_annotation(item, &manual)?)?;
            }
            Command::Export {
                dataset,
                format,
                accepted_only,
                output,
            } => {
                let bytes = home.export(&dataset, format, accepted_only)?.to_bytes();
                match output {
                    Some(path) => {
                        std::fs::write(&path, bytes)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!("wrote {}", path.display());
                    }
                    None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `L,T,R,B` as a box.
fn parse_box(text: &str) -> Result<Geometry> {
    let values: Vec<f32> = text
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("`{text}` is not four numbers LEFT,TOP,RIGHT,BOTTOM"))?;
    let [left, top, right, bottom] = values[..] else {
        bail!("`{text}` is not four numbers LEFT,TOP,RIGHT,BOTTOM");
    };
    Ok(Geometry::Box {
        left,
        top,
        right,
        bottom,
    })
}
