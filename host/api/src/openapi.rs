//! The OpenAPI document, generated from the handlers' annotations and the types they return.

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

use super::{
    AppState, cvat, events, executions, items, labelstudio, packages, pipelines, secrets, services,
    session, status, tasks, triggers, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Prelabel",
        description = "Pre-annotation functions (WebAssembly components) on a local store: items, \
                       services, triggers, pipelines, executions and their annotations. Every request carries \
                       `Authorization: Bearer TOKEN` when the server has a token. Errors are \
                       `{\"error\": \"...\"}` (with `field` when one request field is at fault)."
    ),
    paths(
        items::datasets,
        items::items,
        items::upload,
        items::link,
        items::item,
        items::data,
        items::thumbnail,
        items::annotations,
        items::review,
        items::add,
        items::export,
        items::evaluate,
        services::list,
        services::show,
        services::deploy,
        services::pause,
        services::resume,
        services::rollback,
        services::compare,
        services::delete,
        triggers::list,
        triggers::create,
        triggers::delete,
        pipelines::list,
        pipelines::apply,
        pipelines::show,
        pipelines::pause,
        pipelines::resume,
        pipelines::delete,
        pipelines::paths,
        tasks::list,
        tasks::create,
        tasks::next,
        tasks::assign,
        tasks::unassign,
        tasks::show,
        tasks::items,
        tasks::complete,
        tasks::discard,
        executions::list,
        executions::show,
        executions::logs,
        executions::rerun,
        executions::cancel,
        executions::batch,
        executions::progress,
        packages::list,
        packages::push,
        packages::revisions,
        secrets::list,
        secrets::set,
        secrets::delete,
        status::status,
        events::events,
        cvat::list,
        cvat::show,
        cvat::invoke,
        labelstudio::health,
        labelstudio::setup,
        labelstudio::predict,
        labelstudio::webhook,
        labelstudio::versions,
        session::login,
        session::logout,
        session::me,
        users::list,
        users::add,
        users::show,
        users::change,
        users::delete,
        users::grant,
        users::take_back,
        users::audit_log,
        document,
    )
)]
struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document))
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "the OpenAPI document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
