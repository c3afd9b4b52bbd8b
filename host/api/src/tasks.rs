//! Review tasks: list, show, the items a task holds, and a person's decision on one
//! (complete or discard), which moves the item on in its pipeline.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Body, Path, Query};
use super::{ApiError, AppState};
use prelabel::package::pipeline::Outcome;
use prelabel::work::task::{Decided, Held, Task};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/{name}", get(show))
        .route("/tasks/{name}/items", get(items))
        .route("/tasks/{name}/items/{item}/complete", post(complete))
        .route("/tasks/{name}/items/{item}/discard", post(discard))
}

#[utoipa::path(get, path = "/api/tasks", tag = "tasks",
    responses((status = 200, body = Vec<Task>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Task>>, ApiError> {
    Ok(Json(state.run(|home| home.tasks()).await?))
}

#[utoipa::path(get, path = "/api/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "the task")),
    responses((status = 200, body = Task), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.run(move |home| home.task(&name)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    /// The items decided (newest first) instead of those waiting (oldest first).
    #[serde(default)]
    decided: bool,
    /// At most this many (default 100, at most 1000).
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/tasks/{name}/items", tag = "tasks",
    params(("name" = String, Path, description = "the task"), ItemsQuery),
    responses((status = 200, body = Vec<Held>), (status = 404, body = super::error::ErrorBody)))]
pub async fn items(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<ItemsQuery>,
) -> Result<Json<Vec<Held>>, ApiError> {
    let limit = query.limit.unwrap_or(100).min(1000);
    Ok(Json(
        state
            .run(move |home| home.task_items(&name, query.decided, limit))
            .await?,
    ))
}

/// Who decides.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub by: Option<String>,
}

/// Completes an item the task holds: it goes on along the task's edges for `completed`. An
/// item decided already is a conflict naming who decided it and when.
#[utoipa::path(post, path = "/api/tasks/{name}/items/{item}/complete", tag = "tasks",
    params(("name" = String, Path, description = "the task"), ("item" = i64, Path, description = "the item")),
    request_body = Decision,
    responses((status = 200, body = Decided), (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn complete(
    state: State<AppState>,
    path: Path<(String, i64)>,
    body: Body<Decision>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, path, body, Outcome::Completed).await
}

/// Discards an item the task holds: it goes on along the task's edges for `discarded`.
#[utoipa::path(post, path = "/api/tasks/{name}/items/{item}/discard", tag = "tasks",
    params(("name" = String, Path, description = "the task"), ("item" = i64, Path, description = "the item")),
    request_body = Decision,
    responses((status = 200, body = Decided), (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn discard(
    state: State<AppState>,
    path: Path<(String, i64)>,
    body: Body<Decision>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, path, body, Outcome::Discarded).await
}

async fn decide(
    State(state): State<AppState>,
    Path((name, item)): Path<(String, i64)>,
    Body(decision): Body<Decision>,
    outcome: Outcome,
) -> Result<Json<Decided>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.decide(&name, item, outcome, decision.by.as_deref()))
            .await?,
    ))
}
