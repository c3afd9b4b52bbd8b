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
    assert_eq!(
        kinds,
        [
            "source", "function", "function", "dataset", "task", "dataset"
        ]
    );
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
    home.deploy_face_detector();
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
    home.deploy_face_detector();
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
    home.deploy_face_detector();
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
    home.deploy_face_detector();
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
    home.deploy_face_detector();
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

/// An image as the detectors see it: decoded, EXIF orientation applied.
fn pixels(bytes: &[u8]) -> image::RgbImage {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .expect("reads")
        .into_decoder()
        .expect("an image");
    let orientation = decoder.orientation().expect("orientation");
    let mut image = image::DynamicImage::from_decoder(decoder).expect("decodes");
    image.apply_orientation(orientation);
    image.to_rgb8()
}

/// How much detail a region of an image has: the mean absolute difference between
/// horizontal neighbours (a blurred or pixelated face has little).
fn detail(image: &image::RgbImage, (x0, y0, x1, y1): (u32, u32, u32, u32)) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for y in y0..y1 {
        for x in x0 + 1..x1 {
            let (a, b) = (image.get_pixel(x - 1, y), image.get_pixel(x, y));
            sum += (0..3).map(|c| u64::from(a[c].abs_diff(b[c]))).sum::<u64>();
            n += 3;
        }
    }
    sum as f64 / n.max(1) as f64
}

/// The whole pixels of a box, within the image.
fn whole(b: &serde_json::Value, (w, h): (u32, u32)) -> (u32, u32, u32, u32) {
    let v = |k: &str, max: u32| (b[k].as_f64().expect(k) as f32).clamp(0.0, max as f32);
    (
        v("left", w).floor() as u32,
        v("top", h).floor() as u32,
        v("right", w).ceil() as u32,
        v("bottom", h).ceil() as u32,
    )
}

/// The privacy pipeline's services deployed, the pipeline applied and the ten sample photos
/// uploaded into its source's dataset.
fn apply_privacy_and_upload(home: &Home) {
    home.deploy_face_detector();
    home.ok(&["package", "push", path(&crate::support::anonymizer())]);
    home.ok(&["service", "deploy", "anonymizer", "--name", "anonymizer"]);
    home.ok(&["pipeline", "apply", path(&dir().join("privacy.toml"))]);
    let photos = fixtures().join("images");
    home.ok(&["upload", path(&photos), "--dataset", "photos"]);
}

/// Every photo passed every node of the privacy pipeline once: one face detection each, one
/// anonymization and one copy for each photo with a face (from the seed's detections), the
/// uncertain ones waiting in the task, no node entered twice by one run. Returns how many
/// photos have a face.
fn assert_private_once(home: &Home) -> usize {
    let photos = names(home, "photos");
    let with_faces = photos.iter().filter(|n| !reference(n).is_empty()).count();
    let uncertain = photos
        .iter()
        .filter(|n| reference(n).iter().any(|f| f.confidence <= 0.8))
        .count();
    let succeeded = |service: &str| {
        home.count(&format!(
            "SELECT COUNT(*) FROM executions WHERE service_name = '{service}' AND status = 'success'"
        ))
    };
    let all = home.count("SELECT COUNT(*) FROM executions");
    assert_eq!(all, (photos.len() + with_faces) as i64);
    assert_eq!(succeeded("face-detector"), photos.len() as i64);
    assert_eq!(succeeded("anonymizer"), with_faces as i64);
    assert_eq!(names(home, "anonymized").len(), with_faces);
    let task = home.json(&["task", "show", "uncertain-faces"]);
    assert_eq!(task["waiting"], uncertain);
    let twice = "SELECT COUNT(*) FROM (SELECT run_id, node FROM pipeline_steps
                  GROUP BY run_id, node HAVING COUNT(*) > 1) twice";
    assert_eq!(home.count(twice), 0);
    let runs = home.count("SELECT COUNT(*) FROM pipeline_runs");
    assert_eq!(runs, photos.len() as i64);
    with_faces
}

#[test]
fn a_killed_serve_mid_privacy_pipeline_leaves_every_photo_through_every_node_once() {
    let home = Home::new();
    apply_privacy_and_upload(&home);
    let mut serve = home.spawn(&["serve"]);
    home.wait_for(90, "an anonymization to have run while others run", |all| {
        all.iter()
            .any(|e| e["service"] == "anonymizer" && e["status"] == "success")
            && status_count(all, "running") >= 1
    });
    // A real SIGKILL, with photos between the detector and the anonymizer.
    serve.kill().expect("kill -9");
    let _ = serve.wait();
    home.ok(&["work", "--until-idle"]);
    assert_private_once(&home);
}

#[test]
fn the_privacy_pipeline_anonymizes_every_face_and_people_review_the_uncertain() {
    let home = Home::new();
    apply_privacy_and_upload(&home);
    home.ok(&["work", "--until-idle"]);
    let once = assert_private_once(&home);

    // Every photo with a face has an anonymized copy whose face boxes kept none of their
    // detail; photos without one have none. (The faces are those the pipeline's detector
    // stored on the original.)
    let server = Server::start(&home, &[]);
    let copies: BTreeMap<String, i64> = home
        .json(&["items", "list", "--dataset", "anonymized", "--json"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            let from = i["metadata"]["user"]["anonymized"]["from"]
                .as_str()
                .expect("from");
            (from.to_string(), i["id"].as_i64().expect("id"))
        })
        .collect();
    let mut with_faces = 0;
    let mut uncertain = Vec::new();
    for entry in home.export("photos").as_array().expect("export") {
        let (item, faces) = (
            &entry["item"],
            entry["annotations"].as_array().expect("list"),
        );
        let id = item["id"].as_i64().expect("id");
        let name = item["name"].as_str().expect("name");
        assert_eq!(
            faces.len(),
            reference(name).len(),
            "{name}: the detector's faces"
        );
        if faces
            .iter()
            .any(|f| f["model"]["confidence"].as_f64() <= Some(0.8))
        {
            uncertain.push(id);
        }
        let Some(copy) = copies.get(&id.to_string()) else {
            assert!(faces.is_empty(), "{name} has faces but no anonymized copy");
            continue;
        };
        assert!(!faces.is_empty(), "{name} has no face but a copy");
        with_faces += 1;
        let bytes = |id: i64| {
            let response = server.get(&format!("/api/items/{id}/data"));
            assert_eq!(response.status(), StatusCode::OK);
            response.bytes().expect("bytes").to_vec()
        };
        let (original, anonymized) = (pixels(&bytes(id)), pixels(&bytes(*copy)));
        assert_eq!(original.dimensions(), anonymized.dimensions(), "{name}");
        for face in faces {
            let region = whole(&face["geometry"], original.dimensions());
            let (x0, y0, x1, y1) = region;
            let same = (y0..y1)
                .all(|y| (x0..x1).all(|x| original.get_pixel(x, y) == anonymized.get_pixel(x, y)));
            assert!(!same, "{name}: a face region equals the original");
            let (before, after) = (detail(&original, region), detail(&anonymized, region));
            assert!(
                after < before * 0.5,
                "{name}: {region:?} kept its detail ({before:.1} -> {after:.1})"
            );
        }
    }
    assert_eq!((copies.len(), with_faces), (once, once));
    assert!(
        with_faces >= 5 && uncertain.len() >= 2,
        "{with_faces} {uncertain:?}"
    );

    // The uncertain photos wait in the review task, and nothing else does.
    let task = home.json(&["task", "show", "uncertain-faces"]);
    assert_eq!(task["waiting"], uncertain.len());
    assert_eq!(task["pipelines"], serde_json::json!(["privacy"]));
    let mut waiting: Vec<i64> = home
        .json(&["task", "items", "uncertain-faces"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|h| h["item"]["id"].as_i64().expect("id"))
        .collect();
    waiting.sort();
    uncertain.sort();
    assert_eq!(waiting, uncertain);

    // Completing one moves it on into `reviewed` (over the API, as the UI does); a second
    // decision on it is a conflict naming the first; a discarded one goes nowhere.
    let decided = server.json(
        server.send(
            Method::POST,
            &format!("/api/tasks/uncertain-faces/items/{}/complete", uncertain[0]),
            Some(serde_json::json!({"by": "ann"})),
        ),
        StatusCode::OK,
    );
    assert_eq!(
        (decided["steps"].as_u64(), decided["outcome"].as_str()),
        (Some(1), Some("completed"))
    );
    let again = server.json(
        server.send(
            Method::POST,
            &format!("/api/tasks/uncertain-faces/items/{}/discard", uncertain[0]),
            Some(serde_json::json!({})),
        ),
        StatusCode::CONFLICT,
    );
    assert!(
        again["error"]
            .as_str()
            .unwrap_or_default()
            .contains("was completed by ann"),
        "{again}"
    );
    let discarded = home.json(&[
        "task",
        "discard",
        "uncertain-faces",
        &uncertain[1].to_string(),
        "--by",
        "bo",
    ]);
    assert_eq!(discarded["outcome"], "discarded");
    let reviewed = home.json(&["items", "list", "--dataset", "reviewed", "--json"]);
    assert_eq!(reviewed.as_array().map(Vec::len), Some(1));
    assert_eq!(
        reviewed[0]["metadata"]["system"]["source"]["node"],
        "reviewed"
    );
    let task = home.json(&["task", "show", "uncertain-faces"]);
    assert_eq!(
        (
            task["waiting"].as_u64(),
            task["completed"].as_u64(),
            task["discarded"].as_u64()
        ),
        (Some(uncertain.len() as u64 - 2), Some(1), Some(1))
    );
    let history = home.json(&["task", "items", "uncertain-faces", "--decided"]);
    assert_eq!(history[0]["decided_by"], "bo");
    let err = home.fails(&["task", "complete", "uncertain-faces", "999999"]);
    assert!(err.contains("holds no item 999999"), "{err}");
    let err = home.fails(&["task", "show", "nobody"]);
    assert!(
        err.contains("no task named `nobody`") && err.contains("uncertain-faces"),
        "{err}"
    );
}

/// A pipeline that runs the hostile transformer after the face detector, putting what it
/// makes into `made`.
const MAKER: &str = r#"
name = "maker"
[[nodes]]
id = "in"
kind = "source"
dataset = "in"
[[nodes]]
id = "faces"
kind = "function"
service = "face-detector"
[[nodes]]
id = "make"
kind = "function"
service = "maker"
function = "make"
[[nodes]]
id = "made"
kind = "dataset"
dataset = "made"
[[edges]]
from = "in"
to = "faces"
[[edges]]
from = "faces"
to = "make"
[[edges]]
from = "make"
to = "made"
"#;

#[test]
fn what_a_transformer_makes_is_checked_before_anything_is_stored() {
    let home = Home::new();
    home.deploy_face_detector();
    home.ok(&["package", "push", path(&crate::support::hostile_maker())]);
    home.ok(&["service", "deploy", "hostile-maker", "--name", "maker"]);
    let files = tempdir();
    let spec = files.path().join("maker.toml");
    std::fs::write(&spec, MAKER).expect("write");
    home.ok(&["pipeline", "apply", path(&spec)]);
    let photo = std::fs::read(fixtures().join("images/skimage_astronaut.png")).expect("photo");
    let inputs = files.path().join("in");
    std::fs::create_dir(&inputs).expect("mkdir");
    let wrong = ["many", "big", "flood", "liar", "path", "meta", "empty"];
    for stem in ["ok"].iter().chain(&wrong) {
        std::fs::write(inputs.join(format!("{stem}.png")), &photo).expect("write");
    }
    home.ok(&["upload", path(&inputs), "--dataset", "in"]);
    home.ok(&["work", "--until-idle"]);
    // Only the well-made copy is put; it was made from the item the faces were found on, and
    // the transformer was given those faces (it echoes each as `given`).
    assert_eq!(names(&home, "made"), ["copy-ok.png"]);
    assert_eq!(home.count("SELECT COUNT(*) FROM execution_outputs"), 1);
    let given = "SELECT COUNT(*) FROM annotations a JOIN items i ON i.id = a.item_id
                  WHERE a.label = 'given' AND i.name = 'ok.png'";
    assert_eq!(
        home.count(given),
        reference("skimage_astronaut.png").len() as i64
    );
    let failed: BTreeMap<String, String> = home
        .executions()
        .into_iter()
        .filter(|e| e["service"] == "maker" && e["status"] != "success")
        .map(|e| {
            let stem = e["item"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches(".png")
                .to_string();
            (stem, e["error"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    let expect = [
        ("many", "made 17 items, over the limit of 16"),
        ("big", "limit"),
        ("flood", "limit"),
        (
            "liar",
            "is said to be \"image/jpeg\" but its bytes are image/png",
        ),
        ("path", "is not a file name"),
        ("meta", "its metadata is not JSON"),
        ("empty", "the item is empty"),
    ];
    for (stem, words) in expect {
        let error = failed
            .get(stem)
            .unwrap_or_else(|| panic!("{stem} did not fail: {failed:?}"));
        assert!(error.contains(words), "{stem}: {error}");
    }
    // Each failure stopped its path at `make`, shown as failed there.
    let shown = home.json(&["pipeline", "show", "maker"]);
    assert_eq!(shown["nodes"][2]["node"], "make");
    assert_eq!(shown["nodes"][2]["failed"], wrong.len());
    assert_eq!(shown["nodes"][3]["done"], 1);
}

#[test]
fn decisions_at_once_decide_an_item_once_and_bad_ones_are_refused() {
    let home = Home::new();
    home.deploy_face_detector();
    home.ok(&["pipeline", "apply", path(&dir().join("review.toml"))]);
    let photos = fixtures().join("images");
    home.ok(&["upload", path(&photos), "--dataset", "photos"]);
    home.ok(&["work", "--until-idle"]);
    let held = home.json(&["task", "items", "uncertain-faces"]);
    let (first, second) = (
        held[0]["item"]["id"].as_i64(),
        held[1]["item"]["id"].as_i64(),
    );
    let (first, second) = (first.expect("an item"), second.expect("another"));
    let server = Server::start(&home, &[]);
    let decide = |item: i64, how: &str, body: serde_json::Value| {
        let url = format!("/api/tasks/uncertain-faces/items/{item}/{how}");
        server.send(Method::POST, &url, Some(body))
    };
    // Eight people decide the same photo at the same moment: one decision, one copy put.
    let answers: Vec<StatusCode> = std::thread::scope(|s| {
        let asked: Vec<_> = (0..8)
            .map(|i| {
                let how = if i % 2 == 0 { "complete" } else { "discard" };
                let decide = &decide;
                s.spawn(move || decide(first, how, serde_json::json!({"by": format!("p{i}")})))
            })
            .collect();
        asked
            .into_iter()
            .map(|a| a.join().expect("a request").status())
            .collect()
    });
    let ok = answers.iter().filter(|s| **s == StatusCode::OK).count();
    let conflicts = answers
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((ok, conflicts), (1, 7), "{answers:?}");
    let decided = "SELECT COUNT(*) FROM pipeline_steps WHERE outcome IS NOT NULL";
    assert_eq!(home.count(decided), 1);
    let reviewed = "SELECT COUNT(*) FROM pipeline_steps WHERE node = 'reviewed'";
    assert!(home.count(reviewed) <= 1);
    // What a request cannot do: a field the decision does not have, an item that is not a
    // number, a task or an item that is not there. A megabyte of a name is cut.
    let error = |response: reqwest::blocking::Response, status: StatusCode| {
        let body = server.json(response, status);
        body["error"].as_str().unwrap_or_default().to_string()
    };
    let sneaky = serde_json::json!({"by": "x", "outcome": "completed"});
    let err = error(decide(second, "discard", sneaky), StatusCode::BAD_REQUEST);
    assert!(err.contains("outcome"), "{err}");
    let url = "/api/tasks/uncertain-faces/items/abc/complete";
    error(
        server.send(Method::POST, url, Some(serde_json::json!({}))),
        StatusCode::BAD_REQUEST,
    );
    let url = "/api/tasks/nobody/items/1/complete";
    let err = error(
        server.send(Method::POST, url, Some(serde_json::json!({}))),
        StatusCode::NOT_FOUND,
    );
    assert!(err.contains("no task named `nobody`"), "{err}");
    let err = error(
        decide(99_999, "complete", serde_json::json!({})),
        StatusCode::NOT_FOUND,
    );
    assert!(err.contains("holds no item 99999"), "{err}");
    let long = serde_json::json!({"by": "a".repeat(1 << 20)});
    server.json(decide(second, "discard", long), StatusCode::OK);
    let history = home.json(&["task", "items", "uncertain-faces", "--decided"]);
    let by = history[0]["decided_by"].as_str().expect("who");
    assert_eq!(by.len(), 128);
}
