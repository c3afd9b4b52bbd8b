//! `prelabel new onnx NAME --model FILE`: a package around a user's own ONNX detector, no
//! code written. The model is read here (its outputs' shapes give the format, its declared
//! input the size, its metadata the class names) so that what cannot work is said now, not
//! at the first item; the folder gets the model, the labels, the `onnx-detector` component
//! (built from this checkout) and a manifest whose init inputs say how to run the model,
//! each one a default the service can override.

use std::path::{Path, PathBuf};

pub use onnx_model::Format;
use onnx_model::Graph;
use serde::Serialize;

use crate::package::manifest::{self, Manifest};
use crate::package::scaffold::{self, ScaffoldError};
use crate::package::workspace::{BuildError, GUEST_TARGET, Workspace};

/// The component every such package runs.
const COMPONENT: &str = "onnx-detector";
/// What the files are called inside the package.
const MODEL: &str = "model.onnx";
const LABELS: &str = "labels.txt";
/// The manifest, its `{{...}}` filled in by [`manifest_text`].
const TEMPLATE: &str = include_str!("../../templates/onnx/prelabel.toml");

/// How to run the model; `None` is what the model (or its format) says.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub model: PathBuf,
    pub labels: Option<PathBuf>,
    pub format: Option<Format>,
    /// `graph`, `image` or `WIDTHxHEIGHT`.
    pub input_size: Option<String>,
    pub resize: Option<String>,
    pub pad_value: Option<u8>,
    pub scale: Option<f64>,
    /// One number or three, separated by commas.
    pub mean: Option<String>,
    pub std: Option<String>,
    pub channels: Option<String>,
    pub min_confidence: Option<f64>,
    pub iou: Option<f64>,
    pub agnostic_nms: bool,
}

/// Why a model does not become a package.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Scaffold(#[from] ScaffoldError),
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{} is not an ONNX model we can read: {error}", path.display())]
    Model {
        path: PathBuf,
        #[source]
        error: onnx_model::Error,
    },
    #[error("cannot tell the model's format from its {reason}")]
    Format { reason: String },
    #[error(
        "the model declares its input as {shape}, leaving its size open; say --input-size WIDTHxHEIGHT (or `image` for a fully convolutional model)"
    )]
    OpenSize { shape: String },
    #[error("--{option} {value}: {expected}")]
    Option {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("cannot build the {COMPONENT} component: {0}")]
    Build(#[from] BuildError),
}

/// What was made.
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    pub files: Vec<PathBuf>,
    pub format: &'static str,
    /// Whether the format was guessed from the outputs.
    pub guessed: bool,
    pub input_size: String,
    /// How many class names the package has, and where they came from.
    pub labels: usize,
    pub labels_from: &'static str,
}

/// The init inputs' defaults for a format: how its exporters fit, scale and threshold.
struct Defaults {
    resize: &'static str,
    scale: f64,
    min_confidence: f64,
    iou: f64,
}

fn defaults(format: Format) -> Defaults {
    match format {
        // Ultralytics' export and predict: letterbox, values over 255, 0.25 and 0.45.
        Format::Yolov5 | Format::Yolov8 => Defaults {
            resize: "letterbox",
            scale: 1.0 / 255.0,
            min_confidence: 0.25,
            iou: 0.45,
        },
        // OpenCV's SSDs take raw values stretched to the input; 0.5 as the seed keeps faces.
        Format::Ssd => Defaults {
            resize: "stretch",
            scale: 1.0,
            min_confidence: 0.5,
            iou: 0.45,
        },
        // CenterFace's reference: raw values, the image's own size, 0.5 and NMS at 0.3.
        Format::CenterNet => Defaults {
            resize: "stretch",
            scale: 1.0,
            min_confidence: 0.5,
            iou: 0.3,
        },
    }
}

/// Writes package `name` around `options.model` into `dir` (made; it must not hold anything).
pub fn create(dir: &Path, name: &str, options: &Options) -> Result<Made, OnnxError> {
    scaffold::check(dir, name)?;
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| OnnxError::Read {
            path: path.into(),
            error,
        })
    };
    let bytes = read(&options.model)?;
    let graph = Graph::read(&bytes).map_err(|error| OnnxError::Model {
        path: options.model.clone(),
        error,
    })?;
    let (format, guessed) = match options.format {
        Some(format) => (format, false),
        None => (
            graph
                .format()
                .map_err(|reason| OnnxError::Format { reason })?,
            true,
        ),
    };
    let input_size = input_size(&graph, format, options.input_size.as_deref())?;
    let labels = match &options.labels {
        Some(path) => {
            let bytes = read(path)?;
            if std::str::from_utf8(&bytes).is_err() {
                return Err(OnnxError::Option {
                    option: "labels",
                    value: path.display().to_string(),
                    expected: "must be UTF-8 text, a class name per line",
                });
            }
            Some(bytes)
        }
        None => None,
    };
    let (names, labels_from) = class_names(labels.as_deref(), &graph);
    let text = manifest_text(name, format, &input_size, labels.is_some(), &names, options)?;

    let component = component()?;

    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (manifest::FILE_NAME, text.into_bytes()),
        ("onnx-detector.wasm", component),
        (MODEL, bytes),
    ];
    if let Some(labels) = labels {
        files.push((LABELS, labels));
    }
    let mut written = Vec::new();
    for (file, bytes) in files {
        scaffold::write(&dir.join(file), &bytes)?;
        written.push(PathBuf::from(file));
    }
    // What we wrote must read as any package does.
    Manifest::from_file(&dir.join(manifest::FILE_NAME)).map_err(|e| OnnxError::Option {
        option: "model",
        value: e.to_string(),
        expected: "the manifest made from these options does not read",
    })?;
    Ok(Made {
        files: written,
        format: format.name(),
        guessed,
        input_size,
        labels: names.len(),
        labels_from,
    })
}

/// The onnx-detector component, built from this checkout (cheap when it is up to date).
fn component() -> Result<Vec<u8>, OnnxError> {
    let workspace = Workspace::find()?;
    workspace.build_guest(COMPONENT)?;
    let wasm = workspace
        .root
        .join("target")
        .join(GUEST_TARGET)
        .join("release")
        .join(format!("{}.wasm", COMPONENT.replace('-', "_")));
    std::fs::read(&wasm).map_err(|error| OnnxError::Read { path: wasm, error })
}

/// The manifest's `labels = [...]` line (none without names; the same name twice once).
fn labels_line(names: &[String]) -> String {
    let mut unique: Vec<&String> = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    if unique.is_empty() {
        return String::new();
    }
    let values: Vec<toml::Value> = unique
        .into_iter()
        .map(|n| toml::Value::String(n.clone()))
        .collect();
    format!("labels = {}\n", toml::Value::Array(values))
}

/// The class names the package has, and where from.
fn class_names(file: Option<&[u8]>, graph: &Graph) -> (Vec<String>, &'static str) {
    match (file, &graph.names) {
        (Some(text), _) => (
            String::from_utf8_lossy(text)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            "the labels file",
        ),
        (None, Some(names)) => (names.clone(), "the model's metadata"),
        (None, None) => (
            Vec::new(),
            "nowhere: boxes are labelled `class N`; give --labels FILE",
        ),
    }
}

/// The input size to write: what was asked, else the graph's, else `image` for CenterNet.
fn input_size(graph: &Graph, format: Format, asked: Option<&str>) -> Result<String, OnnxError> {
    match asked {
        Some("graph") | None => match graph.fixed_size() {
            // CenterNet heads are fully convolutional; their declared size is a placeholder
            // (CenterFace declares 32x32 at a batch of 10).
            _ if format == Format::CenterNet && asked.is_none() => Ok("image".into()),
            Some((w, h)) => Ok(format!("{w}x{h}")),
            None => Err(OnnxError::OpenSize {
                shape: show(&graph.input_shape),
            }),
        },
        Some("image") => Ok("image".into()),
        Some(size) => {
            let parsed = size.split_once('x').and_then(|(w, h)| {
                let (w, h) = (w.parse::<u32>().ok()?, h.parse::<u32>().ok()?);
                ((1..=4096).contains(&w) && (1..=4096).contains(&h)).then_some((w, h))
            });
            match parsed {
                Some((w, h)) => Ok(format!("{w}x{h}")),
                None => Err(OnnxError::Option {
                    option: "input-size",
                    value: size.into(),
                    expected: "must be `graph`, `image` or WIDTHxHEIGHT, each side 1 to 4096",
                }),
            }
        }
    }
}

fn show(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("?".into(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

/// One number, or three separated by commas, each finite.
fn check_triple(option: &'static str, value: &str) -> Result<(), OnnxError> {
    let values: Result<Vec<f64>, _> = value.split(',').map(|v| v.trim().parse()).collect();
    match values {
        Ok(v) if (v.len() == 1 || v.len() == 3) && v.iter().all(|x| x.is_finite()) => Ok(()),
        _ => Err(OnnxError::Option {
            option,
            value: value.into(),
            expected: "must be one number or three separated by commas",
        }),
    }
}

/// `value` is one of `names`; else refused with `expected`, which says which they are.
fn one_of(
    option: &'static str,
    value: &str,
    names: &[&str],
    expected: &'static str,
) -> Result<(), OnnxError> {
    if names.contains(&value) {
        Ok(())
    } else {
        Err(OnnxError::Option {
            option,
            value: value.into(),
            expected,
        })
    }
}

fn fraction(option: &'static str, value: f64) -> Result<f64, OnnxError> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(OnnxError::Option {
            option,
            value: value.to_string(),
            expected: "must be within 0..1",
        })
    }
}

/// The manifest, every init input's default set from the options and the format.
fn manifest_text(
    name: &str,
    format: Format,
    input_size: &str,
    has_labels: bool,
    names: &[String],
    options: &Options,
) -> Result<String, OnnxError> {
    let d = defaults(format);
    let resize = options.resize.as_deref().unwrap_or(d.resize);
    one_of(
        "resize",
        resize,
        &["letterbox", "letterbox-corner", "stretch"],
        "must be `letterbox`, `letterbox-corner` or `stretch`",
    )?;
    let channels = options.channels.as_deref().unwrap_or("rgb");
    one_of(
        "channels",
        channels,
        &["rgb", "bgr"],
        "must be `rgb` or `bgr`",
    )?;
    let mean = options.mean.as_deref().unwrap_or("0, 0, 0");
    check_triple("mean", mean)?;
    let std = options.std.as_deref().unwrap_or("1, 1, 1");
    check_triple("std", std)?;
    let scale = options.scale.unwrap_or(d.scale);
    if !scale.is_finite() {
        return Err(OnnxError::Option {
            option: "scale",
            value: scale.to_string(),
            expected: "must be a number",
        });
    }
    let min_confidence = options.min_confidence.unwrap_or(d.min_confidence);
    let iou = options.iou.unwrap_or(d.iou);
    // Strings the user typed are quoted as TOML quotes them; the rest are checked names.
    let string = |s: &str| toml::Value::String(s.into()).to_string();
    let float = |f: f64| toml::Value::Float(f).to_string();
    let labels_artifact = if has_labels {
        format!("\n[[artifacts]]\nname = \"{LABELS}\"\npath = \"{LABELS}\"\n")
    } else {
        String::new()
    };
    Ok(TEMPLATE
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
        .replace("{{format}}", format.name())
        .replace("{{labels_artifact}}", &labels_artifact)
        .replace("{{labels}}", &labels_line(names))
        .replace(
            "{{labels_filename}}",
            &string(if has_labels { LABELS } else { "" }),
        )
        .replace("{{input_size}}", input_size)
        .replace("{{resize}}", resize)
        .replace(
            "{{pad_value}}",
            &options.pad_value.unwrap_or(114).to_string(),
        )
        .replace("{{agnostic_nms}}", &options.agnostic_nms.to_string())
        .replace("{{scale}}", &float(scale))
        .replace("{{mean}}", &string(mean))
        .replace("{{std}}", &string(std))
        .replace("{{channels}}", channels)
        .replace(
            "{{min_confidence}}",
            &float(fraction("min-confidence", min_confidence)?),
        )
        .replace("{{iou}}", &float(fraction("iou", iou)?)))
}
