//! Label Studio's ML backend protocol, one backend per service at
//! `/label-studio/<service>`: the URL a user pastes into a project's model settings. Label
//! Studio checks `health`, sends its label config to `setup`, and posts tasks to `predict`;
//! each task's image is downloaded (from Label Studio itself with its token, or from where
//! the task points), stored as an item of dataset `label-studio-<project>`, and run through
//! the queue like any other, so the service's concurrency and limits hold and the UI,
//! exports and reruns see it. A task that cannot be answered is answered with its error; the
//! others are answered all the same.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::extract::{Body, Path};
use super::{ApiError, AppState};
use prelabel::integrations::labelstudio::{self, Config};
use prelabel::ops::Prediction;
use prelabel::results::export::labelstudio::{model_version, score};

/// How long one task waits for its execution: below Label Studio's own predict timeout.
const WAIT: Duration = Duration::from_secs(90);
/// Downloads at once per predict request: a project's thousand tasks must not open a
/// thousand connections to Label Studio.
const DOWNLOADS: usize = 8;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/{service}/health", get(health))
        .route("/{service}/setup", post(setup))
        .route("/{service}/predict", post(predict))
        .route("/{service}/webhook", post(webhook))
        .route("/{service}/versions", get(versions))
}

/// Up when the service exists and is not paused.
#[utoipa::path(get, path = "/label-studio/{service}/health", tag = "label-studio",
    params(("service" = String, Path, description = "the service")),
    responses((status = 200, body = Object), (status = 404, body = super::error::ErrorBody)))]
pub async fn health(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = state.run(move |home| home.service(&service)).await?;
    Ok(Json(json!({
        "status": if service.paused { "PAUSED" } else { "UP" },
        "model_class": "prelabel",
        "service": service.name,
    })))
}

/// What Label Studio sends to `setup`: the project and its label config.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Setup {
    /// `<project id>.<created timestamp>`.
    #[serde(default)]
    project: String,
    /// The project's label config (XML).
    schema: String,
}

/// Checks that the project's label config can take the service's boxes (a RectangleLabels
/// control on an Image, and a place for at least one label the service gives) and answers
/// the model version, `package@revision`, and how the service's labels (those its package
/// declares, and those it gave) meet the project's: matched ones with their project label,
/// and those whose boxes are left out.
#[utoipa::path(post, path = "/label-studio/{service}/setup", tag = "label-studio",
    params(("service" = String, Path, description = "the service")),
    request_body = Setup,
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn setup(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Body(setup): Body<Setup>,
) -> Result<Json<Value>, ApiError> {
    let config = Config::parse(&setup.schema)
        .map_err(|e| ApiError::bad_request(e.to_string()).field("schema"))?;
    let (service, labels) = state
        .run(move |home| {
            let service = home.service(&service)?;
            let labels = home.labels(&service)?;
            Ok((service, labels))
        })
        .await?;
    let matching = config
        .matching(&labels)
        .map_err(|e| ApiError::bad_request(e.to_string()).field("schema"))?;
    if !matching.unmatched.is_empty() {
        tracing::info!(
            "Label Studio project {}: the service's labels {:?} have no place in it, their boxes are left out",
            setup.project,
            matching.unmatched
        );
    }
    tracing::info!(
        "Label Studio project {} set up for service {}",
        setup.project,
        service.name
    );
    let matched: serde_json::Map<String, Value> = matching
        .matched
        .into_iter()
        .map(|(ours, theirs)| (ours, Value::String(theirs)))
        .collect();
    Ok(Json(json!({
        "model_version": model_version(&service.package, service.revision),
        "labels": {"matched": matched, "unmatched": matching.unmatched},
    })))
}

/// What Label Studio sends to `predict`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Predict {
    /// Tasks: `{"id", "data": {"image": URL}}`, in the order the results are answered.
    tasks: Vec<Value>,
    #[serde(default)]
    project: String,
    /// The project's label config (XML).
    label_config: String,
}

/// One prediction per task, in order: `{"result": [rectanglelabels...], "score",
/// "model_version"}`, or `{"task", "error"}` for a task that could not be answered (Label
/// Studio logs it and stores the others).
#[utoipa::path(post, path = "/label-studio/{service}/predict", tag = "label-studio",
    params(("service" = String, Path, description = "the service")),
    request_body = Predict,
    responses((status = 200, body = Object), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn predict(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Body(request): Body<Predict>,
) -> Result<Json<Value>, ApiError> {
    let config = Config::parse(&request.label_config)
        .map_err(|e| ApiError::bad_request(e.to_string()).field("label_config"))?;
    let name = service.clone();
    let (service, single) = state
        .run(move |home| {
            let service = home.service(&name)?;
            let labels = home.labels(&service)?;
            Ok((service, labels.len() <= 1))
        })
        .await?;
    let model_version = model_version(&service.package, service.revision);
    let dataset = labelstudio::dataset(&request.project);
    // Every task at once: downloads overlap (a few at a time), and the queue runs them as
    // the service's concurrency allows.
    let downloads = Arc::new(Semaphore::new(DOWNLOADS));
    let mut running = tokio::task::JoinSet::new();
    for (index, task) in request.tasks.into_iter().enumerate() {
        let (state, config, dataset) = (state.clone(), config.clone(), dataset.clone());
        let (service, model_version) = (service.name.clone(), model_version.clone());
        let downloads = downloads.clone();
        running.spawn(async move {
            let id = task.get("id").and_then(Value::as_i64);
            let wanted = Wanted {
                service: &service,
                config: &config,
                dataset: &dataset,
                single,
            };
            let answer = answer(&state, &downloads, &wanted, &task)
                .await
                .map(|results| {
                    json!({
                        "score": score(&results),
                        "result": results,
                        "model_version": model_version,
                    })
                })
                .unwrap_or_else(|error| {
                    tracing::warn!("Label Studio task {id:?} not answered: {error}");
                    json!({"task": id, "error": error})
                });
            (index, answer)
        });
    }
    let mut results = vec![Value::Null; running.len()];
    while let Some(joined) = running.join_next().await {
        let (index, answer) =
            joined.map_err(|e| ApiError::internal(format!("a task's answer panicked: {e}")))?;
        results[index] = answer;
    }
    Ok(Json(
        json!({ "results": results, "model_version": model_version }),
    ))
}

/// What a predict request asks of each of its tasks.
struct Wanted<'a> {
    service: &'a str,
    config: &'a Config,
    dataset: &'a str,
    /// The service gives one label only.
    single: bool,
}

/// One task's results, or what kept it from being answered.
async fn answer(
    state: &AppState,
    downloads: &Semaphore,
    wanted: &Wanted<'_>,
    task: &Value,
) -> Result<Vec<Value>, String> {
    let data = task.get("data").unwrap_or(&Value::Null);
    let id = task.get("id").and_then(Value::as_i64);
    let (url, server) = labelstudio::image_url(
        data,
        &wanted.config.data_key,
        id,
        state.label_studio.as_ref(),
    )
    .map_err(|e| e.to_string())?;
    let name = labelstudio::item_name(id, &url);
    let (service, dataset) = (wanted.service.to_string(), wanted.dataset.to_string());
    let permit = downloads
        .acquire()
        .await
        .map_err(|e| format!("the downloads stopped: {e}"))?;
    // A personal access token may be exchanged first: blocking, as the download is.
    let grant = match server {
        Some(server) => Some(
            tokio::task::spawn_blocking(move || server.grant())
                .await
                .map_err(|e| format!("the key's exchange stopped: {e}"))?
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let named = service.clone();
    let bytes = state
        .run(move |home| home.download(&named, url.as_str(), grant.as_ref()))
        .await
        .map_err(|e| e.message)?;
    drop(permit);
    let predicted = state
        .run(move |home| {
            let request = Prediction {
                service: &service,
                function: "detect",
                dataset: &dataset,
                name: &name,
                bytes: &bytes,
            };
            home.predict(&request, WAIT)
        })
        .await
        .map_err(|e| e.message)?;
    let (width, height) = predicted
        .item
        .size_px()
        .ok_or_else(|| format!("item `{}` has no image size", predicted.item.name))?;
    Ok(wanted
        .config
        .results(&predicted.annotations, width, height, wanted.single))
}

/// Label Studio's events (annotations created, training started): acknowledged. Prelabel
/// does not train; reviews made in Label Studio stay there.
#[utoipa::path(post, path = "/label-studio/{service}/webhook", tag = "label-studio",
    params(("service" = String, Path, description = "the service")),
    responses((status = 200, body = Object)))]
pub async fn webhook(Path(service): Path<String>) -> Json<Value> {
    Json(json!({"status": "ok", "service": service}))
}

/// The model versions a project may pick from: the service's current one.
#[utoipa::path(get, path = "/label-studio/{service}/versions", tag = "label-studio",
    params(("service" = String, Path, description = "the service")),
    responses((status = 200, body = Object), (status = 404, body = super::error::ErrorBody)))]
pub async fn versions(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let service = state.run(move |home| home.service(&service)).await?;
    Ok(Json(json!({
        "versions": [model_version(&service.package, service.revision)],
    })))
}
