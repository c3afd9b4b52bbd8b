//! Logins: each successful one starts a session whose secret goes into the UI's cookie and
//! is kept here as its sha256 only (as tokens are). A session ends at logout, when its time
//! is up, or with its account (deleted or disabled).

use crate::error::Result;
use crate::people::token::{digest, secret};
use crate::people::user::{self, User};
use crate::store::{NOW_MS, OptionalExtension, Store, params};

/// What every session's secret starts with.
pub const PREFIX: &str = "pls_";

/// How long a login lasts.
pub const LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;

/// Starts a session for `user`; returns its secret (the only time it is seen).
pub fn start(store: &mut Store, user: &User) -> Result<String> {
    let secret = secret(PREFIX);
    let conn = store.conn();
    // Sessions whose time is up go as new ones come.
    conn.execute(
        &format!("DELETE FROM sessions WHERE expires_ms < {NOW_MS}"),
        params![],
    )?;
    conn.execute(
        &format!(
            "INSERT INTO sessions (user_id, digest, expires_ms) VALUES ($1, $2, {NOW_MS} + $3)"
        ),
        params![user.id, digest(&secret), LIFETIME_MS],
    )?;
    Ok(secret)
}

/// The enabled account whose live session `secret` is; `None` for any other secret.
pub fn authenticate(store: &Store, secret: &str) -> Result<Option<User>> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    let name: Option<String> = store
        .conn()
        .query_row(
            &format!(
                "SELECT u.name FROM sessions s JOIN users u ON u.id = s.user_id
                  WHERE s.digest = $1 AND s.expires_ms >= {NOW_MS} AND u.disabled = 0"
            ),
            params![digest(secret)],
            |r| r.get(0),
        )
        .optional()?;
    name.map(|n| user::get(store, &n)).transpose()
}

/// Ends the session `secret` is (nothing if it is none).
pub fn end(store: &mut Store, secret: &str) -> Result<()> {
    store.conn().execute(
        "DELETE FROM sessions WHERE digest = $1",
        params![digest(secret)],
    )?;
    Ok(())
}
