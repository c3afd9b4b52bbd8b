//! Packages and their revisions.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::extract::Path;
use super::{ApiError, AppState};
use crate::revision::Revision;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/packages", get(list))
        .route("/packages/{name}/revisions", get(revisions))
}

/// Each package with its latest revision.
#[utoipa::path(get, path = "/api/packages", tag = "packages",
    responses((status = 200, body = Vec<Revision>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Revision>>, ApiError> {
    Ok(Json(state.run(|home| home.packages()).await?))
}

/// Every revision of a package, oldest first, with component and artifact digests.
#[utoipa::path(get, path = "/api/packages/{name}/revisions", tag = "packages",
    params(("name" = String, Path, description = "the package")),
    responses((status = 200, body = Vec<Revision>), (status = 404, body = super::error::ErrorBody)))]
pub async fn revisions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<Revision>>, ApiError> {
    Ok(Json(state.run(move |home| home.revisions(&name)).await?))
}
