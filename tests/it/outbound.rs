//! Outbound hosts as a package declares them and a deployer narrows them: checked when
//! pushed, narrowed (never widened) by `service deploy --allow-host`, shown by `service show`,
//! carried by later deploys only where the new revision still allows them.

use serde_json::{Value, json};

use crate::support::*;

/// The face detector's package declaring two hosts it may call.
fn calling_package(home: &Home, hosts: &str) -> std::path::PathBuf {
    let dir = home.path().join("pkg");
    face_detector_package(&dir, |manifest| {
        manifest.replacen(
            "[module]\n",
            &format!("[module]\nallowed_outbound_hosts = [{hosts}]\n"),
            1,
        )
    });
    dir
}

fn hosts(home: &Home, service: &str) -> serde_json::Value {
    home.json(&["service", "show", service])["allowed_outbound_hosts"].clone()
}

#[test]
fn a_deploy_narrows_the_packages_hosts_and_never_widens_them() {
    let home = Home::new();
    let dir = calling_package(
        &home,
        r#""https://api.example.com", "http://127.0.0.1:9000""#,
    );
    home.ok(&["package", "push", path(&dir)]);

    // The package's list, unless the deployer narrows it.
    home.ok(&["service", "deploy", "face-detector", "--name", "all"]);
    assert_eq!(
        hosts(&home, "all"),
        json!(["http://127.0.0.1:9000", "https://api.example.com"])
    );
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--allow-host",
        "https://api.example.com/",
    ]);
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));
    // Another deploy keeps the narrowed list.
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--concurrency",
        "2",
    ]);
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));

    // Wider: refused, and the service is as it was.
    let error = home.fails(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--allow-host",
        "https://evil.example.com",
    ]);
    assert!(
        error.contains("`https://evil.example.com` is not among the package's allowed_outbound_hosts (http://127.0.0.1:9000, https://api.example.com): a deploy may narrow the list, never widen it"),
        "{error}"
    );
    let error = home.fails(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--allow-host",
        "api.example.com",
    ]);
    assert!(
        error.contains("--allow-host `api.example.com` is not a URL"),
        "{error}"
    );
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));

    // A package that declares none gives none, and none can be given.
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "offline",
        "--revision",
        "2",
    ]);
    assert_eq!(hosts(&home, "offline"), json!([]));
    let error = home.fails(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "offline",
        "--revision",
        "2",
        "--allow-host",
        "https://api.example.com",
    ]);
    assert!(error.contains("allowed_outbound_hosts (none)"), "{error}");
    // A narrowed service moved to that revision keeps nothing the revision does not allow.
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--revision",
        "2",
    ]);
    assert_eq!(hosts(&home, "one"), json!([]));
    home.ok(&["service", "rollback", "one"]);
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));

    // Over HTTP, as a deploy's body.
    let server = crate::support::server::Server::start(&home, &[]);
    let response = server.send(
        reqwest::Method::PUT,
        "/api/services/api",
        Some(json!({"package": "face-detector", "revision": 1, "allow_host": ["http://127.0.0.1:9000"]})),
    );
    let deployed = server.json(response, reqwest::StatusCode::OK);
    assert_eq!(
        deployed["service"]["allowed_outbound_hosts"],
        json!(["http://127.0.0.1:9000"])
    );
    let response = server.send(
        reqwest::Method::PUT,
        "/api/services/api",
        Some(json!({"package": "face-detector", "revision": 1, "allow_host": ["http://127.0.0.1:9001"]})),
    );
    let error = crate::support::server::error_of(response, reqwest::StatusCode::BAD_REQUEST);
    assert!(error.contains("never widen it"), "{error}");
}

#[test]
fn a_package_whose_hosts_are_not_origins_is_refused_when_pushed() {
    let home = Home::new();
    let dir = calling_package(&home, r#""https://api.example.com/v1/detect""#);
    let error = home.fails(&["package", "push", path(&dir)]);
    assert!(
        error.contains("`module.allowed_outbound_hosts`: `https://api.example.com/v1/detect`: an allowed host is a scheme, a host and a port"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------
// Requests: the hostile guest calls a server the test starts, through wasi:http.

/// A remote server on loopback: `/ok` (5 bytes; to a POST, its body's length), `/hop` (a
/// redirect to `/ok`), `/slow` (after 30 s), `/big` (20 MiB), `/redirect` (to the same server by
/// another name, `localhost`), `/drop` (a few bytes, then the connection is cut). Counts the
/// requests it gets.
struct Remote {
    addr: std::net::SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Remote {
    fn start() -> Remote {
        use axum::body::Body;
        use axum::http::{HeaderMap, header};
        use axum::response::{IntoResponse, Redirect};
        use axum::routing::get;
        use std::sync::atomic::Ordering;

        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new()
            .route(
                "/ok",
                get(|| async { "hello" })
                    .post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            .route("/hop", get(|| async { Redirect::temporary("/ok") }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route(
                "/big",
                get(|| async {
                    let chunks = (0..320).map(|_| Ok::<_, std::io::Error>(vec![7u8; 64 << 10]));
                    Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
            .route(
                "/redirect",
                get(|headers: HeaderMap| async move {
                    let host = headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .replace("127.0.0.1", "localhost");
                    Redirect::temporary(&format!("http://{host}/ok"))
                }),
            )
            .route(
                "/drop",
                get(|| async {
                    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
                        Ok(b"partial".to_vec()),
                        Err(std::io::Error::other("cut on purpose")),
                    ];
                    Body::from_stream(futures_util::stream::iter(chunks)).into_response()
                }),
            )
            .layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    next.run(request)
                },
            ));
        let addr = crate::support::server::serve_app(app);
        Remote { addr, hits }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The hostile guest allowed to call `remote`, deployed as `service` with its requests sent
/// to `base`; a trigger runs it on every item of dataset `service`.
fn deploy_caller(home: &Home, remote: &Remote, service: &str, base: &str) {
    let dir = home.path().join(format!("pkg-{service}"));
    std::fs::create_dir_all(&dir).expect("package folder");
    crate::support::attacks::hostile_package(&dir, &[], &[&remote.origin()]);
    let init = format!("http_base={base}");
    // Items of 1 MiB at most: a request body may be that plus 1 MiB.
    deploy_hostile_package(
        home,
        &dir,
        service,
        &["--init", &init, "--max-item-mb", "1"],
    );
    trigger_on_own_dataset(home, service);
}

/// A trigger that runs `service` on the items of the dataset of the same name.
fn trigger_on_own_dataset(home: &Home, service: &str) {
    home.ok(&[
        "trigger",
        "create",
        service,
        "--service",
        service,
        "--dataset",
        service,
    ]);
}

/// Uploads one 10x10 PNG per name to dataset `dataset`, runs the queue, and returns the
/// executions of those items by name.
fn run(home: &Home, dataset: &str, names: &[&str]) -> std::collections::BTreeMap<String, Value> {
    let dir = tempdir();
    for name in names {
        std::fs::write(dir.path().join(name), png(10, 10)).expect("write item");
    }
    home.ok(&["upload", path(dir.path()), "--dataset", dataset]);
    home.work_measured(&format!("{names:?}"));
    home.executions()
        .into_iter()
        .filter(|e| names.contains(&e["item"].as_str().unwrap_or_default()))
        .map(|e| (e["item"].as_str().expect("item").to_string(), e))
        .collect()
}

fn logs(home: &Home, execution: &Value) -> String {
    home.ok(&["executions", "logs", &execution["id"].to_string()])
}

#[test]
fn an_allowed_request_is_answered_and_every_other_ends_as_its_named_outcome() {
    let remote = Remote::start();
    let origin = remote.origin();
    let home = Home::new();
    deploy_caller(&home, &remote, "calls", &origin);
    let by_item = run(
        &home,
        "calls",
        &[
            "http-ok.png",
            "http-hop.png",
            "http-slow.png",
            "http-big.png",
            "http-redirect.png",
            "http-drop.png",
            "httpmany.png",
            "httppost-1.png",
            "httppost-3.png",
        ],
    );
    let e = |name: &str| by_item[name].clone();

    // Allowed: answered, and the answer stored as the item's annotation.
    assert_eq!(
        e("http-ok.png")["status"],
        "success",
        "{:#}",
        e("http-ok.png")
    );
    assert_eq!(
        e("http-hop.png")["status"],
        "success",
        "a redirect to an allowed place"
    );
    let labels: Vec<Value> = home
        .export("calls")
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| {
            ["http-ok.png", "http-hop.png"]
                .contains(&i["item"]["name"].as_str().unwrap_or_default())
        })
        .map(|i| i["annotations"][0]["label"].clone())
        .collect();
    assert_eq!(labels, [json!("200 5"), json!("200 5")]);
    // Logged as method, origin, status, bytes, time: never the path.
    let log = logs(&home, &e("http-ok.png"));
    assert!(
        log.contains(&format!("[http] GET {origin} 200 5 bytes ")),
        "{log}"
    );
    assert!(!log.contains("/ok"), "{log}");
    let log = logs(&home, &e("http-hop.png"));
    assert!(
        log.contains(&format!("[http] GET {origin} 307 0 bytes ")),
        "{log}"
    );

    // A slow server: the call's deadline ends it.
    assert_eq!(e("http-slow.png")["status"], "timed-out");
    assert_eq!(
        e("http-slow.png")["error"],
        "detect timed out after 2s (limit)"
    );

    // An answer over 16 MiB: cut, and said so.
    assert_eq!(e("http-big.png")["status"], "failed");
    let error = e("http-big.png")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("body size exceeds limit: 16777216 bytes"),
        "{error}"
    );
    let log = logs(&home, &e("http-big.png"));
    assert!(
        log.contains("over the limit of 16777216 bytes: cut"),
        "{log}"
    );

    // A redirect to a host the service may not call: refused before it leaves.
    let error = e("http-redirect.png")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let port = remote.addr.port();
    assert!(
        error.contains(&format!(
            "GET http://localhost:{port} refused: http://localhost:{port} is not allowed: the service may call only {origin}"
        )),
        "{error}"
    );

    // A server that cuts the connection mid-answer.
    assert_eq!(e("http-drop.png")["status"], "failed");
    let error = e("http-drop.png")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("ConnectionTerminated"), "{error}");

    // A request body within the item limit (plus 1 MiB) is sent; a larger one is not.
    assert_eq!(
        e("httppost-1.png")["status"],
        "success",
        "{:#}",
        e("httppost-1.png")
    );
    let error = e("httppost-3.png")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("HttpRequestBodySize"), "{error}");
    let log = logs(&home, &e("httppost-3.png"));
    assert!(
        log.contains("the request body is over 2097152 bytes"),
        "{log}"
    );

    // At most 16 requests in one call.
    let error = e("httpmany.png")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("request 17: "), "{error}");
    assert!(
        error.contains("more than 16 requests in one call"),
        "{error}"
    );
}

#[test]
fn a_host_the_service_may_not_call_gets_no_request_at_all() {
    let remote = Remote::start();
    let home = Home::new();
    // Allowed: 127.0.0.1:PORT. Asked: the same server by another name.
    let other = format!("http://localhost:{}", remote.addr.port());
    deploy_caller(&home, &remote, "elsewhere", &other);
    // A package that declares no host: its guest may call nothing.
    let init = format!("http_base={}", remote.origin());
    deploy_hostile_package(&home, &hostile_guest(), "offline", &["--init", &init]);
    trigger_on_own_dataset(&home, "offline");
    let elsewhere = &run(&home, "elsewhere", &["http-ok.png"])["http-ok.png"];
    let offline = &run(&home, "offline", &["http-ok.png"])["http-ok.png"];
    for (e, rule) in [
        (
            elsewhere,
            format!(
                "{other} is not allowed: the service may call only {}",
                remote.origin()
            ),
        ),
        (
            offline,
            format!(
                "{} is not allowed: this service may call no host",
                remote.origin()
            ),
        ),
    ] {
        assert_eq!(e["status"], "failed", "{e:#}");
        let error = e["error"].as_str().unwrap_or_default();
        assert!(error.contains(&rule), "{error}");
        let log = logs(&home, e);
        assert!(
            log.contains("[http] GET ") && log.contains(" refused: "),
            "{log}"
        );
    }
    assert_eq!(remote.hits(), 0, "a refused request reached the server");
}
