//! Ways in for people: a login (name and password, or a token the UI was given) sets the
//! session cookie; logout ends it; `/api/me` says who the caller is, with the CSRF value the
//! page sends back on every change. Failed logins are slowed per account and per address.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use cookie::{Cookie, SameSite};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::access::{SESSION_COOKIE, csrf_token, session_cookie};
use super::extract::Body;
use super::{ApiError, AppState, Caller};
use prelabel::people::session::LIFETIME_MS;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
}

/// Login attempts, counted per account name and per address: a burst of a few, then one
/// more every few seconds. A flood is slowed to that pace whatever it guesses.
pub struct Limits {
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        let quota = |per_minute: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
        };
        Self {
            accounts: RateLimiter::keyed(quota(5)),
            addresses: RateLimiter::keyed(quota(20)),
        }
    }
}

impl Limits {
    /// Counts an attempt on account `name` (none: a token, which no one guesses: 32 random
    /// bytes) from `address`; refuses it, saying when to try again, once a limit is reached.
    fn attempt(&self, name: Option<&str>, address: Option<IpAddr>) -> Result<(), ApiError> {
        let clock = governor::clock::DefaultClock::default();
        let account = name.map(|n| self.accounts.check_key(&n.to_string()));
        let address = address.map(|a| self.addresses.check_key(&a));
        let refused = [account, address]
            .into_iter()
            .flatten()
            .filter_map(Result::err)
            .map(|not_until| not_until.wait_time_from(governor::clock::Clock::now(&clock)))
            .max();
        match refused {
            None => Ok(()),
            Some(wait) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many login attempts for `{}` or from this address: try again in {} s",
                    name.unwrap_or("a token"),
                    wait.as_secs() + 1
                ),
            )),
        }
    }
}

/// What `POST /api/login` takes: a name and password, or a token (what the UI does with the
/// `?token=` its address was given).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    name: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The account's name, or `owner` (the bootstrap token, or the open local mode).
    pub name: String,
    #[schema(value_type = String)]
    pub role: prelabel::people::user::Role,
    /// The datasets a reviewer or viewer sees (`null`: all).
    pub datasets: Option<Vec<String>>,
    /// The value of the `x-csrf-token` header every change sent with the session cookie
    /// carries (`null` when the request did not come with the cookie).
    pub csrf: Option<String>,
    /// No token and no account: the API is open to this machine.
    pub open: bool,
}

/// Logs in: sets the session cookie (HttpOnly, SameSite=Strict; Secure behind a TLS proxy
/// that says `X-Forwarded-Proto: https`) and answers who it is. A wrong name or password is
/// one 401 whichever was wrong; too many attempts, a 429.
#[utoipa::path(post, path = "/api/login", tag = "people", request_body = Login,
    responses((status = 200, body = Me), (status = 401, body = super::error::ErrorBody),
              (status = 429, body = super::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    address: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Body(login): Body<Login>,
) -> Result<Response, ApiError> {
    let address = address.map(|Extension(a)| a.0.ip());
    let (caller, secret) = match login {
        Login {
            name: Some(name),
            password: Some(password),
            token: None,
        } => {
            state.limits.attempt(Some(&name), address)?;
            let logged = state.run(move |home| home.login(&name, &password)).await?;
            let (user, secret) = logged
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "wrong name or password"))?;
            (Caller::User(Box::new(user)), secret)
        }
        Login {
            name: None,
            password: None,
            token: Some(token),
        } => {
            state.limits.attempt(None, address)?;
            let caller = super::access::identify(&state, &token)
                .await?
                .ok_or_else(ApiError::unauthorized)?;
            (caller, token)
        }
        _ => {
            return Err(ApiError::bad_request(
                "log in with `name` and `password`, or with `token`",
            ));
        }
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let me = who(&caller, Some(&secret), false);
    let lifetime = cookie::time::Duration::milliseconds(LIFETIME_MS);
    Ok(with_session(
        Json(me).into_response(),
        secret,
        lifetime,
        secure,
    ))
}

/// Logs out: ends the session and clears the cookie.
#[utoipa::path(post, path = "/api/logout", tag = "people",
    responses((status = 204, description = "logged out")))]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_cookie(&headers) {
        state.run(move |home| home.logout(&secret)).await?;
    }
    let response = StatusCode::NO_CONTENT.into_response();
    Ok(with_session(
        response,
        String::new(),
        cookie::time::Duration::ZERO,
        false,
    ))
}

/// Who the caller is, what they see, and the CSRF value for the session cookie.
#[utoipa::path(get, path = "/api/me", tag = "people", responses((status = 200, body = Me)))]
pub async fn me(State(state): State<AppState>, caller: Caller, headers: HeaderMap) -> Json<Me> {
    let open = state.token.is_none() && matches!(caller, Caller::Owner);
    Json(who(&caller, session_cookie(&headers).as_deref(), open))
}

fn who(caller: &Caller, cookie: Option<&str>, open: bool) -> Me {
    let datasets = match caller.scope() {
        prelabel::people::Scope::All => None,
        prelabel::people::Scope::Only(granted) => Some(granted.into_iter().collect()),
    };
    Me {
        name: caller.name().to_string(),
        role: caller.role(),
        datasets,
        csrf: cookie.map(csrf_token),
        open: open && cookie.is_none(),
    }
}

/// `response` setting the session cookie to `value` for `max_age` (zero: cleared): HttpOnly,
/// SameSite=Strict, for the whole site, and Secure when `secure`.
fn with_session(
    mut response: Response,
    value: String,
    max_age: cookie::time::Duration,
    secure: bool,
) -> Response {
    let cookie = Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .build();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The limits the server shares between requests.
pub fn limits() -> Arc<Limits> {
    Arc::new(Limits::default())
}
