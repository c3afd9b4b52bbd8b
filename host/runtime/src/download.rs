//! The host's downloads: the bytes of a linked item, fetched from its `http(s)` URL when an
//! execution needs them. A URL is input like any other: only `http` and `https`, at most 5
//! redirects (each checked again), no loopback, private or link-local address after DNS
//! resolution unless the dataset allows them (SSRF: a link must not reach the machine's own
//! services or the local network), the size limit enforced while streaming, timeouts, and
//! retries with backoff on 5xx answers and timeouts. No proxy from the environment: a proxy
//! would resolve names where these checks cannot see. Headers that carry a secret (a
//! [`Grant`]) go to one origin only: redirects are followed here, hop by hop, so a redirect
//! to another host never receives them.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::HeaderMap;
use reqwest::redirect;

/// At most this many redirects are followed.
pub const MAX_REDIRECTS: usize = 5;
/// Tries per download: the first and two retries (after 0.5 s and 1 s).
const TRIES: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a download failed; the message names the URL's problem, the execution's error adds
/// `download failed: <url>: `.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DownloadError {
    #[error("only http and https URLs are fetched, not `{scheme}`")]
    Scheme { scheme: String },
    #[error("`{url}` is not a URL: {reason}")]
    Url { url: String, reason: String },
    #[error(
        "{address} is a {kind} address, reached only when the dataset allows private addresses (`prelabel link --allow-private`)"
    )]
    Private { address: IpAddr, kind: &'static str },
    #[error("more than {MAX_REDIRECTS} redirects")]
    Redirects,
    #[error("the server answered {status}")]
    Status { status: u16 },
    #[error("larger than the item size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the body's sha256 is {got}, the item's is {want}: the content changed")]
    Changed { got: String, want: String },
    #[error("timed out after {secs} s")]
    Timeout { secs: u64 },
    #[error("redirected to {to}: {error}")]
    Redirected {
        to: String,
        error: Box<DownloadError>,
    },
    #[error("the redirect has no usable Location: {0}")]
    Location(String),
    #[error("{0}")]
    Http(String),
}

impl DownloadError {
    /// Whether another try could end otherwise (a 5xx answer, a timeout, a dropped
    /// connection), not for a refusal or a 4xx.
    fn transient(&self) -> bool {
        match self {
            DownloadError::Status { status } => *status >= 500,
            DownloadError::Timeout { .. } | DownloadError::Http(_) => true,
            DownloadError::Redirected { error, .. } => error.transient(),
            _ => false,
        }
    }
}

/// What a download may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest body, in bytes (the service's item size limit).
    pub max_bytes: u64,
    /// Loopback, private and link-local addresses may be reached (a dataset linked with
    /// `--allow-private`, for local setups and tests).
    pub allow_private: bool,
    /// The whole download, retries included.
    pub deadline: Duration,
}

/// Headers for one origin (a token for a server the user named), sent to that origin only,
/// and whether that origin may be a private address although the download's others may not
/// (Label Studio on the user's own machine).
#[derive(Clone)]
pub struct Grant {
    pub origin: url::Origin,
    pub headers: HeaderMap,
    pub trusted: bool,
}

impl std::fmt::Debug for Grant {
    // The headers are secrets: only their names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("origin", &self.origin.ascii_serialization())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("trusted", &self.trusted)
            .finish()
    }
}

impl Grant {
    fn covers(&self, url: &reqwest::Url) -> bool {
        url.origin() == self.origin
    }
}

/// Downloads `url` within `limits`, with `grant`'s headers for its origin: the body. Each try
/// may take what is left of the deadline.
pub fn fetch(url: &str, limits: &Limits, grant: Option<&Grant>) -> Result<Vec<u8>, DownloadError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| DownloadError::Url {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let started = Instant::now();
    let mut backoff = Duration::from_millis(500);
    let mut tries = 0;
    loop {
        tries += 1;
        let left = limits.deadline.saturating_sub(started.elapsed());
        let result = follow(parsed.clone(), limits, grant, left);
        match result {
            Err(e) if e.transient() && tries < TRIES && left > backoff => {
                tracing::info!("download of {url} failed ({e}); trying again in {backoff:?}");
                std::thread::sleep(backoff);
                backoff *= 2;
            }
            result => return result,
        }
    }
}

/// One try: the request, and each redirect checked and sent again with the headers only
/// while the origin is the grant's.
fn follow(
    mut url: reqwest::Url,
    limits: &Limits,
    grant: Option<&Grant>,
    time: Duration,
) -> Result<Vec<u8>, DownloadError> {
    let started = Instant::now();
    for hop in 0..=MAX_REDIRECTS {
        let granted = grant.filter(|g| g.covers(&url));
        let allow_private = limits.allow_private || granted.is_some_and(|g| g.trusted);
        let left = time.saturating_sub(started.elapsed());
        let fetched = check_url(&url, allow_private).and_then(|()| {
            let request = client(allow_private)?.get(url.clone()).timeout(left);
            let request = match granted {
                Some(g) => request.headers(g.headers.clone()),
                None => request,
            };
            fetch_once(request, limits, left)
        });
        // After a redirect, the error names where it led.
        let fetched = fetched.map_err(|error| match hop {
            0 => error,
            _ => DownloadError::Redirected {
                to: url.to_string(),
                error: Box::new(error),
            },
        })?;
        match fetched {
            Fetched::Body(body) => return Ok(body),
            Fetched::Redirect(location) => {
                url = url
                    .join(&location)
                    .map_err(|e| DownloadError::Location(format!("`{location}`: {e}")))?;
            }
        }
    }
    Err(DownloadError::Redirects)
}

/// What one request gave.
enum Fetched {
    Body(Vec<u8>),
    Redirect(String),
}

fn fetch_once(
    request: reqwest::blocking::RequestBuilder,
    limits: &Limits,
    time: Duration,
) -> Result<Fetched, DownloadError> {
    let secs = time.as_secs();
    let timeout = |e: &reqwest::Error| e.is_timeout();
    let response = request.send().map_err(|e| {
        if timeout(&e) {
            DownloadError::Timeout { secs }
        } else {
            http_error(e)
        }
    })?;
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .ok_or_else(|| DownloadError::Location(format!("a {status} without one")))?;
        let location = location
            .to_str()
            .map_err(|_| DownloadError::Location("not text".into()))?;
        return Ok(Fetched::Redirect(location.to_string()));
    }
    if !status.is_success() {
        return Err(DownloadError::Status {
            status: status.as_u16(),
        });
    }
    let limit = limits.max_bytes;
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(DownloadError::TooLarge { limit });
    }
    // Counted while streaming: a server may send more than it announced, or nothing at all.
    let mut body = Vec::new();
    let read = response
        .take(limit.saturating_add(1))
        .read_to_end(&mut body);
    if let Err(e) = read {
        return Err(
            match e.get_ref().and_then(|e| e.downcast_ref::<reqwest::Error>()) {
                Some(inner) if timeout(inner) => DownloadError::Timeout { secs },
                _ if e.kind() == std::io::ErrorKind::TimedOut => DownloadError::Timeout { secs },
                _ => DownloadError::Http(format!("reading the body: {e}")),
            },
        );
    }
    if body.len() as u64 > limit {
        return Err(DownloadError::TooLarge { limit });
    }
    Ok(Fetched::Body(body))
}

/// A JSON POST to a service of the user's own that is no download (Label Studio's token
/// refresh): the download client and its address rule, no redirect followed, the answer's
/// status and body (at most `limits.max_bytes`), whatever the status.
pub fn post_json(
    url: &reqwest::Url,
    body: &serde_json::Value,
    limits: &Limits,
) -> Result<(u16, Vec<u8>), DownloadError> {
    check_url(url, limits.allow_private)?;
    let secs = limits.deadline.as_secs();
    let response = client(limits.allow_private)?
        .post(url.clone())
        .json(body)
        .timeout(limits.deadline)
        .send()
        .map_err(|e| {
            if e.is_timeout() {
                DownloadError::Timeout { secs }
            } else {
                http_error(e)
            }
        })?;
    let status = response.status().as_u16();
    let mut answer = Vec::new();
    response
        .take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut answer)
        .map_err(|e| DownloadError::Http(format!("reading the answer: {e}")))?;
    if answer.len() as u64 > limits.max_bytes {
        return Err(DownloadError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    Ok((status, answer))
}

/// A client error with its causes (reqwest's own message names only the outermost).
fn http_error(error: reqwest::Error) -> DownloadError {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if let Some(refusal) = cause.downcast_ref::<Refused>() {
            return refusal.0.clone();
        }
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    DownloadError::Http(text)
}

/// One client per address policy, made once: the resolver carries the policy; redirects are
/// not followed by the client but by [`follow`]. A client that cannot be built fails every
/// download (a default client would skip the checks).
fn client(allow_private: bool) -> Result<&'static Client, DownloadError> {
    static PUBLIC: OnceLock<Result<Client, String>> = OnceLock::new();
    static PRIVATE: OnceLock<Result<Client, String>> = OnceLock::new();
    let cell = if allow_private { &PRIVATE } else { &PUBLIC };
    cell.get_or_init(|| {
        // reqwest is built without a default TLS provider: ring, installed once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .dns_resolver(resolver(allow_private))
            .redirect(redirect::Policy::none())
            .user_agent(concat!("prelabel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| DownloadError::Http(format!("cannot build the download client: {e}")))
}

/// Scheme, and for an address written in the URL (no name to resolve), the address rule.
fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), DownloadError> {
    match url.scheme() {
        "http" | "https" => {}
        scheme => {
            return Err(DownloadError::Scheme {
                scheme: scheme.to_string(),
            });
        }
    }
    let address = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => {
            return Err(DownloadError::Url {
                url: url.to_string(),
                reason: "no host".into(),
            });
        }
    };
    match address {
        Some(address) if !allow_private => check_address(address),
        _ => Ok(()),
    }
}

/// An error for an address that is not public: loopback, private, link-local, ...
fn check_address(address: IpAddr) -> Result<(), DownloadError> {
    match kind(address) {
        Some(kind) => Err(DownloadError::Private { address, kind }),
        None => Ok(()),
    }
}

/// What an address is when it is not a public unicast one.
pub fn kind(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            if ip.is_loopback() {
                Some("loopback")
            } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
                Some("private")
            } else if ip.is_link_local() {
                Some("link-local")
            } else if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || a == 0 {
                Some("non-unicast")
            } else if ip.is_documentation() || a >= 240 {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return kind(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            if ip.is_loopback() {
                Some("loopback")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private")
            } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if ip.is_unspecified() || ip.is_multicast() {
                Some("non-unicast")
            } else {
                None
            }
        }
    }
}

/// A refusal raised inside the client (its resolver), found again in the error's
/// causes so that it reaches the execution unchanged.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Refused(pub DownloadError);

/// The system's resolver, keeping only public addresses unless private ones are allowed: a
/// name that resolves to the machine itself or its network is refused after resolution, so a
/// DNS name cannot smuggle in what an address in the URL could not.
pub struct Resolver {
    allow_private: bool,
}

/// The resolver for one address policy (also what a guest's outbound requests resolve with).
pub fn resolver(allow_private: bool) -> Arc<Resolver> {
    Arc::new(Resolver { allow_private })
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let kept: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match (allow_private, kind(a.ip())) {
                    (false, Some(kind)) => {
                        refused = Some(DownloadError::Private {
                            address: a.ip(),
                            kind,
                        });
                        false
                    }
                    _ => true,
                })
                .collect();
            match (kept.is_empty(), refused) {
                (true, Some(refusal)) => Err(Box::new(Refused(refusal)) as _),
                _ => Ok(Box::new(kept.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_that_are_not_public_are_named() {
        for (address, want) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("100.64.0.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("0.0.0.0", Some("non-unicast")),
            ("224.0.0.1", Some("non-unicast")),
            ("::1", Some("loopback")),
            ("fd00::1", Some("private")),
            ("fe80::1", Some("link-local")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("93.184.216.34", None),
            ("2606:2800:220:1:248:1893:25c8:1946", None),
        ] {
            let ip: IpAddr = address.parse().expect("an address");
            assert_eq!(kind(ip), want, "{address}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_connection() {
        let check = |url: &str| check_url(&reqwest::Url::parse(url).expect("a URL"), false);
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(DownloadError::Scheme { .. })
        ));
        assert!(matches!(
            check("ftp://example.com/a.jpg"),
            Err(DownloadError::Scheme { .. })
        ));
        assert!(matches!(
            check("http://127.0.0.1:8700/api"),
            Err(DownloadError::Private { .. })
        ));
        assert!(matches!(
            check("http://[::1]/"),
            Err(DownloadError::Private { .. })
        ));
        assert!(matches!(
            check("http://169.254.169.254/latest/meta-data/"),
            Err(DownloadError::Private {
                kind: "link-local",
                ..
            })
        ));
        assert!(check("https://example.com/a.jpg").is_ok());
        let allowed = check_url(
            &reqwest::Url::parse("http://127.0.0.1/").expect("a URL"),
            true,
        );
        assert!(allowed.is_ok());
    }

    /// A server on a free loopback port: `/to/{url}` redirects there, `/who` answers the
    /// Authorization header it got (or `none`).
    fn server() -> SocketAddr {
        use axum::extract::Path;
        use axum::http::HeaderMap;
        use axum::response::Redirect;
        use axum::routing::get;
        let app = axum::Router::new()
            .route(
                "/to/{*url}",
                get(|Path(url): Path<String>| async move { Redirect::temporary(&url) }),
            )
            .route(
                "/who",
                get(|headers: HeaderMap| async move {
                    headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string()
                }),
            );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("an address");
        listener.set_nonblocking(true).expect("non-blocking");
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listens");
                    axum::serve(listener, app).await.expect("serves");
                });
        });
        addr
    }

    #[test]
    fn a_grant_goes_to_its_origin_only_and_trusts_no_other() {
        let (a, b) = (server(), server());
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Token secret".parse().expect("a value"));
        let grant = Grant {
            origin: reqwest::Url::parse(&format!("http://{a}/"))
                .expect("a URL")
                .origin(),
            headers,
            trusted: true,
        };
        let limits = |allow_private| Limits {
            max_bytes: 1 << 20,
            allow_private,
            deadline: Duration::from_secs(20),
        };
        let text = |url: String, allow_private| {
            fetch(&url, &limits(allow_private), Some(&grant))
                .map(|body| String::from_utf8(body).expect("text"))
        };
        // Its own origin gets the header, loopback and all: it is trusted.
        assert_eq!(
            text(format!("http://{a}/who"), false).as_deref(),
            Ok("Token secret")
        );
        assert_eq!(
            text(format!("http://{a}/to/http://{a}/who"), false).as_deref(),
            Ok("Token secret")
        );
        // Another origin, even by a redirect from the granted one, gets nothing...
        assert_eq!(
            text(format!("http://{a}/to/http://{b}/who"), true).as_deref(),
            Ok("none")
        );
        assert_eq!(text(format!("http://{b}/who"), true).as_deref(), Ok("none"));
        // ...and the trust does not follow the redirect to a loopback address.
        let refused = text(format!("http://{a}/to/http://{b}/who"), false);
        assert!(
            matches!(&refused, Err(DownloadError::Redirected { error, .. })
                if matches!(**error, DownloadError::Private { kind: "loopback", .. })),
            "{refused:?}"
        );
    }
}
