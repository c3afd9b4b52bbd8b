//! Linked items and the host's downloads, against a local HTTP server the test starts: a
//! linked photo is downloaded when its execution runs and gets the seed's boxes; a slow server,
//! an oversize body, too many redirects, a redirect to another scheme, a 404, a body that is
//! not the one the link promised, a flaky server and addresses the dataset may not reach each
//! end as the named outcome, and nothing is half-stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::Value;
use sha2::Digest;

use crate::support::server::Server;
use crate::support::*;

/// A server on a free loopback port, in a thread of its own, until the test ends.
struct Remote {
    addr: SocketAddr,
    /// Requests per path, for the retry test.
    hits: Arc<Hits>,
}

#[derive(Default)]
struct Hits {
    flaky: AtomicUsize,
    changing: AtomicUsize,
}

impl Remote {
    fn start() -> Remote {
        let hits = Arc::new(Hits::default());
        let app = Router::new()
            .route("/photos/{name}", get(photo))
            .route("/slow.jpg", get(slow))
            .route("/big.jpg", get(big))
            .route("/hop/{n}/{name}", get(hop))
            .route(
                "/to-ftp.jpg",
                get(|| async { Redirect::temporary("ftp://127.0.0.1/a.jpg") }),
            )
            .route("/flaky.png", get(flaky))
            .route("/changing.png", get(changing))
            .with_state(hits.clone());
        let addr = crate::support::server::serve_app(app);
        Remote { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn photo(Path(name): Path<String>) -> Response {
    match std::fs::read(fixtures().join("images").join(&name)) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Answers only after the service's timeout.
async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(30)).await;
    photo(Path("mosaic_2x2.png".into())).await
}

/// 3 MiB without a Content-Length, for a limit of 1 MiB: refused while streaming.
async fn big() -> Response {
    let chunks = (0..48).map(|_| Ok::<_, std::io::Error>(vec![0u8; 64 << 10]));
    Body::from_stream(futures_util::stream::iter(chunks)).into_response()
}

/// `/hop/N/NAME` redirects to `/hop/N-1/NAME`; `/hop/0/NAME` is the photo.
async fn hop(Path((n, name)): Path<(u32, String)>) -> Response {
    match n {
        0 => photo(Path(name)).await,
        n => Redirect::temporary(&format!("/hop/{}/{name}", n - 1)).into_response(),
    }
}

/// 503 the first time, a photo (under the 1 MiB limit) after.
async fn flaky(State(hits): State<Arc<Hits>>) -> Response {
    match hits.flaky.fetch_add(1, Ordering::SeqCst) {
        0 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        _ => photo(Path("matplotlib_grace_hopper.jpg".into())).await,
    }
}

/// Another photo than the one the link's sha256 names.
async fn changing(State(hits): State<Arc<Hits>>) -> Response {
    hits.changing.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "image/png")],
        std::fs::read(fixtures().join("images/skimage_astronaut.png")).expect("a photo"),
    )
        .into_response()
}

fn execution_of<'a>(executions: &'a [Value], item: &str) -> &'a Value {
    executions
        .iter()
        .rev()
        .find(|e| e["item"] == item)
        .unwrap_or_else(|| panic!("no execution of {item}: {executions:#?}"))
}

#[test]
fn linked_photos_are_downloaded_when_their_execution_runs() {
    let remote = Remote::start();
    let home = Home::new();
    home.seed_flow(&[]);
    let said = home.ok(&[
        "link",
        &remote.url("/photos/mosaic_2x2.png"),
        &remote.url("/hop/5/matplotlib_grace_hopper.jpg"),
        "--dataset",
        "web",
        "--allow-private",
    ]);
    assert!(
        said.contains("linked 2 URLs to web: 2 created; 2 executions queued"),
        "{said}"
    );
    let items = home.json(&["items", "list", "--dataset", "web", "--json"]);
    let mosaic = &items.as_array().expect("a list")[1];
    assert_eq!(mosaic["name"], "mosaic_2x2.png", "{items:#}");
    assert_eq!(mosaic["digest"], "", "nothing is downloaded at link time");
    assert_eq!(
        mosaic["mimetype"], "image/png",
        "from the extension, for the trigger"
    );

    home.ok(&["work", "--until-idle"]);
    let executions = home.executions();
    assert_eq!(status_count(&executions, "success"), 2, "{executions:#?}");
    let export = home.export("web");
    for entry in export.as_array().expect("a list") {
        let name = entry["item"]["name"].as_str().expect("a name");
        assert_matches_seed(name, &boxes(entry));
        let width = entry["item"]["metadata"]["system"]["width"].as_u64();
        assert!(
            width.is_some_and(|w| w > 0),
            "recorded after the download: {entry:#}"
        );
    }
    assert!(home.ok(&["check"]).contains("ok"));

    // The API links too (all or none), and serves a linked item's bytes, downloading them.
    let server = Server::start(&home, &[]);
    let refused = server.send(
        reqwest::Method::POST,
        "/api/datasets/api/links",
        Some(serde_json::json!({"links": [
            {"url": remote.url("/photos/skimage_astronaut.png")},
            {"url": "gopher://example.com/a.png"},
        ]})),
    );
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(
        server
            .ok("/api/datasets")
            .as_array()
            .is_some_and(|d| d.len() == 1),
        "nothing stored"
    );
    let linked = server.json(
        server.send(
            reqwest::Method::POST,
            "/api/datasets/api/links",
            Some(
                serde_json::json!({"links": [{"url": remote.url("/photos/skimage_astronaut.png")}],
                                    "allow_private": true}),
            ),
        ),
        reqwest::StatusCode::OK,
    );
    let id = linked[0]["item"]["id"].as_i64().expect("an id");
    let data = server.get(&format!("/api/items/{id}/data"));
    assert_eq!(data.status(), reqwest::StatusCode::OK);
    assert_eq!(
        data.bytes().expect("bytes").to_vec(),
        photo_bytes("skimage_astronaut.png")
    );
}

#[test]
fn downloads_that_go_wrong_end_as_named_failures_and_store_nothing() {
    let remote = Remote::start();
    let home = Home::new();
    home.seed_flow(&[]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "face-detector",
        "--timeout",
        "3",
        "--max-item-mb",
        "1",
        "--max-attempts",
        "1",
    ]);
    let changed = serde_json::json!([{
        "url": remote.url("/changing.png"),
        "name": "changing.png",
        "sha256": hex::encode(sha2::Sha256::digest(photo_bytes("mosaic_2x2.png"))),
    }]);
    let list = home.path().join("links.json");
    std::fs::write(&list, changed.to_string()).expect("a list");
    home.ok(&[
        "link",
        &remote.url("/slow.jpg"),
        &remote.url("/big.jpg"),
        &remote.url("/hop/6/skimage_rocket.jpg"),
        &remote.url("/to-ftp.jpg"),
        &remote.url("/photos/missing.jpg"),
        &remote.url("/flaky.png"),
        "--from",
        path(&list),
        "--dataset",
        "web",
        "--allow-private",
    ]);
    // No `--allow-private`: the same server is out of reach, by address and by name.
    let port = remote.addr.port();
    home.ok(&[
        "link",
        &format!("http://127.0.0.1:{port}/photos/mosaic_2x2.png"),
        &format!("http://localhost:{port}/photos/skimage_astronaut.png"),
        "--dataset",
        "public",
    ]);
    home.ok(&["work", "--until-idle"]);
    let executions = home.executions();
    for (item, status, says) in [
        ("slow.jpg", "failed", "timed out after"),
        (
            "big.jpg",
            "failed",
            "larger than the item size limit of 1048576 bytes",
        ),
        ("skimage_rocket.jpg", "failed", "more than 5 redirects"),
        (
            "to-ftp.jpg",
            "failed",
            "only http and https URLs are fetched, not `ftp`",
        ),
        ("missing.jpg", "failed", "the server answered 404"),
        ("changing.png", "failed", "the content changed"),
        (
            "mosaic_2x2.png",
            "failed",
            "127.0.0.1 is a loopback address",
        ),
        ("skimage_astronaut.png", "failed", "is a loopback address"),
        ("flaky.png", "success", ""),
    ] {
        let execution = execution_of(&executions, item);
        assert_eq!(execution["status"], status, "{item}: {execution:#}");
        let error = execution["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{item}: {error}");
        if status == "failed" {
            assert!(
                error.starts_with("download failed: http://"),
                "{item}: {error}"
            );
        }
    }
    assert_eq!(
        remote.hits.flaky.load(Ordering::SeqCst),
        2,
        "a 503 is tried again"
    );
    // Nothing half-stored: failed items have no digest, their bytes are not in the store.
    let items = home.json(&["items", "list", "--json"]);
    for item in items.as_array().expect("a list") {
        let fetched = item["name"] == "flaky.png";
        let digest = item["digest"].as_str().expect("a digest");
        if item["name"] == "changing.png" {
            assert_eq!(digest.len(), 64, "the promised digest stays");
        } else {
            assert_eq!(digest.is_empty(), !fetched, "{item:#}");
        }
    }
    assert!(home.ok(&["check"]).contains("ok"));
    // A failed download is rerun like any failure.
    home.ok(&["executions", "rerun"]);
    assert_eq!(status_count(&home.executions(), "queued"), 8);
}

fn photo_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("images").join(name)).expect("a photo")
}

#[test]
fn links_are_checked_before_anything_is_stored() {
    let home = Home::new();
    for (args, says) in [
        (vec!["ftp://example.com/a.jpg"], "not an http or https URL"),
        (vec!["https://example.com/"], "has no file name"),
        (
            vec![
                "https://a.example.com/x/photo.jpg",
                "https://b.example.com/y/photo.jpg",
            ],
            "`photo.jpg` is the name of both",
        ),
    ] {
        let mut all = vec!["link"];
        all.extend(args);
        all.extend(["--dataset", "web"]);
        let error = home.fails(&all);
        assert!(error.contains(says), "{error}");
    }
    assert!(
        home.ok(&["items", "list"]).lines().count() <= 1,
        "nothing stored"
    );
}

const SECRET: &str = "Bearer s3cr3t-d0wnl0ad-t0ken";

/// A host that serves `/private/NAME` only with [`SECRET`] as the Authorization header, and
/// whose `/away/NAME` redirects to `elsewhere`; and that other host, which records the
/// Authorization header each request brought (`none` without one).
fn private_hosts() -> (String, String, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let elsewhere = crate::support::server::serve_app(Router::new().route(
        "/seen/{name}",
        get(
            move |Path(name): Path<String>, headers: axum::http::HeaderMap| {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                record.lock().expect("a lock").push(auth);
                photo(Path(name))
            },
        ),
    ));
    let elsewhere = format!("http://{elsewhere}");
    let to = elsewhere.clone();
    let private = crate::support::server::serve_app(
        Router::new()
            .route(
                "/private/{name}",
                get(
                    |Path(name): Path<String>, headers: axum::http::HeaderMap| async move {
                        match headers
                            .get(header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok())
                        {
                            Some(SECRET) => photo(Path(name)).await,
                            _ => StatusCode::UNAUTHORIZED.into_response(),
                        }
                    },
                ),
            )
            .route(
                "/away/{name}",
                get(move |Path(name): Path<String>| async move {
                    Redirect::temporary(&format!("{to}/seen/{name}"))
                }),
            ),
    );
    (format!("http://{private}"), elsewhere, seen)
}

fn set_secret(home: &Home, name: &str, value: &str) {
    use std::io::Write;
    let mut child = command(home.path())
        .args(["secret", "set", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prelabel runs");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{value}").expect("the value is written");
    drop(stdin);
    let out = child.wait_with_output().expect("prelabel ends");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(value) && !stderr(&out).contains(value));
}

#[test]
fn a_dataset_sends_its_secret_header_to_its_own_host_and_nowhere_else() {
    let (private, _elsewhere, seen) = private_hosts();
    let home = Home::new();
    home.seed_flow(&[]);
    let mosaic = format!("{private}/private/mosaic_2x2.png");
    let away = format!("{private}/away/matplotlib_grace_hopper.jpg");
    let link = |urls: &[&str]| {
        let mut args = vec!["link", "--dataset", "web", "--allow-private"];
        args.extend(["--header", "Authorization=web-token"]);
        args.extend(urls);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let args = link(&[&mosaic]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // A header naming a secret that does not exist is refused before anything is stored.
    let error = home.fails(&args);
    assert!(error.contains("no secret named `web-token`"), "{error}");
    let error = home.fails(&[
        "link",
        "--dataset",
        "web",
        "--header",
        "Bad Header=x",
        &mosaic,
    ]);
    assert!(
        error.contains("`Bad Header` is not a header name"),
        "{error}"
    );
    assert_eq!(
        home.json(&["items", "list", "--json"]),
        serde_json::json!([])
    );

    set_secret(&home, "web-token", SECRET);
    let args = link(&[&mosaic, &away]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    home.ok(&args);
    let worked = home.run(&["work", "--until-idle"]);
    let executions = home.executions();
    assert_eq!(status_count(&executions, "success"), 2, "{executions:#?}");
    for entry in home.export("web").as_array().expect("a list") {
        let name = entry["item"]["name"].as_str().expect("a name");
        assert_matches_seed(name, &boxes(entry));
    }
    assert_eq!(
        *seen.lock().expect("a lock"),
        ["none"],
        "the redirect to another host went without the header"
    );

    // The value is read when a download is made: a wrong one is the server's 401.
    set_secret(&home, "web-token", "Bearer wrong");
    let args = link(&[&format!("{private}/private/skimage_astronaut.png")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    home.ok(&args);
    home.ok(&["work", "--until-idle"]);
    let failed = execution_of(&home.executions(), "skimage_astronaut.png").clone();
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("answered 401")),
        "{failed:#}"
    );

    // A secret in use is not deleted; and its value is in nothing Prelabel prints.
    let error = home.fails(&["secret", "delete", "web-token"]);
    assert!(error.contains("dataset(s) web"), "{error}");
    let secrets = home.json(&["secret", "list"]);
    assert_eq!(secrets[0]["name"], "web-token");
    assert_eq!(secrets[0]["used_by"], serde_json::json!(["web"]));
    let mut printed = vec![stdout(&worked), stderr(&worked), secrets.to_string()];
    printed.push(home.json(&["items", "list", "--json"]).to_string());
    printed.push(home.json(&["executions", "list", "--json"]).to_string());
    for format in ["json", "coco", "dataloop", "cvat", "labelstudio"] {
        printed.push(home.ok(&[
            "annotations",
            "export",
            "--dataset",
            "web",
            "--format",
            format,
        ]));
    }
    for execution in home.executions() {
        let id = execution["id"].to_string();
        printed.push(home.ok(&["executions", "logs", &id]));
    }
    let secret_part = SECRET.trim_start_matches("Bearer ");
    for text in printed {
        assert!(
            !text.contains(secret_part),
            "the secret was printed: {text}"
        );
    }
}
