//! A detection API in the JSON that `guest/remote-detector` reads, answered by any package
//! (`prelabel serve-detector PACKAGE`): the reference server of the remote-detector's tests
//! and README, and a way to put a Prelabel detector behind HTTP for a tool that calls one.
//!
//! `POST /detect` with an image as the body (and `Authorization: Bearer KEY` when the server
//! has a key) answers `200 {"boxes": [{"label", "confidence", "left", "top", "right",
//! "bottom"}], "model": {"name", "version"}}`, in the image's pixels; `401` without the key,
//! `400` for an empty body, `413` over the size limit, `422 {"error"}` when the detector
//! failed on the image. One instance answers, one image at a time, as `prelabel detect` runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use prelabel::results::annotation::Geometry;
use prelabel::work::local::{FileResult, LocalRunner};

/// The answer to one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub boxes: Vec<RemoteBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<RemoteModel>,
}

/// One box, in pixels of the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteBox {
    pub label: String,
    pub confidence: f32,
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteModel {
    pub name: String,
    pub version: String,
}

impl Answer {
    /// A detector's result as the API answers it: its boxes (other geometries have no place
    /// in this shape), and the model that found them.
    pub fn from_result(result: &FileResult) -> Answer {
        let boxes = result
            .annotations
            .iter()
            .filter_map(|a| match a.geometry {
                Geometry::Box {
                    left,
                    top,
                    right,
                    bottom,
                } => Some(RemoteBox {
                    label: a.label.clone(),
                    confidence: a.model.confidence,
                    left,
                    top,
                    right,
                    bottom,
                }),
                _ => None,
            })
            .collect();
        let model = result.annotations.first().map(|a| RemoteModel {
            name: a.model.name.clone(),
            version: a.model.version.clone(),
        });
        Answer { boxes, model }
    }
}

/// One image for the instance, and where its result goes.
pub struct Job {
    pub bytes: Vec<u8>,
    pub reply: oneshot::Sender<FileResult>,
}

/// Runs every job `jobs` brings on `runner`, until the server is gone.
pub fn work(runner: &mut LocalRunner, jobs: mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let result = runner.run("image", job.bytes);
        // The client may have gone; its answer has nowhere to go.
        let _ = job.reply.send(result);
    }
}

#[derive(Clone)]
struct Shared {
    jobs: mpsc::Sender<Job>,
    api_key: Option<Arc<str>>,
}

/// The API's routes: `POST /detect`, bodies up to `max_bytes`.
pub fn router(jobs: mpsc::Sender<Job>, api_key: Option<String>, max_bytes: usize) -> Router {
    Router::new()
        .route("/detect", post(detect))
        .layer(DefaultBodyLimit::max(max_bytes))
        .with_state(Shared {
            jobs,
            api_key: api_key.map(Arc::from),
        })
}

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, Json(serde_json::json!({ "error": error }))).into_response()
}

async fn detect(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(key) = &shared.api_key {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer KEY` is required",
            );
        }
    }
    if body.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "the body must be an image");
    }
    let (reply, answer) = oneshot::channel();
    let job = Job {
        bytes: body.to_vec(),
        reply,
    };
    if shared.jobs.send(job).is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the detector has stopped");
    }
    match answer.await {
        Ok(result) => match &result.error {
            Some(error) => refuse(StatusCode::UNPROCESSABLE_ENTITY, error),
            None => Json(Answer::from_result(&result)).into_response(),
        },
        Err(_) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the detector has stopped"),
    }
}

/// Serves `runner`'s answers on `addr` until `stop` is set: the instance on a thread of its
/// own, the server on an async runtime of its own. `ready` is told the address bound (port 0
/// picks a free one).
pub fn serve_blocking(
    runner: &mut LocalRunner,
    addr: SocketAddr,
    api_key: Option<String>,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let executor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = executor.block_on(tokio::net::TcpListener::bind(addr))?;
    ready(listener.local_addr()?);
    let max_bytes = usize::try_from(runner.limits().max_item_bytes).unwrap_or(usize::MAX);
    let (jobs, queue) = mpsc::channel();
    let router = router(jobs, api_key, max_bytes);
    let stopped = async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // The server ends on `stop`, and with it the queue's sender, which ends the thread.
    std::thread::scope(|scope| {
        scope.spawn(|| work(runner, queue));
        executor.block_on(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
        })
    })
}
