//! The anonymizer as a Prelabel component (world `transformer`): init reads the mode, the
//! labels and the margin; `transform` anonymizes the boxes of those labels among the
//! annotations it is given and returns the copy as a made item.

use std::sync::OnceLock;

// The generated glue lowers `item` into many parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "transformer", path: "../../wit", generate_all });
}

use bindings::prelabel::detector::types::{ErrorKind, Geometry, MadeItem, Output, Value};
use bindings::{Annotation, Error, Guest, InitInput, Item};

use crate::Mode;

struct State {
    mode: Mode,
    /// Empty: every box.
    labels: Vec<String>,
    margin: f32,
}

static STATE: OnceLock<State> = OnceLock::new();

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

struct Anonymizer;

impl Guest for Anonymizer {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        let mode = string_input(&inputs, "mode", "blur")?
            .parse()
            .map_err(|e: String| error(ErrorKind::InvalidInput, e))?;
        let labels = string_input(&inputs, "labels", "face")?
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let margin = match input(&inputs, "margin") {
            None => 0.1,
            Some(Value::Float(f)) => *f,
            Some(Value::Integer(i)) => *i as f64,
            Some(other) => {
                return Err(error(
                    ErrorKind::InvalidInput,
                    format!("init input `margin` must be a float, got {other:?}"),
                ));
            }
        };
        if !(0.0..=1.0).contains(&margin) {
            return Err(error(
                ErrorKind::InvalidInput,
                format!("margin must be within 0..1, got {margin}"),
            ));
        }
        let _ = STATE.set(State {
            mode,
            labels,
            margin: margin as f32,
        });
        Ok(())
    }

    fn transform(
        function: String,
        item: Item,
        annotations: Vec<Annotation>,
    ) -> Result<Output, Error> {
        let state = STATE
            .get()
            .ok_or_else(|| error(ErrorKind::NotInitialized, "init was not called"))?;
        if function != "anonymize" {
            return Err(error(
                ErrorKind::InvalidInput,
                format!("the anonymizer has one function, `anonymize`; not `{function}`"),
            ));
        }
        let boxes: Vec<crate::Bbox> = annotations
            .iter()
            .filter(|a| state.labels.is_empty() || state.labels.contains(&a.label))
            .filter_map(|a| match a.geometry {
                Geometry::Bbox(b) => Some([b.left, b.top, b.right, b.bottom]),
                _ => None,
            })
            .collect();
        let (data, mimetype) = crate::anonymize_bytes(&item.data, &boxes, state.mode, state.margin)
            .map_err(|e| match e {
                crate::Error::Decode(e) => error(ErrorKind::InvalidItem, e.to_string()),
                e => error(ErrorKind::Internal, e.to_string()),
            })?;
        let mode = match state.mode {
            Mode::Blur => "blur",
            Mode::Pixelate => "pixelate",
        };
        Ok(Output {
            annotations: Vec::new(),
            items: vec![MadeItem {
                name: crate::copy_name(&item.name, mimetype),
                mimetype: mimetype.to_string(),
                metadata: format!(
                    r#"{{"anonymized": {{"mode": "{mode}", "boxes": {}, "from": {:?}}}}}"#,
                    boxes.len(),
                    item.id
                ),
                data,
            }],
        })
    }
}

bindings::export!(Anonymizer with_types_in bindings);
