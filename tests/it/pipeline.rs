//! Pipeline files as fixtures: every `tests/fixtures/pipelines/*.toml` parses, and every
//! `bad/*.toml` (a cycle, a misspelt condition, an edge to nowhere, a condition where it means
//! nothing, ...) is refused with the message its first line (`# error: ...`) names.

use std::path::PathBuf;

use prelabel::package::pipeline::{Node, Spec};

fn dir() -> PathBuf {
    crate::support::fixtures().join("pipelines")
}

#[test]
fn good_pipelines_parse() {
    let files = crate::support::toml_files(&dir());
    assert!(files.len() >= 2);
    for path in files {
        Spec::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_privacy_pipeline_reads_as_written() {
    let spec = Spec::from_file(&dir().join("privacy.toml")).expect("parses");
    assert_eq!(spec.name, "privacy");
    let kinds: Vec<&str> = spec.nodes.iter().map(Node::kind).collect();
    assert_eq!(kinds, ["source", "function", "function", "dataset", "task"]);
    let Some(Node::Function { function, .. }) = spec.node("faces") else {
        panic!("faces is a function");
    };
    assert_eq!(function, "detect", "the default function");
    let review = spec
        .edges
        .iter()
        .find(|e| e.to == "review")
        .expect("an edge to review");
    assert!(review.when.holds(&[("face", 0.62)]));
    assert!(!review.when.holds(&[("face", 0.97)]));
    // What is stored is the file as read: it reads back the same.
    let text = toml::to_string(&spec).expect("serializes");
    assert_eq!(
        Spec::from_str(&text, &dir().join("again.toml")).expect("reads back"),
        spec
    );
}

#[test]
fn bad_pipelines_are_refused_naming_the_problem() {
    crate::support::refused_as_their_first_lines_say(&dir().join("bad"), 14, Spec::from_file);
}

/// A pipeline file written for one test: `edit` applied to `minimal.toml`.
fn variant(into: &std::path::Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(dir().join("minimal.toml")).expect("read");
    let path = into.join(name);
    std::fs::write(&path, edit(text)).expect("write");
    path
}

/// The service the fixtures' function nodes name.
fn deploy_face_detector(home: &crate::support::Home) {
    use crate::support::{face_detector_dir, path};
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "face-detector",
    ]);
}

#[test]
fn apply_stores_versions_and_refuses_what_the_store_cannot_run() {
    use crate::support::{Home, path, tempdir};
    let home = Home::new();
    let files = tempdir();
    let minimal = dir().join("minimal.toml");
    // Its service does not exist yet: refused, naming the node and the service.
    let err = home.fails(&["pipeline", "apply", path(&minimal)]);
    assert!(
        err.contains("node `faces` of pipeline `just-faces`") && err.contains("face-detector"),
        "{err}"
    );
    deploy_face_detector(&home);
    let out = home.ok(&["pipeline", "apply", path(&minimal)]);
    assert_eq!(
        out.trim(),
        "created pipeline just-faces version 1 (2 nodes, 1 edges)"
    );
    let out = home.ok(&["pipeline", "apply", path(&minimal)]);
    assert!(
        out.starts_with("unchanged pipeline just-faces version 1"),
        "{out}"
    );
    let described = variant(files.path(), "described.toml", |t| {
        t.replace(
            "name = \"just-faces\"",
            "name = \"just-faces\"\ndescription = \"again\"",
        )
    });
    let out = home.ok(&["pipeline", "apply", path(&described)]);
    assert!(
        out.starts_with("updated pipeline just-faces version 2"),
        "{out}"
    );
    let listed = home.json(&["pipeline", "list"]);
    assert_eq!(listed[0]["version"], 2);
    assert_eq!(listed[0]["spec"]["description"], "again");
    assert_eq!(
        home.json(&["pipeline", "pause", "just-faces"])["paused"],
        true
    );
    assert_eq!(
        home.json(&["pipeline", "show", "just-faces"])["paused"],
        true
    );
    assert_eq!(
        home.json(&["pipeline", "resume", "just-faces"])["paused"],
        false
    );
    // What only the store can check: the function, the filters.
    let no_function = variant(files.path(), "nope.toml", |t| {
        t.replace(
            "service = \"face-detector\"",
            "service = \"face-detector\"\nfunction = \"nope\"",
        )
    });
    let err = home.fails(&["pipeline", "apply", path(&no_function)]);
    assert!(err.contains("has no function `nope`"), "{err}");
    let bad_filter = variant(files.path(), "filter.toml", |t| {
        t.replace(
            "kind = \"source\"",
            "kind = \"source\"\nfilters = [\"metadata ~~ x\"]",
        )
    });
    let err = home.fails(&["pipeline", "apply", path(&bad_filter)]);
    assert!(err.contains("invalid filter `metadata ~~ x`"), "{err}");
    // A file that does not read is refused as it is, and nothing is stored.
    let err = home.fails(&["pipeline", "apply", path(&dir().join("bad/cycle.toml"))]);
    assert!(err.contains("the edges make a cycle: a -> b -> a"), "{err}");
    assert_eq!(
        home.json(&["pipeline", "list"]).as_array().map(Vec::len),
        Some(1)
    );
    home.ok(&["pipeline", "delete", "just-faces"]);
    let err = home.fails(&["pipeline", "show", "just-faces"]);
    assert!(err.contains("no pipeline named `just-faces`"), "{err}");
}

#[test]
fn pipelines_over_http_are_the_file_as_json_and_refused_naming_the_problem() {
    use crate::support::Home;
    use crate::support::server::Server;
    use reqwest::{Method, StatusCode};
    let home = Home::new();
    deploy_face_detector(&home);
    let server = Server::start(&home, &[]);
    let spec = Spec::from_file(&dir().join("minimal.toml")).expect("parses");
    let body = serde_json::to_value(&spec).expect("JSON");
    let applied = server.json(
        server.send(Method::POST, "/api/pipelines", Some(body.clone())),
        StatusCode::OK,
    );
    assert_eq!(applied["change"], "created");
    assert_eq!(applied["pipeline"]["version"], 1);
    let again = server.json(
        server.send(Method::POST, "/api/pipelines", Some(body.clone())),
        StatusCode::OK,
    );
    assert_eq!(again["change"], "unchanged");
    // A misspelt condition is an unknown field, not a condition that lets everything through.
    let mut misspelt = body.clone();
    misspelt["edges"][0]["when"] = serde_json::json!({"min_confidense": 0.5});
    let refused = server.json(
        server.send(Method::POST, "/api/pipelines", Some(misspelt)),
        StatusCode::BAD_REQUEST,
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("min_confidense"),
        "{refused}"
    );
    let mut cycle = body.clone();
    cycle["edges"] = serde_json::json!([
        {"from": "in", "to": "faces"}, {"from": "faces", "to": "faces"}
    ]);
    let refused = server.json(
        server.send(Method::POST, "/api/pipelines", Some(cycle)),
        StatusCode::BAD_REQUEST,
    );
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("faces -> faces"),
        "{refused}"
    );
    let paused = server.json(
        server.send(Method::POST, "/api/pipelines/just-faces/pause", None),
        StatusCode::OK,
    );
    assert_eq!(paused["paused"], true);
    assert_eq!(server.ok("/api/pipelines")[0]["paused"], true);
    server.json(
        server.send(Method::DELETE, "/api/pipelines/just-faces", None),
        StatusCode::OK,
    );
    server.json(
        server.get("/api/pipelines/just-faces"),
        StatusCode::NOT_FOUND,
    );
}
