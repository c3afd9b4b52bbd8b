//! The audit log: who did what, when. Every change made through the API (review decisions,
//! deploys, accounts) is recorded with the account that made it, as is every command of the
//! CLI that changes the catalog, accounts, tasks or reviews (as `owner`); `prelabel audit` and
//! `GET /api/audit` read it.

use serde::Serialize;

use crate::error::Result;
use crate::store::{Store, params};

/// One thing someone did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub id: i64,
    pub at: String,
    /// The account, or `owner` (the CLI, the bootstrap token, the open local mode).
    pub actor: String,
    /// What was done: the API's method and route (`PATCH /api/annotations/{id}`), or the
    /// CLI's command (`user add`).
    pub action: String,
    /// What it was done to: the request's path, or the command's subject.
    pub target: String,
    /// The answer's status, for API requests.
    pub status: Option<u16>,
}

/// Records that `actor` did `action` to `target`.
pub fn record(
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    status: Option<u16>,
) -> Result<()> {
    let detail = status.map(|s| serde_json::json!({ "status": s }).to_string());
    store.conn().execute(
        "INSERT INTO audit (actor, action, target, detail) VALUES ($1, $2, $3, $4)",
        params![actor, action, target, detail],
    )?;
    Ok(())
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this actor's.
    pub actor: Option<String>,
    /// At most this many, newest first.
    pub limit: u64,
}

/// The newest entries first.
pub fn list(store: &Store, query: &Query) -> Result<Vec<Entry>> {
    Ok(store.conn().query_map(
        "SELECT id, at, actor, action, target, detail FROM audit
          WHERE (CAST($1 AS TEXT) IS NULL OR actor = $1) ORDER BY id DESC LIMIT $2",
        params![query.actor.as_deref(), query.limit as i64],
        |r| {
            let detail: Option<String> = r.get("detail")?;
            let status = detail
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| d.get("status")?.as_u64())
                .and_then(|s| u16::try_from(s).ok());
            Ok(Entry {
                id: r.get("id")?,
                at: r.get("at")?,
                actor: r.get("actor")?,
                action: r.get("action")?,
                target: r.get("target")?,
                status,
            })
        },
    )?)
}
