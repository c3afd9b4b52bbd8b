//! Services: list, show, deploy (create or update, live), pause, resume, rollback, delete.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;

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

/// What `PUT /api/services/{name}` asks for: like `prelabel service deploy`. Fields left out
/// keep the service's current value (or the default, for a new service).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The package to deploy.
    pub package: String,
    /// Its revision (default: the latest).
    pub revision: Option<i64>,
    /// Init input values by name, typed as the package declares them.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub init: BTreeMap<String, Value>,
    pub concurrency: Option<u32>,
    /// Seconds.
    pub timeout: Option<f64>,
    /// Seconds.
    pub init_timeout: Option<f64>,
    pub max_attempts: Option<u32>,
    pub memory_mb: Option<u32>,
    pub max_item_mb: Option<u32>,
    pub max_annotations: Option<u32>,
    pub log_kb: Option<u32>,
    pub allow_inference: Option<bool>,
}

impl DeployRequest {
    fn into_deploy(self, name: String) -> Result<Deploy, ApiError> {
        let init = self
            .init
            .into_iter()
            .map(|(key, value)| match value {
                Value::String(s) => Ok(format!("{key}={s}")),
                Value::Number(n) => Ok(format!("{key}={n}")),
                Value::Bool(b) => Ok(format!("{key}={b}")),
                _ => Err(ApiError {
                    field: Some("init".into()),
                    ..ApiError::bad_request(format!(
                        "init input `{key}` must be a string, a number or a boolean"
                    ))
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Deploy {
            package: self.package,
            name,
            revision: self.revision,
            init,
            concurrency: self.concurrency,
            timeout: self.timeout,
            init_timeout: self.init_timeout,
            max_attempts: self.max_attempts,
            memory_mb: self.memory_mb,
            max_item_mb: self.max_item_mb,
            max_annotations: self.max_annotations,
            log_kb: self.log_kb,
            allow_inference: self.allow_inference,
        })
    }
}

/// Creates the service or updates it live (a new revision, inputs or settings): running
/// executions finish, the next ones run on the new revision.
#[utoipa::path(put, path = "/api/services/{name}", tag = "services",
    params(("name" = String, Path, description = "the service")),
    request_body = DeployRequest,
    responses((status = 200, body = Deployed), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn deploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(request): Body<DeployRequest>,
) -> Result<Json<Deployed>, ApiError> {
    let deploy = request.into_deploy(name)?;
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
