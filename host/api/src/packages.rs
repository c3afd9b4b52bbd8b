//! Packages and their revisions.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::extract::{Path, Raw};
use super::{ApiError, AppState};
use prelabel::catalog::revision::Revision;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/packages", get(list).post(push))
        .route("/packages/{name}/revisions", get(revisions))
}

/// Each package with its latest revision.
#[utoipa::path(get, path = "/api/packages", tag = "packages",
    responses((status = 200, body = Vec<Revision>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Revision>>, ApiError> {
    Ok(Json(state.run(|home| home.packages()).await?))
}

/// Pushes a package sent as a tar or tar.gz (`prelabel package pack` writes one): the same
/// checks as `prelabel package push`, every file inside the archive. The body may be as large
/// as an item (`--max-upload-mb`); unpacked, at most four times that.
#[utoipa::path(post, path = "/api/packages", tag = "packages",
    request_body(content = Vec<u8>, content_type = "application/gzip",
        description = "the package as .tar.gz or .tar"),
    responses((status = 201, body = Revision), (status = 400, body = super::error::ErrorBody),
        (status = 413, body = super::error::ErrorBody)))]
pub async fn push(
    State(state): State<AppState>,
    Raw(body): Raw,
) -> Result<(StatusCode, Json<Revision>), ApiError> {
    let limit = 4 * state.max_body as u64;
    let revision = state
        .run(move |home| home.push_archive(&body, limit))
        .await?;
    Ok((StatusCode::CREATED, Json(revision)))
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
