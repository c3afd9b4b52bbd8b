//! CVAT's automatic annotation. Self-hosted CVAT finds and calls its models through Nuclio's
//! dashboard API; these routes answer the calls its lambda gateway makes (`GET
//! /api/functions[/{name}]`, `POST /api/function_invocations`), so a CVAT pointed at
//! `prelabel serve` lists every service as a detector and gets its boxes. Each image CVAT sends
//! is stored as an item of dataset `cvat` and runs through the queue like any other.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::extract::{Body, Path};
use super::{ApiError, AppState};
use prelabel::catalog::service::Service;
use prelabel::ops::{Home, Prediction};
use prelabel::results::annotation::Geometry;

/// The dataset that holds the images CVAT sends.
pub const DATASET: &str = "cvat";

/// How long an invocation waits for its execution: CVAT's own default Nuclio timeout.
const WAIT: Duration = Duration::from_secs(120);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/functions", get(list))
        .route("/functions/{name}", get(show))
        .route("/function_invocations", post(invoke))
}

/// Every service, as the Nuclio function CVAT reads (`metadata.name`, `metadata.annotations`
/// with `type: detector` and the labels as a JSON string in `spec`, `status.state`), by name.
#[utoipa::path(get, path = "/api/functions", tag = "cvat",
    responses((status = 200, body = Object)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let functions = state
        .run(|home| {
            let mut all = BTreeMap::new();
            for service in home.services()? {
                all.insert(service.name.clone(), function(home, &service)?);
            }
            Ok(all)
        })
        .await?;
    Ok(Json(json!(functions)))
}

#[utoipa::path(get, path = "/api/functions/{name}", tag = "cvat",
    params(("name" = String, Path, description = "the service")),
    responses((status = 200, body = Object), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let function = state
        .run(move |home| function(home, &home.service(&name)?))
        .await?;
    Ok(Json(function))
}

fn function(home: &Home, service: &Service) -> prelabel::Result<Value> {
    let labels = home.labels(service)?;
    let spec: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(id, name)| json!({"id": id, "name": name, "type": "rectangle"}))
        .collect();
    Ok(json!({
        "metadata": {
            "name": service.name,
            "annotations": {
                "name": service.name,
                "type": "detector",
                "framework": "prelabel",
                "spec": serde_json::to_string(&spec).expect("serializes"),
            },
        },
        "spec": {
            "description": format!("{} revision {} (Prelabel)", service.package, service.revision),
        },
        "status": { "state": if service.paused { "paused" } else { "ready" } },
    }))
}

/// What CVAT posts for a detector: the frame as base64, and a confidence threshold.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Invocation {
    /// The image, base64 (standard alphabet, padded).
    image: String,
    /// Only boxes at or above this confidence (0 to 1).
    threshold: Option<f32>,
}

/// One shape CVAT reads back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Shape {
    /// The confidence, as text (what CVAT's own functions send).
    confidence: String,
    label: String,
    /// `[xtl, ytl, xbr, ybr]` in the image's pixels.
    points: Vec<f32>,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Runs the service that the `x-nuclio-function-name` header names on the posted image,
/// through the queue, and answers its boxes as CVAT's rectangles.
#[utoipa::path(post, path = "/api/function_invocations", tag = "cvat",
    params(("x-nuclio-function-name" = String, Header, description = "the service")),
    request_body = Invocation,
    responses((status = 200, body = Vec<Shape>), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
              (status = 422, body = super::error::ErrorBody), (status = 504, body = super::error::ErrorBody)))]
pub async fn invoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(invocation): Body<Invocation>,
) -> Result<Json<Vec<Shape>>, ApiError> {
    let service = headers
        .get("x-nuclio-function-name")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request("the `x-nuclio-function-name` header must name a service")
        })?
        .to_string();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(invocation.image.trim())
        .map_err(|e| ApiError::bad_request(format!("`image` is not base64: {e}")).field("image"))?;
    let threshold = invocation.threshold.unwrap_or(0.0);
    let predicted = state
        .run(move |home| {
            let name = item_name(&bytes);
            let request = Prediction {
                service: &service,
                function: "detect",
                dataset: DATASET,
                name: &name,
                bytes: &bytes,
            };
            home.predict(&request, WAIT)
        })
        .await?;
    let shapes = predicted
        .annotations
        .into_iter()
        .filter(|a| a.annotation.model.confidence >= threshold)
        .filter_map(|a| match a.annotation.geometry {
            Geometry::Box {
                left,
                top,
                right,
                bottom,
            } => Some(Shape {
                confidence: format!("{:.4}", a.annotation.model.confidence),
                label: a.annotation.label,
                points: vec![left, top, right, bottom],
                kind: "rectangle",
            }),
            _ => None,
        })
        .collect();
    Ok(Json(shapes))
}

/// Frames have no names: an item is named by its digest (the same frame twice is one item,
/// answered from the store the second time), with the extension of what the bytes are.
fn item_name(bytes: &[u8]) -> String {
    let digest = prelabel::files::sha256_hex(bytes);
    // The magic numbers the item's mimetype is sniffed from (`item::sniff_mimetype`).
    let extension = infer::get(bytes).map_or("bin", |kind| kind.extension());
    format!("{}.{extension}", &digest[..16])
}
