//! `wasi:http` for guests, host by host: every outgoing request a guest makes is held to its
//! service's allowed hosts ([`crate::outbound`]) before anything leaves the machine, sent with
//! the host's own client (no proxy from the environment, redirects returned to the guest, not
//! followed, so that each hop is checked again; a public name that resolves to a private
//! address refused), at most [`MAX_REQUESTS_PER_CALL`] per call, its answer's body cut at
//! [`MAX_RESPONSE_BYTES`]. The call's deadline bounds all of it: the executor drops a call that
//! waits past it. Each request is one line of the execution's logs (method, origin, status,
//! bytes, milliseconds); never a path, a header or a body, which may carry secrets.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::capture::Capture;
use crate::outbound::AllowedHosts;

/// Requests one call (`init` or `detect`) may make.
pub const MAX_REQUESTS_PER_CALL: u32 = 16;
/// The largest answer body a guest may read, in bytes.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Connecting may take at most this long (the call's deadline bounds the rest).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A response, and the future wasi-http drives for its connection (ours has none apart).
type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

/// One instance's outbound HTTP: its service's allowed hosts and this call's count.
pub(super) struct Outbound {
    allowed: Arc<AllowedHosts>,
    capture: Capture,
    requests: u32,
    /// A request's body is read whole before it is sent: at most this many bytes (the
    /// service's item size limit, plus room for the JSON around an item).
    max_request_bytes: usize,
}

impl Outbound {
    pub(super) fn new(allowed: Arc<AllowedHosts>, capture: Capture, max_item_bytes: u64) -> Self {
        Self {
            allowed,
            capture,
            requests: 0,
            max_request_bytes: usize::try_from(max_item_bytes)
                .unwrap_or(usize::MAX)
                .saturating_add(1 << 20),
        }
    }

    /// A new call counts its requests afresh.
    pub(super) fn new_call(&mut self) {
        self.requests = 0;
    }
}

fn log(capture: &Capture, line: &str) {
    capture.append(format!("[http] {line}\n").as_bytes());
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Sent {
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        // The origin, never the path: a path or query may carry a token.
        let target = format!("{} {scheme}://{host}:{port}", request.method());
        self.requests += 1;
        let decision = if self.requests > MAX_REQUESTS_PER_CALL {
            Err(format!(
                "more than {MAX_REQUESTS_PER_CALL} requests in one call"
            ))
        } else {
            self.allowed
                .check(&scheme, &host, port)
                .map(|entry| entry.names_a_private_place())
        };
        let capture = self.capture.clone();
        let max_request = self.max_request_bytes;
        Box::new(async move {
            let private = match decision {
                Ok(private) => private,
                Err(why) => {
                    log(&capture, &format!("{target} refused: {why}"));
                    return Err(HttpError::InternalError(Some(format!(
                        "prelabel: {target} refused: {why}"
                    ))));
                }
            };
            let started = Instant::now();
            let failed = |(error, what): (HttpError, String)| {
                log(
                    &capture,
                    &format!(
                        "{target} failed after {} ms: {what}",
                        started.elapsed().as_millis()
                    ),
                );
                error
            };
            let request = into_reqwest(request, max_request).await.map_err(failed)?;
            let client = client(private).map_err(|e| failed((HttpError::ConfigurationError, e)))?;
            let response = client
                .execute(request)
                .await
                .map_err(|e| failed(http_error(e)))?;
            let status = response.status();
            let response: http::Response<reqwest::Body> = response.into();
            let (parts, body) = response.into_parts();
            let body = Counted {
                inner: body,
                read: 0,
                logged: false,
                target,
                status: status.as_u16(),
                started,
                capture,
            }
            .boxed_unsync();
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((http::Response::from_parts(parts, body), done))
        })
    }
}

/// The guest's request as reqwest's, its body read whole up to `max` bytes; or the wasi-http
/// error and what the log says of it.
async fn into_reqwest(
    request: http::Request<WasiBody>,
    max: usize,
) -> Result<reqwest::Request, (HttpError, String)> {
    let (parts, body) = request.into_parts();
    let body = Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                let what = format!("the request body is over {max} bytes");
                (HttpError::HttpRequestBodySize(None), what)
            } else {
                let what = format!("the request body could not be read: {e}");
                (HttpError::HttpRequestDenied, what)
            }
        })?
        .to_bytes();
    reqwest::Request::try_from(http::Request::from_parts(parts, body)).map_err(|e| {
        (
            HttpError::HttpRequestUriInvalid,
            e.without_url().to_string(),
        )
    })
}

/// The wasi-http error for a failed send, and what the log says of it.
fn http_error(error: reqwest::Error) -> (HttpError, String) {
    let error = error.without_url();
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(cause) = source {
        if let Some(crate::download::Refused(crate::download::DownloadError::Private {
            address,
            kind,
        })) = cause.downcast_ref::<crate::download::Refused>()
        {
            let why = format!(
                "the name resolves to {address}, a {kind} address, reached only when the allowed \
                 entry names such a place itself (http://{address}:PORT)"
            );
            return (HttpError::DestinationIpProhibited, why);
        }
        source = cause.source();
    }
    let kind = if error.is_timeout() {
        HttpError::ConnectionTimeout
    } else if error.is_connect() {
        HttpError::ConnectionRefused
    } else {
        HttpError::ConnectionTerminated
    };
    // reqwest says "error sending request"; the cause is further down the chain.
    let mut what = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        what.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    (kind, what)
}

/// One client per address rule: for entries that name a loopback or private place, and for
/// the others (whose names must resolve to public addresses). Redirects are the guest's.
fn client(private: bool) -> Result<&'static reqwest::Client, String> {
    static PUBLIC: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static PRIVATE: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let cell = if private { &PRIVATE } else { &PUBLIC };
    cell.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .dns_resolver(crate::download::resolver(private))
            .redirect(reqwest::redirect::Policy::none())
            // No pool: each worker thread drives its calls on an executor of its own, and a
            // connection kept from one thread's executor would stall on another's.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("prelabel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the outbound client: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// An answer's body as the guest reads it: cut at [`MAX_RESPONSE_BYTES`], and logged once,
/// when it ends, fails or is dropped.
struct Counted {
    inner: reqwest::Body,
    read: u64,
    logged: bool,
    target: String,
    status: u16,
    started: Instant,
    capture: Capture,
}

impl Counted {
    fn log(&mut self, end: &str) {
        if !self.logged {
            self.logged = true;
            let line = format!(
                "{} {} {} bytes {} ms{end}",
                self.target,
                self.status,
                self.read,
                self.started.elapsed().as_millis()
            );
            log(&self.capture, &line);
        }
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.log("");
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.log(&format!(", then failed: {}", e.without_url()));
                Poll::Ready(Some(Err(HttpError::ConnectionTerminated)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.read > MAX_RESPONSE_BYTES {
                        this.log(&format!(
                            ", over the limit of {MAX_RESPONSE_BYTES} bytes: cut"
                        ));
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            MAX_RESPONSE_BYTES,
                        )))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.log(", not read to its end");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name that resolves to loopback, under an entry that does not name such a place
    /// (`http://localhost:PORT` allowed as a public name would be): refused after
    /// resolution, before any connection, and said so.
    #[test]
    fn a_name_that_resolves_to_a_private_address_is_refused_unless_the_entry_names_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let port = listener.local_addr().expect("an address").port();
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("an executor");
        let send = |private: bool| {
            executor.block_on(async {
                let request = client(private)
                    .expect("a client")
                    .get(format!("http://localhost:{port}/"))
                    .timeout(Duration::from_millis(300))
                    .build()
                    .expect("a request");
                client(private).expect("a client").execute(request).await
            })
        };
        let (error, why) = http_error(send(false).expect_err("refused"));
        assert!(
            matches!(error, HttpError::DestinationIpProhibited),
            "{error:?}"
        );
        assert!(why.contains("a loopback address"), "{why}");
        // The private client connects (the listener accepts; nothing answers in time).
        let (error, _) = http_error(send(true).expect_err("no answer"));
        assert!(
            !matches!(error, HttpError::DestinationIpProhibited),
            "{error:?}"
        );
        drop(listener);
    }
}
