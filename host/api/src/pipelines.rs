//! Pipelines: list, apply (the file's contents as JSON), show, pause, resume, delete.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Serialize;

use super::extract::{Body, Path};
use super::{ApiError, AppState, Caller};
use prelabel::package::pipeline::Spec;
use prelabel::work::pipeline::{Applied, Pipeline, RunPath, Shown};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pipelines", get(list).post(apply))
        .route("/pipelines/{name}", get(show).delete(delete))
        .route("/pipelines/{name}/pause", post(pause))
        .route("/pipelines/{name}/resume", post(resume))
        .route("/items/{id}/pipelines", get(paths))
}

#[utoipa::path(get, path = "/api/pipelines", tag = "pipelines",
    responses((status = 200, body = Vec<Pipeline>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Pipeline>>, ApiError> {
    Ok(Json(state.run(|home| home.pipelines()).await?))
}

/// Stores a pipeline, `pipeline.toml`'s fields as JSON: a new pipeline, a new version when it
/// changed, or nothing. Refused, naming what is wrong, when the graph is not right (a cycle,
/// an edge to no node, a condition that means nothing where it stands, an unknown field) or
/// the store cannot run it (a service or function that does not exist, a filter).
#[utoipa::path(post, path = "/api/pipelines", tag = "pipelines", request_body = Spec,
    responses((status = 200, body = Applied), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn apply(
    State(state): State<AppState>,
    Body(spec): Body<Spec>,
) -> Result<Json<Applied>, ApiError> {
    Ok(Json(
        state.run(move |home| home.apply_pipeline(&spec)).await?,
    ))
}

/// A pipeline with its graph and, per node, how many items wait, run, are done or failed.
#[utoipa::path(get, path = "/api/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "the pipeline")),
    responses((status = 200, body = Shown), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Shown>, ApiError> {
    Ok(Json(state.run(move |home| home.pipeline(&name)).await?))
}

/// Stops new items entering the pipeline; items on their way finish.
#[utoipa::path(post, path = "/api/pipelines/{name}/pause", tag = "pipelines",
    params(("name" = String, Path, description = "the pipeline")),
    responses((status = 200, body = Pipeline), (status = 404, body = super::error::ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Pipeline>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.pause_pipeline(&name, true))
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/pipelines/{name}/resume", tag = "pipelines",
    params(("name" = String, Path, description = "the pipeline")),
    responses((status = 200, body = Pipeline), (status = 404, body = super::error::ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Pipeline>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.pause_pipeline(&name, false))
            .await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedPipeline {
    pub pipeline: String,
}

#[utoipa::path(delete, path = "/api/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "the pipeline")),
    responses((status = 200, body = DeletedPipeline), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DeletedPipeline>, ApiError> {
    let pipeline = name.clone();
    state.run(move |home| home.delete_pipeline(&name)).await?;
    Ok(Json(DeletedPipeline { pipeline }))
}

/// An item's path through pipelines: every run it took part in (one it started, or one that
/// put it), with the nodes it entered, each one's state, error and decision.
#[utoipa::path(get, path = "/api/items/{id}/pipelines", tag = "pipelines",
    params(("id" = i64, Path, description = "the item")),
    responses((status = 200, body = Vec<RunPath>), (status = 404, body = super::error::ErrorBody)))]
pub async fn paths(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Vec<RunPath>>, ApiError> {
    caller.sees_item(&state, id).await?;
    Ok(Json(state.run(move |home| home.item_paths(id)).await?))
}
