//! Pipeline files as fixtures: every `tests/fixtures/pipelines/*.toml` parses, and every
//! `bad/*.toml` (a cycle, a misspelt condition, an edge to nowhere, a condition where it means
//! nothing, ...) is refused with the message its first line (`# error: ...`) names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use prelabel::package::pipeline::{Node, Spec};
use reqwest::{Method, StatusCode};

use crate::support::server::Server;
use crate::support::{Home, face_detector_dir, fixtures, path, reference, status_count, tempdir};

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
fn deploy_face_detector(home: &Home) {
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

/// The names of a dataset's items, sorted.
fn names(home: &Home, dataset: &str) -> Vec<String> {
    let items = home.json(&["items", "list", "--dataset", dataset, "--json"]);
    let mut names: Vec<String> = items
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i["name"].as_str().expect("a name").to_string())
        .collect();
    names.sort();
    names
}

/// `sort.toml` applied, then the ten sample photos uploaded into its source's dataset.
fn apply_sort_and_upload(home: &Home) {
    home.ok(&["pipeline", "apply", path(&dir().join("sort.toml"))]);
    let photos = fixtures().join("images");
    home.ok(&["upload", path(&photos), "--dataset", "photos"]);
}

/// Where `sort.toml` should have put each of the ten sample photos uploaded into `photos`,
/// from the seed's own detections (all above the service's 0.5), checked dataset by dataset,
/// with one execution per photo (and `reruns` photos with a second) and none for the copies
/// (the source takes `photos` only), and no node entered twice by one run.
fn assert_sorted(home: &Home, reruns: i64) -> BTreeMap<&'static str, Vec<String>> {
    let mut want: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let photos = names(home, "photos");
    assert_eq!(photos.len(), 10);
    for name in photos {
        let faces: Vec<f32> = reference(&name).iter().map(|r| r.confidence).collect();
        let to = if faces.is_empty() {
            "no-faces"
        } else {
            "with-faces"
        };
        want.entry(to).or_default().push(name.clone());
        if faces.iter().any(|c| *c <= 0.8) {
            want.entry("uncertain").or_default().push(name.clone());
        }
    }
    assert!(
        want["uncertain"].len() >= 2 && want["no-faces"].len() >= 2,
        "{want:?}"
    );
    for (dataset, expected) in &want {
        assert_eq!(&names(home, dataset), expected, "dataset {dataset}");
    }
    let once = "SELECT COUNT(*) FROM (SELECT item_id FROM executions
                 WHERE pipeline_step_id IS NOT NULL GROUP BY item_id HAVING COUNT(*) = 1) once";
    assert_eq!(home.count(once), 10 - reruns);
    assert_eq!(home.count("SELECT COUNT(*) FROM executions"), 10 + reruns);
    let twice = "SELECT COUNT(*) FROM (SELECT run_id, node FROM pipeline_steps
                  GROUP BY run_id, node HAVING COUNT(*) > 1) twice";
    assert_eq!(home.count(twice), 0);
    want
}

#[test]
fn items_pass_each_node_once_and_go_where_the_conditions_send_them() {
    let home = Home::new();
    deploy_face_detector(&home);
    apply_sort_and_upload(&home);
    home.ok(&["work", "--until-idle"]);
    let want = assert_sorted(&home, 0);
    // The same photos again change nothing: no event, no run.
    apply_sort_and_upload(&home);
    home.ok(&["work", "--until-idle"]);
    assert_eq!(home.count("SELECT COUNT(*) FROM pipeline_runs"), 10);
    assert_eq!(home.count("SELECT COUNT(*) FROM executions"), 10);
    // `show` counts per node: ten done at the function, each dataset what it took.
    let shown = home.json(&["pipeline", "show", "sort"]);
    let count = |node: &str, what: &str| {
        shown["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["node"] == node)
            .map(|n| n[what].as_u64().unwrap_or_default())
    };
    assert_eq!(count("faces", "done"), Some(10));
    assert_eq!(
        count("uncertain", "done"),
        Some(want["uncertain"].len() as u64)
    );
    assert_eq!(count("faces", "failed"), Some(0));
    // Each copy says where it came from.
    let copies = home.json(&["items", "list", "--dataset", "uncertain", "--json"]);
    assert_eq!(
        copies[0]["metadata"]["system"]["source"]["pipeline"],
        "sort"
    );
    // Deleted with its runs; the executions it queued stay as history.
    home.ok(&["pipeline", "delete", "sort"]);
    assert_eq!(home.count("SELECT COUNT(*) FROM pipeline_steps"), 0);
    assert_eq!(home.count("SELECT COUNT(*) FROM executions"), 10);
}

#[test]
fn a_killed_serve_mid_pipeline_leaves_every_item_through_every_node_once() {
    let home = Home::new();
    deploy_face_detector(&home);
    apply_sort_and_upload(&home);
    let mut serve = home.spawn(&["serve"]);
    home.wait_for(
        60,
        "an execution to be running after one succeeded",
        |all| status_count(all, "success") >= 1 && status_count(all, "running") >= 1,
    );
    // A real SIGKILL, between the steps of some items' paths.
    serve.kill().expect("kill -9");
    let _ = serve.wait();
    home.ok(&["work", "--until-idle"]);
    assert_sorted(&home, 0);
}

#[test]
fn a_failed_node_stops_the_path_and_a_rerun_resumes_it_there() {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    // Items over 1 MB are refused: mosaic_2x2.png (1.8 MB) fails at the function.
    let deploy = |mb: &str| {
        home.ok(&[
            "service",
            "deploy",
            "face-detector",
            "--name",
            "face-detector",
            "--max-item-mb",
            mb,
        ])
    };
    deploy("1");
    apply_sort_and_upload(&home);
    home.ok(&["work", "--until-idle"]);
    let shown = home.json(&["pipeline", "show", "sort"]);
    let faces = &shown["nodes"][1];
    assert_eq!(
        (faces["node"].as_str(), faces["failed"].as_u64()),
        (Some("faces"), Some(1)),
        "{shown}"
    );
    assert!(!names(&home, "with-faces").contains(&"mosaic_2x2.png".to_string()));
    // The limit raised, the failed execution queued again: the path goes on from `faces`.
    deploy("64");
    home.ok(&["executions", "rerun"]);
    home.ok(&["work", "--until-idle"]);
    assert_sorted(&home, 1);
    assert_eq!(
        home.json(&["pipeline", "show", "sort"])["nodes"][1]["failed"],
        0
    );
}

#[test]
fn a_pipeline_changed_mid_flight_finishes_its_items_on_the_version_they_started_on() {
    let home = Home::new();
    deploy_face_detector(&home);
    apply_sort_and_upload(&home);
    // Version 2 sends faces elsewhere; the photos above started on version 1.
    let files = tempdir();
    let text = std::fs::read_to_string(dir().join("sort.toml")).expect("read");
    let v2 = files.path().join("sort.toml");
    std::fs::write(
        &v2,
        text.replace("dataset = \"with-faces\"", "dataset = \"faces-v2\""),
    )
    .expect("write");
    let out = home.ok(&["pipeline", "apply", path(&v2)]);
    assert!(out.starts_with("updated pipeline sort version 2"), "{out}");
    home.ok(&["work", "--until-idle"]);
    assert_sorted(&home, 0);
    let none = home.fails(&["items", "list", "--dataset", "faces-v2"]);
    assert!(none.contains("no dataset named `faces-v2`"), "{none}");
    // A photo that comes now takes version 2.
    let photo = files.path().join("later.png");
    std::fs::copy(fixtures().join("images/skimage_astronaut.png"), &photo).expect("copy");
    home.ok(&["upload", path(&photo), "--dataset", "photos"]);
    home.ok(&["work", "--until-idle"]);
    assert_eq!(names(&home, "faces-v2"), ["later.png"]);
}
