//! Who may do what, through the binary: every route of the OpenAPI document asked by each role
//! (and by no one), checked against this file's own table of who may use it; and a reviewer
//! or viewer reads nothing of a dataset not granted to them through any route.

use std::io::Read;
use std::time::Duration;

use reqwest::blocking::Response;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::server::{Server, client_builder};
use crate::support::{Home, fixtures, path};

/// Who may use each route, by the least role: public (no login), viewer, reviewer,
/// maintainer, admin. Written here, not read from the server: a route the server opens
/// wider than this (or a new route no one decided on) fails the test.
const TABLE: &[(&str, &str, &str)] = &[
    ("POST", "/api/login", "public"),
    ("POST", "/api/logout", "public"),
    ("GET", "/api/me", "viewer"),
    ("GET", "/api/openapi.json", "viewer"),
    ("GET", "/api/status", "viewer"),
    ("GET", "/api/events", "viewer"),
    ("GET", "/api/datasets", "viewer"),
    ("GET", "/api/items", "viewer"),
    ("GET", "/api/items/{id}", "viewer"),
    ("GET", "/api/items/{id}/data", "viewer"),
    ("GET", "/api/items/{id}/thumbnail", "viewer"),
    ("GET", "/api/items/{id}/annotations", "viewer"),
    ("GET", "/api/items/{id}/pipelines", "viewer"),
    ("GET", "/api/datasets/{dataset}/export", "viewer"),
    ("POST", "/api/datasets/{dataset}/evaluate", "viewer"),
    ("POST", "/api/items/{id}/annotations", "reviewer"),
    ("PATCH", "/api/annotations/{id}", "reviewer"),
    ("POST", "/api/datasets/{dataset}/items", "maintainer"),
    ("POST", "/api/datasets/{dataset}/links", "maintainer"),
    ("GET", "/api/tasks", "viewer"),
    ("POST", "/api/tasks", "maintainer"),
    ("GET", "/api/tasks/{name}", "viewer"),
    ("GET", "/api/tasks/{name}/items", "viewer"),
    ("POST", "/api/tasks/{name}/next", "reviewer"),
    ("PUT", "/api/tasks/{name}/assignees/{user}", "maintainer"),
    ("DELETE", "/api/tasks/{name}/assignees/{user}", "maintainer"),
    (
        "POST",
        "/api/tasks/{name}/items/{item}/complete",
        "reviewer",
    ),
    ("POST", "/api/tasks/{name}/items/{item}/discard", "reviewer"),
    ("GET", "/api/executions", "viewer"),
    ("GET", "/api/executions/{id}", "viewer"),
    ("GET", "/api/executions/{id}/logs", "viewer"),
    ("POST", "/api/executions/rerun", "maintainer"),
    ("POST", "/api/executions/{id}/cancel", "maintainer"),
    ("POST", "/api/batches", "maintainer"),
    ("GET", "/api/batches/{id}", "maintainer"),
    ("GET", "/api/services", "viewer"),
    ("GET", "/api/services/{name}", "viewer"),
    ("PUT", "/api/services/{name}", "maintainer"),
    ("DELETE", "/api/services/{name}", "maintainer"),
    ("POST", "/api/services/{name}/pause", "maintainer"),
    ("POST", "/api/services/{name}/resume", "maintainer"),
    ("POST", "/api/services/{name}/rollback", "maintainer"),
    ("POST", "/api/services/{name}/compare", "maintainer"),
    ("GET", "/api/triggers", "viewer"),
    ("POST", "/api/triggers", "maintainer"),
    ("DELETE", "/api/triggers/{name}", "maintainer"),
    ("GET", "/api/pipelines", "viewer"),
    ("POST", "/api/pipelines", "maintainer"),
    ("GET", "/api/pipelines/{name}", "viewer"),
    ("DELETE", "/api/pipelines/{name}", "maintainer"),
    ("POST", "/api/pipelines/{name}/pause", "maintainer"),
    ("POST", "/api/pipelines/{name}/resume", "maintainer"),
    ("GET", "/api/packages", "viewer"),
    ("POST", "/api/packages", "maintainer"),
    ("GET", "/api/packages/{name}/revisions", "viewer"),
    ("GET", "/api/secrets", "maintainer"),
    ("PUT", "/api/secrets/{name}", "maintainer"),
    ("DELETE", "/api/secrets/{name}", "maintainer"),
    ("GET", "/api/functions", "viewer"),
    ("GET", "/api/functions/{name}", "viewer"),
    ("POST", "/api/function_invocations", "reviewer"),
    ("GET", "/label-studio/{service}/health", "viewer"),
    ("GET", "/label-studio/{service}/versions", "viewer"),
    ("POST", "/label-studio/{service}/setup", "reviewer"),
    ("POST", "/label-studio/{service}/predict", "reviewer"),
    ("POST", "/label-studio/{service}/webhook", "reviewer"),
    ("GET", "/api/users", "admin"),
    ("POST", "/api/users", "admin"),
    ("GET", "/api/users/{name}", "admin"),
    ("PATCH", "/api/users/{name}", "admin"),
    ("DELETE", "/api/users/{name}", "admin"),
    ("PUT", "/api/users/{name}/grants/{dataset}", "admin"),
    ("DELETE", "/api/users/{name}/grants/{dataset}", "admin"),
    ("GET", "/api/audit", "admin"),
];

const ROLES: [&str; 5] = ["public", "viewer", "reviewer", "maintainer", "admin"];

fn rank(role: &str) -> usize {
    ROLES
        .iter()
        .position(|r| *r == role)
        .unwrap_or_else(|| panic!("no role {role}"))
}

/// A request with `credential` as a bearer token (none: no login).
fn ask(server: &Server, credential: Option<&str>, method: &str, route: &str) -> Response {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = server.client.request(method.clone(), server.url(route));
    if let Some(token) = credential {
        request = request.bearer_auth(token);
    }
    if method != Method::GET {
        request = request.json(&json!({}));
    }
    request.send().expect("a request")
}

/// Accounts of every role (the reviewer and viewer granted dataset `granted`), a photo in
/// `granted` and one in `hidden`; their secrets by role and the two items' ids.
fn people_and_photos(home: &Home) -> (Vec<(&'static str, String)>, i64, i64) {
    let mut secrets = Vec::new();
    for (name, role) in [
        ("vi", "viewer"),
        ("re", "reviewer"),
        ("ma", "maintainer"),
        ("ad", "admin"),
    ] {
        secrets.push((role, home.account(name, role)));
    }
    home.ok(&["user", "grant", "vi", "granted"]);
    home.ok(&["user", "grant", "re", "granted"]);
    let images = fixtures().join("images");
    let id = |dataset: &str, photo: &str| {
        home.ok(&["upload", path(&images.join(photo)), "--dataset", dataset]);
        let items = home.json(&["items", "list", "--dataset", dataset, "--json"]);
        items[0]["id"].as_i64().expect("an id")
    };
    let granted = id("granted", "skimage_astronaut.png");
    let hidden = id("hidden", "matplotlib_grace_hopper.jpg");
    (secrets, granted, hidden)
}

/// Every route of the OpenAPI document, asked by no one, each role's account and the bootstrap
/// token: a role the table lets in reaches the handler (whatever it then answers: a missing
/// service is a 404), any other is refused before it, 401 without a login, 403 with one.
#[test]
fn every_route_answers_each_role_as_the_table_says() {
    let home = Home::new();
    let (secrets, granted, _) = people_and_photos(&home);
    let server = Server::start(&home, &["--token", "boot"]);
    let doc: Value = server.json(server.get("/api/openapi.json"), StatusCode::OK);
    let mut routes = Vec::new();
    for (route, operations) in doc["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            let method = method.to_uppercase();
            let least = TABLE
                .iter()
                .find(|(m, r, _)| *m == method && r == route)
                .map(|(_, _, least)| *least)
                .unwrap_or_else(|| {
                    panic!("{method} {route} is not in the test's table: decide who may use it")
                });
            routes.push((method, route.clone(), least));
        }
    }
    assert_eq!(
        routes.len(),
        TABLE.len(),
        "the table names routes the API does not have"
    );
    let mut callers: Vec<(&str, Option<&str>)> = vec![("public", None)];
    callers.extend(secrets.iter().map(|(role, s)| (*role, Some(s.as_str()))));
    callers.push(("admin", Some("boot")));
    for (method, route, least) in &routes {
        // Real ids where a reviewer's grants are looked at; names that exist nowhere else.
        let id = if route.starts_with("/api/items/") {
            granted
        } else {
            999_999
        };
        let filled = route
            .replace("{id}", &id.to_string())
            .replace("{item}", &granted.to_string())
            .replace("{dataset}", "granted")
            .replace("{name}", "nothing")
            .replace("{service}", "nothing")
            .replace("{user}", "nobody");
        let filled = match filled.as_str() {
            "/api/executions" => "/api/executions?dataset=granted".to_string(),
            _ => filled,
        };
        for (role, credential) in &callers {
            let got = ask(&server, *credential, method, &filled);
            let status = got.status();
            // A refusal's body says why; an event stream's never ends, so it is not read.
            let body = match status.is_success() {
                true => String::new(),
                false => got.text().unwrap_or_default(),
            };
            let allowed = rank(role) >= rank(least);
            let what = format!("{role} {method} {filled} (least: {least}): {status} {body}");
            match (allowed, credential) {
                (true, _) => assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "let in by the table, refused by the server: {what}"
                ),
                (false, None) => assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}"),
                (false, Some(_)) => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    assert!(body.contains(&format!("may not {method}")), "{what}");
                }
            }
        }
    }
}

/// What a reviewer (and a viewer) sees: only the dataset granted to them, through every
/// route that shows an item, its bytes, boxes, executions, path, task or events. Whatever is
/// of `hidden` is not found (as a missing thing is) or refused by name.
#[test]
fn a_reviewer_reads_nothing_of_a_dataset_not_granted() {
    let home = Home::new();
    home.seed_flow(&[]);
    let (secrets, granted, hidden) = people_and_photos(&home);
    home.ok(&["work", "--until-idle"]);
    let execution_of = |item: i64| -> i64 {
        let all = home.executions();
        all.iter()
            .find(|e| e["item_id"] == item)
            .and_then(|e| e["id"].as_i64())
            .unwrap_or_else(|| panic!("no execution of item {item}: {all:?}"))
    };
    let (granted_run, hidden_run) = (execution_of(granted), execution_of(hidden));
    home.ok(&["task", "create", "hidden-review", "--dataset", "hidden"]);
    let server = Server::start(&home, &["--token", "boot"]);
    let hidden_box = server.json(
        server.get(&format!("/api/items/{hidden}/annotations")),
        StatusCode::OK,
    )[0]["id"]
        .as_i64()
        .expect("a box on the hidden photo");
    for (role, secret) in secrets
        .iter()
        .filter(|(r, _)| *r == "reviewer" || *r == "viewer")
    {
        let get = |route: &str| {
            let got = ask(&server, Some(secret), "GET", route);
            let status = got.status();
            (status, got.text().unwrap_or_default())
        };
        let json_of = |route: &str| -> Value {
            let (status, body) = get(route);
            assert_eq!(status, StatusCode::OK, "{role} GET {route}: {body}");
            serde_json::from_str(&body).expect("JSON")
        };
        assert_eq!(json_of("/api/datasets")[0]["name"], "granted", "{role}");
        assert_eq!(json_of("/api/datasets").as_array().map(Vec::len), Some(1));
        let items = json_of("/api/items");
        assert_eq!(items.as_array().map(Vec::len), Some(1), "{role}: {items}");
        assert_eq!(items[0]["id"], granted);
        for route in [
            format!("/api/items/{hidden}"),
            format!("/api/items/{hidden}/data"),
            format!("/api/items/{hidden}/thumbnail"),
            format!("/api/items/{hidden}/annotations"),
            format!("/api/items/{hidden}/pipelines"),
            format!("/api/executions?item={hidden}"),
            format!("/api/executions/{hidden_run}"),
            format!("/api/executions/{hidden_run}/logs"),
        ] {
            let (status, body) = get(&route);
            assert_eq!(status, StatusCode::NOT_FOUND, "{role} GET {route}: {body}");
            assert!(!body.contains("hidden"), "{role} GET {route}: {body}");
        }
        for route in [
            "/api/items?dataset=hidden",
            "/api/datasets/hidden/export",
            "/api/datasets/hidden/export?format=coco",
            "/api/executions?dataset=hidden",
            "/api/executions",
        ] {
            let (status, body) = get(route);
            assert_eq!(status, StatusCode::FORBIDDEN, "{role} GET {route}: {body}");
        }
        // What is theirs they read.
        assert_eq!(get(&format!("/api/items/{granted}/data")).0, StatusCode::OK);
        let runs = json_of("/api/executions?dataset=granted");
        assert_eq!(runs["executions"][0]["id"], granted_run, "{role}");
        assert_eq!(
            json_of(&format!("/api/executions/{granted_run}"))["id"],
            granted_run
        );
        assert_eq!(json_of("/api/tasks/hidden-review/items"), json!([]));
        // The event stream from the start: only the granted photo's and its execution's.
        let events = events_from_start(&server, secret);
        assert!(!events.is_empty(), "{role}: no event at all");
        for (kind, entity) in &events {
            let theirs = match kind.as_str() {
                "item" | "annotations" => *entity == granted,
                "execution" => *entity == granted_run,
                _ => false,
            };
            assert!(theirs, "{role} was told of {kind} {entity}: {events:?}");
        }
        let evaluate = ask(
            &server,
            Some(secret),
            "POST",
            "/api/datasets/hidden/evaluate",
        );
        assert_eq!(evaluate.status(), StatusCode::FORBIDDEN, "{role}");
    }
    // The reviewer's changes: nothing of `hidden` is found to change or decide.
    let reviewer = &secrets
        .iter()
        .find(|(r, _)| *r == "reviewer")
        .expect("re")
        .1;
    let send = |method: Method, route: &str, body: Value| {
        server
            .client
            .request(method, server.url(route))
            .bearer_auth(reviewer)
            .json(&body)
            .send()
            .expect("a request")
            .status()
    };
    let accept = json!({"state": "accepted"});
    assert_eq!(
        send(
            Method::PATCH,
            &format!("/api/annotations/{hidden_box}"),
            accept
        ),
        StatusCode::NOT_FOUND
    );
    let drawn = json!({"label": "face", "geometry": {"type": "box", "left": 1, "top": 1, "right": 9, "bottom": 9}});
    assert_eq!(
        send(
            Method::POST,
            &format!("/api/items/{hidden}/annotations"),
            drawn
        ),
        StatusCode::NOT_FOUND
    );
    let decide = format!("/api/tasks/hidden-review/items/{hidden}/complete");
    assert_eq!(
        send(Method::POST, &decide, json!({})),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(Method::POST, "/api/tasks/hidden-review/next", json!({})),
        StatusCode::NO_CONTENT
    );
    // A box of their own dataset they review, as themselves whatever they type; every export
    // format says who.
    let granted_box = server.json(
        server.get(&format!("/api/items/{granted}/annotations")),
        StatusCode::OK,
    )[0]["id"]
        .as_i64()
        .expect("a box on the granted photo");
    let as_someone_else = json!({"state": "accepted", "by": "mallory"});
    let route = format!("/api/annotations/{granted_box}");
    assert_eq!(send(Method::PATCH, &route, as_someone_else), StatusCode::OK);
    let coco = server.json(
        server.get("/api/datasets/granted/export?format=coco"),
        StatusCode::OK,
    );
    let reviewed: Vec<&Value> = coco["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .filter(|a| a["attributes"]["review"] == "accepted")
        .collect();
    assert_eq!(reviewed.len(), 1, "{coco}");
    assert_eq!(reviewed[0]["attributes"]["reviewed_by"], "re");
    let cvat = server
        .get("/api/datasets/granted/export?format=cvat")
        .text()
        .expect("XML");
    assert!(
        cvat.contains(r#"<attribute name="reviewer">re</attribute>"#),
        "{cvat}"
    );
    let dataloop = server.json(
        server.get("/api/datasets/granted/export?format=dataloop"),
        StatusCode::OK,
    );
    assert!(
        dataloop.to_string().contains(r#""reviewedBy":"re""#),
        "{dataloop}"
    );
    // Nothing of the hidden photo changed, and its task still holds it.
    let boxes = server.json(
        server.get(&format!("/api/items/{hidden}/annotations")),
        StatusCode::OK,
    );
    assert!(
        boxes
            .as_array()
            .expect("boxes")
            .iter()
            .all(|b| b["review"] == "pending"),
        "{boxes}"
    );
    assert_eq!(home.json(&["task", "show", "hidden-review"])["waiting"], 1);
}

/// The events a reader is sent from the first one on, read for a moment: (kind, entity).
fn events_from_start(server: &Server, secret: &str) -> Vec<(String, i64)> {
    let client = client_builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let mut response = client
        .get(server.url("/api/events?after=0"))
        .bearer_auth(secret)
        .send()
        .expect("the stream");
    assert_eq!(response.status(), StatusCode::OK);
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    // The stream never ends: read until the client's timeout cuts it.
    while let Ok(n) = response.read(&mut buffer) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["entity_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}
