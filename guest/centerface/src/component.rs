//! The WIT glue: `init` reads the init inputs and loads the model (in the guest, or on the host
//! through wasi-nn), `detect` turns faces into a box each, and five labelled points each when
//! `landmarks` is on.

use std::sync::OnceLock;

// The generated glue lowers `item` into many parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "detector", path: "../../wit", generate_all });
}

use bindings::prelabel::detector::host::{self, Level};
use bindings::prelabel::detector::types::{Bbox, ErrorKind, Geometry, ModelInfo, Point, Value};
use bindings::wasi::nn::graph;
use bindings::wasi::nn::inference::GraphExecutionContext;
use bindings::wasi::nn::tensor::{Tensor, TensorType};
use bindings::{Annotation, Error, Guest, InitInput, Item};

use crate::{Face, Maps, Model, Params};

/// Who runs the network.
enum Engine {
    /// tract, inside this component (the default).
    Guest(Model),
    /// The host, natively, through wasi-nn (opt-in: `inference = "host"`).
    Host(GraphExecutionContext),
}

impl Engine {
    fn infer(&self, blob: crate::Tensor) -> Result<Maps, crate::Error> {
        match self {
            Engine::Guest(model) => model.infer(blob),
            Engine::Host(context) => {
                let failed = |e: String| crate::Error::Inference(format!("host inference: {e}"));
                // wasm32 is little-endian, as wasi-nn's tensor bytes are: the blob's own
                // bytes are the tensor (packing it value by value took milliseconds).
                blob.to_plain_array_view::<f32>()
                    .map_err(|e| failed(e.to_string()))?;
                let dimensions: Vec<u32> = blob.shape().iter().map(|&d| d as u32).collect();
                let input = Tensor::new(&dimensions, TensorType::Fp32, blob.as_bytes());
                let outputs = context
                    .compute(vec![(crate::INPUT.to_string(), input)])
                    .map_err(|e| failed(e.data()))?;
                crate::maps(
                    outputs
                        .into_iter()
                        .map(|(name, t)| {
                            let shape = t.dimensions().into_iter().map(|d| d as usize).collect();
                            let values = t
                                .data()
                                .chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                                .collect();
                            (name, shape, values)
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
    params: Params,
    model_name: String,
    label: String,
    landmarks: bool,
}

static STATE: OnceLock<State> = OnceLock::new();

struct CenterFace;

fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
    }
}

/// The init input `name`, or `None` when the service does not set it.
fn input<'a>(inputs: &'a [InitInput], name: &str) -> Option<&'a Value> {
    inputs.iter().find(|i| i.name == name).map(|i| &i.value)
}

fn wrong_type(name: &str, expected: &str, got: &Value) -> Error {
    error(
        ErrorKind::InvalidInput,
        format!("init input `{name}` must be {expected}, got {got:?}"),
    )
}

fn string_input(inputs: &[InitInput], name: &str, default: &str) -> Result<String, Error> {
    match input(inputs, name) {
        None => Ok(default.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(wrong_type(name, "a string", other)),
    }
}

fn read_params(inputs: &[InitInput]) -> Result<Params, Error> {
    let min_confidence = match input(inputs, "min_confidence") {
        None => 0.5,
        Some(Value::Float(f)) => *f,
        Some(Value::Integer(i)) => *i as f64,
        Some(other) => return Err(wrong_type("min_confidence", "a float", other)),
    };
    if !(0.0..1.0).contains(&min_confidence) {
        return Err(error(
            ErrorKind::InvalidInput,
            format!("min_confidence must be within 0..1, got {min_confidence}"),
        ));
    }
    let max_side = match input(inputs, "max_side") {
        None => i64::from(crate::DEFAULT_MAX_SIDE),
        Some(Value::Integer(i)) => *i,
        Some(other) => return Err(wrong_type("max_side", "an integer", other)),
    };
    let align = i64::from(crate::ALIGN);
    if !(align..=4096).contains(&max_side) || max_side % align != 0 {
        return Err(error(
            ErrorKind::InvalidInput,
            format!("max_side must be a multiple of {align} from {align} to 4096, got {max_side}"),
        ));
    }
    Ok(Params {
        min_confidence: min_confidence as f32,
        max_side: max_side as u32,
        ..Params::default()
    })
}

fn load(inputs: &[InitInput], model_filename: &str) -> Result<Engine, Error> {
    let on_model = |e: String| {
        error(
            ErrorKind::Artifact,
            format!("artifact `{model_filename}`: {e}"),
        )
    };
    match string_input(inputs, "inference", "guest")?.as_str() {
        "guest" => {
            host::log(Level::Info, &format!("loading model {model_filename}"));
            let bytes = host::artifact(model_filename)?;
            Ok(Engine::Guest(
                Model::from_onnx(&bytes).map_err(|e| on_model(e.to_string()))?,
            ))
        }
        "host" => {
            host::log(
                Level::Info,
                &format!("model {model_filename} runs on the host"),
            );
            let graph = graph::load_by_name(model_filename).map_err(|e| on_model(e.data()))?;
            let context = graph
                .init_execution_context()
                .map_err(|e| on_model(e.data()))?;
            let engine = Engine::Host(context);
            // A first run, on the smallest input, loads the model on the host now.
            let side = crate::ALIGN as usize;
            let zeros = crate::Tensor::zero::<f32>(&[1, 3, side, side])
                .map_err(|e| error(ErrorKind::Internal, e.to_string()))?;
            engine.infer(zeros).map_err(|e| on_model(e.to_string()))?;
            Ok(engine)
        }
        other => Err(error(
            ErrorKind::InvalidInput,
            format!("init input `inference` must be `guest` or `host`, got `{other}`"),
        )),
    }
}

impl Guest for CenterFace {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        if STATE.get().is_some() {
            return Err(error(
                ErrorKind::Internal,
                "init was already called on this instance",
            ));
        }
        let params = read_params(&inputs)?;
        let model_filename = string_input(&inputs, "model_filename", "centerface.onnx")?;
        let label = string_input(&inputs, "label", "face")?;
        let landmarks = match input(&inputs, "landmarks") {
            None => false,
            Some(Value::Boolean(b)) => *b,
            Some(other) => return Err(wrong_type("landmarks", "a boolean", other)),
        };
        let engine = load(&inputs, &model_filename)?;
        let model_name = model_filename
            .rsplit_once('.')
            .map_or(model_filename.as_str(), |(stem, _)| stem)
            .to_string();
        let _ = STATE.set(State {
            engine,
            params,
            model_name,
            label,
            landmarks,
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
        let (faces, t) =
            crate::detect_with(&item.data, &state.params, |blob| state.engine.infer(blob))
                .map_err(|e| match e {
                    crate::Error::Inference(_) | crate::Error::Model(_) => {
                        error(ErrorKind::Internal, e.to_string())
                    }
                    crate::Error::Image(_) => {
                        error(ErrorKind::InvalidItem, format!("item `{}`: {e}", item.name))
                    }
                })?;
        host::log(
            Level::Debug,
            &format!(
                "{}: {} faces; stage_us decode={} preprocess={} infer={} postprocess={}",
                item.name,
                faces.len(),
                t.decode.as_micros(),
                t.preprocess.as_micros(),
                t.infer.as_micros(),
                t.postprocess.as_micros()
            ),
        );
        Ok(faces.iter().flat_map(|f| state.annotations(f)).collect())
    }
}

impl State {
    /// A face's box, then its five landmarks when asked for, labelled `LABEL: PART`.
    fn annotations(&self, face: &Face) -> Vec<Annotation> {
        let d = face.detection;
        let annotation = |geometry, label: String| Annotation {
            geometry,
            label,
            model: ModelInfo {
                name: self.model_name.clone(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                confidence: d.confidence,
            },
        };
        let mut out = vec![annotation(
            Geometry::Bbox(Bbox {
                left: d.left,
                top: d.top,
                right: d.right,
                bottom: d.bottom,
            }),
            self.label.clone(),
        )];
        if self.landmarks {
            out.extend(
                face.landmarks
                    .iter()
                    .zip(crate::LANDMARKS)
                    .map(|([x, y], part)| {
                        annotation(
                            Geometry::Point(Point { x: *x, y: *y }),
                            format!("{}: {part}", self.label),
                        )
                    }),
            );
        }
        out
    }
}

bindings::export!(CenterFace with_types_in bindings);
