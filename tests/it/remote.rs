//! A function that calls a remote API: `guest/remote-detector` posts each item to a detection
//! API (`prelabel serve-detector`, the face detector behind HTTP) and stores the boxes it
//! answers, which are the face detector's own; its API key is a secret init input and
//! appears in no output.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::server::{DetectorApi, Server};
use crate::support::*;

/// The API's key: it must appear in no output of the home that calls the API.
const KEY: &str = "sk-test-5f0c2a9e-never-printed";
const PHOTOS: [&str; 3] = [
    "matplotlib_grace_hopper.jpg",
    "skimage_astronaut.png",
    "mosaic_2x2.png",
];

/// Boxes per photo: (label, confidence, left, top, right, bottom), as the f32 they are
/// (`detect` prints them widened to f64, an export as the shortest f32).
type Boxes = BTreeMap<String, Vec<(String, f32, f32, f32, f32, f32)>>;

fn boxes_of(annotations: &[Value]) -> Vec<(String, f32, f32, f32, f32, f32)> {
    annotations
        .iter()
        .map(|a| {
            let g = &a["geometry"];
            let n = |v: &Value| v.as_f64().expect("a number") as f32;
            (
                a["label"].as_str().expect("label").to_string(),
                n(&a["model"]["confidence"]),
                n(&g["left"]),
                n(&g["top"]),
                n(&g["right"]),
                n(&g["bottom"]),
            )
        })
        .collect()
}

fn photos() -> TempDir {
    let dir = tempdir();
    for name in PHOTOS {
        std::fs::copy(fixtures().join("images").join(name), dir.path().join(name))
            .expect("a photo");
    }
    dir
}

/// The face detector behind the detection API, `KEY` required, on a home of its own.
fn api() -> (Home, DetectorApi) {
    let home = Home::new();
    let api = DetectorApi::start(
        &home,
        &face_detector(),
        &[("PRELABEL_TEST_API_KEY", KEY)],
        &["--api-key-env", "PRELABEL_TEST_API_KEY"],
    );
    (home, api)
}

/// A home that calls the API at `origin`: remote-detector pushed, secret `remote-key` set to
/// `key`, the service `remote` deployed with it (the deploy's output returned) and triggered
/// on every item.
fn caller(origin: &str, key: &str) -> (Home, String) {
    let home = Home::new();
    let package = home.path().join("remote");
    remote_detector_package(&package, origin);
    home.ok(&["package", "push", path(&package)]);
    let set = command(home.path())
        .args(["secret", "set", "remote-key", "--from-env", "KEY_FOR_TEST"])
        .env("KEY_FOR_TEST", key)
        .output()
        .expect("runs");
    assert!(set.status.success(), "{}", stderr(&set));
    let deployed = home.ok(&deploy("api_key=remote-key"));
    home.ok(&["trigger", "create", "remote", "--service", "remote"]);
    (home, deployed)
}

/// `service deploy` of remote-detector as `remote` with `init`.
fn deploy(init: &str) -> [&str; 7] {
    [
        "service",
        "deploy",
        "remote-detector",
        "--name",
        "remote",
        "--init",
        init,
    ]
}

#[test]
fn remote_detector_stores_what_the_api_answers_and_its_key_appears_in_no_output() {
    let (api_home, api) = api();
    let photos = photos();
    let direct: Boxes = {
        let out = api_home.ok(&["detect", path(&face_detector()), path(photos.path())]);
        let results: Vec<Value> = serde_json::from_str(&out).expect("json");
        results
            .iter()
            .map(|r| {
                let name = r["name"].as_str().expect("name");
                let file = std::path::Path::new(name).file_name().expect("a file name");
                let annotations = r["annotations"].as_array().expect("annotations");
                (file.to_string_lossy().into_owned(), boxes_of(annotations))
            })
            .collect()
    };
    assert!(
        direct.values().map(Vec::len).sum::<usize>() >= 3,
        "{direct:?}"
    );

    let (home, deployed) = caller(&api.origin(), KEY);
    // The key itself where its secret's name belongs: refused, and not echoed.
    let refused = home.fails(&deploy(&format!("api_key={KEY}")));
    assert!(
        refused.contains("init input `api_key` is secret"),
        "{refused}"
    );
    assert!(
        !refused.contains(KEY),
        "the refusal echoed the key: {refused}"
    );
    let mut outputs = vec![refused, deployed];
    home.ok(&["upload", path(photos.path()), "--dataset", "photos"]);
    let worked = home.run(&["work", "--until-idle"]);
    outputs.push(stdout(&worked) + &stderr(&worked));

    // Every photo annotated with the API's answer: the face detector's boxes, exactly.
    let export = home.export("photos");
    let stored: Boxes = export
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let annotations = i["annotations"].as_array().expect("annotations");
            (
                i["item"]["name"].as_str().expect("name").to_string(),
                boxes_of(annotations),
            )
        })
        .collect();
    assert_eq!(stored, direct);
    let executions = home.executions();
    assert_eq!(executions.len(), PHOTOS.len());
    for e in &executions {
        assert_eq!(e["status"], "success", "{e:#}");
        let logs = home.ok(&["executions", "logs", &e["id"].to_string()]);
        assert!(
            logs.contains(&format!("[http] POST {} 200 ", api.origin())),
            "{logs}"
        );
        outputs.push(logs);
    }
    // Provenance records the secret's name, never its value.
    let provenance = serde_json::to_string(&export).expect("json");
    assert!(
        provenance.contains("\"api_key\":\"remote-key\""),
        "{provenance}"
    );

    // The key is in no output: show, list, secrets, exports, executions, logs, the API.
    for args in [
        &["service", "show", "remote"][..],
        &["service", "list"],
        &["secret", "list"],
        &["executions", "list"],
        &[
            "annotations",
            "export",
            "--dataset",
            "photos",
            "--format",
            "coco",
        ],
        &[
            "annotations",
            "export",
            "--dataset",
            "photos",
            "--format",
            "labelstudio",
        ],
        &[
            "annotations",
            "export",
            "--dataset",
            "photos",
            "--format",
            "cvat",
        ],
    ] {
        outputs.push(home.ok(args));
    }
    outputs.push(provenance);
    let server = Server::start(&home, &[]);
    outputs.push(server.ok("/api/services/remote").to_string());
    outputs.push(server.ok("/api/executions").to_string());
    drop(server);
    for output in &outputs {
        assert!(!output.contains(KEY), "the key leaked: {output}");
    }
    assert!(
        outputs[1].contains("remote-detector"),
        "the deploy said: {}",
        outputs[1]
    );
}

#[test]
fn a_wrong_key_is_the_apis_401_and_a_named_secret_is_not_deleted_from_under_its_service() {
    let (_api_home, api) = api();
    let (home, _) = caller(&api.origin(), "sk-wrong");
    let dir = tempdir();
    std::fs::write(dir.path().join("a.png"), png(10, 10)).expect("an image");
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    home.ok(&["work", "--until-idle"]);
    let e = &home.executions()[0];
    assert_eq!(e["status"], "failed", "{e:#}");
    let error = e["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "the API answered 401: {\"error\":\"a valid `Authorization: Bearer KEY` is required\"}"
        ),
        "{error}"
    );
    assert!(!error.contains("sk-wrong"), "{error}");

    // A secret a service names cannot be deleted from under it; once the service is gone, it can.
    let secrets = home.json(&["secret", "list"]);
    assert_eq!(
        secrets[0]["named_by"],
        serde_json::json!(["remote"]),
        "{secrets:#}"
    );
    let refused = home.fails(&["secret", "delete", "remote-key"]);
    assert!(
        refused.contains("secret `remote-key` is named by the init inputs of service(s) remote"),
        "{refused}"
    );
    home.ok(&["service", "delete", "remote"]);
    home.ok(&["secret", "delete", "remote-key"]);
}

#[test]
fn an_api_that_echoes_the_key_does_not_put_it_in_the_logs_or_the_error() {
    // A careless API: its 403 repeats the Authorization header it got.
    let addr = crate::support::server::serve_app(axum::Router::new().route(
        "/detect",
        axum::routing::post(|headers: axum::http::HeaderMap| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            (
                axum::http::StatusCode::FORBIDDEN,
                format!("no access for `{auth}`"),
            )
        }),
    ));
    let (home, _) = caller(&format!("http://{addr}"), KEY);
    let dir = tempdir();
    std::fs::write(dir.path().join("a.png"), png(10, 10)).expect("an image");
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    home.ok(&["work", "--until-idle"]);
    let e = &home.executions()[0];
    let error = e["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the API answered 403: no access for `Bearer [secret]`"),
        "{error}"
    );
    let logs = home.ok(&["executions", "logs", &e["id"].to_string()]);
    assert!(logs.contains("Bearer [secret]"), "{logs}");
    for output in [error, &logs] {
        assert!(!output.contains(KEY), "the key leaked: {output}");
    }
}
