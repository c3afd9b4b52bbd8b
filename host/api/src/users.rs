//! Accounts over the API, for admins: list, add, change (password, disabled), delete, grant
//! datasets, and the audit log of who did what. The same operations as `prelabel user` and
//! `prelabel audit`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use serde::Deserialize;

use super::extract::{Body, Path, Query};
use super::{ApiError, AppState};
use prelabel::people::audit::{self, Entry};
use prelabel::people::user::{Role, User};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(add))
        .route("/users/{name}", get(show).patch(change).delete(delete))
        .route(
            "/users/{name}/grants/{dataset}",
            put(grant).delete(take_back),
        )
        .route("/audit", get(audit_log))
}

#[utoipa::path(get, path = "/api/users", tag = "people",
    responses((status = 200, body = Vec<User>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(state.run(|home| home.users()).await?))
}

/// What `POST /api/users` takes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    #[schema(value_type = String)]
    role: Role,
    password: String,
}

/// Adds an account (the password is hashed with Argon2id; it is never shown again).
#[utoipa::path(post, path = "/api/users", tag = "people", request_body = NewUser,
    responses((status = 200, body = User), (status = 400, body = super::error::ErrorBody),
              (status = 409, body = super::error::ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    Body(new): Body<NewUser>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.add_user(&new.name, new.role, &new.password))
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/users/{name}", tag = "people",
    params(("name" = String, Path, description = "the account")),
    responses((status = 200, body = User), (status = 404, body = super::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(state.run(move |home| home.user(&name)).await?))
}

/// What `PATCH /api/users/{name}` changes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// A new password (every login made with the old one ends).
    password: Option<String>,
    /// No login and no token works while disabled.
    disabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/users/{name}", tag = "people",
    params(("name" = String, Path, description = "the account")), request_body = UserChange,
    responses((status = 200, body = User), (status = 400, body = super::error::ErrorBody),
              (status = 404, body = super::error::ErrorBody)))]
pub async fn change(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(change): Body<UserChange>,
) -> Result<Json<User>, ApiError> {
    if change.password.is_none() && change.disabled.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give `password` and/or `disabled`",
        ));
    }
    Ok(Json(
        state
            .run(move |home| {
                if let Some(password) = &change.password {
                    home.set_password(&name, password)?;
                }
                match change.disabled {
                    Some(disabled) => home.disable_user(&name, disabled),
                    None => home.user(&name),
                }
            })
            .await?,
    ))
}

/// Deletes an account with its tokens, logins and grants.
#[utoipa::path(delete, path = "/api/users/{name}", tag = "people",
    params(("name" = String, Path, description = "the account")),
    responses((status = 204, description = "deleted"), (status = 404, body = super::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.run(move |home| home.delete_user(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Grants a dataset to a reviewer or viewer.
#[utoipa::path(put, path = "/api/users/{name}/grants/{dataset}", tag = "people",
    params(("name" = String, Path, description = "the account"), ("dataset" = String, Path, description = "the dataset")),
    responses((status = 200, body = User), (status = 404, body = super::error::ErrorBody)))]
pub async fn grant(
    State(state): State<AppState>,
    Path((name, dataset)): Path<(String, String)>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.grant(&name, &dataset, true))
            .await?,
    ))
}

/// Takes a granted dataset back.
#[utoipa::path(delete, path = "/api/users/{name}/grants/{dataset}", tag = "people",
    params(("name" = String, Path, description = "the account"), ("dataset" = String, Path, description = "the dataset")),
    responses((status = 200, body = User), (status = 404, body = super::error::ErrorBody)))]
pub async fn take_back(
    State(state): State<AppState>,
    Path((name, dataset)): Path<(String, String)>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(
        state
            .run(move |home| home.grant(&name, &dataset, false))
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this account's (`owner`: the CLI's and the bootstrap token's).
    actor: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u64>,
}

/// Who did what, newest first: every change made through the API (with its status) and the
/// accounts and decisions the CLI made.
#[utoipa::path(get, path = "/api/audit", tag = "people", params(AuditQuery),
    responses((status = 200, body = Vec<Entry>)))]
pub async fn audit_log(
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let query = audit::Query {
        actor: query.actor,
        limit: query.limit.unwrap_or(100).min(1000),
    };
    Ok(Json(state.run(move |home| home.audit_log(&query)).await?))
}
