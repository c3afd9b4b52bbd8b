//! `prelabel evaluate`: a service's stored boxes on a dataset scored against a COCO
//! ground-truth file with COCOeval's definitions (mAP@0.5, mAP@[.5:.95], precision and
//! recall per label).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use prelabel::ground_truth::GroundTruth;
use prelabel::ops::Home;
use prelabel::results::evaluate::Request;

use super::{print_json, printable};

/// Score a service's annotations on a dataset against a COCO ground-truth file.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    dataset: String,
    /// A COCO file (`images` named as the dataset's items, `categories` named as the labels).
    #[arg(long, value_name = "COCO_FILE")]
    ground_truth: PathBuf,
    /// Whose boxes (default: the one service that annotated the dataset).
    #[arg(long)]
    service: Option<String>,
    /// Print the evaluation as JSON instead of the table.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let path = &self.ground_truth;
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let ground_truth =
            GroundTruth::parse(&bytes).with_context(|| format!("{}", path.display()))?;
        let evaluation = home.evaluate(&Request {
            dataset: self.dataset,
            service: self.service,
            ground_truth,
        })?;
        if self.json {
            print_json(&evaluation)?;
            return Ok(ExitCode::SUCCESS);
        }
        let number = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        println!(
            "service {} on dataset {}: {} images with ground truth",
            evaluation.service, evaluation.dataset, evaluation.images
        );
        println!("label\tground truth\tcrowd\tboxes\tAP50\tAP\tprecision\trecall");
        for l in &evaluation.labels {
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                printable(&l.label),
                l.ground_truth,
                l.crowd,
                l.detections,
                number(l.ap50),
                number(l.ap),
                number(l.precision),
                number(l.recall)
            );
        }
        println!(
            "mAP@0.5 {}, mAP@[.5:.95] {} (COCOeval; precision and recall at IoU 0.5 of the boxes as stored)",
            number(evaluation.map50),
            number(evaluation.map)
        );
        if !evaluation.missing.is_empty() {
            println!(
                "not in the dataset, left out: {}",
                evaluation
                    .missing
                    .iter()
                    .map(|n| printable(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if evaluation.unlabelled_items > 0 {
            println!(
                "{} items the ground truth does not name: not scored",
                evaluation.unlabelled_items
            );
        }
        for (label, boxes) in &evaluation.unscored {
            println!(
                "label {}: {boxes} boxes, no such category in the ground truth: not scored",
                printable(label)
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
