//! `prelabel compare`: runs a candidate package on a dataset beside a service's annotations,
//! storing nothing, and reports what a switch would change (text, `--json`, `--html` overlays).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use prelabel::ops::Home;
use prelabel::work::compare::{self, Request};

use super::{print_json, printable};

/// Compare a candidate package with a service's annotations on a dataset, before switching.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    dataset: String,
    /// The service whose stored annotations are the current ones.
    #[arg(long)]
    service: String,
    /// The candidate: a pushed package, `NAME` (its latest revision) or `NAME@REVISION`.
    #[arg(long, value_name = "PACKAGE[@REVISION]")]
    against: String,
    /// Init values for the candidate, over what the service would carry to it (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    init: Vec<String>,
    /// Boxes with the same label overlapping at least this much are the same object.
    #[arg(long, default_value_t = compare::DEFAULT_IOU)]
    iou: f32,
    /// Write a page of overlays (both sets of boxes on each image, differences marked).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Print the whole comparison as JSON instead of the report.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let (package, revision) = match self.against.rsplit_once('@') {
            Some((name, n)) => (
                name.to_string(),
                Some(n.parse::<i64>().with_context(|| {
                    format!("--against {}: the revision must be a number", self.against)
                })?),
            ),
            None => (self.against.clone(), None),
        };
        let comparison = home.compare(&Request {
            dataset: self.dataset,
            service: self.service,
            package,
            revision,
            init: self.init,
            iou: self.iou,
        })?;
        if let Some(path) = &self.html {
            let page = home.compare_html(&comparison)?;
            std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if self.json {
            print_json(&comparison)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{} against {} (service {}) on {}, IoU >= {}",
            comparison.candidate,
            comparison.current,
            comparison.service,
            comparison.dataset,
            comparison.iou
        );
        println!("item\tmatched\tadded\tremoved\tmean shift\tms now\tms candidate");
        for item in &comparison.items {
            let shift = if item.matched.is_empty() {
                "-".to_string()
            } else {
                let sum: f32 = item.matched.iter().map(|m| m.confidence_shift).sum();
                format!("{:+.3}", sum / item.matched.len() as f32)
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
                printable(&item.name),
                item.matched.len(),
                item.added.len(),
                item.removed.len(),
                shift,
                item.current_ms
                    .map_or_else(|| "-".to_string(), |ms| ms.to_string()),
                item.candidate_ms,
                item.error
                    .as_ref()
                    .map_or_else(String::new, |e| format!("\tfailed: {}", printable(e)))
            );
        }
        for (label, (matched, added, removed)) in compare::by_label(&comparison.items) {
            println!(
                "label {}: {matched} matched, {added} added, {removed} removed",
                printable(&label)
            );
        }
        println!("{}", compare::summary_line(&comparison.summary));
        Ok(ExitCode::SUCCESS)
    }
}
