//! `prelabel new python|rust NAME`: a package folder to start from
//! (`prelabel::package::scaffold`); `prelabel new onnx NAME --model FILE`: a package around
//! a trained detector, no code (`prelabel::package::onnx`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

use prelabel::package::onnx::{self, Format, Options};
use prelabel::package::scaffold::{self, Language};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `python` (a class, built with componentize-py, installed on first build), `rust`
    /// (a crate, built with cargo for wasm32-wasip2) or `onnx` (your trained detector as it
    /// is: give --model).
    #[arg(value_parser = ["python", "rust", "onnx"])]
    kind: String,
    /// The package's name (lowercase letters, digits and `-`).
    name: String,
    /// The folder to make (default: NAME here).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    onnx: OnnxArgs,
}

/// How to run an ONNX detector; what is not given is read from the model or its format.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "With onnx")]
struct OnnxArgs {
    /// The ONNX model (YOLOv5/v8/v11, SSD or CenterNet outputs).
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Class names, one per line (default: the model's metadata `names`, as Ultralytics
    /// writes it).
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    /// How the outputs read (default: guessed from their shapes).
    #[arg(long, value_parser = ["auto", "yolov5", "yolov8", "ssd", "centernet"])]
    format: Option<String>,
    /// The network's input: WIDTHxHEIGHT, `graph` (as declared) or `image` (the image's own
    /// size rounded up to 32, for fully convolutional models).
    #[arg(long, value_name = "SIZE")]
    input_size: Option<String>,
    /// `letterbox` (aspect kept, padded around; YOLO's default), `letterbox-corner` (padded
    /// right and below: YOLOX, NudeNet) or `stretch`.
    #[arg(long)]
    resize: Option<String>,
    /// The grey a letterbox pads with (default 114).
    #[arg(long, value_name = "0-255")]
    pad_value: Option<u8>,
    /// Pixel values (0-255) are multiplied by this (YOLO: 1/255; others: 1).
    #[arg(long)]
    scale: Option<f64>,
    /// Then this is subtracted: one number or three, in the tensor's channel order.
    #[arg(long)]
    mean: Option<String>,
    /// Then divided by this: one number or three.
    #[arg(long)]
    std: Option<String>,
    /// The tensor's channel order: `rgb` (default) or `bgr` (OpenCV's models).
    #[arg(long)]
    channels: Option<String>,
    /// Boxes under this confidence are dropped (YOLO: 0.25; others: 0.5).
    #[arg(long)]
    min_confidence: Option<f64>,
    /// Per-class NMS overlap (YOLO and SSD: 0.45; CenterNet: 0.3).
    #[arg(long)]
    iou: Option<f64>,
    /// One NMS over all classes instead of one per class.
    #[arg(long)]
    agnostic_nms: bool,
}

impl Args {
    pub fn run(self) -> Result<ExitCode> {
        let dir = self.dir.unwrap_or_else(|| PathBuf::from(&self.name));
        let files = match self.kind.as_str() {
            "onnx" => {
                let o = self.onnx;
                let Some(model) = o.model else {
                    bail!("`prelabel new onnx` needs --model FILE");
                };
                let options = Options {
                    model,
                    labels: o.labels,
                    format: o
                        .format
                        .filter(|f| f != "auto")
                        .and_then(|f| Format::from_name(&f)),
                    input_size: o.input_size,
                    resize: o.resize,
                    pad_value: o.pad_value,
                    scale: o.scale,
                    mean: o.mean,
                    std: o.std,
                    channels: o.channels,
                    min_confidence: o.min_confidence,
                    iou: o.iou,
                    agnostic_nms: o.agnostic_nms,
                };
                let made = onnx::create(&dir, &self.name, &options)?;
                println!(
                    "format {}{}, input {}, {} labels from {}",
                    made.format,
                    if made.guessed {
                        " (from its outputs)"
                    } else {
                        ""
                    },
                    made.input_size,
                    made.labels,
                    made.labels_from
                );
                made.files
            }
            language => {
                if self.onnx.model.is_some() {
                    bail!("--model is for `prelabel new onnx`");
                }
                let language = prelabel::named::parse::<Language>(language)?;
                scaffold::create(&dir, &self.name, language)?
            }
        };
        println!("created {} ({} files):", dir.display(), files.len());
        for file in files {
            println!("  {}", file.display());
        }
        let builds = if self.kind == "onnx" {
            ""
        } else {
            " (builds it first)"
        };
        println!("try it: prelabel detect {} IMAGE...{builds}", dir.display());
        Ok(ExitCode::SUCCESS)
    }
}
