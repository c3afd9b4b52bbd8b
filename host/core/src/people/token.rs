//! API tokens: each an account's, named, shown once when made, kept as the sha256 of its
//! secret (a token is 32 random bytes, so a plain digest is as good as a slow hash, and a
//! lookup by digest takes one query), revocable, with the time it was last used.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::people::user::{self, User};
use crate::store::{NOW, OptionalExtension, Store, params};

/// What every token starts with, so that one pasted where it should not be is recognisable.
pub const PREFIX: &str = "plt_";

/// A token as listed: never its secret.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub user: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// A token just made: the only time its secret is seen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Created {
    #[serde(flatten)]
    pub token: Token,
    pub secret: String,
}

pub(super) fn digest(secret: &str) -> String {
    crate::files::sha256_hex(secret.as_bytes())
}

/// A fresh secret: `prefix` and 32 random bytes in hex.
pub(super) fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// Makes token `name` for account `user`.
pub fn create(store: &mut Store, user: &str, name: &str) -> Result<Created> {
    let account = user::get(store, user)?;
    if name.trim().is_empty() || name.len() > 128 {
        return Err(Error::invalid("name", "a token's name is 1 to 128 bytes"));
    }
    let secret = secret(PREFIX);
    let added = store.conn().execute(
        "INSERT INTO user_tokens (user_id, name, digest) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, name) DO NOTHING",
        params![account.id, name, digest(&secret)],
    )?;
    if added == 0 {
        return Err(Error::Conflict {
            kind: Kind::Token,
            name: name.to_string(),
            message: format!("user `{user}` has a token named `{name}` already (revoke it first)"),
        });
    }
    let token = list(store, user)?
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::not_found(Kind::Token, name, format!("token `{name}` vanished")))?;
    Ok(Created { token, secret })
}

/// Account `user`'s tokens.
pub fn list(store: &Store, user: &str) -> Result<Vec<Token>> {
    let account = user::get(store, user)?;
    Ok(store.conn().query_map(
        "SELECT name, created_at, last_used_at FROM user_tokens WHERE user_id = $1 ORDER BY name",
        params![account.id],
        |r| {
            Ok(Token {
                user: account.name.clone(),
                name: r.get("name")?,
                created_at: r.get("created_at")?,
                last_used_at: r.get("last_used_at")?,
            })
        },
    )?)
}

/// Revokes token `name` of account `user`: it works no more.
pub fn revoke(store: &mut Store, user: &str, name: &str) -> Result<()> {
    let account = user::get(store, user)?;
    let n = store.conn().execute(
        "DELETE FROM user_tokens WHERE user_id = $1 AND name = $2",
        params![account.id, name],
    )?;
    if n == 0 {
        return Err(Error::not_found(
            Kind::Token,
            name,
            format!("user `{user}` has no token named `{name}` (see: prelabel user tokens {user})"),
        ));
    }
    Ok(())
}

/// The enabled account whose token `secret` is, noting the use; `None` for any other secret.
pub fn authenticate(store: &Store, secret: &str) -> Result<Option<User>> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    let found: Option<(i64, String, bool)> = store
        .conn()
        .query_row(
            "SELECT t.id, u.name, u.disabled FROM user_tokens t JOIN users u ON u.id = t.user_id
              WHERE t.digest = $1",
            params![digest(secret)],
            |r| Ok((r.get("id")?, r.get("name")?, r.get("disabled")?)),
        )
        .optional()?;
    let Some((id, name, false)) = found else {
        return Ok(None);
    };
    store.conn().execute(
        &format!("UPDATE user_tokens SET last_used_at = {NOW} WHERE id = $1"),
        params![id],
    )?;
    Ok(Some(user::get(store, &name)?))
}
