//! The Label Studio a task's images come from: its URL and the key `serve` was given (the
//! names its SDK reads: `LABEL_STUDIO_URL`, `LABEL_STUDIO_API_KEY`). A legacy API token is
//! sent as `Token KEY`; a personal access token (a JWT refresh token, the only kind a new
//! organisation allows) is exchanged at `/api/token/refresh/` for a short-lived access token,
//! sent as `Bearer`, and exchanged again a minute before that one expires. A task's image is a
//! path on Label Studio, any URL, or a cloud storage URI (`s3://`, `gs://`, `azure-blob://`)
//! that Label Studio resolves for its task (`/tasks/<id>/presign/?fileuri=<base64>`: a
//! redirect to a presigned URL, or the bytes themselves).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use crate::runtime::download::{self, Grant, Limits};

/// An access token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// How long an exchange may take, and how large its answer may be.
const REFRESH: Limits = Limits {
    max_bytes: 64 * 1024,
    allow_private: true,
    deadline: Duration::from_secs(30),
};

/// Where Label Studio is and how to speak to it.
#[derive(Clone)]
pub struct Server {
    pub url: Url,
    key: Option<Arc<Key>>,
}

/// The key `serve` was given, by kind.
enum Key {
    /// A header value sent as it is: `Token KEY` (legacy), or `Bearer JWT` for an access token.
    Fixed(HeaderValue),
    /// A personal access token and the access token it was last exchanged for.
    Personal {
        refresh: String,
        access: Mutex<Option<Access>>,
    },
}

/// An access token as a header, and when it expires.
struct Access {
    header: HeaderValue,
    expires: SystemTime,
}

impl std::fmt::Debug for Server {
    // The key is a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.key.as_deref().map(|k| match k {
            Key::Fixed(_) => "(set)",
            Key::Personal { .. } => "(personal access token)",
        });
        f.debug_struct("Server")
            .field("url", &self.url.as_str())
            .field("token", &key)
            .finish()
    }
}

/// Why a task's image cannot be fetched; each is answered for its task alone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("the task has no `{key}` in its data (the image the label config's `${key}` names)")]
    NoImage { key: String },
    #[error(
        "the task's image `{url}` is a path on Label Studio: start prelabel serve with \
         LABEL_STUDIO_URL (or --label-studio-url) so that it can fetch it"
    )]
    NoServer { url: String },
    #[error(
        "the task's image `{uri}` is in Label Studio's cloud storage: start prelabel serve with \
         LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY so that Label Studio resolves it"
    )]
    NoStorage { uri: String },
    #[error(
        "the task's image `{uri}` is in cloud storage, but the task has no id to resolve it by"
    )]
    NoTask { uri: String },
    #[error("the task's image `{url}` is not a URL: {reason}")]
    Url { url: String, reason: String },
    /// The personal access token could not be exchanged; Label Studio's reason is quoted.
    #[error(
        "Label Studio did not exchange the personal access token (LABEL_STUDIO_API_KEY): {reason}"
    )]
    Token { reason: String },
}

/// Why `serve` cannot talk to the Label Studio it was given: refused at start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServerError {
    #[error("LABEL_STUDIO_URL (--label-studio-url) `{url}` is not a URL: {reason}")]
    Url { url: String, reason: String },
    /// Sent as it is, it would be dropped from every request (or split one): refused instead
    /// of fetching task images without it. The value is never shown.
    #[error(
        "LABEL_STUDIO_API_KEY (--label-studio-api-key) is not a valid HTTP header value: it holds \
         a line break or another control character (copied with its newline?)"
    )]
    ApiKey,
}

/// The claims of a JWT, read without checking its signature (Label Studio checks it): only
/// to tell a personal access token from an access token, and when the latter expires.
fn claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn header(value: String) -> Result<HeaderValue, ServerError> {
    let mut value = HeaderValue::from_str(&value).map_err(|_| ServerError::ApiKey)?;
    value.set_sensitive(true);
    Ok(value)
}

impl Server {
    /// The server from a base URL and a key, checked.
    pub fn new(url: &str, token: Option<String>) -> Result<Server, ServerError> {
        let parsed = Url::parse(url).map_err(|e| ServerError::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let key = match token.filter(|t| !t.is_empty()) {
            None => None,
            Some(token) => Some(Arc::new(match claims(&token) {
                Some(c) if c["token_type"] == "refresh" => {
                    // It goes in a JSON body, but the access tokens it buys go in headers.
                    header(format!("Bearer {token}"))?;
                    Key::Personal {
                        refresh: token,
                        access: Mutex::new(None),
                    }
                }
                Some(_) => Key::Fixed(header(format!("Bearer {token}"))?),
                None => Key::Fixed(header(format!("Token {token}"))?),
            })),
        };
        Ok(Server { url: parsed, key })
    }

    /// The `Authorization` value for Label Studio now: a personal access token's access token
    /// is exchanged when there is none or it is about to expire. Blocking (an HTTP call).
    fn authorization(&self) -> Result<Option<HeaderValue>, TaskError> {
        let (refresh, access) = match self.key.as_deref() {
            None => return Ok(None),
            Some(Key::Fixed(value)) => return Ok(Some(value.clone())),
            Some(Key::Personal { refresh, access }) => (refresh, access),
        };
        // One exchange at a time: the tasks of a predict wait for the first.
        let mut access = access.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = access
            .as_ref()
            .is_some_and(|a| a.expires > SystemTime::now() + RENEW_BEFORE);
        if !fresh {
            *access = Some(self.exchange(refresh)?);
        }
        Ok(access.as_ref().map(|a| a.header.clone()))
    }

    /// A personal access token's new access token.
    fn exchange(&self, refresh: &str) -> Result<Access, TaskError> {
        let failed = |reason: String| TaskError::Token { reason };
        let url = self
            .url
            .join("api/token/refresh/")
            .map_err(|e| failed(e.to_string()))?;
        let (status, body) = download::post_json(&url, &json!({ "refresh": refresh }), &REFRESH)
            .map_err(|e| failed(format!("{url}: {e}")))?;
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            // Label Studio says why in `detail` ("Token is blacklisted", "Token is expired").
            let detail = answer["detail"].as_str().unwrap_or("no reason given");
            let detail: String = detail.chars().take(200).collect();
            return Err(failed(format!(
                "{url} answered {status}: {detail} (make a new token in Label Studio's Account & Settings)"
            )));
        }
        let token = answer["access"]
            .as_str()
            .ok_or_else(|| failed(format!("{url} answered without an `access` token")))?;
        let header = header(format!("Bearer {token}"))
            .map_err(|e| failed(format!("the access token: {e}")))?;
        let expires = claims(token)
            .and_then(|c| c["exp"].as_u64())
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp))
            // Without an expiry, used once and exchanged again next time.
            .unwrap_or_else(SystemTime::now);
        tracing::info!("exchanged the Label Studio personal access token for an access token");
        Ok(Access { header, expires })
    }

    /// The key, for Label Studio's origin only, which is trusted (loopback included: it is
    /// the user's own server). Blocking: a personal access token may be exchanged.
    pub fn grant(&self) -> Result<Grant, TaskError> {
        let mut headers = HeaderMap::new();
        if let Some(value) = self.authorization()? {
            headers.insert(AUTHORIZATION, value);
        }
        Ok(Grant {
            origin: self.url.origin(),
            headers,
            trusted: true,
        })
    }
}

/// The schemes of Label Studio's cloud storages.
const CLOUD: [&str; 3] = ["s3:", "gs:", "azure-blob:"];

/// Where a task's image is, and whether Label Studio's key goes with it: a path
/// (`/data/upload/...`) is resolved against Label Studio's URL; a cloud storage URI is asked
/// of Label Studio for task `task`; another URL is fetched like any link (the key still goes
/// to Label Studio's origin only, if it leads there).
pub fn image_url(
    data: &Value,
    key: &str,
    task: Option<i64>,
    server: Option<&Server>,
) -> Result<(Url, Option<Server>), TaskError> {
    let image = data
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| TaskError::NoImage {
            key: key.to_string(),
        })?;
    if CLOUD.iter().any(|scheme| image.starts_with(scheme)) {
        let server = server.ok_or_else(|| TaskError::NoStorage { uri: image.into() })?;
        let task = task.ok_or_else(|| TaskError::NoTask { uri: image.into() })?;
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(image);
        let mut url = server
            .url
            .join(&format!("tasks/{task}/presign/"))
            .map_err(|e| TaskError::Url {
                url: image.to_string(),
                reason: e.to_string(),
            })?;
        url.query_pairs_mut().append_pair("fileuri", &encoded);
        return Ok((url, Some(server.clone())));
    }
    let url = match (Url::parse(image), server) {
        (Ok(url), _) => url,
        (Err(url::ParseError::RelativeUrlWithoutBase), Some(server)) => {
            server.url.join(image).map_err(|e| TaskError::Url {
                url: image.to_string(),
                reason: e.to_string(),
            })?
        }
        (Err(url::ParseError::RelativeUrlWithoutBase), None) => {
            return Err(TaskError::NoServer {
                url: image.to_string(),
            });
        }
        (Err(e), _) => {
            return Err(TaskError::Url {
                url: image.to_string(),
                reason: e.to_string(),
            });
        }
    };
    Ok((url, server.cloned()))
}

/// A Label Studio project's dataset: `label-studio-<id>`, from the `project` field its
/// requests carry (`<id>.<created timestamp>`).
pub fn dataset(project: &str) -> String {
    let id = project.split('.').next().unwrap_or_default();
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
        format!("label-studio-{id}")
    } else {
        "label-studio".to_string()
    }
}

/// A task's item name: `task-<id>-<the URL's file name>`, readable and one per task (a cloud
/// image is named after its URI's file, not the presign path).
pub fn item_name(task: Option<i64>, url: &Url) -> String {
    let presigned = url
        .query_pairs()
        .find(|(k, _)| k == "fileuri")
        .and_then(|(_, v)| {
            base64::engine::general_purpose::URL_SAFE
                .decode(v.as_bytes())
                .ok()
        })
        .and_then(|uri| String::from_utf8(uri).ok())
        .and_then(|uri| Url::parse(&uri).ok());
    let file = crate::items::link::file_name(presigned.as_ref().unwrap_or(url))
        .map(|name| name.replace(['/', '\\'], "_"))
        .unwrap_or_else(|| "image".into());
    match task {
        Some(id) => format!("task-{id}-{file}"),
        None => file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JWT with these claims (the signature is Label Studio's to check, not ours).
    fn jwt(claims: Value) -> String {
        let part =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", part(&json!({"alg": "HS256"})), part(&claims))
    }

    #[test]
    fn an_api_key_that_cannot_be_a_header_is_refused_unseen() {
        for bad in ["abc\ndef", "abc\r", "a\u{7f}b"] {
            let error = Server::new("http://127.0.0.1:8080", Some(bad.into()));
            let error = error.expect_err(bad).to_string();
            assert!(error.starts_with("LABEL_STUDIO_API_KEY"), "{error}");
            assert!(!error.contains("abc"), "{error}");
        }
        let error = Server::new("not a url", None)
            .expect_err("a URL")
            .to_string();
        assert!(error.starts_with("LABEL_STUDIO_URL"), "{error}");
        assert!(Server::new("http://ls:8080", Some(String::new())).is_ok());
    }

    #[test]
    fn keys_are_told_apart_by_kind() {
        let legacy = Server::new("http://ls:8080", Some("secret".into())).expect("legacy");
        assert_eq!(
            legacy.grant().expect("no exchange").headers[AUTHORIZATION],
            "Token secret"
        );
        let access = jwt(json!({"token_type": "access", "exp": 4_000_000_000u64}));
        let bearer = Server::new("http://ls:8080", Some(access.clone())).expect("access");
        assert_eq!(
            bearer.grant().expect("no exchange").headers[AUTHORIZATION],
            format!("Bearer {access}").as_str()
        );
        let personal = jwt(json!({"token_type": "refresh", "jti": "x"}));
        let server = Server::new("http://ls:8080", Some(personal.clone())).expect("personal");
        assert!(format!("{server:?}").contains("personal access token"));
        assert!(!format!("{server:?}").contains(&personal));
        assert_eq!(claims("not.a-jwt"), None);
        assert_eq!(claims("a.b.c.d"), None);
    }

    #[test]
    fn image_urls_resolve_against_label_studio_with_its_key_for_its_origin_only() {
        let server = Server::new("http://127.0.0.1:8080", Some("secret".into())).expect("a URL");
        let data = json!({"image": "/data/upload/3/ab12cd34-face.jpg", "other": "https://example.com/b.jpg"});
        let (url, with) = image_url(&data, "image", Some(7), Some(&server)).expect("resolves");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/data/upload/3/ab12cd34-face.jpg"
        );
        let grant = with.expect("the server").grant().expect("a grant");
        assert!(grant.trusted);
        assert_eq!(grant.origin, url.origin());
        assert_eq!(grant.headers[AUTHORIZATION], "Token secret");
        assert!(!format!("{grant:?}").contains("secret"));
        assert!(!format!("{server:?}").contains("secret"));
        let (other, with) = image_url(&data, "other", Some(7), Some(&server)).expect("resolves");
        assert_ne!(
            with.expect("the server").grant().expect("a grant").origin,
            other.origin()
        );
        assert!(matches!(
            image_url(&data, "image", Some(7), None),
            Err(TaskError::NoServer { .. })
        ));
        assert!(matches!(
            image_url(&data, "missing", Some(7), Some(&server)),
            Err(TaskError::NoImage { .. })
        ));
        assert_eq!(dataset("12.1700000000"), "label-studio-12");
        assert_eq!(item_name(Some(7), &url), "task-7-ab12cd34-face.jpg");
    }

    #[test]
    fn cloud_images_are_asked_of_label_studio_for_their_task() {
        let server = Server::new("http://ls:8080/", None).expect("a URL");
        for uri in [
            "s3://bucket/a/photo.jpg",
            "gs://b/photo.jpg",
            "azure-blob://c/photo.jpg",
        ] {
            let data = json!({ "image": uri });
            let (url, _) = image_url(&data, "image", Some(42), Some(&server)).expect("resolves");
            assert_eq!(url.path(), "/tasks/42/presign/");
            let fileuri = url
                .query_pairs()
                .find(|(k, _)| k == "fileuri")
                .expect("fileuri")
                .1;
            let decoded = base64::engine::general_purpose::URL_SAFE
                .decode(fileuri.as_bytes())
                .expect("base64");
            assert_eq!(decoded, uri.as_bytes());
            assert_eq!(item_name(Some(42), &url), "task-42-photo.jpg");
            assert!(matches!(
                image_url(&data, "image", Some(42), None),
                Err(TaskError::NoStorage { .. })
            ));
            assert!(matches!(
                image_url(&data, "image", None, Some(&server)),
                Err(TaskError::NoTask { .. })
            ));
        }
    }
}
