//! A user's own ONNX detector as a component (issue 34): `init` reads the init inputs
//! `prelabel new onnx` wrote (each may be left to what the model says: its format, input size
//! and class names), loads the model (tract inside, or the host through wasi-nn), and
//! `detect` returns a labelled box per object. The work is the `onnx-model` library's.

mod config;

use std::sync::OnceLock;

// The generated glue lowers `item` into many parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "detector", path: "../../wit", generate_all });
}

use bindings::prelabel::detector::host::{self, Level};
use bindings::prelabel::detector::types::{Bbox, ErrorKind, Geometry, ModelInfo};
use bindings::wasi::nn::graph;
use bindings::wasi::nn::inference::GraphExecutionContext;
use bindings::wasi::nn::tensor::{Tensor, TensorType};
use bindings::{Annotation, Error, Guest, InitInput, Item};
use onnx_model::{Config, Model, Outputs};

/// Who runs the network.
enum Engine {
    /// tract, inside this component (the default).
    Guest(Model),
    /// The host, natively, through wasi-nn (opt-in: `inference = "host"`).
    Host {
        context: GraphExecutionContext,
        input: String,
    },
}

impl Engine {
    fn infer(&self, values: Vec<f32>, (w, h): (u32, u32)) -> Result<Outputs, onnx_model::Error> {
        match self {
            Engine::Guest(model) => model.infer(values, (w, h)),
            Engine::Host { context, input } => {
                let failed =
                    |e: String| onnx_model::Error::Inference(format!("host inference: {e}"));
                // wasi-nn's tensors are little-endian bytes, as wasm32's floats are.
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                let tensor = Tensor::new(&[1, 3, h, w], TensorType::Fp32, &bytes);
                let outputs = context
                    .compute(vec![(input.clone(), tensor)])
                    .map_err(|e| failed(e.data()))?;
                outputs
                    .into_iter()
                    .map(|(name, t)| {
                        if t.ty() != TensorType::Fp32 {
                            return Err(failed(format!("output `{name}` is not f32")));
                        }
                        let shape = t.dimensions().into_iter().map(|d| d as usize).collect();
                        let values = t
                            .data()
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect();
                        Ok((name, shape, values))
                    })
                    .collect()
            }
        }
    }
}

/// What `init` sets up once per instance.
struct State {
    engine: Engine,
    config: Config,
    labels: Vec<String>,
    model_name: String,
}

static STATE: OnceLock<State> = OnceLock::new();

struct OnnxDetector;

fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
    }
}

/// Loads the model where the service says, and runs it once on a blank input so that a model
/// neither engine can run fails `init`, not the first item.
fn load(setup: &config::Setup, bytes: Option<Vec<u8>>, first: (u32, u32)) -> Result<Engine, Error> {
    let file = &setup.model_filename;
    let on_model = |e: String| error(ErrorKind::Artifact, format!("artifact `{file}`: {e}"));
    let engine = match bytes {
        Some(bytes) => {
            host::log(Level::Info, &format!("loading model {file}"));
            Engine::Guest(Model::from_onnx(&bytes, first).map_err(|e| on_model(e.to_string()))?)
        }
        None => {
            host::log(Level::Info, &format!("model {file} runs on the host"));
            let graph = graph::load_by_name(file).map_err(|e| on_model(e.data()))?;
            let context = graph
                .init_execution_context()
                .map_err(|e| on_model(e.data()))?;
            Engine::Host {
                context,
                input: setup.graph.input.clone(),
            }
        }
    };
    let blank = vec![0.0; 3 * (first.0 * first.1) as usize];
    engine
        .infer(blank, first)
        .map_err(|e| on_model(e.to_string()))?;
    Ok(engine)
}

impl Guest for OnnxDetector {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        if STATE.get().is_some() {
            return Err(error(
                ErrorKind::Internal,
                "init was already called on this instance",
            ));
        }
        let (setup, bytes) = config::Setup::read(&inputs)?;
        let first = setup.config.input.for_image(1, 1);
        let engine = load(&setup, bytes, first)?;
        let model_name = setup
            .model_filename
            .rsplit_once('.')
            .map_or(setup.model_filename.as_str(), |(stem, _)| stem)
            .to_string();
        let _ = STATE.set(State {
            engine,
            config: setup.config,
            labels: setup.labels,
            model_name,
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
        let (found, t) = onnx_model::detect_with(&item.data, &state.config, |values, size| {
            state.engine.infer(values, size)
        })
        .map_err(|e| match e {
            onnx_model::Error::Image(_) => {
                error(ErrorKind::InvalidItem, format!("item `{}`: {e}", item.name))
            }
            _ => error(ErrorKind::Internal, e.to_string()),
        })?;
        host::log(
            Level::Debug,
            &format!(
                "{}: {} boxes; stage_us decode={} preprocess={} infer={} postprocess={}",
                item.name,
                found.len(),
                t.decode.as_micros(),
                t.preprocess.as_micros(),
                t.infer.as_micros(),
                t.postprocess.as_micros()
            ),
        );
        Ok(found
            .iter()
            .map(|l| {
                let d = l.detection;
                Annotation {
                    geometry: Geometry::Bbox(Bbox {
                        left: d.left,
                        top: d.top,
                        right: d.right,
                        bottom: d.bottom,
                    }),
                    label: state
                        .labels
                        .get(l.class)
                        .cloned()
                        .unwrap_or_else(|| format!("class {}", l.class)),
                    model: ModelInfo {
                        name: state.model_name.clone(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        confidence: d.confidence,
                    },
                }
            })
            .collect())
    }
}

bindings::export!(OnnxDetector with_types_in bindings);
