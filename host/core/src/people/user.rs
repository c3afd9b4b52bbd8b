//! Accounts: a name, a role, an Argon2id password hash, enabled or not, and the datasets
//! granted to a reviewer or a viewer.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::named::Named;
use crate::package::manifest::is_name;
use crate::store::{NOW, OptionalExtension, Row, Store, params};

/// What an account may do (the server enforces it on every route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, accounts included.
    Admin,
    /// Packages, services, triggers, pipelines and secrets (by name), and every dataset.
    Maintainer,
    /// Review the datasets granted to them.
    Reviewer,
    /// Read the datasets granted to them.
    Viewer,
}

crate::named::named!(Role {
    Admin => "admin",
    Maintainer => "maintainer",
    Reviewer => "reviewer",
    Viewer => "viewer",
});

/// An account, without its password hash.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    /// The datasets granted to it (what a reviewer or viewer may see).
    pub grants: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Shorter passwords are refused; longer ones than this too (hashing is work the server does).
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(Error::invalid(
            "password",
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} characters, got {n}"),
        ));
    }
    Ok(())
}

/// The Argon2id PHC string of `password`, with a fresh salt.
fn hash(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::invalid("password", format!("cannot hash it: {e}")))
}

fn not_found(name: &str) -> Error {
    Error::not_found(
        Kind::User,
        name,
        format!("no user named `{name}` (see: prelabel user list)"),
    )
}

fn from_row(r: &Row) -> crate::store::db::Result<User> {
    Ok(User {
        id: r.get("id")?,
        name: r.get("name")?,
        role: r.get("role")?,
        disabled: r.get("disabled")?,
        grants: Vec::new(),
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

const SELECT: &str = "SELECT id, name, role, disabled, created_at, updated_at FROM users";

/// Adds account `name` with `role` and `password`; a name taken is a conflict.
pub fn add(store: &mut Store, name: &str, role: Role, password: &str) -> Result<User> {
    if !is_name(name) {
        return Err(Error::invalid(
            "name",
            format!(
                "`{name}` is not a name (lowercase letters, digits and `-`, starting with a letter)"
            ),
        ));
    }
    check_password(password)?;
    let hashed = hash(password)?;
    let added = store.conn().execute(
        "INSERT INTO users (name, role, password_hash) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        params![name, role.name(), hashed],
    )?;
    if added == 0 {
        return Err(Error::Conflict {
            kind: Kind::User,
            name: name.to_string(),
            message: format!("a user named `{name}` exists already"),
        });
    }
    get(store, name)
}

pub fn get(store: &Store, name: &str) -> Result<User> {
    let mut user = store
        .conn()
        .query_row(
            &format!("{SELECT} WHERE name = $1"),
            params![name],
            from_row,
        )
        .optional()?
        .ok_or_else(|| not_found(name))?;
    user.grants = grants(store, user.id)?;
    Ok(user)
}

pub fn list(store: &Store) -> Result<Vec<User>> {
    let mut users =
        store
            .conn()
            .query_map(&format!("{SELECT} ORDER BY name"), params![], from_row)?;
    for user in &mut users {
        user.grants = grants(store, user.id)?;
    }
    Ok(users)
}

/// Whether any account exists (asked on every request of the open local mode: one row).
pub fn any(store: &Store) -> Result<bool> {
    let found: Option<i64> = store
        .conn()
        .query_row("SELECT id FROM users LIMIT 1", params![], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

fn grants(store: &Store, user: i64) -> Result<Vec<String>> {
    Ok(store.conn().query_map(
        "SELECT dataset FROM grants WHERE user_id = $1 ORDER BY dataset",
        params![user],
        |r| r.get(0),
    )?)
}

/// Sets a new password.
pub fn set_password(store: &mut Store, name: &str, password: &str) -> Result<User> {
    check_password(password)?;
    let hashed = hash(password)?;
    let user = changed(store, name, "password_hash = $2", hashed)?;
    // Every login made with the old password ends.
    store
        .conn()
        .execute("DELETE FROM sessions WHERE user_id = $1", params![user.id])?;
    Ok(user)
}

/// Disables (`true`: no login, no token works) or enables an account.
pub fn set_disabled(store: &mut Store, name: &str, disabled: bool) -> Result<User> {
    changed(store, name, "disabled = $2", disabled)
}

fn changed(
    store: &mut Store,
    name: &str,
    set: &str,
    value: impl crate::store::ToValue,
) -> Result<User> {
    let n = store.conn().execute(
        &format!("UPDATE users SET {set}, updated_at = {NOW} WHERE name = $1"),
        params![name, value],
    )?;
    if n == 0 {
        return Err(not_found(name));
    }
    get(store, name)
}

/// Deletes an account, its tokens and grants.
pub fn delete(store: &mut Store, name: &str) -> Result<()> {
    let user = get(store, name)?;
    let tx = store.write()?;
    tx.execute(
        "DELETE FROM user_tokens WHERE user_id = $1",
        params![user.id],
    )?;
    tx.execute("DELETE FROM grants WHERE user_id = $1", params![user.id])?;
    tx.execute("DELETE FROM sessions WHERE user_id = $1", params![user.id])?;
    tx.execute(
        "DELETE FROM task_assignees WHERE user_id = $1",
        params![user.id],
    )?;
    tx.execute(
        "UPDATE pipeline_steps SET held_by = NULL, held_until_ms = NULL WHERE held_by = $1",
        params![user.id],
    )?;
    tx.execute("DELETE FROM users WHERE id = $1", params![user.id])?;
    tx.commit()?;
    Ok(())
}

/// Grants (or with `granted` false, takes back) dataset `dataset` to account `name`.
pub fn grant(store: &mut Store, name: &str, dataset: &str, granted: bool) -> Result<User> {
    let user = get(store, name)?;
    if dataset.trim().is_empty() {
        return Err(Error::invalid("dataset", "must not be empty"));
    }
    if granted {
        store.conn().execute(
            "INSERT INTO grants (user_id, dataset) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            params![user.id, dataset],
        )?;
    } else {
        store.conn().execute(
            "DELETE FROM grants WHERE user_id = $1 AND dataset = $2",
            params![user.id, dataset],
        )?;
    }
    get(store, name)
}

/// The account `name` if `password` is its password and it is enabled; `None` otherwise, the
/// same whichever was wrong (and as slow: a missing account still costs a hash).
pub fn verify(store: &Store, name: &str, password: &str) -> Result<Option<User>> {
    let found: Option<(String, bool)> = store
        .conn()
        .query_row(
            "SELECT password_hash, disabled FROM users WHERE name = $1",
            params![name],
            |r| Ok((r.get("password_hash")?, r.get("disabled")?)),
        )
        .optional()?;
    let stored = match &found {
        Some((hashed, _)) => hashed.clone(),
        // A hash to check against, so that a name that does not exist takes as long.
        None => hash("not a password of anyone")?,
    };
    let matches = password.chars().count() <= MAX_PASSWORD
        && PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
    match found {
        Some((_, false)) if matches => Ok(Some(get(store, name)?)),
        _ => Ok(None),
    }
}
