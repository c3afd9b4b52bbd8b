//! Services: list, show, deploy (create or update, live), pause, resume, rollback, delete.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Body, Path, Query};
use super::{ApiError, AppState};
use prelabel::catalog::service::{Deploy, Service};
use prelabel::ops::{Deleted, Deployed};
use prelabel::work::compare::{Comparison, Request as CompareRequest};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(list))
        .route("/services/{name}", get(show).put(deploy).delete(delete))
        .route("/services/{name}/pause", post(pause))
        .route("/services/{name}/resume", post(resume))
        .route("/services/{name}/rollback", post(rollback))
        .route("/services/{name}/compare", post(compare))
}

#[utoipa::path(get, path = "/api/services", tag = "services",
    responses((status = 200, body = Vec<Service>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Service>>, ApiError> {
    Ok(Json(state.run(|home| home.services()).await?))
}

#[utoipa::path(get, path = "/api/services/{name}", tag = "services",
    params(("name" = String, Path, description = "the service")),
    responses((status = 200, body = Service), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    Ok(Json(state.run(move |home| home.service(&name)).await?))
}

/// Creates the service or updates it live (a new revision, inputs or settings): running
/// executions finish, the next ones run on the new revision.
#[utoipa::path(put, path = "/api/services/{name}", tag = "services",
    params(("name" = String, Path, description = "the service")),
    request_body = Deploy,
    responses((status = 200, body = Deployed), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn deploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(deploy): Body<Deploy>,
) -> Result<Json<Deployed>, ApiError> {
    let deploy = Deploy { name, ..deploy };
    Ok(Json(state.run(move |home| home.deploy(&deploy)).await?))
}

#[utoipa::path(post, path = "/api/services/{name}/pause", tag = "services",
    params(("name" = String, Path, description = "the service")),
    responses((status = 200, body = Service), (status = 404, body = super::error::ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    Ok(Json(
        state.run(move |home| home.set_paused(&name, true)).await?,
    ))
}

#[utoipa::path(post, path = "/api/services/{name}/resume", tag = "services",
    params(("name" = String, Path, description = "the service")),
    responses((status = 200, body = Service), (status = 404, body = super::error::ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    Ok(Json(
        state.run(move |home| home.set_paused(&name, false)).await?,
    ))
}

/// Goes back to the previously deployed revision.
#[utoipa::path(post, path = "/api/services/{name}/rollback", tag = "services",
    params(("name" = String, Path, description = "the service")),
    responses((status = 200, body = Service), (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Service>, ApiError> {
    Ok(Json(state.run(move |home| home.rollback(&name)).await?))
}

/// Deletes the service and its triggers; its queued executions are canceled, finished ones
/// and their annotations kept.
#[utoipa::path(delete, path = "/api/services/{name}", tag = "services",
    params(("name" = String, Path, description = "the service")),
    responses((status = 200, body = Deleted), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Deleted>, ApiError> {
    Ok(Json(
        state.run(move |home| home.delete_service(&name)).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// `json` (default), or `html`: one self-contained page of overlays.
    format: Option<String>,
}

/// Runs a candidate package revision on a dataset's items beside the service's stored
/// annotations, storing nothing, and answers what a switch would change: per item the boxes
/// matched, added and removed, confidence shifts and times, and a summary (as `prelabel
/// compare`). The answer comes when every item has run; other requests are served meanwhile.
#[utoipa::path(post, path = "/api/services/{name}/compare", tag = "services",
    params(("name" = String, Path, description = "the service"), CompareQuery),
    request_body = CompareRequest,
    responses((status = 200, body = Comparison, description = "the comparison, or with `format=html` a page"),
              (status = 400, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn compare(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<CompareQuery>,
    Body(request): Body<CompareRequest>,
) -> Result<Response, ApiError> {
    let html = match query.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be json or html, got `{other}`"
            )));
        }
    };
    let request = CompareRequest {
        service: name,
        ..request
    };
    let comparison = state.run(move |home| home.compare(&request)).await?;
    if !html {
        return Ok(Json(comparison).into_response());
    }
    let page = state
        .run(move |home| home.compare_html(&comparison))
        .await?;
    Ok(Html(page).into_response())
}
