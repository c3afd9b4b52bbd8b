//! The init inputs, read into what the detector runs with. Each one `prelabel new onnx`
//! writes may be left to the model: `format = "auto"` guesses from the output shapes,
//! `input_size = "graph"` takes the declared size, no `labels_filename` takes the metadata's
//! `names`. Every wrong value is refused naming the input and what it takes.

use crate::bindings::prelabel::detector::host;
use crate::bindings::prelabel::detector::types::{ErrorKind, Value};
use crate::bindings::{Error, InitInput};
use crate::error;
use onnx_model::{Config, Format, Graph, InputSize, Normalise, Params, Resize};

/// What `init` works out from the inputs and the model.
pub struct Setup {
    pub model_filename: String,
    pub graph: Graph,
    pub config: Config,
    pub labels: Vec<String>,
}

fn invalid(message: String) -> Error {
    error(ErrorKind::InvalidInput, message)
}

/// The init inputs by name, each read once with its type checked.
struct Inputs<'a>(&'a [InitInput]);

impl Inputs<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|i| i.name == name).map(|i| &i.value)
    }

    fn wrong(name: &str, expected: &str, got: &Value) -> Error {
        invalid(format!(
            "init input `{name}` must be {expected}, got {got:?}"
        ))
    }

    fn string(&self, name: &str, default: &str) -> Result<String, Error> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.trim().to_string()),
            Some(other) => Err(Self::wrong(name, "a string", other)),
        }
    }

    fn float(
        &self,
        name: &str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<f32, Error> {
        let value = match self.get(name) {
            None => default,
            Some(Value::Float(f)) => *f,
            Some(Value::Integer(i)) => *i as f64,
            Some(other) => return Err(Self::wrong(name, "a number", other)),
        };
        if !range.contains(&value) {
            return Err(invalid(format!(
                "init input `{name}` must be within {}..={}, got {value}",
                range.start(),
                range.end()
            )));
        }
        Ok(value as f32)
    }

    fn integer(
        &self,
        name: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<u32, Error> {
        let value = match self.get(name) {
            None => default,
            Some(Value::Integer(i)) => *i,
            Some(other) => return Err(Self::wrong(name, "an integer", other)),
        };
        if !range.contains(&value) {
            return Err(invalid(format!(
                "init input `{name}` must be within {}..={}, got {value}",
                range.start(),
                range.end()
            )));
        }
        Ok(value as u32)
    }

    fn boolean(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(other) => Err(Self::wrong(name, "a boolean", other)),
        }
    }

    /// Three numbers, `"104, 117, 123"` (one number is all three).
    fn triple(&self, name: &str, default: [f32; 3]) -> Result<[f32; 3], Error> {
        let text = self.string(name, "")?;
        if text.is_empty() {
            return Ok(default);
        }
        let values: Result<Vec<f32>, _> =
            text.split(',').map(|v| v.trim().parse::<f32>()).collect();
        match values.as_deref() {
            Ok([v]) if v.is_finite() => Ok([*v; 3]),
            Ok([a, b, c]) if [a, b, c].iter().all(|v| v.is_finite()) => Ok([*a, *b, *c]),
            _ => Err(invalid(format!(
                "init input `{name}` must be one number or three separated by commas, got `{text}`"
            ))),
        }
    }
}

impl Setup {
    /// Reads the inputs and the model's interface; the model's bytes too when the guest
    /// runs it.
    pub fn read(inputs: &[InitInput]) -> Result<(Setup, Option<Vec<u8>>), Error> {
        let inputs = Inputs(inputs);
        let model_filename = inputs.string("model_filename", "model.onnx")?;
        let on_model = |e: String| {
            error(
                ErrorKind::Artifact,
                format!("artifact `{model_filename}`: {e}"),
            )
        };
        let guest = match inputs.string("inference", "guest")?.as_str() {
            "guest" => true,
            "host" => false,
            other => {
                return Err(invalid(format!(
                    "init input `inference` must be `guest` or `host`, got `{other}`"
                )));
            }
        };
        let bytes = host::artifact(&model_filename)?;
        let graph = Graph::read(&bytes).map_err(|e| on_model(e.to_string()))?;
        let format = match inputs.string("format", "auto")?.as_str() {
            "auto" => graph
                .format()
                .map_err(|why| invalid(format!("init input `format` is auto, but {why}")))?,
            name => Format::from_name(name).ok_or_else(|| {
                invalid(format!(
                    "init input `format` must be auto, yolov5, yolov8, ssd or centernet, got `{name}`"
                ))
            })?,
        };
        let input = input_size(&inputs, &graph)?;
        let labels = labels(&inputs, &graph)?;
        let pad = inputs.integer("pad_value", 114, 0..=255)? as u8;
        let resize = match inputs.string("resize", "letterbox")?.as_str() {
            "letterbox" => Resize::Letterbox { corner: false, pad },
            "letterbox-corner" => Resize::Letterbox { corner: true, pad },
            "stretch" => Resize::Stretch,
            other => {
                return Err(invalid(format!(
                    "init input `resize` must be `letterbox`, `letterbox-corner` or `stretch`, got `{other}`"
                )));
            }
        };
        let bgr = match inputs.string("channels", "rgb")?.as_str() {
            "rgb" => false,
            "bgr" => true,
            other => {
                return Err(invalid(format!(
                    "init input `channels` must be `rgb` or `bgr`, got `{other}`"
                )));
            }
        };
        let std = inputs.triple("std", [1.0; 3])?;
        if std.contains(&0.0) {
            return Err(invalid("init input `std` must not be 0".into()));
        }
        let normalise = Normalise {
            scale: inputs.float("scale", 1.0 / 255.0, -1e6..=1e6)?,
            mean: inputs.triple("mean", [0.0; 3])?,
            std,
            bgr,
        };
        let classes = classes(&inputs, &labels)?;
        let params = Params {
            confidence: inputs.float("min_confidence", 0.25, 0.0..=1.0)?,
            iou: inputs.float("iou", 0.45, 0.0..=1.0)?,
            classes,
            max_detections: inputs.integer("max_detections", 300, 1..=100_000)? as usize,
            agnostic: inputs.boolean("agnostic_nms", false)?,
        };
        let background = labels
            .first()
            .is_some_and(|l| l.eq_ignore_ascii_case("background"))
            .then_some(0);
        let output = graph.outputs.first().map(|(name, _)| name.clone());
        let setup = Setup {
            model_filename,
            graph,
            config: Config {
                format,
                input,
                resize,
                normalise,
                params,
                background,
                output,
                max_pixels: onnx_model::DEFAULT_MAX_PIXELS,
            },
            labels,
        };
        Ok((setup, guest.then_some(bytes)))
    }
}

/// `graph` (what the model declares; the image's size where it leaves it open), `image`, or
/// `WxH`.
fn input_size(inputs: &Inputs, graph: &Graph) -> Result<InputSize, Error> {
    let max_side = inputs.integer("max_side", 1280, 32..=4096)?;
    let image = InputSize::Image {
        max_side,
        align: 32,
    };
    let text = inputs.string("input_size", "graph")?;
    match text.as_str() {
        "graph" => Ok(graph
            .fixed_size()
            .map_or(image, |(w, h)| InputSize::Fixed(w, h))),
        "image" => Ok(image),
        _ => {
            let size = text.split_once('x').and_then(|(w, h)| {
                let (w, h) = (w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?);
                ((1..=4096).contains(&w) && (1..=4096).contains(&h)).then_some((w, h))
            });
            size.map(|(w, h)| InputSize::Fixed(w, h)).ok_or_else(|| {
                invalid(format!(
                    "init input `input_size` must be `graph`, `image` or WIDTHxHEIGHT (each 1 to 4096), got `{text}`"
                ))
            })
        }
    }
}

/// The class names: the labels artifact (one per line) when named, else the model's metadata,
/// else none (boxes are labelled `class N`).
fn labels(inputs: &Inputs, graph: &Graph) -> Result<Vec<String>, Error> {
    let file = inputs.string("labels_filename", "")?;
    if file.is_empty() {
        return Ok(graph.names.clone().unwrap_or_default());
    }
    let bytes = host::artifact(&file)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        error(
            ErrorKind::Artifact,
            format!("artifact `{file}`: labels must be UTF-8 text, one per line"),
        )
    })?;
    let labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    // Trailing blank lines are the file's end, not classes.
    let used = labels
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |at| at + 1);
    Ok(labels[..used].to_vec())
}

/// `classes`: the names to keep (commas between), each one of the labels; empty keeps all.
fn classes(inputs: &Inputs, labels: &[String]) -> Result<Option<Vec<usize>>, Error> {
    let text = inputs.string("classes", "")?;
    if text.is_empty() {
        return Ok(None);
    }
    text.split(',')
        .map(|name| {
            let name = name.trim();
            labels.iter().position(|l| l == name).ok_or_else(|| {
                invalid(format!(
                    "init input `classes` names `{name}`, which is not one of the model's {} labels",
                    labels.len()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
