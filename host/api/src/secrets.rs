//! Secrets: list (names only), set, delete. A value goes in and never comes out.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::extract::{Body, Path};
use super::{ApiError, AppState};
use prelabel::catalog::secret::Secret;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/secrets", get(list))
        .route("/secrets/{name}", put(set).delete(delete))
}

/// Every secret: its name, when it was set and which datasets send it; never its value.
#[utoipa::path(get, path = "/api/secrets", tag = "secrets",
    responses((status = 200, body = Vec<Secret>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Secret>>, ApiError> {
    Ok(Json(state.run(|home| home.secrets()).await?))
}

/// A secret's value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretValue {
    value: String,
}

/// Sets a secret's value, as `prelabel secret set`.
#[utoipa::path(put, path = "/api/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "the secret")),
    request_body = SecretValue,
    responses((status = 200, body = Secret), (status = 400, body = super::error::ErrorBody)))]
pub async fn set(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(body): Body<SecretValue>,
) -> Result<Json<Secret>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.set_secret(&name, &body.value))
            .await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedSecret {
    pub secret: String,
}

/// Deletes a secret that no dataset sends.
#[utoipa::path(delete, path = "/api/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "the secret")),
    responses((status = 200, body = DeletedSecret), (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<DeletedSecret>, ApiError> {
    let secret = name.clone();
    state.run(move |home| home.delete_secret(&name)).await?;
    Ok(Json(DeletedSecret { secret }))
}
