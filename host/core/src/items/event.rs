//! Changes as events, for live updates: SQLite triggers (migration 003) append one for every
//! item written, execution queued or moved on, item whose annotations changed, and pipeline
//! step entered or moved on, whichever
//! process made the change. Readers poll with the last id they saw.

use serde::Serialize;

use std::collections::HashMap;

use crate::error::Result;
use crate::named::named;
use crate::people::Scope;
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

/// [`since`], only the events about items of datasets `scope` sees (what a reviewer's or
/// viewer's stream carries), and the id read up to (where the next read starts, past what
/// was left out). An event whose item is gone is left out.
pub fn since_in(
    store: &Store,
    after: i64,
    limit: usize,
    scope: &Scope,
) -> Result<(Vec<Event>, i64)> {
    let events = since(store, after, limit)?;
    // Folding keeps each entity's last event: the last one read is still there.
    let Some(last) = events.last().map(|e| e.id) else {
        return Ok((events, after));
    };
    if *scope == Scope::All {
        return Ok((events, last));
    }
    // Each event's item, whatever its kind names, and that item's dataset.
    let datasets: HashMap<i64, String> = store
        .conn()
        .query_map(
            "SELECT e.id, d.name FROM events e
               JOIN items i ON i.id = CASE
                    WHEN e.kind IN ('item', 'annotations') THEN e.entity_id
                    WHEN e.kind = 'execution' THEN (SELECT x.item_id FROM executions x WHERE x.id = e.entity_id)
                    ELSE (SELECT s.item_id FROM pipeline_steps s WHERE s.id = e.entity_id) END
               JOIN datasets d ON d.id = i.dataset_id
              WHERE e.id > $1 AND e.id <= $2",
            params![after, last],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect();
    let seen = events
        .into_iter()
        .filter(|e| datasets.get(&e.id).is_some_and(|d| scope.sees(d)))
        .collect();
    Ok((seen, last))
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
