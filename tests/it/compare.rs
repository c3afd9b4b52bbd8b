//! `prelabel compare`: a candidate package run beside a service's stored annotations, storing
//! nothing, with its report, JSON and overlay page.

use crate::support::*;
use serde_json::Value;

/// A home where the face-detector service annotated the ten photos, and CenterFace is pushed.
fn annotated_home() -> Home {
    let home = Home::new();
    centerface();
    home.seed_flow(&[]);
    home.ok(&["upload", path(&fixtures().join("images")), "--dataset", "d"]);
    home.ok(&["work", "--until-idle"]);
    home.ok(&["package", "push", path(&centerface_dir())]);
    home
}

fn compare(home: &Home, against: &str) -> Value {
    home.json(&[
        "compare",
        "--dataset",
        "d",
        "--service",
        "face-detector",
        "--against",
        against,
        "--json",
    ])
}

fn item<'a>(comparison: &'a Value, name: &str) -> &'a Value {
    comparison["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("{name} compared"))
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

#[test]
fn centerface_against_res10_reports_what_a_switch_changes_and_stores_nothing() {
    let home = annotated_home();
    let before = (home.export("d"), home.executions().len());
    let comparison = compare(&home, "centerface");
    assert_eq!(comparison["current"], "face-detector@1");
    assert_eq!(comparison["candidate"], "centerface@1");
    assert_eq!(len(&comparison["items"]), 10);
    // res10 finds no face in the city, CenterFace 17: all added.
    let city = item(&comparison, "deface_city.jpg");
    assert_eq!(
        (
            len(&city["matched"]),
            len(&city["added"]),
            len(&city["removed"])
        ),
        (0, 17, 0)
    );
    // res10's "face" on the cat is not CenterFace's: removed.
    let cat = item(&comparison, "skimage_chelsea.png");
    assert_eq!((len(&cat["matched"]), len(&cat["removed"])), (0, 1));
    // Both find the astronaut's face, in about the same place.
    let astronaut = item(&comparison, "skimage_astronaut.png");
    assert_eq!(len(&astronaut["matched"]), 1);
    assert!(astronaut["matched"][0]["iou"].as_f64().expect("iou") >= 0.5);
    assert!(
        astronaut["current_ms"].as_u64().is_some(),
        "the service's own time"
    );
    let summary = &comparison["summary"];
    let count = |k: &str| summary[k].as_u64().expect("count") as usize;
    assert_eq!(count("items"), 10);
    assert_eq!(count("failed"), 0);
    assert_eq!(
        count("candidate_boxes"),
        26,
        "CenterFace's faces on the ten photos"
    );
    assert_eq!(count("matched") + count("removed"), count("current_boxes"));
    let recall = summary["against_current"]["recall"]
        .as_f64()
        .expect("recall");
    let want = count("matched") as f64 / count("current_boxes") as f64;
    assert!((recall - want).abs() < 1e-9, "{summary}");
    assert!(
        summary["against_accepted"].is_null(),
        "nothing reviewed yet"
    );
    // Nothing was stored or queued.
    assert_eq!((home.export("d"), home.executions().len()), before);
}

#[test]
fn a_revision_against_itself_matches_everything_and_reviews_become_the_truth() {
    let home = annotated_home();
    let comparison = compare(&home, "face-detector@1");
    let summary = &comparison["summary"];
    assert_eq!(summary["added"], 0, "{summary}");
    assert_eq!(summary["removed"], 0, "{summary}");
    assert_eq!(summary["against_current"]["precision"], 1.0);
    assert_eq!(summary["against_current"]["recall"], 1.0);

    // A person rejects the cat: against what people accepted, res10's cat is a false positive.
    let export = home.export("d");
    let annotation = export
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["item"]["name"] == "skimage_chelsea.png")
        .and_then(|e| e["annotations"][0]["id"].as_i64())
        .expect("the cat's box");
    home.ok(&["annotations", "review", &annotation.to_string(), "--reject"]);
    let comparison = compare(&home, "face-detector");
    let accepted = &comparison["summary"]["against_accepted"];
    assert_eq!(accepted["boxes"], 0, "{accepted}");
    assert_eq!(
        accepted["precision"], 0.0,
        "the one reviewed item's box was rejected"
    );
}

#[test]
fn the_report_and_the_overlay_page() {
    let home = annotated_home();
    let page = home.path().join("compare.html");
    let report = home.ok(&[
        "compare",
        "--dataset",
        "d",
        "--service",
        "face-detector",
        "--against",
        "centerface",
        "--html",
        path(&page),
    ]);
    assert!(
        report.contains("centerface@1 against face-detector@1"),
        "{report}"
    );
    assert!(report.contains("deface_city.jpg\t0\t17\t0"), "{report}");
    assert!(report.contains("precision"), "{report}");
    let html = std::fs::read_to_string(&page).expect("page written");
    assert_eq!(html.matches("<figure>").count(), 10);
    assert!(html.contains("data:image/jpeg;base64,"));
    assert!(
        html.contains("class=\"cand diff\""),
        "added boxes are marked"
    );
    assert!(
        html.contains("class=\"cur diff\""),
        "removed boxes are marked"
    );
}

#[test]
fn bad_requests_are_named() {
    let home = annotated_home();
    let args = |against: &str, iou: &str| {
        home.fails(&[
            "compare",
            "--dataset",
            "d",
            "--service",
            "face-detector",
            "--against",
            against,
            "--iou",
            iou,
        ])
    };
    assert!(
        args("nothing", "0.5").contains("nothing"),
        "an unknown package is named"
    );
    let err = args("centerface@9", "0.5");
    assert!(
        err.contains("package `centerface` has no revision 9"),
        "{err}"
    );
    let err = args("centerface@x", "0.5");
    assert!(err.contains("the revision must be a number"), "{err}");
    let err = args("centerface", "0");
    assert!(err.contains("iou") && err.contains("got 0"), "{err}");
    let err = home.fails(&[
        "compare",
        "--dataset",
        "nope",
        "--service",
        "face-detector",
        "--against",
        "centerface",
    ]);
    assert!(err.contains("nope"), "{err}");
}

/// The comparison without its timings, which differ run to run.
fn untimed(mut comparison: Value) -> Value {
    for item in comparison["items"].as_array_mut().into_iter().flatten() {
        item["current_ms"] = Value::Null;
        item["candidate_ms"] = Value::Null;
    }
    comparison["summary"]["current_ms_mean"] = Value::Null;
    comparison["summary"]["candidate_ms_mean"] = Value::Null;
    comparison
}

#[test]
fn the_same_comparison_over_http_while_the_api_keeps_answering() {
    use crate::support::server::*;
    use reqwest::StatusCode;
    use serde_json::json;

    let home = annotated_home();
    let cli = compare(&home, "centerface");
    let server = std::sync::Arc::new(Server::start(&home, &[]));
    let running = {
        let server = server.clone();
        std::thread::spawn(move || {
            let response = server.send(
                reqwest::Method::POST,
                "/api/services/face-detector/compare",
                Some(json!({"dataset": "d", "package": "centerface"})),
            );
            server.json(response, StatusCode::OK)
        })
    };
    // CenterFace takes seconds on the ten photos; the home is not held meanwhile. Were it
    // held, the GET would answer only when the comparison ends, and that thread would have
    // its answer within the next 300 ms.
    let pause = std::time::Duration::from_millis(300);
    std::thread::sleep(pause);
    let datasets = server.ok("/api/datasets");
    assert_eq!(datasets[0]["name"], "d");
    std::thread::sleep(pause);
    assert!(
        !running.is_finished(),
        "the API answered only after the comparison"
    );
    let http = running.join().expect("the comparison");
    assert_eq!(untimed(http), untimed(cli));

    // The overlay page, and init values as an object, as for a deploy.
    let page = server.with_token(
        server
            .client
            .post(server.url("/api/services/face-detector/compare?format=html"))
            .json(&json!({"dataset": "d", "package": "centerface", "init": {"min_confidence": 0.9}, "iou": 0.3})),
    );
    let page = page.send().expect("the page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html"))
    );
    assert_eq!(page.text().expect("a page").matches("<figure>").count(), 10);

    for (path, body, status, says) in [
        (
            "/api/services/face-detector/compare",
            json!({"dataset": "d", "package": "centerface", "iou": 0}),
            StatusCode::BAD_REQUEST,
            "got 0",
        ),
        (
            "/api/services/face-detector/compare",
            json!({"dataset": "d", "package": "centerface", "iou": "half"}),
            StatusCode::BAD_REQUEST,
            "iou",
        ),
        (
            "/api/services/face-detector/compare",
            json!({"dataset": "d", "package": "centerface", "against": "x"}),
            StatusCode::BAD_REQUEST,
            "unknown field `against`",
        ),
        (
            "/api/services/face-detector/compare",
            json!({"dataset": "d", "package": "centerface", "init": {"landmarks": [1]}}),
            StatusCode::BAD_REQUEST,
            "init input `landmarks`",
        ),
        (
            "/api/services/face-detector/compare",
            json!({"dataset": "d", "package": "centerface", "revision": 9}),
            StatusCode::NOT_FOUND,
            "no revision 9",
        ),
        (
            "/api/services/face-detector/compare",
            json!({"dataset": "d", "package": "nothing"}),
            StatusCode::NOT_FOUND,
            "nothing",
        ),
        (
            "/api/services/ghost/compare",
            json!({"dataset": "d", "package": "centerface"}),
            StatusCode::NOT_FOUND,
            "ghost",
        ),
        (
            "/api/services/face-detector/compare?format=pdf",
            json!({"dataset": "d", "package": "centerface"}),
            StatusCode::BAD_REQUEST,
            "format must be json or html",
        ),
    ] {
        let error = error_of(server.send(reqwest::Method::POST, path, Some(body)), status);
        assert!(error.contains(says), "{path}: {says}: {error}");
    }

    // Evaluation too: the ground truth is the body.
    let truth = fixtures().join("ground_truth/faces.json");
    let evaluated = home.json(&[
        "evaluate",
        "--dataset",
        "d",
        "--ground-truth",
        path(&truth),
        "--json",
    ]);
    let post = |query: &str, body: Vec<u8>| {
        server
            .with_token(
                server
                    .client
                    .post(server.url(&format!("/api/datasets/d/evaluate{query}")))
                    .body(body),
            )
            .send()
            .expect("POST evaluate")
    };
    let bytes = std::fs::read(&truth).expect("the ground truth");
    assert_eq!(
        server.json(post("", bytes.clone()), StatusCode::OK),
        evaluated
    );
    let error = error_of(post("", b"[]".to_vec()), StatusCode::BAD_REQUEST);
    assert!(error.contains("not a COCO detection file"), "{error}");
    let error = error_of(post("?service=ghost", bytes), StatusCode::NOT_FOUND);
    assert!(error.contains("ghost"), "{error}");

    let document = server.ok("/api/openapi.json");
    assert!(document["paths"]["/api/services/{name}/compare"]["post"].is_object());
    assert!(document["paths"]["/api/datasets/{dataset}/evaluate"]["post"].is_object());
}
