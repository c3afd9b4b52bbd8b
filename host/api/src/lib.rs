//! The HTTP API: JSON over the same operations as the CLI (`ops::Home`), served by
//! `prelabel serve` beside the scheduler. Routes are grouped by concept (`items`, `services`,
//! ...); each handler parses the request, runs one operation off the async threads, and
//! returns its typed result as JSON. Errors are `{"error": "..."}` with the status that fits
//! (`error.rs`); the OpenAPI document is generated from the handlers (`openapi.rs`).

mod cvat;
mod error;
mod events;
mod executions;
mod extract;
mod items;
mod labelstudio;
mod openapi;
mod packages;
mod pipelines;
pub mod remote;
mod secrets;
mod services;
mod status;
mod tasks;
mod triggers;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use error::ApiError;

use axum::http::Method;
use prelabel::named::Named;
use prelabel::ops::Home;
use prelabel::people::user::Role;

/// Where and how the API listens.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    /// Required on every request when set (`Authorization: Bearer TOKEN`); required to listen
    /// on anything but loopback.
    pub token: Option<String>,
    /// The largest request body (an upload), in bytes; larger ones are refused with 413.
    pub max_body: usize,
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
    token: Option<[u8; 32]>,
    /// Set when the server stops: long-lived responses (event streams) end.
    pub stop: Arc<AtomicBool>,
    /// The largest request body, in bytes.
    pub max_body: usize,
    pub label_studio: Option<prelabel::integrations::labelstudio::Server>,
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
        label_studio: options.label_studio.clone(),
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
        .merge(openapi::routes());
    Router::new()
        .nest("/api", api)
        .nest("/label-studio", labelstudio::routes())
        .merge(ui::routes())
        .fallback(|| async { ApiError::not_found_route() })
        .layer(DefaultBodyLimit::max(options.max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .with_state(state)
}

/// The cookie the web UI keeps the token in, so that images and the event stream (which
/// cannot set headers) carry it too.
pub const TOKEN_COOKIE: &str = "prelabel_token";

/// Every request carries the token when one is set: `Authorization: Bearer TOKEN` (or Basic
/// credentials, see [`credentials`]), the `prelabel_token` cookie, or a `token` query
/// parameter. The parameter is taken off the URI
/// before the handlers see it (their queries stay strict).
async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let query = take_token_param(&mut request);
    let Some(expected) = state.token else {
        return Ok(next.run(request).await);
    };
    let headers = request.headers();
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credentials);
    let cookie = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='))
        .map(str::to_string);
    let given = header.or(cookie).or(query).unwrap_or_default();
    let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    if bool::from(digest.ct_eq(&expected)) {
        return Ok(next.run(request).await);
    }
    // An account's own token (`prelabel user token`): its role decides.
    if !given.starts_with(prelabel::people::token::PREFIX) {
        return Err(ApiError::unauthorized());
    }
    let Some(user) = state.run(move |home| home.authenticate(&given)).await? else {
        return Err(ApiError::unauthorized());
    };
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    if !permits(user.role, &method, &path) {
        return Err(ApiError::forbidden(format!(
            "user `{}` ({}) may not {method} {path}",
            user.name,
            user.role.name()
        )));
    }
    Ok(next.run(request).await)
}

/// What a role may do with an account's token, by method and route: admins and maintainers
/// everything, viewers read, reviewers read and decide (annotations, review tasks). Coarse on
/// purpose until each dataset's grants are enforced route by route (issue 32).
fn permits(role: Role, method: &Method, path: &str) -> bool {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let review = (*method == Method::PATCH && path.starts_with("/api/annotations/"))
        || (*method == Method::POST
            && ((path.starts_with("/api/items/") && path.ends_with("/annotations"))
                || path.starts_with("/api/tasks/")));
    match role {
        Role::Admin | Role::Maintainer => true,
        Role::Reviewer => read || review,
        Role::Viewer => read,
    }
}

/// The token in an `Authorization` header: `Bearer TOKEN`, or Basic credentials whose user
/// name (or, without one, password) is the token. Tools that are given only a URL (CVAT's
/// Nuclio host, an ML backend's address) take it as `http://TOKEN@host:port/`, which HTTP
/// clients send as Basic credentials.
fn credentials(header: &str) -> Option<String> {
    if let Some(token) = header.strip_prefix("Bearer ") {
        return Some(token.to_string());
    }
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some(if user.is_empty() { password } else { user })
}

/// Removes a `token` query parameter from the request's URI and returns its value.
fn take_token_param(request: &mut Request) -> Option<String> {
    let query = request.uri().query()?;
    let mut token = None;
    let rest: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter_map(|(k, v)| {
            if k == "token" {
                token = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    token.as_ref()?;
    let mut uri = request.uri().path().to_string();
    if !rest.is_empty() {
        uri.push('?');
        uri.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(rest)
                .finish(),
        );
    }
    if let Ok(uri) = uri.parse() {
        *request.uri_mut() = uri;
    }
    token
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
    let served = axum::serve(listener, app)
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
