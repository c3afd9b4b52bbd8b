//! A detector that runs no model: it posts each item's bytes to a detection API over
//! `wasi:http` and turns the JSON answer into annotations. The host decides which hosts it may
//! reach (the manifest's `allowed_outbound_hosts`, narrowed by the deployer), bounds every
//! request by the call's deadline, and keeps the API key (a secret init input) out of every
//! output.
//!
//! The API: `POST {url}` with the image as the body, its mimetype as `Content-Type`, and
//! `Authorization: Bearer {api_key}`; a `200` answer of
//! `{"boxes": [{"label": "face", "confidence": 0.98, "left": 10, "top": 20, "right": 50,
//! "bottom": 70}], "model": {"name": "res10", "version": "1"}}` (pixels of the image; `model`
//! optional). `prelabel serve-detector PACKAGE` serves this API from any Prelabel package.

use std::sync::OnceLock;

#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "detector", path: "../../wit", generate_all });
}

use bindings::prelabel::detector::host::{self, Level};
use bindings::prelabel::detector::types::{Bbox, ErrorKind, Geometry, ModelInfo, Value};
use bindings::{Annotation, Error, Guest, InitInput, Item};
use serde::Deserialize;

/// What `init` was given.
struct Config {
    url: String,
    api_key: String,
    min_confidence: f32,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// The API's answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    boxes: Vec<RemoteBox>,
    #[serde(default)]
    model: Option<RemoteModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteBox {
    label: String,
    confidence: f32,
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteModel {
    name: String,
    #[serde(default)]
    version: String,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
    }
}

struct RemoteDetector;

impl Guest for RemoteDetector {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        let string = |name: &str| match inputs.iter().find(|i| i.name == name).map(|i| &i.value) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(error(
                ErrorKind::InvalidInput,
                format!("init input `{name}` (a string) is missing"),
            )),
        };
        let url = string("url")?;
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(error(
                ErrorKind::InvalidInput,
                format!("`url` must be an http(s) URL, not `{url}`"),
            ));
        }
        let min_confidence = match inputs.iter().find(|i| i.name == "min_confidence") {
            Some(InitInput {
                value: Value::Float(f),
                ..
            }) => *f as f32,
            _ => 0.0,
        };
        // The key is never logged: the URL is.
        host::log(Level::Info, &format!("posting items to {url}"));
        let config = Config {
            url,
            api_key: string("api_key")?,
            min_confidence,
        };
        CONFIG
            .set(config)
            .map_err(|_| error(ErrorKind::Internal, "init called twice"))
    }

    fn detect(item: Item) -> Result<Vec<Annotation>, Error> {
        let config = CONFIG
            .get()
            .ok_or_else(|| error(ErrorKind::NotInitialized, "detect called before init"))?;
        let authorization = format!("Bearer {}", config.api_key);
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("content-type", item.mimetype.as_bytes()),
            ("accept", b"application/json"),
        ];
        if !config.api_key.is_empty() {
            headers.push(("authorization", authorization.as_bytes()));
        }
        let response = guest_http::send(&guest_http::Request {
            method: "POST",
            url: &config.url,
            headers: &headers,
            body: &item.data,
        })
        .map_err(|e| error(ErrorKind::Internal, format!("POST {}: {e}", config.url)))?;
        if response.status != 200 {
            let text = String::from_utf8_lossy(&response.body);
            let text: String = text.chars().take(200).collect();
            return Err(error(
                ErrorKind::Internal,
                format!("the API answered {}: {text}", response.status),
            ));
        }
        let answer: Answer = serde_json::from_slice(&response.body).map_err(|e| {
            error(
                ErrorKind::Internal,
                format!("the API's answer is not the documented JSON: {e}"),
            )
        })?;
        let (name, version) = match answer.model {
            Some(m) => (m.name, m.version),
            None => ("remote".to_string(), String::new()),
        };
        host::log(
            Level::Debug,
            &format!("{}: {} boxes from the API", item.name, answer.boxes.len()),
        );
        Ok(answer
            .boxes
            .into_iter()
            .filter(|b| b.confidence > config.min_confidence)
            .map(|b| Annotation {
                geometry: Geometry::Bbox(Bbox {
                    left: b.left,
                    top: b.top,
                    right: b.right,
                    bottom: b.bottom,
                }),
                label: b.label,
                model: ModelInfo {
                    name: name.clone(),
                    version: version.clone(),
                    confidence: b.confidence,
                },
            })
            .collect())
    }
}

bindings::export!(RemoteDetector with_types_in bindings);
