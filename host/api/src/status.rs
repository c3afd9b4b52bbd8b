//! The store, its workers and the queues: `prelabel status` over HTTP, and the same numbers
//! with this server's own (execution stages, instances, requests) as Prometheus scrapes them.

use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};
use prelabel::ops::StoreStatus;

pub fn routes() -> Router<AppState> {
    Router::new().route("/status", get(status))
}

/// `/metrics`, beside `/api` where Prometheus looks for it.
pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Where the store is (a PostgreSQL URL without its password), the workers sharing it with
/// their leases, heartbeats and running executions, and every service's queue depth.
#[utoipa::path(get, path = "/api/status", tag = "status",
    responses((status = 200, body = StoreStatus)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<StoreStatus>, ApiError> {
    Ok(Json(state.run(|home| home.status()).await?))
}

/// Prometheus' text format (OpenMetrics): see `prelabel::work::metrics`.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state.run(|home| home.metrics()).await?;
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, kind)], text).into_response())
}

/// Counts every request by its matched route (an unknown path is `unmatched`: the series stay
/// as few as the routes, whatever paths clients try), method and status, with its time to the
/// response's head.
pub async fn record(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    prelabel::work::metrics::global().request(&method, &route, status, started.elapsed());
    response
}
