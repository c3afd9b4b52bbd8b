//! Who may do what: every request is authenticated here (the bootstrap token, an account's
//! token, or a login's session cookie) and checked against [`ROUTES`], the one table of what
//! each role may do on each route; the handlers then narrow what a reviewer or viewer sees to
//! the datasets granted to them through [`Caller`].

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use prelabel::items::item::ItemRecord;
use prelabel::named::Named;
use prelabel::people::Scope;
use prelabel::people::user::{Role, User};

/// The cookie a login (or a token given to the UI) is kept in: HttpOnly, so the page's
/// scripts never see it; images and the event stream, which cannot set headers, carry it.
pub const SESSION_COOKIE: &str = "prelabel_session";
/// The header every state-changing request authenticated by the cookie must carry, with the
/// value `/api/me` and the login answer give: a page on another site can make the browser
/// send the cookie, but cannot read this.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The home's owner: no token set and on loopback (the open local mode), or the
    /// bootstrap `--token`. Everything.
    Owner,
    /// An account, by its token or its login.
    User(Box<User>),
}

impl Caller {
    pub fn role(&self) -> Role {
        match self {
            Caller::Owner => Role::Admin,
            Caller::User(user) => user.role,
        }
    }

    /// The name audit records and decisions carry.
    pub fn name(&self) -> &str {
        match self {
            Caller::Owner => "owner",
            Caller::User(user) => &user.name,
        }
    }

    /// Who a review decision is by: an account is itself, whatever the request typed; the
    /// owner (no account) is what it typed.
    pub fn by(&self, typed: Option<String>) -> Option<String> {
        match self {
            Caller::Owner => typed,
            Caller::User(user) => Some(user.name.clone()),
        }
    }

    /// The account's id (none for the owner).
    pub fn account(&self) -> Option<i64> {
        match self {
            Caller::Owner => None,
            Caller::User(user) => Some(user.id),
        }
    }

    pub fn scope(&self) -> Scope {
        match self {
            Caller::Owner => Scope::All,
            Caller::User(user) => user.scope(),
        }
    }

    /// Refuses a dataset the caller does not see (whether or not it exists: the answer says
    /// nothing about what is there).
    pub fn dataset(&self, dataset: &str) -> Result<(), ApiError> {
        if self.scope().sees(dataset) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "user `{}` ({}) is not granted dataset `{dataset}`",
            self.name(),
            self.role().name()
        )))
    }

    /// Item `id`, if the caller sees its dataset; one it does not see is not found, as a
    /// missing one is.
    pub async fn item(&self, state: &AppState, id: i64) -> Result<ItemRecord, ApiError> {
        let scope = self.scope();
        state
            .run(move |home| {
                let item = home.item(id);
                match item {
                    Ok(item) if scope.sees(&item.dataset) => Ok(item),
                    Ok(_) | Err(prelabel::Error::NotFound { .. }) => Err(no_item(id)),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// Checks that the caller sees item `id` (at no cost for those who see every dataset:
    /// the handler then says what is missing).
    pub async fn sees_item(&self, state: &AppState, id: i64) -> Result<(), ApiError> {
        if self.scope() == Scope::All {
            return Ok(());
        }
        self.item(state, id).await.map(|_| ())
    }

    /// Checks that the caller sees the item annotation `id` is on.
    pub async fn annotation(&self, state: &AppState, id: i64) -> Result<(), ApiError> {
        if self.scope() == Scope::All {
            return Ok(());
        }
        let item = state.run(move |home| home.annotation_item(id)).await?;
        self.item(state, item).await.map(|_| ())
    }
}

fn no_item(id: i64) -> prelabel::Error {
    prelabel::Error::not_found(
        prelabel::error::Kind::Item,
        id,
        format!("no item with id {id}"),
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("the request was not authenticated"))
    }
}

/// What a route asks of the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Nobody need be logged in: the login itself, the UI's files.
    Public,
    /// Any account (a reviewer or viewer then sees only the datasets granted to them).
    Read,
    /// Reviewers and up: review annotations, decide task items, ask a detector (CVAT, Label
    /// Studio).
    Review,
    /// Maintainers and up: packages, services, triggers, pipelines, secrets, uploads, runs.
    Maintain,
    /// Admins: accounts and the audit log.
    Admin,
}

impl Need {
    fn met_by(self, role: Role) -> bool {
        let rank = match role {
            Role::Viewer => Need::Read,
            Role::Reviewer => Need::Review,
            Role::Maintainer => Need::Maintain,
            Role::Admin => Need::Admin,
        };
        self <= rank
    }
}

/// Every route and what it needs. A route missing here needs an admin: a new route is closed
/// until someone decides who may use it.
pub const ROUTES: &[(&str, &str, Need)] = &[
    ("POST", "/api/login", Need::Public),
    ("POST", "/api/logout", Need::Public),
    ("GET", "/api/me", Need::Read),
    ("GET", "/api/openapi.json", Need::Read),
    ("GET", "/api/status", Need::Read),
    ("GET", "/metrics", Need::Read),
    ("GET", "/api/events", Need::Read),
    // Items: a reviewer's or viewer's are those of the datasets granted to them.
    ("GET", "/api/datasets", Need::Read),
    ("GET", "/api/items", Need::Read),
    ("GET", "/api/items/{id}", Need::Read),
    ("GET", "/api/items/{id}/data", Need::Read),
    ("GET", "/api/items/{id}/thumbnail", Need::Read),
    ("GET", "/api/items/{id}/annotations", Need::Read),
    ("GET", "/api/items/{id}/pipelines", Need::Read),
    ("GET", "/api/datasets/{dataset}/export", Need::Read),
    ("POST", "/api/datasets/{dataset}/evaluate", Need::Read),
    ("POST", "/api/items/{id}/annotations", Need::Review),
    ("PATCH", "/api/annotations/{id}", Need::Review),
    ("POST", "/api/datasets/{dataset}/items", Need::Maintain),
    ("POST", "/api/datasets/{dataset}/links", Need::Maintain),
    // Review tasks.
    ("GET", "/api/tasks", Need::Read),
    ("POST", "/api/tasks", Need::Maintain),
    ("POST", "/api/tasks/{name}/next", Need::Review),
    ("PUT", "/api/tasks/{name}/assignees/{user}", Need::Maintain),
    (
        "DELETE",
        "/api/tasks/{name}/assignees/{user}",
        Need::Maintain,
    ),
    ("GET", "/api/tasks/{name}", Need::Read),
    ("GET", "/api/tasks/{name}/items", Need::Read),
    (
        "POST",
        "/api/tasks/{name}/items/{item}/complete",
        Need::Review,
    ),
    (
        "POST",
        "/api/tasks/{name}/items/{item}/discard",
        Need::Review,
    ),
    // Executions: a reviewer or viewer sees those of items they see.
    ("GET", "/api/executions", Need::Read),
    ("GET", "/api/executions/{id}", Need::Read),
    ("GET", "/api/executions/{id}/logs", Need::Read),
    ("POST", "/api/executions/rerun", Need::Maintain),
    ("POST", "/api/executions/{id}/cancel", Need::Maintain),
    ("POST", "/api/batches", Need::Maintain),
    ("GET", "/api/batches/{id}", Need::Maintain),
    // The catalog: reading it shows no item.
    ("GET", "/api/services", Need::Read),
    ("GET", "/api/services/{name}", Need::Read),
    ("PUT", "/api/services/{name}", Need::Maintain),
    ("DELETE", "/api/services/{name}", Need::Maintain),
    ("POST", "/api/services/{name}/pause", Need::Maintain),
    ("POST", "/api/services/{name}/resume", Need::Maintain),
    ("POST", "/api/services/{name}/rollback", Need::Maintain),
    ("POST", "/api/services/{name}/compare", Need::Maintain),
    ("GET", "/api/triggers", Need::Read),
    ("POST", "/api/triggers", Need::Maintain),
    ("DELETE", "/api/triggers/{name}", Need::Maintain),
    ("GET", "/api/pipelines", Need::Read),
    ("POST", "/api/pipelines", Need::Maintain),
    ("GET", "/api/pipelines/{name}", Need::Read),
    ("DELETE", "/api/pipelines/{name}", Need::Maintain),
    ("POST", "/api/pipelines/{name}/pause", Need::Maintain),
    ("POST", "/api/pipelines/{name}/resume", Need::Maintain),
    ("GET", "/api/packages", Need::Read),
    ("POST", "/api/packages", Need::Maintain),
    ("GET", "/api/packages/{name}/revisions", Need::Read),
    ("GET", "/api/secrets", Need::Maintain),
    ("PUT", "/api/secrets/{name}", Need::Maintain),
    ("DELETE", "/api/secrets/{name}", Need::Maintain),
    // CVAT's and Label Studio's doors: asking a detector is a reviewer's tool.
    ("GET", "/api/functions", Need::Read),
    ("GET", "/api/functions/{name}", Need::Read),
    ("POST", "/api/function_invocations", Need::Review),
    ("GET", "/label-studio/{service}/health", Need::Read),
    ("GET", "/label-studio/{service}/versions", Need::Read),
    ("POST", "/label-studio/{service}/setup", Need::Review),
    ("POST", "/label-studio/{service}/predict", Need::Review),
    ("POST", "/label-studio/{service}/webhook", Need::Review),
    // The UI's files: the page asks for a login itself.
    // Accounts and the audit log.
    ("GET", "/api/users", Need::Admin),
    ("POST", "/api/users", Need::Admin),
    ("GET", "/api/users/{name}", Need::Admin),
    ("PATCH", "/api/users/{name}", Need::Admin),
    ("DELETE", "/api/users/{name}", Need::Admin),
    ("PUT", "/api/users/{name}/grants/{dataset}", Need::Admin),
    ("DELETE", "/api/users/{name}/grants/{dataset}", Need::Admin),
    ("GET", "/api/audit", Need::Admin),
    ("GET", "/", Need::Public),
    ("GET", "/ui/app.js", Need::Public),
    ("GET", "/ui/app.css", Need::Public),
];

/// What the request's route needs; `None` for no route (the 404 that follows says so).
fn need(method: &Method, route: Option<&str>) -> Option<Need> {
    let route = route?;
    let method = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    Some(
        ROUTES
            .iter()
            .find(|(m, r, _)| *m == method && *r == route)
            .map_or(Need::Admin, |(_, _, need)| *need),
    )
}

/// A credential and where it came from (a cookie asks for the CSRF header).
struct Given {
    secret: String,
    cookie: bool,
}

/// Authenticates the request, checks its route's [`Need`] against the caller's role and puts
/// the [`Caller`] into the request for the handlers. Without a token set (loopback only, see
/// `Options::check`) and without credentials, the caller is the owner: today's open local mode.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let query = take_token_param(&mut request);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let need = need(request.method(), route.as_deref());
    let given = given(request.headers(), query);
    let caller = match (&given, state.token) {
        // The open local mode lasts while no account exists.
        (None, None) if !state.run(|home| home.has_accounts()).await? => Some(Caller::Owner),
        (None, _) => None,
        (Some(given), _) => identify(&state, &given.secret).await?,
    };
    let Some(caller) = caller else {
        // Only what anyone may use answers without credentials (not even a 404 for a path
        // that is no route: the routes are not told to strangers).
        if need == Some(Need::Public) {
            return Ok(next.run(request).await);
        }
        return Err(ApiError::unauthorized());
    };
    let method = request.method().clone();
    let safe = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(given) = given.filter(|g| g.cookie && !safe) {
        check_csrf(request.headers(), &given.secret)?;
    }
    if let Some(need) = need.filter(|n| !n.met_by(caller.role())) {
        return Err(ApiError::forbidden(format!(
            "user `{}` ({}) may not {method} {}: it needs {}",
            caller.name(),
            caller.role().name(),
            request.uri().path(),
            match need {
                Need::Public | Need::Read => "an account",
                Need::Review => "a reviewer, maintainer or admin",
                Need::Maintain => "a maintainer or admin",
                Need::Admin => "an admin",
            }
        )));
    }
    request.extensions_mut().insert(caller.clone());
    let target = request.uri().path().to_string();
    let response = next.run(request).await;
    // Every change is recorded with who made it; reads are not.
    if let (false, Some(route)) = (safe, route) {
        let status = response.status().as_u16();
        let actor = caller.name().to_string();
        let action = format!("{method} {route}");
        let recorded = state
            .run(move |home| home.audit(&actor, &action, &target, Some(status)))
            .await;
        if let Err(e) = recorded {
            tracing::error!(
                "cannot record {method} {route} in the audit log: {}",
                e.message
            );
        }
    }
    Ok(response)
}

/// The caller a credential names: the bootstrap token (compared in constant time, as
/// digests of one length), an account's token, or a login's session.
pub(crate) async fn identify(state: &AppState, secret: &str) -> Result<Option<Caller>, ApiError> {
    let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    if let Some(expected) = state.token
        && bool::from(digest.ct_eq(&expected))
    {
        return Ok(Some(Caller::Owner));
    }
    let secret = secret.to_string();
    let user = state.run(move |home| home.authenticate(&secret)).await?;
    Ok(user.map(|u| Caller::User(Box::new(u))))
}

/// The credential the request carries: `Authorization` (Bearer, or Basic, see
/// [`credentials`]), else the session cookie, else a `token` query parameter.
fn given(headers: &HeaderMap, query: Option<String>) -> Option<Given> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credentials);
    if let Some(secret) = header.or(query) {
        return Some(Given {
            secret,
            cookie: false,
        });
    }
    session_cookie(headers).map(|secret| Given {
        secret,
        cookie: true,
    })
}

/// The session cookie's value, parsed by the `cookie` crate.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// The CSRF value that goes with a cookie's secret: derived from it, so nothing more is
/// stored, and useless to anyone who cannot read the answers of this origin.
pub fn csrf_token(secret: &str) -> String {
    prelabel::files::sha256_hex(format!("prelabel csrf\0{secret}").as_bytes())
}

fn check_csrf(headers: &HeaderMap, secret: &str) -> Result<(), ApiError> {
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if bool::from(sent.as_bytes().ct_eq(csrf_token(secret).as_bytes())) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "a request that changes something and is sent with the session cookie must carry the \
         `{CSRF_HEADER}` header (GET /api/me gives it): a cross-site request is refused"
    )))
}

/// The token in an `Authorization` header: `Bearer TOKEN`, or Basic credentials whose user
/// name (or, without one, password) is the token. Tools that are given only a URL (CVAT's
/// Nuclio host, an ML backend's address) take it as `http://TOKEN@host:port/`, which HTTP
/// clients send as Basic credentials.
fn credentials(header: &str) -> Option<String> {
    if let Some(token) = header.strip_prefix("Bearer ") {
        return Some(token.to_string());
    }
    let encoded = header.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some(if user.is_empty() { password } else { user })
}

/// Removes a `token` query parameter from the request's URI and returns its value: the
/// handlers' queries stay strict.
fn take_token_param(request: &mut Request) -> Option<String> {
    let query = request.uri().query()?;
    let mut token = None;
    let rest: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter_map(|(k, v)| {
            if k == "token" {
                token = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    token.as_ref()?;
    let mut uri = request.uri().path().to_string();
    if !rest.is_empty() {
        uri.push('?');
        uri.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(rest)
                .finish(),
        );
    }
    if let Ok(uri) = uri.parse() {
        *request.uri_mut() = uri;
    }
    token
}
