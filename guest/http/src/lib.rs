//! A small blocking HTTP client over `wasi:http/outgoing-handler`, for guests: one request,
//! its whole answer. The host decides whether the request may leave at all (the service's
//! allowed hosts), so every refusal comes back here as a [`Failure`] naming the wasi:http
//! error code and the host's reason; redirects are returned, not followed ([`get_following`]
//! follows them the way a browser would, each hop being checked by the host again).

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

/// An answer: its status, its `Location` and `Content-Type` if any, and its body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Why a request got no answer, as wasi:http said it (`DestinationIpProhibited`,
/// `HttpResponseBodySize(..)`, `InternalError(Some("prelabel: ... refused: ..."))`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ErrorCode> for Failure {
    fn from(code: ErrorCode) -> Self {
        Failure(format!("{code:?}"))
    }
}

/// A request: method, absolute `http(s)://` URL, headers, body.
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, Failure> {
    send(&Request {
        method: "GET",
        url,
        headers: &[],
        body: &[],
    })
}

/// `GET url`, following at most `hops` redirects (relative or absolute `Location`s).
pub fn get_following(url: &str, hops: usize) -> Result<Response, Failure> {
    let mut url = url.to_string();
    for _ in 0..=hops {
        let response = get(&url)?;
        match (&response.location, response.status) {
            (Some(location), 300..=399) => url = resolve(&url, location),
            _ => return Ok(response),
        }
    }
    Err(Failure(format!("more than {hops} redirects")))
}

/// `location` read against `base`: absolute, or a path on the same origin.
fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}{location}")
}

/// Sends `request` and reads its whole answer.
pub fn send(request: &Request) -> Result<Response, Failure> {
    let (scheme, rest) = request
        .url
        .split_once("://")
        .ok_or_else(|| Failure(format!("`{}` is not an absolute URL", request.url)))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_vec()))
        .collect::<Vec<_>>();
    let fields = Fields::from_list(&headers).map_err(|e| Failure(format!("headers: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        other => Method::Other(other.to_string()),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };
    let invalid = |what: &str| Failure(format!("invalid {what} in `{}`", request.url));
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;
    let body = outgoing.body().map_err(|()| invalid("body"))?;
    // Sent first, written after: the host reads the body while the request is on its way.
    let answer = outgoing_handler::handle(outgoing, None)?;
    let written = write_body(body, request.body);
    let incoming = loop {
        match answer.get() {
            Some(result) => break result,
            None => answer.subscribe().block(),
        }
    };
    let incoming = incoming.map_err(|()| Failure("the answer was taken twice".into()))?;
    // A body the host stopped reading (over its limit) fails the write; the answer says why.
    let incoming = match (incoming, written) {
        (Err(code), _) => return Err(code.into()),
        (Ok(_), Err(failure)) => return Err(failure),
        (Ok(incoming), Ok(())) => incoming,
    };
    let header = |name: &str| {
        incoming
            .headers()
            .get(name)
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let location = header("location");
    let content_type = header("content-type");
    let status = incoming.status();
    let body = incoming
        .consume()
        .map_err(|()| Failure("the body was taken twice".into()))?;
    let bytes = read_body(&body)?;
    let _trailers = IncomingBody::finish(body);
    Ok(Response {
        status,
        location,
        content_type,
        body: bytes,
    })
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Failure> {
    {
        let stream = body
            .write()
            .map_err(|()| Failure("the request body was taken twice".into()))?;
        // blocking-write-and-flush takes at most 4096 bytes a call.
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(stream_error)?;
        }
    }
    OutgoingBody::finish(body, None)?;
    Ok(())
}

fn read_body(body: &IncomingBody) -> Result<Vec<u8>, Failure> {
    let stream = body
        .stream()
        .map_err(|()| Failure("the body stream was taken twice".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(e) => return Err(stream_error(e)),
        }
    }
}

/// A stream's error as the wasi:http error code the host gave, when it gave one.
fn stream_error(error: StreamError) -> Failure {
    match error {
        StreamError::Closed => Failure("the stream was closed".into()),
        StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(&e) {
            Some(code) => code.into(),
            None => Failure(e.to_debug_string()),
        },
    }
}
