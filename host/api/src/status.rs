//! The store, its workers and the queues: `prelabel status` over HTTP.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{ApiError, AppState};
use prelabel::ops::StoreStatus;

pub fn routes() -> Router<AppState> {
    Router::new().route("/status", get(status))
}

/// Where the store is (a PostgreSQL URL without its password), the workers sharing it with
/// their leases, heartbeats and running executions, and every service's queue depth.
#[utoipa::path(get, path = "/api/status", tag = "status",
    responses((status = 200, body = StoreStatus)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<StoreStatus>, ApiError> {
    Ok(Json(state.run(|home| home.status()).await?))
}
