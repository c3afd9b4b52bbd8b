//! Live updates: a server-sent event stream of changes to items, executions and annotations,
//! made by any process on the home (the events table is written by the store's triggers).
//! Each event carries what changed and its id; the page fetches what it shows again.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::extract::Query;
use super::{ApiError, AppState, Caller};
use prelabel::items::event::Event;

/// How often the store is polled for new events.
const POLL: Duration = Duration::from_millis(250);
/// At most this many events per poll.
const BATCH: usize = 500;

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Start after this event id (default: now; `Last-Event-ID` when the browser reconnects).
    after: Option<i64>,
}

/// A stream of `item`, `execution` and `annotations` events (`text/event-stream`); the data is
/// the event as JSON.
#[utoipa::path(get, path = "/api/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = Event, content_type = "text/event-stream")))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let reconnect = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let start = match query.after.or(reconnect) {
        Some(after) => after,
        None => state.run(|home| home.latest_event()).await?,
    };
    let scope = caller.scope();
    let stream = stream::unfold(
        (state, start, Vec::<Event>::new()),
        move |(state, mut cursor, mut pending)| {
            let scope = scope.clone();
            async move {
                loop {
                    if let Some(event) = (!pending.is_empty()).then(|| pending.remove(0)) {
                        let sse = SseEvent::default()
                            .id(event.id.to_string())
                            .event(prelabel::named::Named::name(event.kind))
                            .json_data(&event)
                            .unwrap_or_default();
                        return Some((Ok(sse), (state, cursor, pending)));
                    }
                    if state.stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    tokio::time::sleep(POLL).await;
                    let scope = scope.clone();
                    // The cursor moves past what a scoped reader does not see, too.
                    if let Ok((batch, read)) = state
                        .run(move |home| home.events_since(cursor, BATCH, &scope))
                        .await
                    {
                        cursor = read;
                        pending = batch;
                    }
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
