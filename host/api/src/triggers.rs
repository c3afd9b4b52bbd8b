//! Triggers: list, create, delete.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{delete as delete_route, get};
use serde::Serialize;

use super::extract::{Body, Path};
use super::{ApiError, AppState};
use prelabel::work::trigger::{Create, Trigger};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/triggers", get(list).post(create))
        .route("/triggers/{name}", delete_route(delete))
}

#[utoipa::path(get, path = "/api/triggers", tag = "triggers",
    responses((status = 200, body = Vec<Trigger>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Trigger>>, ApiError> {
    Ok(Json(state.run(|home| home.triggers()).await?))
}

/// Creates a trigger: the service's function runs on items created (or updated) in the
/// dataset (or any) that match every filter.
#[utoipa::path(post, path = "/api/triggers", tag = "triggers", request_body = Create,
    responses((status = 200, body = Trigger), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Body(request): Body<Create>,
) -> Result<Json<Trigger>, ApiError> {
    Ok(Json(
        state.run(move |home| home.create_trigger(&request)).await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedTrigger {
    pub trigger: String,
}

#[utoipa::path(delete, path = "/api/triggers/{name}", tag = "triggers",
    params(("name" = String, Path, description = "the trigger")),
    responses((status = 200, body = DeletedTrigger), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DeletedTrigger>, ApiError> {
    let trigger = name.clone();
    state.run(move |home| home.delete_trigger(&name)).await?;
    Ok(Json(DeletedTrigger { trigger }))
}
