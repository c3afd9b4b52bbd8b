//! Executions: list (filters, paging), one, its logs, rerun, cancel a queued one.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::extract::{Body, Path, Query};
use super::{ApiError, AppState, Caller};
use prelabel::people::Scope;
use prelabel::work::batch::{Batch, Request};
use prelabel::work::execution::{Execution, Filter, Rerun, Status};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/executions", get(list))
        .route("/executions/rerun", post(rerun))
        .route("/executions/{id}", get(show))
        .route("/executions/{id}/logs", get(logs))
        .route("/executions/{id}/cancel", post(cancel))
        .route("/batches", post(batch))
        .route("/batches/{id}", get(progress))
}

/// A page of executions, newest first, and how many match in all.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub executions: Vec<Execution>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only executions with this status.
    #[param(value_type = Option<String>)]
    status: Option<Status>,
    /// Only this service's.
    service: Option<String>,
    /// Only this item's.
    item: Option<i64>,
    /// Only items of this dataset.
    dataset: Option<String>,
    #[serde(default)]
    offset: u64,
    /// At most this many (default 100, at most 1000).
    limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/executions", tag = "executions", params(ListQuery),
    responses((status = 200, body = Page), (status = 400, body = super::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    // A reviewer or viewer lists the executions of one item or dataset they see.
    match (&query.item, &query.dataset) {
        _ if caller.scope() == Scope::All => {}
        (Some(item), _) => caller.sees_item(&state, *item).await?,
        (None, Some(dataset)) => caller.dataset(dataset)?,
        (None, None) => {
            return Err(ApiError::forbidden(format!(
                "user `{}` sees only the datasets granted to them: name one (`dataset=`) or an item (`item=`)",
                caller.name()
            )));
        }
    }
    let limit = query.limit.unwrap_or(100).min(1000);
    let filter = Filter {
        status: query.status,
        service: query.service,
        item: query.item,
        dataset: query.dataset,
    };
    let offset = query.offset;
    let (executions, total) = state
        .run(move |home| home.execution_page(&filter, offset, limit))
        .await?;
    Ok(Json(Page {
        executions,
        total,
        offset,
        limit,
    }))
}

#[utoipa::path(get, path = "/api/executions/{id}", tag = "executions",
    params(("id" = i64, Path, description = "the execution")),
    responses((status = 200, body = Execution), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Execution>, ApiError> {
    Ok(Json(seen(&state, &caller, id).await?))
}

/// Execution `id`, if the caller sees its item (one it does not see is not found).
async fn seen(state: &AppState, caller: &Caller, id: i64) -> Result<Execution, ApiError> {
    let execution = state.run(move |home| home.execution(id)).await?;
    if caller.sees_item(state, execution.item_id).await.is_err() {
        return Err(prelabel::Error::not_found(
            prelabel::error::Kind::Execution,
            id,
            format!("no execution with id {id}"),
        )
        .into());
    }
    Ok(execution)
}

/// What the guest printed and logged, and the host's notes on each attempt.
#[utoipa::path(get, path = "/api/executions/{id}/logs", tag = "executions",
    params(("id" = i64, Path, description = "the execution")),
    responses((status = 200, body = String, content_type = "text/plain"),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<String, ApiError> {
    Ok(seen(&state, &caller, id).await?.logs)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerunRequest {
    /// Rerun executions with this status (default: failed and timed-out).
    #[schema(value_type = Option<String>)]
    pub status: Option<Status>,
}

/// Queues the latest execution of each (service, item, function) with the status again.
#[utoipa::path(post, path = "/api/executions/rerun", tag = "executions", request_body = RerunRequest,
    responses((status = 200, body = Rerun), (status = 400, body = super::error::ErrorBody)))]
pub async fn rerun(
    State(state): State<AppState>,
    Body(request): Body<RerunRequest>,
) -> Result<Json<Rerun>, ApiError> {
    Ok(Json(
        state.run(move |home| home.rerun(request.status)).await?,
    ))
}

/// Cancels a queued execution (one already running finishes).
#[utoipa::path(post, path = "/api/executions/{id}/cancel", tag = "executions",
    params(("id" = i64, Path, description = "the execution")),
    responses((status = 200, body = Execution), (status = 404, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Execution>, ApiError> {
    Ok(Json(state.run(move |home| home.cancel(id)).await?))
}

/// Queues a service's function on every item of a dataset that matches the filters, in one
/// transaction; the answer says how many, and `GET /api/batches/{id}` how far they got.
#[utoipa::path(post, path = "/api/batches", tag = "executions", request_body = Request,
    responses((status = 200, body = Batch), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn batch(
    State(state): State<AppState>,
    Body(request): Body<Request>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(state.run(move |home| home.batch(&request)).await?))
}

/// A batch: its executions by status, and whether it is done.
#[utoipa::path(get, path = "/api/batches/{id}", tag = "executions",
    params(("id" = i64, Path, description = "the batch")),
    responses((status = 200, body = Batch), (status = 404, body = super::error::ErrorBody)))]
pub async fn progress(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Batch>, ApiError> {
    Ok(Json(state.run(move |home| home.batch_progress(id)).await?))
}
