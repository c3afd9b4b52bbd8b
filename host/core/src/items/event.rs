//! Changes as events, for live updates: SQLite triggers (migration 003) append one for every
//! item written, execution queued or moved on, item whose annotations changed, and pipeline
//! step entered or moved on, whichever
//! process made the change. Readers poll with the last id they saw.

use serde::Serialize;

use crate::error::Result;
use crate::named::named;
use crate::store::{Store, params};

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An item was created or its bytes or metadata changed (`entity_id`: the item).
    Item,
    /// An execution was queued or changed status or attempts (`entity_id`: the execution).
    Execution,
    /// An item's annotations changed (`entity_id`: the item).
    Annotations,
    /// An item entered a pipeline's node or moved on from it (`entity_id`: the step).
    Step,
}

named!(Kind {
    Item => "item",
    Execution => "execution",
    Annotations => "annotations",
    Step => "step",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: i64,
    pub kind: Kind,
    pub entity_id: i64,
    pub at: String,
}

/// How many events are kept; older ones are pruned (a reader that far behind reloads).
pub const KEEP: i64 = 100_000;

/// Events after `after`, oldest first, at most `limit`; several events for one entity in the
/// batch are folded into its last (a result of N boxes is one change to its item).
pub fn since(store: &Store, after: i64, limit: usize) -> Result<Vec<Event>> {
    let events: Vec<Event> = store.conn().query_map(
        "SELECT id, kind, entity_id, at FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        params![after, limit as i64],
        |r| {
            Ok(Event {
                id: r.get("id")?,
                kind: r.get("kind")?,
                entity_id: r.get("entity_id")?,
                at: r.get("at")?,
            })
        },
    )?;
    let mut seen = std::collections::HashSet::new();
    let mut folded: Vec<Event> = events
        .into_iter()
        .rev()
        .filter(|e| seen.insert((e.kind, e.entity_id)))
        .collect();
    folded.reverse();
    Ok(folded)
}

/// The id of the latest event (0 when there is none): where a new reader starts.
pub fn latest(store: &Store) -> Result<i64> {
    Ok(store
        .conn()
        .query_row("SELECT COALESCE(MAX(id), 0) FROM events", params![], |r| {
            r.get(0)
        })?)
}

/// Drops all but the latest [`KEEP`] events. Returns how many went.
pub fn prune(store: &Store) -> Result<usize> {
    Ok(store.conn().execute(
        "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - $1",
        params![KEEP],
    )?)
}
