//! The HTTP API: JSON over the same operations as the CLI (`ops::Home`), served by
//! `prelabel serve` beside the scheduler. Routes are grouped by concept (`items`, `services`,
//! ...); each handler parses the request, runs one operation off the async threads, and
//! returns its typed result as JSON. Errors are `{"error": "..."}` with the status that fits
//! (`error.rs`); the OpenAPI document is generated from the handlers (`openapi.rs`).

mod access;
mod cvat;
mod error;
mod events;
mod executions;
mod extract;
mod items;
mod labelstudio;
mod openapi;
mod pace;
mod packages;
mod pipelines;
pub mod remote;
mod secrets;
mod services;
mod session;
mod status;
mod tasks;
mod triggers;
mod ui;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use sha2::{Digest, Sha256};

pub use access::{CSRF_HEADER, Caller, SESSION_COOKIE};
pub use error::ApiError;

use prelabel::ops::Home;

/// Where and how the API listens.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    /// Required on every request when set (`Authorization: Bearer TOKEN`); required to listen
    /// on anything but loopback.
    pub token: Option<String>,
    /// The largest request body (an upload), in bytes; larger ones are refused with 413.
    pub max_body: usize,
    /// How long a request body may stall between pieces (past it, it must also average a
    /// byte a second): a slower one is refused with 408.
    pub body_timeout: Duration,
    /// The Label Studio whose tasks' images the ML backend routes fetch (`/data/upload/...`
    /// paths are resolved against it, its token sent to it alone).
    pub label_studio: Option<prelabel::integrations::labelstudio::Server>,
}

/// Why the API does not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {addr} without a token: anyone who can reach it could upload, deploy \
         and run detectors. Set --token (or PRELABEL_TOKEN), or listen on loopback (127.0.0.1)"
    )]
    NoToken { addr: SocketAddr },
    #[error("the token must not be empty")]
    EmptyToken,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl Options {
    /// The token rule: a token is required off loopback, and an empty one is no token.
    pub fn check(&self) -> Result<(), ServeError> {
        match &self.token {
            Some(token) if token.is_empty() => Err(ServeError::EmptyToken),
            None if !self.addr.ip().is_loopback() => Err(ServeError::NoToken { addr: self.addr }),
            _ => Ok(()),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub home: Arc<Home>,
    /// The sha256 of the token: compared in constant time, and the same length whatever was
    /// sent.
    pub(crate) token: Option<[u8; 32]>,
    /// Set when the server stops: long-lived responses (event streams) end.
    pub stop: Arc<AtomicBool>,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// See [`Options::body_timeout`].
    pub body_timeout: Duration,
    pub label_studio: Option<prelabel::integrations::labelstudio::Server>,
    /// Login attempts so far, per account and address.
    limits: Arc<session::Limits>,
}

impl AppState {
    /// Runs an operation on the home on the blocking pool: the store and the runtime block.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Home) -> prelabel::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let home = self.home.clone();
        tokio::task::spawn_blocking(move || op(&home))
            .await
            .map_err(|e| ApiError::internal(format!("the operation panicked: {e}")))?
            .map_err(ApiError::from)
    }
}

/// The API's routes, all under `/api`.
pub fn router(home: Arc<Home>, options: &Options, stop: Arc<AtomicBool>) -> Router {
    let state = AppState {
        home,
        token: options.token.as_deref().map(|t| Sha256::digest(t).into()),
        stop,
        max_body: options.max_body,
        body_timeout: options.body_timeout,
        label_studio: options.label_studio.clone(),
        limits: session::limits(),
    };
    let api = Router::new()
        .merge(items::routes())
        .merge(services::routes())
        .merge(triggers::routes())
        .merge(pipelines::routes())
        .merge(tasks::routes())
        .merge(executions::routes())
        .merge(packages::routes())
        .merge(secrets::routes())
        .merge(status::routes())
        .merge(events::routes())
        .merge(cvat::routes())
        .merge(session::routes())
        .merge(users::routes())
        .merge(openapi::routes());
    Router::new()
        .nest("/api", api)
        .nest("/label-studio", labelstudio::routes())
        .merge(status::metrics_routes())
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found_route() })
        .layer(DefaultBodyLimit::max(options.max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pace::pace,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::authorize,
        ))
        .layer(axum::middleware::from_fn(status::record))
        .with_state(state)
}

/// Serves the API until `stop` is set, then finishes the requests in flight. `ready` is told
/// the address actually bound (port 0 picks a free one).
pub async fn serve(
    home: Arc<Home>,
    options: Options,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    options.check()?;
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: options.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    ready(addr);
    let app = router(home.clone(), &options, stop.clone());
    let pruner = tokio::spawn(prune_events(home));
    let stopped = async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped)
    .await
    .map_err(ServeError::Serve);
    pruner.abort();
    served
}

/// [`serve`] on an async runtime of its own, for a synchronous caller.
pub fn serve_blocking(
    home: Arc<Home>,
    options: Options,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServeError::Serve)?
        .block_on(serve(home, options, stop, ready))
}

/// Keeps the events table bounded while the server runs.
async fn prune_events(home: Arc<Home>) {
    loop {
        let home = home.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || home.prune_events()).await {
            tracing::warn!("cannot prune events: {e}");
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}
