//! Prelabel as Label Studio's ML backend. First against a stand-in for Label Studio's file
//! server (its uploads need its token), playing Label Studio's side of the protocol: what
//! each request can get wrong is named, task by task. Then end to end against a **real Label
//! Studio** from PyPI in a virtualenv this test makes (once per target directory), with
//! personal access tokens only (legacy tokens switched off, as in a new organisation): a
//! project with several labels, photos imported, a `prelabel new onnx` package connected as its
//! model, and the predictions Label Studio stored match what `prelabel detect` gives for the
//! same photos, each class under the project's label for it.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use reqwest::StatusCode;
use reqwest::blocking::{Client, multipart};
use serde_json::{Value, json};

use crate::support::server::*;
use crate::support::*;

/// The version the notes in `../shared/notes/label-studio.md` were taken with.
const LABEL_STUDIO: &str = "label-studio==1.23.2";
const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
const PHOTOS: [&str; 3] = [
    "mosaic_2x2.png",
    "matplotlib_grace_hopper.jpg",
    "skimage_astronaut.png",
];

fn config(labels: &str) -> String {
    format!(
        r#"<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">{labels}</RectangleLabels></View>"#
    )
}

/// A stand-in for Label Studio's upload server: `/data/upload/1/<photo>` with its token only
/// (counting refusals), `/data/upload/1/away.png` redirecting to another origin.
fn fake_label_studio(away: String) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let refused = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/data/upload/1/away.png",
            get(move || async move { Redirect::temporary(&away) }),
        )
        .route("/data/upload/1/{name}", get(upload))
        .with_state(refused.clone());
    (serve_app(app), refused)
}

async fn upload(
    State(refused): State<Arc<AtomicUsize>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Token {TOKEN}"))
    {
        refused.fetch_add(1, Ordering::Relaxed);
        return (AxumStatus::UNAUTHORIZED, "no token").into_response();
    }
    match std::fs::read(fixtures().join("images").join(&name)) {
        Ok(bytes) => bytes.into_response(),
        Err(_) => (AxumStatus::OK, "not an image\n").into_response(),
    }
}

/// A box in pixels from a Label Studio result (percent of the original size).
fn pixels(result: &Value) -> ([f32; 4], f32) {
    let v = &result["value"];
    let (w, h) = (
        result["original_width"].as_f64().expect("original_width"),
        result["original_height"].as_f64().expect("original_height"),
    );
    let f = |k: &str| v[k].as_f64().expect("a number");
    let (x, y) = (f("x") * w / 100.0, f("y") * h / 100.0);
    let b = [
        x,
        y,
        x + f("width") * w / 100.0,
        y + f("height") * h / 100.0,
    ];
    (
        b.map(|c| c as f32),
        result["score"].as_f64().expect("score") as f32,
    )
}

#[test]
fn the_ml_backend_answers_each_task_or_names_what_kept_it() {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&["service", "deploy", "face-detector", "--name", "faces"]);
    let (fake, refused) = fake_label_studio("http://127.0.0.1:9/elsewhere.png".into());
    let base = format!("http://{fake}");
    let server = Server::start(
        &home,
        &["--label-studio-url", &base, "--label-studio-api-key", TOKEN],
    );
    let post = |path: &str, body: Value| {
        server.send(
            reqwest::Method::POST,
            &format!("/label-studio/faces/{path}"),
            Some(body),
        )
    };

    let health = server.ok("/label-studio/faces/health");
    assert_eq!(health["status"], "UP");
    assert!(server.get("/label-studio/nope/health").status() == StatusCode::NOT_FOUND);
    let setup = server.json(
        post(
            "setup",
            json!({"project": "1.1700000000", "schema": config(r#"<Label value="Face"/>"#)}),
        ),
        StatusCode::OK,
    );
    assert_eq!(setup["model_version"], "face-detector@1");
    assert_eq!(
        setup["labels"],
        json!({"matched": {"face": "Face"}, "unmatched": []})
    );
    let error = error_of(
        post(
            "setup",
            json!({"project": "1.1", "schema": "<View><Image name=\"image\" value=\"$image\"/></View>"}),
        ),
        StatusCode::BAD_REQUEST,
    );
    assert!(error.contains("no RectangleLabels control"), "{error}");
    let two = config(r#"<Label value="Car"/><Label value="Dog"/>"#);
    let error = error_of(
        post("setup", json!({"project": "1.1", "schema": &two})),
        StatusCode::BAD_REQUEST,
    );
    assert!(
        error.contains("`face` is none of the project's labels (Car, Dog)"),
        "{error}"
    );

    let mapped = config(r#"<Label value="Car"/><Label value="Person" predicted_values="face"/>"#);
    let tasks = json!([
        {"id": 11, "data": {"image": "/data/upload/1/mosaic_2x2.png"}},
        {"id": 12, "data": {"text": "no image here"}},
        {"id": 13, "data": {"image": "/data/upload/1/away.png"}},
        {"id": 14, "data": {"image": "/data/upload/1/notes.txt"}},
        {"id": 15, "data": {"image": "http://169.254.169.254/latest/meta-data/"}},
        {"id": 16, "data": {"image": format!("{base}/data/upload/1/matplotlib_grace_hopper.jpg")}},
    ]);
    let answer = server.json(
        post(
            "predict",
            json!({"tasks": tasks, "project": "1.1700000000", "label_config": mapped, "params": {}}),
        ),
        StatusCode::OK,
    );
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 6, "one per task, in order: {answer:#}");
    for (i, photo) in [(0, "mosaic_2x2.png"), (5, "matplotlib_grace_hopper.jpg")] {
        let result = &results[i];
        assert_eq!(result["model_version"], "face-detector@1");
        let boxes: Vec<_> = result["result"]
            .as_array()
            .expect("a result")
            .iter()
            .inspect(|r| {
                assert_eq!(r["type"], "rectanglelabels");
                assert_eq!(r["from_name"], "label");
                assert_eq!(r["to_name"], "image");
                assert_eq!(r["value"]["rectanglelabels"], json!(["Person"]));
            })
            .map(pixels)
            .collect();
        assert_matches_seed(photo, &boxes);
    }
    let error = |i: usize| {
        let r = &results[i];
        assert!(r.get("result").is_none(), "{r}");
        r["error"].as_str().expect("an error").to_string()
    };
    assert!(error(1).contains("no `image` in its data"), "{}", error(1));
    assert!(
        error(2).contains("http://127.0.0.1:9/elsewhere.png") && error(2).contains("loopback"),
        "the token's trust ends at Label Studio's origin: {}",
        error(2)
    );
    assert!(error(3).contains("ended failed"), "{}", error(3));
    assert!(error(4).contains("link-local"), "{}", error(4));
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "the token went with every upload"
    );

    // Stored like any other items, in the project's dataset.
    let items = server.ok("/api/items?dataset=label-studio-1");
    let mut names: Vec<&str> = items
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "task-11-mosaic_2x2.png",
            "task-14-notes.txt",
            "task-16-matplotlib_grace_hopper.jpg"
        ]
    );

    // Without Label Studio's address, its paths cannot be fetched: named.
    drop(server);
    let server = Server::start(&home, &[]);
    let answer = server.json(
        server.send(
            reqwest::Method::POST,
            "/label-studio/faces/predict",
            Some(json!({"tasks": [tasks[0]], "project": "1.1", "label_config": mapped})),
        ),
        StatusCode::OK,
    );
    let error = answer["results"][0]["error"].as_str().expect("an error");
    assert!(error.contains("LABEL_STUDIO_URL"), "{error}");
}

/// A JWT with these claims, unsigned (the stand-in checks tokens by value).
fn jwt(claims: Value) -> String {
    use base64::Engine as _;
    let part = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.sig",
        part(json!({"alg": "HS256", "typ": "JWT"})),
        part(claims)
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A stand-in for a Label Studio whose organisation allows personal access tokens only:
/// `/api/token/refresh/` exchanges `personal` (and refuses any other as blacklisted) for an
/// access token that expires in `lifetime` seconds; `/tasks/<id>/presign/` serves the photo a
/// cloud URI names (Label Studio's proxy mode) to the access tokens it issued only.
#[derive(Clone)]
struct Tokens {
    personal: String,
    lifetime: u64,
    issued: Arc<std::sync::Mutex<Vec<String>>>,
    refused: Arc<AtomicUsize>,
}

async fn refresh(State(tokens): State<Tokens>, body: axum::Json<Value>) -> Response {
    if body["refresh"] != tokens.personal.as_str() {
        let detail = json!({"detail": "Token is blacklisted", "code": "token_not_valid"});
        return (AxumStatus::UNAUTHORIZED, axum::Json(detail)).into_response();
    }
    let mut issued = tokens.issued.lock().expect("a lock");
    let access =
        jwt(json!({"token_type": "access", "exp": now() + tokens.lifetime, "n": issued.len()}));
    issued.push(access.clone());
    axum::Json(json!({ "access": access })).into_response()
}

async fn presign(
    State(tokens): State<Tokens>,
    UrlPath(task): UrlPath<i64>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    use base64::Engine as _;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Any access token it issued is good until it expires (they live 30 s, the test less).
    let issued = tokens.issued.lock().expect("a lock").clone();
    if !bearer.is_some_and(|b| issued.iter().any(|t| t == b)) {
        tokens.refused.fetch_add(1, Ordering::Relaxed);
        return (AxumStatus::UNAUTHORIZED, "not a current access token").into_response();
    }
    let uri = query
        .get("fileuri")
        .and_then(|f| base64::engine::general_purpose::URL_SAFE.decode(f).ok())
        .and_then(|u| String::from_utf8(u).ok())
        .unwrap_or_default();
    match uri.strip_prefix("s3://photos/") {
        Some(name) if task > 0 => photo(name).into_response(),
        _ => (AxumStatus::NOT_FOUND, "no storage for it").into_response(),
    }
}

#[test]
fn personal_access_tokens_are_exchanged_and_cloud_images_resolved_by_label_studio() {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&["service", "deploy", "face-detector", "--name", "faces"]);
    let personal = jwt(json!({"token_type": "refresh", "jti": "pat-1"}));
    // Access tokens that live 30 s: under the minute before expiry, so each is renewed.
    let tokens = Tokens {
        personal: personal.clone(),
        lifetime: 30,
        issued: Arc::default(),
        refused: Arc::default(),
    };
    let app = Router::new()
        .route("/api/token/refresh/", axum::routing::post(refresh))
        .route("/tasks/{task}/presign/", get(presign))
        .with_state(tokens.clone());
    let base = format!("http://{}", serve_app(app));
    let predict = |key: &str, tasks: Value| {
        let server = Server::start(
            &home,
            &["--label-studio-url", &base, "--label-studio-api-key", key],
        );
        let config = config(r#"<Label value="Face"/>"#);
        server.json(
            server.send(
                reqwest::Method::POST,
                "/label-studio/faces/predict",
                Some(json!({"tasks": tasks, "project": "3.1", "label_config": config})),
            ),
            StatusCode::OK,
        )
    };
    let tasks = json!([
        {"id": 31, "data": {"image": "s3://photos/skimage_astronaut.png"}},
        {"id": 32, "data": {"image": "gs://elsewhere/skimage_astronaut.png"}},
        {"id": 33, "data": {"image": "s3://photos/mosaic_2x2.png"}},
    ]);
    let answer = predict(&personal, tasks.clone());
    let results = answer["results"].as_array().expect("results");
    for (i, photo) in [(0, "skimage_astronaut.png"), (2, "mosaic_2x2.png")] {
        let boxes: Vec<_> = results[i]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{photo}: {:#}", results[i]))
            .iter()
            .map(pixels)
            .collect();
        assert_matches_seed(photo, &boxes);
    }
    let error = results[1]["error"].as_str().expect("an error");
    assert!(
        error.contains("404"),
        "Label Studio's answer for a URI it has no storage for: {error}"
    );
    assert_eq!(
        tokens.refused.load(Ordering::Relaxed),
        0,
        "every request had a current token"
    );
    assert!(
        tokens.issued.lock().expect("a lock").len() >= 2,
        "a token with under a minute left is exchanged again"
    );
    let items = server_items(&home, "label-studio-3");
    assert!(
        items.contains(&"task-31-skimage_astronaut.png".to_string()),
        "{items:?}"
    );

    // A revoked token: each task says Label Studio's reason, and what to do.
    let answer = predict(
        &jwt(json!({"token_type": "refresh", "jti": "revoked"})),
        tasks,
    );
    let error = answer["results"][0]["error"].as_str().expect("an error");
    assert!(
        error.contains("did not exchange the personal access token")
            && error.contains("Token is blacklisted"),
        "{error}"
    );
}

/// The item names of a dataset, read through a server of the home's.
fn server_items(home: &Home, dataset: &str) -> Vec<String> {
    let server = Server::start(home, &[]);
    server
        .ok(&format!("/api/items?dataset={dataset}"))
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["name"].as_str().map(String::from))
        .collect()
}

/// A real Label Studio on a free loopback port, stopped (with its workers) when dropped.
struct LabelStudio {
    child: Child,
    base: String,
    client: Client,
    /// How the test's own calls authenticate: the legacy token until it is switched off.
    authorization: String,
    _data: TempDir,
}

impl LabelStudio {
    fn start() -> LabelStudio {
        let venv = venv();
        let data = tempdir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(data.path().join("label-studio.log")).expect("a log");
        let mut command = Command::new(venv.join("bin/label-studio"));
        command
            .args(["start", "--no-browser", "--internal-host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .env("LABEL_STUDIO_BASE_DATA_DIR", data.path())
            .env("LABEL_STUDIO_USERNAME", "test@example.com")
            .env("LABEL_STUDIO_PASSWORD", "prelabel-test-password")
            .env("LABEL_STUDIO_USER_TOKEN", TOKEN)
            .env("LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN", "true")
            .env("ML_BLOCK_LOCAL_IP", "false")
            .env("SSRF_PROTECTION_ENABLED", "false")
            .env("ML_TIMEOUT_PREDICT", "180")
            .env_remove("HOST")
            .env_remove("PORT")
            .env_remove("DATABASE_NAME")
            .env_remove("DJANGO_DB")
            .stdout(log.try_clone().expect("a log"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("label-studio starts");
        let studio = LabelStudio {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: client_builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("a client"),
            authorization: format!("Token {TOKEN}"),
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let up = studio
                .client
                .get(format!("{}/health", studio.base))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if up {
                return studio;
            }
            let log = std::fs::read_to_string(studio._data.path().join("label-studio.log"))
                .unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "Label Studio did not answer within 300 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", &self.authorization)
    }

    /// What a new organisation has: personal access tokens only. Makes one (with the legacy
    /// token the start needed), switches legacy tokens off, checks the legacy token is now
    /// refused, and answers the personal access token; the test's own calls go on with an
    /// access token it is exchanged for, as any client's must.
    fn personal_access_token_only(&mut self) -> String {
        let created = self.json(self.request(reqwest::Method::POST, "/api/token/"));
        let personal = created["token"].as_str().expect("a token").to_string();
        self.json(
            self.request(reqwest::Method::POST, "/api/jwt/settings")
                .json(&json!({"api_tokens_enabled": true, "legacy_api_tokens_enabled": false})),
        );
        let legacy = self
            .request(reqwest::Method::GET, "/api/projects")
            .send()
            .expect("Label Studio answers");
        assert_eq!(
            legacy.status(),
            StatusCode::UNAUTHORIZED,
            "legacy tokens are off"
        );
        let access = self.json(
            self.client
                .post(format!("{}/api/token/refresh/", self.base))
                .json(&json!({ "refresh": personal })),
        );
        self.authorization = format!("Bearer {}", access["access"].as_str().expect("access"));
        personal
    }

    fn json(&self, request: reqwest::blocking::RequestBuilder) -> Value {
        let response = request.send().expect("Label Studio answers");
        let status = response.status();
        let text = response.text().expect("a body");
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

impl Drop for LabelStudio {
    /// Label Studio and the workers it started (its process group): asked, then told.
    fn drop(&mut self) {
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: signals the process group of our own child.
        unsafe { libc::kill(group, libc::SIGTERM) };
        if exited_within(&mut self.child, 20).is_none() {
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

/// A virtualenv with Label Studio, made once per target directory (about two minutes and
/// 1 GB from PyPI).
fn venv() -> PathBuf {
    crate::support::venv("label-studio-venv", &[LABEL_STUDIO])
}

#[test]
fn a_real_label_studio_with_personal_access_tokens_only_stores_a_new_onnx_package_s_predictions() {
    let mut studio = LabelStudio::start();
    let personal = studio.personal_access_token_only();
    // The model: NudeNet's detector from PyPI, packaged by `prelabel new onnx`; 18 classes,
    // of which the project below has a place for two.
    let dir = tempdir();
    let (_, package) = nudenet_package(dir.path());
    let home = Home::new();
    home.ok(&["package", "push", path(&package)]);
    home.ok(&["service", "deploy", "nudenet", "--name", "people"]);
    let server = Server::start(
        &home,
        &[
            "--label-studio-url",
            &studio.base,
            "--label-studio-api-key",
            &personal,
        ],
    );

    // A project with several labels, and the photos imported so that Label Studio serves
    // them itself (one multipart field per file: a repeated name imports only the last).
    let labels = r#"<Label value="Woman" predicted_values="FACE_FEMALE"/><Label value="Man" predicted_values="FACE_MALE"/><Label value="Car"/>"#;
    let project = studio.json(
        studio
            .request(reqwest::Method::POST, "/api/projects")
            .json(&json!({"title": "people", "label_config": config(labels)})),
    );
    let id = project["id"].as_i64().expect("a project id");
    let mut form = multipart::Form::new();
    for (i, name) in PHOTOS.iter().enumerate() {
        form = form.part(
            format!("file{i}"),
            multipart::Part::bytes(photo(name)).file_name(name.to_string()),
        );
    }
    studio.json(
        studio
            .request(reqwest::Method::POST, &format!("/api/projects/{id}/import"))
            .multipart(form),
    );
    // And a task whose image Prelabel must not fetch: its error is Label Studio's to log,
    // the others are stored all the same.
    studio.json(
        studio
            .request(reqwest::Method::POST, &format!("/api/projects/{id}/import"))
            .json(&json!([{"image": "http://169.254.169.254/latest/meta-data/"}])),
    );

    // Connect Prelabel as the project's model: Label Studio checks health and setup.
    let backend = studio.json(studio.request(reqwest::Method::POST, "/api/ml").json(
        &json!({"url": server.url("/label-studio/people"), "project": id, "title": "prelabel"}),
    ));
    assert_eq!(backend["state"], "CO", "connected: {backend:#}");
    // What setup answered: the two classes with a place, the sixteen without.
    let setup = server.json(
        server.send(
            reqwest::Method::POST,
            "/label-studio/people/setup",
            Some(json!({"project": format!("{id}.1"), "schema": config(labels)})),
        ),
        StatusCode::OK,
    );
    assert_eq!(
        setup["labels"]["matched"],
        json!({"FACE_FEMALE": "Woman", "FACE_MALE": "Man"})
    );
    assert_eq!(
        setup["labels"]["unmatched"].as_array().map(Vec::len),
        Some(16)
    );

    // Ask for predictions on every task, then read back what Label Studio stored.
    studio.json(
        studio
            .request(
                reqwest::Method::POST,
                &format!("/api/dm/actions?id=retrieve_tasks_predictions&project={id}"),
            )
            .json(&json!({"selectedItems": {"all": true, "excluded": []}})),
    );
    let tasks = studio.json(studio.request(
        reqwest::Method::GET,
        &format!("/api/tasks?project={id}&page_size=100"),
    ));
    let predictions = studio.json(studio.request(
        reqwest::Method::GET,
        &format!("/api/predictions?project={id}"),
    ));
    let predictions = predictions.as_array().expect("a list");
    assert_eq!(
        predictions.len(),
        PHOTOS.len(),
        "one per photo, none for the refused task: {predictions:#?}"
    );

    // What `prelabel detect` gives for the same photos, labels mapped as the project says.
    let photos: Vec<PathBuf> = PHOTOS
        .iter()
        .map(|p| fixtures().join("images").join(p))
        .collect();
    let mut args = vec!["detect", path(&package)];
    args.extend(photos.iter().map(|p| path(p)));
    let detected = detect_results(&args);
    let mut labels_seen = Vec::new();
    for prediction in predictions {
        assert_eq!(prediction["model_version"], "nudenet@1");
        let task = tasks["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .find(|t| t["id"] == prediction["task"])
            .expect("the prediction's task");
        let image = task["data"]["image"].as_str().expect("an image URL");
        let photo = PHOTOS
            .iter()
            .find(|p| image.ends_with(&format!("-{p}")))
            .unwrap_or_else(|| panic!("a task for one of the photos: {image}"));
        let want = detected
            .iter()
            .find(|r| r["name"] == *photo)
            .expect("detect's result");
        let want_labels: Vec<&str> = want["annotations"]
            .as_array()
            .expect("annotations")
            .iter()
            .map(|a| match a["label"].as_str() {
                Some("FACE_FEMALE") => "Woman",
                Some("FACE_MALE") => "Man",
                other => panic!("{photo}: a class the photos should not show: {other:?}"),
            })
            .collect();
        let results = prediction["result"].as_array().expect("a result");
        assert_eq!(results.len(), want_labels.len(), "{photo}: {prediction:#}");
        for ((result, want_box), want_label) in results.iter().zip(boxes(want)).zip(&want_labels) {
            let got = pixels(result);
            for (g, w) in got.0.iter().zip(&want_box.0) {
                assert!((g - w).abs() < 0.01, "{photo}: {got:?} vs {want_box:?}");
            }
            assert!(
                (got.1 - want_box.1).abs() < 1e-4,
                "{photo}: {got:?} vs {want_box:?}"
            );
            assert_eq!(result["value"]["rectanglelabels"], json!([want_label]));
            labels_seen.push(*want_label);
        }
    }
    labels_seen.sort();
    labels_seen.dedup();
    assert_eq!(
        labels_seen,
        ["Man", "Woman"],
        "several labels reached Label Studio"
    );
    // Label Studio's images are Prelabel items of the project's dataset, reviewable there.
    let items = server.ok(&format!("/api/items?dataset=label-studio-{id}"));
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(PHOTOS.len()),
        "{items:#}"
    );
}

/// A Label Studio key that cannot be sent as a header (a newline copied with it) stops `serve`
/// at start, naming the variable and not its value, instead of fetching without it.
#[test]
fn an_api_key_that_is_no_header_value_stops_serve_at_start() {
    let home = Home::new();
    let mut serve = command(home.path())
        .args(["serve", "--label-studio-url", "http://127.0.0.1:9"])
        .env("LABEL_STUDIO_API_KEY", "key-1234\n")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve runs");
    // Bounded: a server that starts anyway would serve until stopped.
    let Some(status) = exited_within(&mut serve, 30) else {
        let _ = serve.kill();
        panic!("serve started with a key it cannot send");
    };
    assert!(!status.success());
    let mut error = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().expect("stderr"), &mut error)
        .expect("stderr read");
    assert!(
        error.contains(
            "LABEL_STUDIO_API_KEY (--label-studio-api-key) is not a valid HTTP header value"
        ),
        "{error}"
    );
    assert!(!error.contains("key-1234"), "the key is not shown: {error}");
}
