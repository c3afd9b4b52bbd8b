//! The res10 face detector as a Prelabel component: a thin wrapper that turns the WIT
//! contract's calls into calls of the `res10` library.

use std::sync::OnceLock;

// The generated glue lowers `item` into many parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "detector", path: "../../wit", generate_all });
}

use bindings::prelabel::detector::host::{self, Level};
use bindings::prelabel::detector::types::{Bbox, ErrorKind, Geometry, ModelInfo, Value};
use bindings::wasi::nn::graph;
use bindings::wasi::nn::inference::GraphExecutionContext;
use bindings::wasi::nn::tensor::{Tensor, TensorType};
use bindings::{Annotation, Error, Guest, InitInput, Item};

/// Who runs the network.
enum Engine {
    /// tract, inside this component (the portable default).
    Guest(res10::Model),
    /// The host, natively, through wasi-nn (opt-in: `inference = "host"`).
    Host(GraphExecutionContext),
}

/// The model's input, as its ONNX file names it (models/PROVENANCE.md).
const INPUT: &str = "data";

impl Engine {
    fn infer(&self, blob: res10::Tensor) -> Result<res10::RawOutput, res10::Error> {
        match self {
            Engine::Guest(model) => model.infer(blob),
            Engine::Host(context) => {
                let failed = |e: String| res10::Error::Inference(format!("host inference: {e}"));
                blob.to_plain_array_view::<f32>()
                    .map_err(|e| failed(e.to_string()))?;
                // wasm32 is little-endian, as wasi-nn's tensor bytes are: the blob's own
                // bytes are the tensor (packing it value by value was a fifth of a detect).
                let dimensions: Vec<u32> = blob.shape().iter().map(|&d| d as u32).collect();
                let input = Tensor::new(&dimensions, TensorType::Fp32, blob.as_bytes());
                let outputs = context
                    .compute(vec![(INPUT.to_string(), input)])
                    .map_err(|e| failed(e.data()))?;
                res10::RawOutput::from_tensors(
                    outputs
                        .into_iter()
                        .map(|(_, t)| {
                            let shape = t.dimensions().into_iter().map(|d| d as usize).collect();
                            let values = t
                                .data()
                                .chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                                .collect();
                            (shape, values)
                        })
                        .collect(),
                )
            }
        }
    }
}

/// What `init` sets up once per instance.
struct State {
    engine: Engine,
    model_name: String,
    min_confidence: f32,
    label: String,
}

static STATE: OnceLock<State> = OnceLock::new();

struct FaceDetector;

fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
    }
}

fn input<'a>(inputs: &'a [InitInput], name: &str) -> Option<&'a Value> {
    inputs.iter().find(|i| i.name == name).map(|i| &i.value)
}

fn string_input(inputs: &[InitInput], name: &str, default: &str) -> Result<String, Error> {
    match input(inputs, name) {
        None => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(error(
            ErrorKind::InvalidInput,
            format!("init input `{name}` must be a string, got {other:?}"),
        )),
    }
}

impl Guest for FaceDetector {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        if STATE.get().is_some() {
            return Err(error(
                ErrorKind::Internal,
                "init was already called on this instance",
            ));
        }
        let model_filename = string_input(&inputs, "model_filename", "res10_300x300_ssd.onnx")?;
        let label = string_input(&inputs, "label", "face")?;
        let min_confidence = match input(&inputs, "min_confidence") {
            None => 0.5,
            Some(Value::Float(f)) => *f,
            Some(Value::Integer(i)) => *i as f64,
            Some(other) => {
                return Err(error(
                    ErrorKind::InvalidInput,
                    format!("init input `min_confidence` must be a float, got {other:?}"),
                ));
            }
        };
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(error(
                ErrorKind::InvalidInput,
                format!("min_confidence must be within 0..1, got {min_confidence}"),
            ));
        }

        let engine = match string_input(&inputs, "inference", "guest")?.as_str() {
            "guest" => {
                host::log(Level::Info, &format!("loading model {model_filename}"));
                let bytes = host::artifact(&model_filename)?;
                let model = res10::Model::from_onnx(&bytes).map_err(|e| {
                    error(
                        ErrorKind::Artifact,
                        format!("artifact `{model_filename}`: {e}"),
                    )
                })?;
                Engine::Guest(model)
            }
            "host" => {
                host::log(
                    Level::Info,
                    &format!("model {model_filename} runs on the host"),
                );
                let on_host = |e: String| {
                    error(
                        ErrorKind::Artifact,
                        format!("artifact `{model_filename}`: {e}"),
                    )
                };
                let graph = graph::load_by_name(&model_filename).map_err(|e| on_host(e.data()))?;
                let context = graph
                    .init_execution_context()
                    .map_err(|e| on_host(e.data()))?;
                // No first run on a blank blob here: the host has loaded the model, and a
                // run costs as much as a photo's (ONNX Runtime's session is ready at load;
                // tract makes its plan on the first item).
                Engine::Host(context)
            }
            other => {
                return Err(error(
                    ErrorKind::InvalidInput,
                    format!("init input `inference` must be `guest` or `host`, got `{other}`"),
                ));
            }
        };
        let model_name = model_filename
            .rsplit_once('.')
            .map_or(model_filename.as_str(), |(stem, _)| stem)
            .to_string();
        let _ = STATE.set(State {
            engine,
            model_name,
            min_confidence: min_confidence as f32,
            label,
        });
        Ok(())
    }

    fn detect(item: Item) -> Result<Vec<Annotation>, Error> {
        let state = STATE
            .get()
            .ok_or_else(|| error(ErrorKind::NotInitialized, "detect called before init"))?;
        if !item.mimetype.starts_with("image/") {
            return Err(error(
                ErrorKind::InvalidItem,
                format!(
                    "item `{}` has mimetype `{}`, not an image",
                    item.name, item.mimetype
                ),
            ));
        }
        let (detections, t) = res10::detect_with(
            &item.data,
            res10::DEFAULT_MAX_PIXELS,
            state.min_confidence,
            |blob| state.engine.infer(blob),
        )
        .map_err(|e| match e {
            res10::Error::Inference(_) | res10::Error::Model(_) => {
                error(ErrorKind::Internal, e.to_string())
            }
            _ => error(ErrorKind::InvalidItem, format!("item `{}`: {e}", item.name)),
        })?;
        host::log(
            Level::Debug,
            &format!(
                "{}: {} faces; stage_us decode={} preprocess={} infer={} postprocess={}",
                item.name,
                detections.len(),
                t.decode.as_micros(),
                t.preprocess.as_micros(),
                t.infer.as_micros(),
                t.postprocess.as_micros()
            ),
        );
        Ok(detections
            .into_iter()
            .map(|d| Annotation {
                geometry: Geometry::Bbox(Bbox {
                    left: d.left,
                    top: d.top,
                    right: d.right,
                    bottom: d.bottom,
                }),
                label: state.label.clone(),
                model: ModelInfo {
                    name: state.model_name.clone(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    confidence: d.confidence,
                },
            })
            .collect())
    }
}

bindings::export!(FaceDetector with_types_in bindings);
