//! Services: list, show, deploy (create or update, live), pause, resume, rollback, delete.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};

use super::extract::{Body, Path};
use super::{ApiError, AppState};
use crate::ops::{Deleted, Deployed};
use crate::service::{Deploy, Service};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(list))
        .route("/services/{name}", get(show).put(deploy).delete(delete))
        .route("/services/{name}/pause", post(pause))
        .route("/services/{name}/resume", post(resume))
        .route("/services/{name}/rollback", post(rollback))
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
