//! Review tasks: list, show, the items a task holds, and a person's decision on one
//! (complete or discard), which moves the item on in its pipeline.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;

use super::extract::{Body, Path, Query};
use super::{ApiError, AppState, Caller};
use prelabel::package::pipeline::Outcome;
use prelabel::work::task::queue::Create;
use prelabel::work::task::{Decided, Held, Task};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks", get(list).post(create))
        .route("/tasks/{name}/next", post(next))
        .route(
            "/tasks/{name}/assignees/{user}",
            put(assign).delete(unassign),
        )
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

/// Makes a task over a dataset's items (those there now and those to come, matching the
/// filters), assigned to the accounts named: a pipeline of its own, as `prelabel task create`.
#[utoipa::path(post, path = "/api/tasks", tag = "tasks", request_body = Create,
    responses((status = 200, body = Task), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Body(create): Body<Create>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(
        state.run(move |home| home.create_task(&create)).await?,
    ))
}

/// Hands the caller the next item of the task: the one they hold, else the oldest waiting
/// item of a dataset they see that no one holds. It is theirs for 15 minutes (others' decisions
/// on it are refused); 204 when nothing is left for them.
#[utoipa::path(post, path = "/api/tasks/{name}/next", tag = "tasks",
    params(("name" = String, Path, description = "the task")),
    responses((status = 200, body = Held), (status = 204, description = "nothing left for you"),
              (status = 403, body = super::error::ErrorBody), (status = 404, body = super::error::ErrorBody)))]
pub async fn next(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let Caller::User(user) = caller else {
        return Err(ApiError::bad_request(
            "items are handed to an account: log in, or use an account's token",
        ));
    };
    let held = state.run(move |home| home.next_item(&name, &user)).await?;
    Ok(match held {
        Some(held) => Json(held).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Assigns the task to an account.
#[utoipa::path(put, path = "/api/tasks/{name}/assignees/{user}", tag = "tasks",
    params(("name" = String, Path, description = "the task"), ("user" = String, Path, description = "the account")),
    responses((status = 200, body = Task), (status = 404, body = super::error::ErrorBody)))]
pub async fn assign(
    State(state): State<AppState>,
    Path((name, user)): Path<(String, String)>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.assign_task(&name, &user, true))
            .await?,
    ))
}

/// Takes the task back from an account.
#[utoipa::path(delete, path = "/api/tasks/{name}/assignees/{user}", tag = "tasks",
    params(("name" = String, Path, description = "the task"), ("user" = String, Path, description = "the account")),
    responses((status = 200, body = Task), (status = 404, body = super::error::ErrorBody)))]
pub async fn unassign(
    State(state): State<AppState>,
    Path((name, user)): Path<(String, String)>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.assign_task(&name, &user, false))
            .await?,
    ))
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
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<ItemsQuery>,
) -> Result<Json<Vec<Held>>, ApiError> {
    let limit = query.limit.unwrap_or(100).min(1000);
    let scope = caller.scope();
    let mut held = state
        .run(move |home| home.task_items(&name, query.decided, limit))
        .await?;
    held.retain(|h| scope.sees(&h.item.dataset));
    Ok(Json(held))
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
    caller: Caller,
    path: Path<(String, i64)>,
    body: Body<Decision>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, caller, path, body, Outcome::Completed).await
}

/// Discards an item the task holds: it goes on along the task's edges for `discarded`.
#[utoipa::path(post, path = "/api/tasks/{name}/items/{item}/discard", tag = "tasks",
    params(("name" = String, Path, description = "the task"), ("item" = i64, Path, description = "the item")),
    request_body = Decision,
    responses((status = 200, body = Decided), (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn discard(
    state: State<AppState>,
    caller: Caller,
    path: Path<(String, i64)>,
    body: Body<Decision>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, caller, path, body, Outcome::Discarded).await
}

async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, item)): Path<(String, i64)>,
    Body(decision): Body<Decision>,
    outcome: Outcome,
) -> Result<Json<Decided>, ApiError> {
    caller.sees_item(&state, item).await?;
    let by = caller.by(decision.by);
    let account = caller.account();
    Ok(Json(
        state
            .run(move |home| home.decide(&name, item, outcome, by.as_deref(), account))
            .await?,
    ))
}
