//! Two reviewers, two browsers, one task: each logs in on the page, takes "next item" and
//! decides it, at the same time as the other, until nothing is left; neither is ever shown an
//! item the other holds, nor loses the one they hold to a live redraw, and the task's progress
//! and the audit log say who did what.

use std::collections::BTreeSet;

use fantoccini::{Client, Locator};
use serde_json::Value;

use crate::browser::{Browser, click, until};
use crate::support::server::Server;
use crate::support::{Home, PASSWORD, fixtures, path};

const PHOTOS: [&str; 4] = [
    "skimage_astronaut.png",
    "matplotlib_grace_hopper.jpg",
    "mosaic_row.png",
    "skimage_coffee.png",
];

/// Logs in through the page's form as `name` (a `role`) and opens task `task`.
async fn log_in(c: &Client, base: &str, (name, role): (&str, &str), task: &str) {
    c.goto(&format!("{base}/")).await.expect("open the UI");
    let form = c
        .wait()
        .for_element(Locator::Css("#login"))
        .await
        .expect("the login form");
    let field = |css: &'static str| form.find(Locator::Css(css));
    field("input[name=name]")
        .await
        .expect("a name field")
        .send_keys(name)
        .await
        .expect("type the name");
    field("input[name=password]")
        .await
        .expect("a password field")
        .send_keys(PASSWORD)
        .await
        .expect("type the password");
    field("button")
        .await
        .expect("a button")
        .click()
        .await
        .expect("log in");
    let who =
        format!("return document.getElementById('who').textContent.includes('{name} ({role})')");
    until(c, "who is logged in", &who).await;
    let hidden = c
        .execute(
            "return document.querySelector('nav a[data-nav=executions]').hidden",
            vec![],
        )
        .await
        .expect("the nav");
    assert_eq!(
        hidden,
        Value::Bool(true),
        "a reviewer has no use for Executions"
    );
    c.goto(&format!("{base}/#/task/{task}"))
        .await
        .expect("open the task");
}

/// The item shown as the reviewer's own (`None`: nothing left), once it is not `before`.
async fn mine(c: &Client, before: Option<i64>) -> Option<i64> {
    let script = format!(
        "const t = document.querySelector('#mine .tile'); \
         if (t && Number(t.dataset.item) !== {}) return Number(t.dataset.item); \
         return document.getElementById('none-left') ? -1 : null",
        before.unwrap_or(-2)
    );
    let value = until(c, "the next item", &script).await;
    value.as_i64().filter(|id| *id >= 0)
}

#[test]
fn two_reviewers_in_two_browsers_work_through_one_task_and_never_see_the_same_item() {
    let home = Home::new();
    let images = fixtures().join("images");
    for photo in PHOTOS {
        home.ok(&["upload", path(&images.join(photo)), "--dataset", "photos"]);
    }
    home.reviewers_on_faces(&["ann", "bo"]);
    // Where an upload makes ann's page redraw (her event stream carries what she may see).
    home.ok(&["user", "grant", "ann", "elsewhere"]);
    let server = Server::start(&home, &[]);
    let (a, b) = (Browser::start(), Browser::start());
    a.run(log_in(
        &a.client,
        &server.base,
        ("ann", "reviewer"),
        "faces",
    ));
    b.run(log_in(&b.client, &server.base, ("bo", "reviewer"), "faces"));
    a.run(click(&a.client, "#next"));
    let mut at_a = a.run(mine(&a.client, None));
    b.run(click(&b.client, "#next"));
    let mut at_b = b.run(mine(&b.client, None));
    // A live redraw of the task (here for an item uploaded elsewhere) shows a reviewer the
    // item they hold again: a bare "Next item" would lose it from under them.
    let held = a.run(async {
        let c = &a.client;
        c.execute(
            "document.getElementById('mine').dataset.before = 'redraw'",
            vec![],
        )
        .await
        .expect("script");
        home.ok(&[
            "upload",
            path(&images.join(PHOTOS[0])),
            "--dataset",
            "elsewhere",
        ]);
        until(
            c,
            "a live redraw",
            "return document.querySelector('#mine:not([data-before])') !== null",
        )
        .await;
        let tile = "const t = document.querySelector('#mine .tile'); \
                    return t ? Number(t.dataset.item) : null";
        c.execute(tile, vec![]).await.expect("script").as_i64()
    });
    assert_eq!(held, at_a, "the item ann holds, after a redraw");
    let (mut by_a, mut by_b) = (Vec::new(), Vec::new());
    // In turns, each deciding the item they hold while the other holds theirs.
    while at_a.is_some() || at_b.is_some() {
        assert!(
            at_a.is_none() || at_a != at_b,
            "both were shown item {at_a:?}"
        );
        if let Some(item) = at_a {
            a.run(click(&a.client, "#mine .complete"));
            by_a.push(item);
            at_a = a.run(mine(&a.client, Some(item)));
        }
        if let Some(item) = at_b {
            b.run(click(&b.client, "#mine .complete"));
            by_b.push(item);
            at_b = b.run(mine(&b.client, Some(item)));
        }
    }
    let (set_a, set_b): (BTreeSet<i64>, BTreeSet<i64>) = (
        by_a.iter().copied().collect(),
        by_b.iter().copied().collect(),
    );
    assert!(set_a.is_disjoint(&set_b), "ann {by_a:?}, bo {by_b:?}");
    assert_eq!(
        set_a.len() + set_b.len(),
        PHOTOS.len(),
        "ann {by_a:?}, bo {by_b:?}"
    );
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "ann {by_a:?}, bo {by_b:?}"
    );
    // Logged out, a viewer logs in on the same browser: no next item, no review buttons.
    home.account("vi", "viewer");
    home.ok(&["user", "grant", "vi", "photos"]);
    a.run(async {
        let c = &a.client;
        click(c, "#logout").await;
        log_in(c, &server.base, ("vi", "viewer"), "faces").await;
        until(
            c,
            "the task page",
            "return document.querySelector('#progress') !== null",
        )
        .await;
        let next = c.execute("return document.getElementById('next') === null", vec![]);
        assert_eq!(
            next.await.expect("script"),
            Value::Bool(true),
            "a viewer takes no item"
        );
        c.goto(&format!("{}/#/item/{}", server.base, by_a[0]))
            .await
            .expect("open an item");
        until(
            c,
            "the item",
            "return document.querySelector('#annotations') !== null",
        )
        .await;
        let buttons = c.execute(
            "return document.getElementById('accept-all') === null",
            vec![],
        );
        assert_eq!(
            buttons.await.expect("script"),
            Value::Bool(true),
            "a viewer reviews nothing"
        );
    });
    // The progress and the log say who reviewed what.
    let task = home.json(&["task", "show", "faces"]);
    assert_eq!(task["done"], true, "{task}");
    for (name, decided) in [("ann", &by_a), ("bo", &by_b)] {
        let progress = task["reviewers"]
            .as_array()
            .expect("reviewers")
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no progress for {name}: {task}"));
        assert_eq!(
            progress["completed"].as_u64(),
            Some(decided.len() as u64),
            "{task}"
        );
        let log = home.json(&["audit", "--actor", name]);
        let logged: BTreeSet<i64> = log
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| {
                e["status"] == 200
                    && e["action"]
                        .as_str()
                        .is_some_and(|a| a.ends_with("/complete"))
            })
            .filter_map(|e| e["target"].as_str()?.rsplit('/').nth(1)?.parse().ok())
            .collect();
        assert_eq!(logged, decided.iter().copied().collect(), "{log}");
    }
}
