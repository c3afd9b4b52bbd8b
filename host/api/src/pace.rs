//! Slow bodies: a request body that stalls, or comes slower than a byte a second, ends with
//! an error instead of holding a connection for as long as the client likes: the handler's
//! read fails (so nothing of the request is stored) and the answer is a 408 saying why.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, BodyDataStream};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::{ApiError, AppState};

/// The least a body must average over each stretch of the timeout, in bytes a second.
const MIN_RATE: u64 = 1;

/// Where a body's reading stands: the bytes of the stretch since `since`.
struct Reading {
    frames: BodyDataStream,
    since: Instant,
    received: u64,
    ended: bool,
}

/// Wraps the request's body: each piece must come within `state.body_timeout` of the last,
/// and each stretch of that long must average a byte a second (a fast start does not buy a
/// slow rest).
pub async fn pace(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let idle = state.body_timeout;
    let (parts, body) = request.into_parts();
    // Why the body was cut, once it was: the answer says it, whatever the handler made of
    // its failed read.
    let cut: Arc<Mutex<Option<String>>> = Arc::default();
    let noted = cut.clone();
    let reading = Reading {
        frames: body.into_data_stream(),
        since: Instant::now(),
        received: 0,
        ended: false,
    };
    let stream = futures_util::stream::unfold(reading, move |mut at| {
        let noted = noted.clone();
        async move {
            if at.ended {
                return None;
            }
            let why = match tokio::time::timeout(idle, at.frames.next()).await {
                Err(_) => format!(
                    "the request body stalled: nothing arrived for {} s",
                    idle.as_secs_f64()
                ),
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    at.ended = true;
                    return Some((Err(e), at));
                }
                Ok(Some(Ok(bytes))) => {
                    at.received += bytes.len() as u64;
                    let stretch = at.since.elapsed();
                    if stretch < idle {
                        return Some((Ok(bytes), at));
                    }
                    if at.received >= MIN_RATE * stretch.as_secs() {
                        (at.since, at.received) = (Instant::now(), 0);
                        return Some((Ok(bytes), at));
                    }
                    format!(
                        "the request body stalled: {} bytes in {} s, slower than a byte a second",
                        at.received,
                        stretch.as_secs()
                    )
                }
            };
            if let Ok(mut cut) = noted.lock() {
                *cut = Some(why.clone());
            }
            at.ended = true;
            let error = std::io::Error::new(std::io::ErrorKind::TimedOut, why);
            Some((Err(axum::Error::new(error)), at))
        }
    });
    let response = next
        .run(Request::from_parts(parts, Body::from_stream(stream)))
        .await;
    match cut.lock().ok().and_then(|mut cut| cut.take()) {
        Some(why) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("{why}; nothing of the request was stored"),
        )
        .into_response(),
        None => response,
    }
}
