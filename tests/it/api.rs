//! The HTTP API of `prelabel serve`, through a real server on a free loopback port: every
//! endpoint group, its errors as JSON with the right status, the token rule, live events from
//! other processes, and the hostile side (oversized, malformed and unexpected requests store
//! nothing; uploaded non-images are never served as something a browser runs).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Response, multipart};
use serde_json::{Value, json};

use crate::support::server::*;
use crate::support::*;

#[test]
fn the_seed_flow_over_http_uploads_runs_and_serves_the_boxes() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &[]);

    let uploaded = server.json(
        server.upload(
            "photos",
            &[
                ("grace.jpg", photo("matplotlib_grace_hopper.jpg")),
                ("mosaic.png", photo("mosaic_2x2.png")),
                ("notes.txt", b"not an image\n".to_vec()),
            ],
        ),
        StatusCode::OK,
    );
    let uploaded = uploaded.as_array().expect("one result per file");
    assert_eq!(uploaded.len(), 3);
    assert_eq!(uploaded[0]["change"], "created");
    assert_eq!(
        uploaded[0]["queued"], 1,
        "the trigger fired like on `upload`"
    );
    assert_eq!(uploaded[2]["queued"], 0, "the filter skips text");
    let mosaic = uploaded[1]["item"]["id"].as_i64().expect("an id");

    let all = server.wait_executions("?dataset=photos", |all| {
        all.len() == 2 && status_count(all, "success") == 2
    });
    assert_eq!(all.len(), 2);
    let boxes = server.ok(&format!("/api/items/{mosaic}/annotations"));
    assert_eq!(boxes.as_array().map(Vec::len), Some(3), "{boxes:#}");
    assert_eq!(boxes[0]["service"], "face-detector");
    assert_eq!(boxes[0]["geometry"]["type"], "box");

    let item = server.ok(&format!("/api/items/{mosaic}"));
    assert_eq!(item["metadata"]["system"]["mimetype"], "image/png");
    let data = server.get(&format!("/api/items/{mosaic}/data"));
    assert_eq!(data.status(), StatusCode::OK);
    assert_eq!(data.headers()["content-type"], "image/png");
    assert_eq!(
        data.bytes().expect("bytes").to_vec(),
        photo("mosaic_2x2.png")
    );

    let datasets = server.ok("/api/datasets");
    assert_eq!(
        datasets,
        json!([{"name": "photos", "items": 3, "created_at": datasets[0]["created_at"]}])
    );
    assert_eq!(
        server
            .ok("/api/items?dataset=photos")
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    // The CLI sees what the API stored.
    let exported = home.export("photos");
    assert_eq!(exported.as_array().map(Vec::len), Some(3));
}

#[test]
fn services_triggers_packages_and_executions_have_endpoints() {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    let server = Server::start(&home, &[]);

    let packages = server.ok("/api/packages");
    assert_eq!(packages[0]["package"], "face-detector");
    let revisions = server.ok("/api/packages/face-detector/revisions");
    assert_eq!(revisions[0]["revision"], 1);

    let deployed = server.json(
        server.send(
            reqwest::Method::PUT,
            "/api/services/faces",
            Some(json!({"package": "face-detector", "init": {"min_confidence": 0.6}, "concurrency": 1})),
        ),
        StatusCode::OK,
    );
    assert_eq!(deployed["created"], true);
    assert_eq!(deployed["service"]["init_inputs"]["min_confidence"], 0.6);
    let updated = server.json(
        server.send(
            reqwest::Method::PUT,
            "/api/services/faces",
            Some(json!({"package": "face-detector", "timeout": 30})),
        ),
        StatusCode::OK,
    );
    assert_eq!(updated["created"], false);
    assert_eq!(updated["service"]["settings"]["timeout_ms"], 30000);
    assert_eq!(
        updated["service"]["init_inputs"]["min_confidence"], 0.6,
        "kept"
    );
    assert_eq!(server.ok("/api/services").as_array().map(Vec::len), Some(1));
    assert_eq!(server.ok("/api/services/faces")["generation"], 2);

    let trigger = server.json(
        server.send(
            reqwest::Method::POST,
            "/api/triggers",
            Some(json!({"name": "all", "service": "faces", "filters": ["metadata.system.mimetype=image/*"]})),
        ),
        StatusCode::OK,
    );
    assert_eq!(trigger["function"], "detect");
    assert_eq!(trigger["mode"], "once");
    assert_eq!(server.ok("/api/triggers").as_array().map(Vec::len), Some(1));

    // Paused: uploads queue and wait, and a queued execution can be canceled (once).
    let paused = server.json(
        server.send(reqwest::Method::POST, "/api/services/faces/pause", None),
        StatusCode::OK,
    );
    assert_eq!(paused["paused"], true);
    server.json(
        server.upload(
            "d",
            &[
                ("a.png", photo("skimage_astronaut.png")),
                ("b.png", photo("skimage_camera.png")),
            ],
        ),
        StatusCode::OK,
    );
    let queued = server.ok("/api/executions?status=queued");
    assert_eq!(queued["total"], 2);
    let first = queued["executions"][1]["id"].as_i64().expect("an id");
    let canceled = server.json(
        server.send(
            reqwest::Method::POST,
            &format!("/api/executions/{first}/cancel"),
            None,
        ),
        StatusCode::OK,
    );
    assert_eq!(canceled["status"], "canceled");
    let again = error_of(
        server.send(
            reqwest::Method::POST,
            &format!("/api/executions/{first}/cancel"),
            None,
        ),
        StatusCode::CONFLICT,
    );
    assert!(again.contains("is canceled, not queued"), "{again}");
    let page = server.ok("/api/executions?limit=1&offset=1");
    assert_eq!(
        (
            page["total"].as_i64(),
            page["executions"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
    assert_eq!(page["executions"][0]["id"], first, "newest first");

    server.json(
        server.send(reqwest::Method::POST, "/api/services/faces/resume", None),
        StatusCode::OK,
    );
    server.wait_executions("?service=faces&status=success", |all| all.len() == 1);
    let logs = server.get(&format!("/api/executions/{}", first + 1));
    assert_eq!(logs.status(), StatusCode::OK);
    let text = server
        .get(&format!("/api/executions/{}/logs", first + 1))
        .text()
        .expect("logs");
    assert!(text.contains("stage_us"), "the guest's log lines: {text}");

    // Rerun the canceled one, by status.
    let rerun = server.json(
        server.send(
            reqwest::Method::POST,
            "/api/executions/rerun",
            Some(json!({"status": "canceled"})),
        ),
        StatusCode::OK,
    );
    assert_eq!(rerun["queued"].as_array().map(Vec::len), Some(1));
    server.wait_executions("?service=faces&status=success", |all| all.len() == 2);

    // A new revision, then rollback to the first.
    home.ok(&["package", "push", path(&face_detector_dir())]);
    server.json(
        server.send(
            reqwest::Method::PUT,
            "/api/services/faces",
            Some(json!({"package": "face-detector"})),
        ),
        StatusCode::OK,
    );
    let back = server.json(
        server.send(reqwest::Method::POST, "/api/services/faces/rollback", None),
        StatusCode::OK,
    );
    assert_eq!(back["revision"], 1);

    let deleted = server.json(
        server.send(reqwest::Method::DELETE, "/api/triggers/all", None),
        StatusCode::OK,
    );
    assert_eq!(deleted["trigger"], "all");
    let gone = server.json(
        server.send(reqwest::Method::DELETE, "/api/services/faces", None),
        StatusCode::OK,
    );
    assert_eq!(gone["service"], "faces");
    assert_eq!(server.ok("/api/services"), json!([]));
}

#[test]
fn errors_are_json_with_the_status_that_fits_and_store_nothing() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &["--max-upload-mb", "1"]);

    let missing = error_of(server.get("/api/services/nope"), StatusCode::NOT_FOUND);
    assert!(missing.contains("no service named `nope`"), "{missing}");
    let missing = error_of(server.get("/api/items/999"), StatusCode::NOT_FOUND);
    assert!(missing.contains("999"), "{missing}");
    let missing = error_of(
        server.get("/api/executions?dataset=nope"),
        StatusCode::NOT_FOUND,
    );
    assert!(missing.contains("no dataset named `nope`"), "{missing}");
    error_of(server.get("/api/nothing-here"), StatusCode::NOT_FOUND);

    // A bad field is a 400 that names it, and changes nothing.
    let response = server.send(
        reqwest::Method::PUT,
        "/api/services/face-detector",
        Some(json!({"package": "face-detector", "concurrency": 0})),
    );
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().expect("JSON");
    assert_eq!(body["field"], "concurrency", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("--concurrency must be at least 1")
    );
    assert_eq!(
        server.ok("/api/services/face-detector")["generation"],
        1,
        "nothing changed"
    );
    for body in [
        json!({"package": "face-detector", "concurency": 2}),
        json!({"package": "face-detector", "timeout": -1}),
        json!({"package": "face-detector", "init": {"min_confidence": "high"}}),
        json!({"package": "face-detector", "init": {"nope": 1}}),
        json!({"package": 7}),
    ] {
        let error = error_of(
            server.send(
                reqwest::Method::PUT,
                "/api/services/face-detector",
                Some(body.clone()),
            ),
            StatusCode::BAD_REQUEST,
        );
        assert!(!error.is_empty(), "{body}");
    }
    let malformed = server
        .with_token(server.client.put(server.url("/api/services/x")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .expect("send");
    error_of(malformed, StatusCode::BAD_REQUEST);
    let bad_filter = error_of(
        server.send(
            reqwest::Method::POST,
            "/api/triggers",
            Some(json!({"name": "t", "service": "face-detector", "filters": ["no operator"]})),
        ),
        StatusCode::BAD_REQUEST,
    );
    assert!(bad_filter.contains("no operator"), "{bad_filter}");
    error_of(
        server.get("/api/executions?status=sleeping"),
        StatusCode::BAD_REQUEST,
    );
    error_of(
        server.get("/api/executions?limit=-1"),
        StatusCode::BAD_REQUEST,
    );
    error_of(server.get("/api/items/abc"), StatusCode::BAD_REQUEST);
    let taken = error_of(
        server.send(
            reqwest::Method::POST,
            "/api/triggers",
            Some(json!({"name": "faces", "service": "face-detector"})),
        ),
        StatusCode::CONFLICT,
    );
    assert!(taken.contains("exists already"), "{taken}");

    // Over the upload limit: 413, and nothing stored.
    let big = vec![7u8; 2 << 20];
    error_of(
        server.upload("d", &[("big.bin", big)]),
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    // A part without a file name: 400, and the good part before it is not stored either.
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(photo("skimage_camera.png")).file_name("ok.png"),
        )
        .part("file", multipart::Part::bytes(b"x".to_vec()));
    let nameless = server
        .with_token(
            server
                .client
                .post(server.url("/api/datasets/d/items"))
                .multipart(form),
        )
        .send()
        .expect("send");
    error_of(nameless, StatusCode::BAD_REQUEST);
    error_of(
        server.upload(" ", &[("ok.png", photo("skimage_camera.png"))]),
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(server.ok("/api/datasets"), json!([]), "nothing was stored");
    assert_eq!(server.ok("/api/executions")["total"], 0);
}

#[test]
fn uploaded_non_images_are_served_as_inert_attachments() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let page = b"<html><script>alert(1)</script></html>".to_vec();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec();
    let uploaded = server.json(
        server.upload("d", &[("x.html", page.clone()), ("y.svg", svg)]),
        StatusCode::OK,
    );
    for u in uploaded.as_array().expect("a list") {
        let id = u["item"]["id"].as_i64().expect("an id");
        let data = server.get(&format!("/api/items/{id}/data"));
        let headers = data.headers().clone();
        assert_eq!(headers["content-type"], "application/octet-stream", "{u}");
        assert_eq!(headers["content-disposition"], "attachment");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap_or_default()
                .contains("sandbox")
        );
    }
}

#[test]
fn a_token_is_required_off_loopback_and_checked_on_every_request() {
    let home = Home::new();
    let refused = command(home.path())
        .args(["serve", "--addr", "0.0.0.0:0"])
        .env_remove("PRELABEL_TOKEN")
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );

    let server = Server::start(&home, &["--addr", "0.0.0.0:0", "--token", "s3cret"]);
    let port = server.base.rsplit(':').next().expect("a port").to_string();
    let base = format!("http://127.0.0.1:{port}");
    let client = client_builder().build().expect("a client");
    for path in [
        "/api/services",
        "/api/openapi.json",
        "/api/events",
        "/nothing",
    ] {
        let none = client.get(format!("{base}{path}")).send().expect("send");
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{path}");
        let wrong = client
            .get(format!("{base}{path}"))
            .bearer_auth("s3cre")
            .send()
            .expect("send");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = wrong.json().expect("a JSON error");
        assert!(body["error"].as_str().unwrap_or_default().contains("token"));
    }
    assert_eq!(server.ok("/api/services"), json!([]));
    let by_query = client
        .get(format!("{base}/api/services?token=s3cret"))
        .send()
        .expect("send");
    assert_eq!(by_query.status(), StatusCode::OK);
    // A token given in a URL (`http://TOKEN@host/`, for tools configured with a URL only)
    // arrives as Basic credentials: the user name, or the password without one.
    for (user, password, status) in [
        ("s3cret", None, StatusCode::OK),
        ("", Some("s3cret"), StatusCode::OK),
        ("s3cre", None, StatusCode::UNAUTHORIZED),
        ("someone", Some("s3cret"), StatusCode::UNAUTHORIZED),
    ] {
        let basic = client
            .get(format!("{base}/api/services"))
            .basic_auth(user, password)
            .send()
            .expect("send");
        assert_eq!(basic.status(), status, "{user}:{password:?}");
    }
    let upload = client
        .post(format!("{base}/api/datasets/d/items"))
        .multipart(multipart::Form::new().part(
            "file",
            multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
        ))
        .send();
    // The server answers 401 without reading the body, and closes: a client still sending
    // it may see the connection go instead of the answer. Either way nothing is stored.
    match upload {
        Ok(answer) => assert_eq!(answer.status(), StatusCode::UNAUTHORIZED),
        Err(e) => assert!(e.is_body() || e.is_request(), "send: {e:?}"),
    }
    assert_eq!(
        server.ok("/api/datasets"),
        json!([]),
        "an unauthorised upload stores nothing"
    );
}

#[test]
fn the_event_stream_reports_changes_made_by_other_processes() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &[]);
    let stream = server
        .with_token(server.client.get(server.url("/api/events")))
        .send()
        .expect("events");
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/event-stream")
    );
    // Another process uploads (the CLI), the server's scheduler runs it.
    home.ok(&[
        "upload",
        path(&fixtures().join("images/skimage_astronaut.png")),
        "--dataset",
        "d",
    ]);
    let mut seen = Vec::new();
    let mut lines = BufReader::new(stream).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let line = lines
            .next()
            .expect("the stream stays open")
            .expect("a line");
        if let Some(event) = line.strip_prefix("event: ") {
            seen.push(event.to_string());
        }
        if let Some(data) = line.strip_prefix("data: ") {
            let event: Value = serde_json::from_str(data).expect("JSON data");
            assert!(event["id"].as_i64().is_some() && event["entity_id"].as_i64().is_some());
        }
        if seen.iter().any(|e| e == "annotations") {
            break;
        }
    }
    for kind in ["item", "execution", "annotations"] {
        assert!(
            seen.iter().any(|e| e == kind),
            "no {kind} event in {seen:?}"
        );
    }
}

#[test]
fn status_names_the_store_the_serving_worker_and_each_queue() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &[]);
    // The scheduler registers its worker as the server starts listening, on its own thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let status = server.ok("/api/status");
        let registered = status["workers"].as_array().is_some_and(|w| !w.is_empty());
        if registered || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let store = status["store"].as_str().expect("the store");
    assert!(
        store.ends_with("prelabel.db") || store.starts_with("postgres://"),
        "{status:#}"
    );
    let running: Vec<_> = status["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter(|w| w["state"] == "running")
        .collect();
    assert_eq!(running.len(), 1, "the server is the one worker: {status:#}");
    assert!(
        running[0]["lease_ms"].as_i64().is_some_and(|l| l > 0),
        "{status:#}"
    );
    assert_eq!(
        status["queues"],
        serde_json::json!([{"service": "face-detector", "paused": false, "concurrency": 1,
                            "queued": 0, "running": 0, "instances": 0, "recent": {"finished": 0,
                            "wait_p50_ms": 0, "wait_p95_ms": 0, "run_p50_ms": 0, "run_p95_ms": 0}}]),
        "{status:#}"
    );
}

#[test]
fn the_openapi_document_lists_every_endpoint() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let doc = server.ok("/api/openapi.json");
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.")
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/datasets",
        "/api/datasets/{dataset}/items",
        "/api/datasets/{dataset}/links",
        "/api/items",
        "/api/items/{id}",
        "/api/items/{id}/data",
        "/api/items/{id}/annotations",
        "/api/services",
        "/api/services/{name}",
        "/api/services/{name}/pause",
        "/api/services/{name}/resume",
        "/api/services/{name}/rollback",
        "/api/triggers",
        "/api/triggers/{name}",
        "/api/pipelines",
        "/api/pipelines/{name}",
        "/api/pipelines/{name}/pause",
        "/api/executions",
        "/api/executions/rerun",
        "/api/executions/{id}",
        "/api/executions/{id}/logs",
        "/api/executions/{id}/cancel",
        "/api/batches",
        "/api/batches/{id}",
        "/api/annotations/{id}",
        "/api/datasets/{dataset}/export",
        "/api/packages",
        "/api/packages/{name}/revisions",
        "/api/events",
        "/api/status",
        "/api/functions",
        "/api/functions/{name}",
        "/api/function_invocations",
        "/api/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    assert!(
        paths["/api/packages"]["post"].is_object(),
        "a push is documented"
    );
    assert!(
        doc["components"]["schemas"]["Execution"].is_object(),
        "schemas are generated"
    );
}

#[test]
fn reviews_are_kept_across_reruns_and_exports_carry_them() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &[]);
    let uploaded = server.json(
        server.upload("d", &[("mosaic.png", photo("mosaic_2x2.png"))]),
        StatusCode::OK,
    );
    let item = uploaded[0]["item"]["id"].as_i64().expect("an id");
    server.wait_executions("?status=success", |all| all.len() == 1);
    let boxes = server.ok(&format!("/api/items/{item}/annotations"));
    let boxes = boxes.as_array().expect("a list").clone();
    assert_eq!(boxes.len(), 3);
    assert!(boxes.iter().all(|b| b["review"] == "pending"));
    let id = |i: usize| boxes[i]["id"].as_i64().expect("an id");
    let patch = |id: i64, body: Value| {
        server.send(
            reqwest::Method::PATCH,
            &format!("/api/annotations/{id}"),
            Some(body),
        )
    };

    let rejected = server.json(
        patch(id(0), json!({"state": "rejected", "by": "ana"})),
        StatusCode::OK,
    );
    assert_eq!(
        (
            rejected["review"].as_str(),
            rejected["reviewed_by"].as_str()
        ),
        (Some("rejected"), Some("ana"))
    );
    assert!(rejected["reviewed_at"].is_string());
    let mut moved = boxes[1]["geometry"].clone();
    for side in ["left", "right"] {
        moved[side] = json!(moved[side].as_f64().expect("a number") + 3.0);
    }
    let edited = server.json(
        patch(id(1), json!({"geometry": moved, "label": "person"})),
        StatusCode::OK,
    );
    assert_eq!(
        (edited["review"].as_str(), edited["label"].as_str()),
        (Some("edited"), Some("person"))
    );
    assert_eq!(edited["geometry"], moved);
    let drawn = server.json(
        server.send(
            reqwest::Method::POST,
            &format!("/api/items/{item}/annotations"),
            Some(json!({"label": "logo", "geometry": {"type": "box", "left": 1, "top": 1, "right": 20, "bottom": 12}, "by": "ana"})),
        ),
        StatusCode::OK,
    );
    assert_eq!(
        (drawn["review"].as_str(), drawn["service"].clone()),
        (Some("manual"), Value::Null)
    );

    // Bad reviews name the field and change nothing.
    for (body, field) in [
        (json!({"state": "edited"}), "state"),
        (json!({}), "state"),
        (
            json!({"geometry": {"type": "box", "left": 5, "top": 5, "right": 1, "bottom": 9}}),
            "geometry",
        ),
        (json!({"label": " "}), "label"),
    ] {
        let response = patch(id(2), body.clone());
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().expect("JSON");
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    error_of(
        patch(99_999, json!({"state": "accepted"})),
        StatusCode::NOT_FOUND,
    );
    error_of(
        patch(id(2), json!({"state": "accepted", "colour": "red"})),
        StatusCode::BAD_REQUEST,
    );

    // The service runs on the item again: the pending box is replaced, the reviewed ones and
    // the drawn one stay, and the boxes a reviewer already decided about do not come back.
    home.ok(&["execute", "face-detector", "--item", &item.to_string()]);
    let after = server.ok(&format!("/api/items/{item}/annotations"));
    let mut states: Vec<&str> = after
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| a["review"].as_str().unwrap_or("?"))
        .collect();
    states.sort();
    assert_eq!(
        states,
        ["edited", "manual", "pending", "rejected"],
        "{after:#}"
    );
    assert!(
        after
            .as_array()
            .expect("a list")
            .iter()
            .all(|a| a["id"] != id(2)),
        "the pending one was replaced"
    );

    let all = server.ok("/api/datasets/d/export");
    let exported = all[0]["annotations"].as_array().expect("annotations");
    assert_eq!(exported.len(), 4);
    let kept = server.ok("/api/datasets/d/export?accepted_only=true");
    let mut kept: Vec<&str> = kept[0]["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .map(|a| a["review"].as_str().unwrap_or("?"))
        .collect();
    kept.sort();
    assert_eq!(kept, ["edited", "manual"]);
    let coco = server.ok("/api/datasets/d/export?format=coco&accepted_only=true");
    let reviews: Vec<&str> = coco["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .map(|a| a["attributes"]["review"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(reviews.len(), 2, "{coco:#}");
    let seed = home.json(&[
        "annotations",
        "export",
        "--dataset",
        "d",
        "--format",
        "dataloop",
    ]);
    let rejected_in_seed = seed[0]["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .filter(|a| a["metadata"]["system"]["review"] == "rejected")
        .count();
    assert_eq!(
        rejected_in_seed, 1,
        "the seed's format carries the state too"
    );
    // And the CLI reviews the same way.
    home.ok(&[
        "annotations",
        "review",
        &drawn["id"].to_string(),
        "--accept",
        "--by",
        "bo",
    ]);
    let listed = home.json(&["annotations", "list", "--item", &item.to_string()]);
    assert!(
        listed
            .as_array()
            .expect("a list")
            .iter()
            .any(|a| a["review"] == "manual" && a["reviewed_by"] == "bo")
    );
}

#[test]
fn a_batch_queues_every_matching_item_in_one_go_and_reports_progress() {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&["service", "deploy", "face-detector", "--name", "faces"]);
    let server = Server::start(&home, &[]);
    let files = [
        ("a.png", photo("skimage_astronaut.png")),
        ("b.png", photo("skimage_camera.png")),
        ("c.jpg", photo("skimage_rocket.jpg")),
        ("notes.txt", b"text\n".to_vec()),
    ];
    let uploaded = server.json(server.upload("d", &files), StatusCode::OK);
    assert!(
        uploaded
            .as_array()
            .expect("a list")
            .iter()
            .all(|u| u["queued"] == 0),
        "no trigger"
    );

    // Refused requests queue nothing.
    let post = |body: Value| server.send(reqwest::Method::POST, "/api/batches", Some(body));
    let bad = error_of(
        post(json!({"service": "faces", "dataset": "d", "filters": ["nonsense"]})),
        StatusCode::BAD_REQUEST,
    );
    assert!(bad.contains("nonsense"), "{bad}");
    error_of(
        post(json!({"service": "faces", "dataset": "nope"})),
        StatusCode::NOT_FOUND,
    );
    error_of(
        post(json!({"service": "nope", "dataset": "d"})),
        StatusCode::NOT_FOUND,
    );
    error_of(
        post(json!({"service": "faces", "dataset": "d", "function": "segment"})),
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(server.ok("/api/executions")["total"], 0);

    let batch = server.json(
        post(json!({"service": "faces", "dataset": "d", "filters": ["metadata.system.mimetype=image/*", "name!=c.*"]})),
        StatusCode::OK,
    );
    assert_eq!(batch["total"], 2, "{batch:#}");
    let id = batch["id"].as_i64().expect("an id");
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let progress = server.ok(&format!("/api/batches/{id}"));
        if progress["done"] == true {
            break progress;
        }
        assert!(Instant::now() < deadline, "{progress:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["statuses"], json!({"success": 2}));
    error_of(server.get("/api/batches/999"), StatusCode::NOT_FOUND);

    // The CLI queues the same way.
    let cli = home.json(&[
        "execute",
        "faces",
        "--dataset",
        "d",
        "--filter",
        "name in c.jpg,notes.txt",
    ]);
    assert_eq!(cli["total"], 2);
}

#[test]
fn the_ui_is_served_with_a_strict_policy_and_thumbnails_are_made_once() {
    let home = Home::new();
    let server = Server::start(&home, &[]);
    let page = server.get("/");
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
        "{policy}"
    );
    assert!(page.text().expect("html").contains("/ui/app.js"));
    for (path, kind) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let file = server.get(path);
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert!(
            file.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with(kind)
        );
    }

    let original = photo("mosaic_2x2.png");
    let uploaded = server.json(
        server.upload(
            "d",
            &[("m.png", original.clone()), ("t.txt", b"text".to_vec())],
        ),
        StatusCode::OK,
    );
    let (image, text) = (
        uploaded[0]["item"]["id"].as_i64().expect("id"),
        uploaded[1]["item"]["id"].as_i64().expect("id"),
    );
    let small = server.get(&format!("/api/items/{image}/thumbnail"));
    assert_eq!(small.status(), StatusCode::OK);
    assert_eq!(small.headers()["content-type"], "image/jpeg");
    let small = small.bytes().expect("bytes");
    assert!(
        small.len() < original.len() / 4,
        "{} bytes from {}",
        small.len(),
        original.len()
    );
    let cached = std::fs::read_dir(home.path().join("cache/thumbnails"))
        .expect("the cache")
        .count();
    assert_eq!(cached, 1, "made once, kept");
    assert_eq!(
        server
            .get(&format!("/api/items/{image}/thumbnail"))
            .bytes()
            .expect("bytes"),
        small
    );
    error_of(
        server.get(&format!("/api/items/{image}/thumbnail?size=99999")),
        StatusCode::BAD_REQUEST,
    );
    error_of(
        server.get(&format!("/api/items/{text}/thumbnail")),
        StatusCode::BAD_REQUEST,
    );
}

/// A tar whose entries have raw names and types, written past tar::Builder's own checks (it
/// refuses `..`; an attacker's tool would not).
fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        header.as_gnu_mut().expect("gnu").name[..bytes.len()].copy_from_slice(bytes);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(*kind);
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").expect("a link name");
        }
        header.set_cksum();
        tar.append(&header, *data).expect("append");
    }
    tar.into_inner().expect("a tar")
}

fn push_package(server: &Server, body: Vec<u8>) -> Response {
    server
        .with_token(server.client.post(server.url("/api/packages")).body(body))
        .send()
        .expect("POST /api/packages")
}

#[test]
fn a_package_pushed_as_one_file_over_http_is_checked_like_a_folder() {
    let home = Home::new();
    let packed = home.path().join("face-detector.tar.gz");
    let said = home.ok(&[
        "package",
        "pack",
        path(&face_detector()),
        "-o",
        path(&packed),
    ]);
    assert!(said.contains("packed face-detector 0.1.0"), "{said}");
    let server = Server::start(&home, &["--max-upload-mb", "64"]);

    let archive = std::fs::read(&packed).expect("the archive");
    let revision = server.json(push_package(&server, archive.clone()), StatusCode::CREATED);
    assert_eq!(revision["package"], "face-detector");
    assert_eq!(revision["revision"], 1);
    // The same files as a push of the folder: the same digests.
    let folder = Home::new();
    folder.ok(&["package", "push", path(&face_detector())]);
    let shown = folder.ok(&["package", "show", "face-detector"]);
    let component = revision["component_digest"].as_str().expect("a digest");
    assert!(
        shown.contains(&format!("component sha256:{component}")),
        "{shown}"
    );
    let artifact = &revision["artifacts"]["res10_300x300_ssd.onnx"][0];
    let artifact = artifact.as_str().expect("a digest");
    assert!(shown.contains(&format!("sha256:{artifact}")), "{shown}");

    // Hostile archives: each refused with a 4xx naming the entry, nothing stored, nothing
    // written outside the scratch folder, and the scratch folder gone.
    let manifest = b"name = 'evil'\nversion = '1'\ncomponent = 'c.wasm'\n\
        [[artifacts]]\nname = 'key'\npath = '../../../../../../../../../../../../../../etc/passwd'\n\
        [module]\nname = 'x'\n[[module.functions]]\nname = 'detect'\n";
    // 300 MiB of zeros in a 300 KiB gzip, past four times the 64 MiB limit once unpacked.
    let bomb = {
        use std::io::Write;
        let mut header = tar::Header::new_gnu();
        header.set_path("big").expect("a name");
        header.set_size(300 << 20);
        header.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(header.as_bytes()).expect("gzip");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            gz.write_all(&zeros).expect("gzip");
        }
        gz.finish().expect("gzip")
    };
    let regular = tar::EntryType::Regular;
    for (body, status, says) in [
        (
            raw_tar(&[("../escape.txt", regular, b"x")]),
            StatusCode::BAD_REQUEST,
            "`../escape.txt` leads outside",
        ),
        (
            raw_tar(&[("/tmp/escape.txt", regular, b"x")]),
            StatusCode::BAD_REQUEST,
            "leads outside",
        ),
        (
            raw_tar(&[("prelabel.toml", tar::EntryType::Symlink, b"")]),
            StatusCode::BAD_REQUEST,
            "`prelabel.toml` is a link",
        ),
        (
            raw_tar(&[("dev", tar::EntryType::Block, b"")]),
            StatusCode::BAD_REQUEST,
            "not a regular file",
        ),
        (
            raw_tar(&[
                ("prelabel.toml", regular, manifest),
                ("c.wasm", regular, b"\0asm"),
            ]),
            StatusCode::BAD_REQUEST,
            "leads outside the package folder",
        ),
        (
            raw_tar(&[("readme.txt", regular, b"no manifest")]),
            StatusCode::BAD_REQUEST,
            "no prelabel.toml",
        ),
        (bomb, StatusCode::PAYLOAD_TOO_LARGE, "unpacks to more than"),
        (
            b"just some text, not an archive".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a readable tar",
        ),
    ] {
        let error = error_of(push_package(&server, body), status);
        assert!(error.contains(says), "{says}: {error}");
    }
    // Over the limit by its Content-Length: refused before the body is read. The answer may
    // reach the client only after it finished writing, or the server may close the
    // connection first (the client then fails writing the rest): both are a refusal. A
    // client of its own: the server closes that connection, and the shared client's next
    // request must not be sent on it (hyper's IncompleteMessage made this test flaky).
    let once = client_builder().build().expect("a client");
    let sent = server
        .with_token(
            once.post(server.url("/api/packages"))
                .body(vec![7; 65 << 20]),
        )
        .send();
    match sent {
        Ok(response) => {
            assert!(!error_of(response, StatusCode::PAYLOAD_TOO_LARGE).is_empty());
        }
        Err(e) => assert!(
            format!("{e:?}").contains("BodyWrite"),
            "only a refusal may cut the upload short: {e:?}"
        ),
    }

    let packages = server.ok("/api/packages");
    assert_eq!(packages.as_array().map(Vec::len), Some(1), "{packages:#}");
    assert_eq!(
        server
            .ok("/api/packages/face-detector/revisions")
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert!(!home.path().join("tmp/escape.txt").exists());
    assert!(!Path::new("/tmp/escape.txt").exists());
    let left: Vec<_> = std::fs::read_dir(home.path().join("tmp"))
        .expect("tmp")
        .collect();
    assert!(left.is_empty(), "scratch folders left behind: {left:?}");

    // The CLI pushes the same file into another home.
    let other = Home::new();
    let said = other.ok(&["package", "push", path(&packed)]);
    assert!(said.contains("pushed face-detector revision 1"), "{said}");
}
