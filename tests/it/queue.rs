//! Review tasks shared by people, through the binary: a task over a dataset, each reviewer's
//! "next item" (two asking at once never get the same one), a hold that keeps others' hands
//! off and runs out, assignment, progress per reviewer, and the audit log of who did what.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::server::Server;
use crate::support::{Home, fixtures, path};

/// `POST route` with `secret` as the bearer token: the status and the JSON answer.
fn post(server: &Server, secret: &str, route: &str) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.url(route))
        .bearer_auth(secret)
        .json(&json!({}))
        .send()
        .expect("POST");
    let status = response.status();
    let text = response.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Two reviewers work through one task at the same time, each taking the next item and
/// completing it, until nothing is left: every photo is decided once, by one of them, and
/// neither was ever handed one the other held. The task's progress and the audit log say who
/// decided what.
#[test]
fn two_reviewers_at_once_never_get_the_same_item_and_the_log_says_who_did_what() {
    let home = Home::new();
    home.ok(&[
        "upload",
        path(&fixtures().join("images")),
        "--dataset",
        "photos",
    ]);
    let secrets = home.reviewers_on_faces(&["ann", "bo"]);
    let (ann, bo) = (&secrets[0], &secrets[1]);
    let cy = home.account("cy", "reviewer");
    home.ok(&["user", "grant", "cy", "photos"]);
    let made = home.json(&["task", "show", "faces"]);
    assert_eq!(
        made["waiting"], 10,
        "the photos already there entered: {made}"
    );
    assert_eq!(made["assignees"], json!(["ann", "bo"]));
    let taken = home.fails(&["task", "create", "faces", "--dataset", "other"]);
    assert!(
        taken.contains("a task named `faces` exists already"),
        "{taken}"
    );
    let later = home.json(&["task", "create", "later", "--dataset", "empty-yet"]);
    assert_eq!(later["waiting"], 0);
    let photo = fixtures().join("images/skimage_rocket.jpg");
    home.ok(&["upload", path(&photo), "--dataset", "empty-yet"]);
    assert_eq!(
        home.json(&["task", "show", "later"])["waiting"],
        1,
        "a new item enters"
    );
    let unknown = home.fails(&[
        "task",
        "create",
        "x",
        "--dataset",
        "d",
        "--assign",
        "nobody",
    ]);
    assert!(unknown.contains("no user named `nobody`"), "{unknown}");
    assert!(
        home.fails(&["task", "show", "x"])
            .contains("no task named `x`")
    );
    let server = Server::start(&home, &["--token", "boot"]);

    // Not assigned: refused, naming to whom it is.
    let (status, refused) = post(&server, &cy, "/api/tasks/faces/next");
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("assigned to ann, bo")
    );

    // A held item is theirs: the other cannot decide it, and it is handed to no one else.
    let (_, first) = post(&server, ann, "/api/tasks/faces/next");
    let held = first["item"]["id"].as_i64().expect("an item");
    assert_eq!(first["held_by"], "ann");
    let (again, same) = post(&server, ann, "/api/tasks/faces/next");
    assert_eq!(
        (again, same["item"]["id"].as_i64()),
        (StatusCode::OK, Some(held))
    );
    let (status, taken) = post(
        &server,
        bo,
        &format!("/api/tasks/faces/items/{held}/complete"),
    );
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    assert!(
        taken["error"]
            .as_str()
            .unwrap_or_default()
            .contains("handed to `ann`")
    );
    // Its time up, it goes back to the queue: the next one asking gets it.
    home.sql(
        "UPDATE pipeline_steps SET held_until_ms = 0",
        "UPDATE pipeline_steps SET held_until_ms = 0",
    );
    let (_, back) = post(&server, bo, "/api/tasks/faces/next");
    assert_eq!(back["item"]["id"].as_i64(), Some(held), "{back}");
    assert_eq!(back["held_by"], "bo");

    // Both at once, to the end.
    let work = |secret: &str| {
        let mut decided = Vec::new();
        loop {
            let (status, next) = post(&server, secret, "/api/tasks/faces/next");
            if status == StatusCode::NO_CONTENT {
                return decided;
            }
            assert_eq!(status, StatusCode::OK, "{next}");
            let item = next["item"]["id"].as_i64().expect("an item");
            let (status, answer) = post(
                &server,
                secret,
                &format!("/api/tasks/faces/items/{item}/complete"),
            );
            assert_eq!(status, StatusCode::OK, "{answer}");
            decided.push(item);
        }
    };
    let (by_ann, by_bo) = std::thread::scope(|s| {
        let a = s.spawn(|| work(ann));
        let b = s.spawn(|| work(bo));
        (a.join().expect("ann"), b.join().expect("bo"))
    });
    let ann_set: BTreeSet<i64> = by_ann.iter().copied().collect();
    let bo_set: BTreeSet<i64> = by_bo.iter().copied().collect();
    assert!(
        ann_set.is_disjoint(&bo_set),
        "both got {:?}",
        ann_set.intersection(&bo_set)
    );
    assert_eq!(
        by_ann.len() + by_bo.len(),
        10,
        "ann {by_ann:?}, bo {by_bo:?}"
    );
    assert!(
        bo_set.contains(&held),
        "the item whose hold ran out went to bo"
    );

    // Progress: the task is done, and each reviewer's count is what they did.
    let task = home.json(&["task", "show", "faces"]);
    assert_eq!(
        (task["waiting"].as_u64(), task["completed"].as_u64()),
        (Some(0), Some(10))
    );
    assert_eq!(task["done"], true, "{task}");
    let count = |name: &str| {
        task["reviewers"]
            .as_array()
            .expect("reviewers")
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["completed"].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(
        (count("ann"), count("bo")),
        (by_ann.len() as u64, by_bo.len() as u64),
        "{task}"
    );
    // Each decision in the audit log, by the account that made it; the CLI's as `owner`.
    let log = server.json(server.get("/api/audit?limit=1000"), StatusCode::OK);
    let decisions = |actor: &str| -> BTreeSet<i64> {
        log.as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["actor"] == actor && e["status"] == 200)
            .filter(|e| e["action"] == "POST /api/tasks/{name}/items/{item}/complete")
            .filter_map(|e| e["target"].as_str()?.rsplit('/').nth(1)?.parse().ok())
            .collect()
    };
    assert_eq!(decisions("ann"), ann_set, "{log}");
    assert_eq!(decisions("bo"), bo_set, "{log}");
    let refused = log
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["actor"] == "bo" && e["status"] == 409);
    assert!(refused, "the refused decision is in the log too: {log}");
    let cli = home.json(&["audit", "--actor", "owner"]);
    let actions: Vec<&str> = cli
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        !actions.contains(&"task show"),
        "a read is no change: {cli}"
    );
    assert!(
        actions.contains(&"task create") && actions.contains(&"user grant"),
        "{cli}"
    );
    // The decided items name who decided each.
    let decided = home.json(&["task", "items", "faces", "--decided"]);
    assert!(
        decided
            .as_array()
            .expect("held")
            .iter()
            .all(|h| h["decided_by"] == "ann" || h["decided_by"] == "bo"),
        "{decided}"
    );
}

/// A QA share: of the items ann completes, every second goes to another reviewer before it
/// counts; ann is never handed her own back nor may decide it again, bo's decision is the
/// one that counts (a discard included), and the task is done only then.
#[test]
fn a_share_of_completed_items_goes_to_a_second_reviewer() {
    let home = Home::new();
    let images = fixtures().join("images");
    for photo in [
        "skimage_astronaut.png",
        "skimage_coffee.png",
        "mosaic_row.png",
        "skimage_rocket.jpg",
    ] {
        home.ok(&["upload", path(&images.join(photo)), "--dataset", "photos"]);
    }
    let secrets = home.reviewers_on_faces(&["ann", "bo"]);
    let (ann, bo) = (&secrets[0], &secrets[1]);
    let bad = home.fails(&["task", "qa", "faces", "101"]);
    assert!(bad.contains("0 to 100"), "{bad}");
    assert_eq!(home.json(&["task", "qa", "faces", "50"])["qa_percent"], 50);
    let server = Server::start(&home, &["--token", "boot"]);
    // Ann takes and completes all four; the second and fourth go to QA.
    let mut sent = Vec::new();
    for _ in 0..4 {
        let (status, next) = post(&server, ann, "/api/tasks/faces/next");
        assert_eq!(status, StatusCode::OK, "{next}");
        let item = next["item"]["id"].as_i64().expect("an item");
        let (status, done) = post(
            &server,
            ann,
            &format!("/api/tasks/faces/items/{item}/complete"),
        );
        assert_eq!(status, StatusCode::OK, "{done}");
        if done["sent_to_qa"] == true {
            sent.push(item);
        }
    }
    assert_eq!(sent.len(), 2, "every second completion: {sent:?}");
    let task = home.json(&["task", "show", "faces"]);
    assert_eq!(
        (task["waiting"].as_u64(), task["completed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(task["done"], false);
    // Nothing is left for ann; her own completions she may not decide again.
    let (status, _) = post(&server, ann, "/api/tasks/faces/next");
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, again) = post(
        &server,
        ann,
        &format!("/api/tasks/faces/items/{}/complete", sent[0]),
    );
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["error"]
            .as_str()
            .unwrap_or_default()
            .contains("another reviewer checks it")
    );
    // Bo gets exactly those two, each saying who completed it first; his decisions count.
    let mut checked = Vec::new();
    for outcome in ["complete", "discard"] {
        let (_, next) = post(&server, bo, "/api/tasks/faces/next");
        assert_eq!(next["first_by"], "ann", "{next}");
        let item = next["item"]["id"].as_i64().expect("an item");
        let (status, done) = post(
            &server,
            bo,
            &format!("/api/tasks/faces/items/{item}/{outcome}"),
        );
        assert_eq!(
            (status, done["sent_to_qa"].as_bool()),
            (StatusCode::OK, Some(false))
        );
        checked.push(item);
    }
    checked.sort();
    sent.sort();
    assert_eq!(checked, sent);
    let task = home.json(&["task", "show", "faces"]);
    assert_eq!(
        (
            task["waiting"].as_u64(),
            task["completed"].as_u64(),
            task["discarded"].as_u64()
        ),
        (Some(0), Some(3), Some(1)),
        "{task}"
    );
    assert_eq!(task["done"], true);
    let progress = |name: &str, field: &str| {
        task["reviewers"]
            .as_array()
            .expect("reviewers")
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r[field].as_u64())
    };
    assert_eq!(progress("ann", "completed"), Some(2), "{task}");
    assert_eq!(progress("ann", "sent_to_qa"), Some(2), "{task}");
    assert_eq!(
        (progress("bo", "completed"), progress("bo", "discarded")),
        (Some(1), Some(1))
    );
}
