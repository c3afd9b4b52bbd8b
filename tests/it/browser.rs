//! The review UI in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` by fantoccini): a reviewer uploads photos through the page, watches the boxes
//! arrive without reloading, rejects one, moves another, and the export and a rerun of the
//! service respect both. The same run takes the README's screenshots.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::server::Server;
use crate::support::*;

const PHOTOS: [&str; 6] = [
    "mosaic_2x2.png",
    "matplotlib_grace_hopper.jpg",
    "skimage_astronaut.png",
    "mosaic_row.png",
    "skimage_coffee.png",
    "skimage_rocket.jpg",
];

/// The photo whose boxes the reviewer edits (three faces).
const REVIEWED: &str = "mosaic_2x2.png";

#[test]
fn a_reviewer_uploads_watches_rejects_and_moves_boxes_in_a_real_browser() {
    let home = Home::new();
    home.seed_flow(&[]);
    // Paused, so that the page is open before any box exists and must show them live.
    home.ok(&["service", "pause", "face-detector"]);
    let server = Server::start(&home, &[]);
    let browser = Browser::start();
    let c = &browser.client;
    // chromedriver takes only canonical paths for a file input.
    let files: Vec<String> = PHOTOS
        .iter()
        .map(|p| {
            fixtures()
                .join("images")
                .join(p)
                .canonicalize()
                .expect("a photo")
        })
        .map(|p| path(&p).to_string())
        .collect();

    // Upload through the page's form, then open the dataset.
    browser.run(async {
        c.goto(&format!("{}/", server.base))
            .await
            .expect("open the UI");
        c.execute("window.sameDocument = 1; return 1", vec![])
            .await
            .expect("a script runs");
        let form = c
            .wait()
            .for_element(Locator::Css("#upload"))
            .await
            .expect("the upload form");
        let input = form
            .find(Locator::Css("input[type=file]"))
            .await
            .expect("a file input");
        input
            .send_keys(&files.join("\n"))
            .await
            .expect("choose files");
        let name = form
            .find(Locator::Css("input[placeholder=dataset]"))
            .await
            .expect("a name");
        name.send_keys("photos").await.expect("name the dataset");
        form.find(Locator::Css("button"))
            .await
            .expect("a button")
            .click()
            .await
            .expect("upload");
        until(
            c,
            "the new dataset's card",
            "const card = document.querySelector('.card'); \
            return card !== null && card.textContent.includes('6 items')",
        )
        .await;
        click(c, ".card").await;
        let tiles = until(
            c,
            "six tiles",
            "return document.querySelectorAll('#grid .tile').length === 6",
        )
        .await;
        assert_eq!(tiles, true);
        assert_eq!(
            boxes_per_tile(c).await.values().sum::<usize>(),
            0,
            "nothing ran yet"
        );
    });

    // Another process lets the service run; the open page shows every photo's boxes as they
    // come, without a reload.
    home.ok(&["service", "resume", "face-detector"]);
    let want: Vec<(String, usize)> = PHOTOS
        .iter()
        .map(|p| (p.to_string(), reference(p).len()))
        .collect();
    browser.run(async {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let got = boxes_per_tile(c).await;
            if want.iter().all(|(name, n)| got.get(name) == Some(n)) {
                break;
            }
            assert!(Instant::now() < deadline, "boxes per tile {got:?}, want {want:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let same = c.execute("return window.sameDocument === 1", vec![]).await.expect("script");
        assert_eq!(same, true, "the page was not reloaded");
        // Lowest confidence first: tiles with boxes come in ascending order of their weakest.
        let lowest = c
            .execute(
                "return [...document.querySelectorAll('#grid .tile .count')].map(t => t.textContent.split('· ')[1])",
                vec![],
            )
            .await
            .expect("script");
        let lowest: Vec<f64> = lowest
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|v| v.as_str()?.parse().ok())
            .collect();
        assert!(lowest.windows(2).all(|w| w[0] <= w[1]), "{lowest:?}");
        until(c, "thumbnails", "return [...document.images].every(i => i.complete && i.naturalWidth > 0)").await;
        on_the_images(c).await;
        until(c, "the toast to go", "return document.getElementById('toast').hidden").await;
        browser.screenshot("dataset").await;
    });

    // The item view: reject the first box, move the second by dragging it.
    let item = item_id(&server, REVIEWED);
    let before = annotations(&server, item);
    assert_eq!(before.len(), 3, "{before:#?}");
    let width = server.ok(&format!("/api/items/{item}"))["metadata"]["system"]["width"]
        .as_f64()
        .expect("a width");
    let (dx, shown_width) = browser.run(async {
        click(c, &format!(".tile[data-item=\"{item}\"]")).await;
        until(c, "three boxes", "return document.querySelectorAll('#stage svg rect[data-index]').length === 3").await;
        until(c, "the image", "const i = document.querySelector('#stage img'); return i.complete && i.naturalWidth > 0").await;
        on_the_images(c).await;
        click(c, "#annotations li:nth-child(1)").await;
        click(c, "#reject").await;
        until(c, "rejected", "return document.querySelector('#annotations li:nth-child(1)').classList.contains('rejected')").await;

        let rect = c
            .find(Locator::Css("#stage svg rect[data-index=\"1\"]"))
            .await
            .expect("the second box");
        let (_, _, w, _) = rect.rectangle().await.expect("its size");
        let dx = (w * 0.15).round().max(4.0);
        let drag = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: rect, duration: None, x: 0.0, y: 0.0 })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::MoveBy { duration: Some(Duration::from_millis(100)), x: dx, y: 0.0 })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        c.perform_actions(drag).await.expect("drag the box");
        until(c, "edited", "return document.querySelector('#annotations li:nth-child(2)').classList.contains('edited')").await;
        let shown = c
            .execute("return document.querySelector('#stage img').getBoundingClientRect().width", vec![])
            .await
            .expect("script");
        (dx, shown.as_f64().expect("a width"))
    });

    // The store has both changes, made by the web reviewer; the export carries them, and
    // limited to kept annotations it leaves the rejected one out.
    let after = annotations(&server, item);
    let (rejected, moved) = (&after[0], &after[1]);
    assert_eq!(rejected["id"], before[0]["id"]);
    assert_eq!(rejected["review"], "rejected");
    assert_eq!(rejected["reviewed_by"], "web");
    assert_eq!(moved["id"], before[1]["id"]);
    assert_eq!(moved["review"], "edited");
    let shift = coordinate(moved, "left") - coordinate(&before[1], "left");
    let expected = dx * width / shown_width;
    assert!(
        (shift - expected).abs() <= expected * 0.25 + 2.0,
        "moved {shift} px in the image for {dx} px on screen (expected about {expected})"
    );
    assert!((coordinate(moved, "top") - coordinate(&before[1], "top")).abs() <= 2.0);
    let exported = export_of(&server, item, false);
    assert_eq!(review_states(&exported), ["rejected", "edited", "pending"]);
    let kept = export_of(&server, item, true);
    assert_eq!(review_states(&kept), ["edited"]);
    // (The export goes through JSON values: the same f32 coordinates, printed as f64.)
    for side in ["left", "top", "right", "bottom"] {
        assert_eq!(
            coordinate(&kept[0], side) as f32,
            coordinate(moved, side) as f32
        );
    }

    // Rerunning the service on every photo replaces only the pending box; the page follows.
    let rerun = server.send(
        reqwest::Method::POST,
        "/api/executions/rerun",
        Some(json!({"status": "success"})),
    );
    assert_eq!(rerun.status(), StatusCode::OK);
    server.wait_executions("?dataset=photos&limit=100", |all| {
        status_count(all, "success") == 2 * PHOTOS.len()
    });
    let rerun = annotations(&server, item);
    assert_eq!(rerun.len(), 3, "no duplicate of a reviewed box: {rerun:#?}");
    assert_eq!(rerun[0], after[0], "the rejected box is untouched");
    assert_eq!(rerun[1], after[1], "the moved box is untouched");
    assert_eq!(rerun[2]["review"], "pending");
    assert_ne!(
        rerun[2]["id"], after[2]["id"],
        "the pending box was replaced"
    );
    browser.run(async {
        until(
            c,
            "the rerun's execution",
            "return document.querySelectorAll('#executions tr').length === 2",
        )
        .await;
        let states = c
            .execute(
                "return [...document.querySelectorAll('#annotations li')].map(l => l.classList[0])",
                vec![],
            )
            .await
            .expect("script");
        assert_eq!(states, json!(["rejected", "edited", "pending"]));
        // Keys: `a` accepts the selected box, `z` undoes that.
        click(c, "#annotations li:nth-child(3)").await;
        press(c, 'a').await;
        until(c, "accepted by key", "return document.querySelector('#annotations li:nth-child(3)').classList.contains('accepted')").await;
        press(c, 'z').await;
        until(c, "undone by key", "return document.querySelector('#annotations li:nth-child(3)').classList.contains('pending')").await;
        click(c, "#annotations li:nth-child(2)").await;
        c.wait()
            .for_element(Locator::Css("#provenance"))
            .await
            .expect("who made the box");
        browser.screenshot("item").await;
    });
}

/// Chromium under chromedriver on a free loopback port, with one WebDriver session.
pub(crate) struct Browser {
    driver: Child,
    _profile: TempDir,
    pub(crate) client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Browser {
    pub(crate) fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let profile = tempdir();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--window-size=1280,860",
                    format!("--user-data-dir={}", path(profile.path())),
                ],
            }
        });
        let capabilities = capabilities.as_object().expect("an object").clone();
        let client = runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                match ClientBuilder::new(connector)
                    .capabilities(capabilities.clone())
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
                {
                    Ok(client) => break client,
                    // chromedriver takes a moment to listen.
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("no WebDriver session from chromedriver: {e}"),
                }
            }
        });
        Browser {
            driver,
            _profile: profile,
            client,
            runtime,
        }
    }

    pub(crate) fn run<T>(&self, steps: impl Future<Output = T>) -> T {
        self.runtime.block_on(steps)
    }

    /// Saves the page as `target/screenshots/NAME.png` and, when
    /// `PRELABEL_UPDATE_SCREENSHOTS=1`, as the README's `docs/screenshots/NAME.jpg` (a JPEG:
    /// a tenth of the PNG's size for photos).
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = root().join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("a screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), &png).expect("save the screenshot");
        if std::env::var_os("PRELABEL_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
            let picture = image::load_from_memory(&png).expect("a PNG").into_rgb8();
            let target = root().join(format!("docs/screenshots/{name}.jpg"));
            let mut file = std::fs::File::create(&target).expect("docs/screenshots");
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 85)
                .encode_image(&picture)
                .expect("a JPEG");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.runtime.block_on(client.close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Debian's chromium and its driver, installed with apt on first use where they are missing
/// (CI and a fresh machine run the README's test command as root; elsewhere it says what to
/// install).
fn chromedriver() -> PathBuf {
    static INSTALL: Once = Once::new();
    let driver = Path::new("/usr/bin/chromedriver");
    INSTALL.call_once(|| {
        if driver.exists() && Path::new("/usr/bin/chromium").exists() {
            return;
        }
        crate::support::apt_install(&["chromium", "chromium-driver"], "the browser test");
    });
    driver.to_path_buf()
}

/// Polls a script until it returns something other than false or null (bounded).
pub(crate) async fn until(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let value = c.execute(script, vec![]).await.expect("the script runs");
        if value != Value::Bool(false) && !value.is_null() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css` selects, looking it up again if a live redraw replaced it
/// between finding and clicking (bounded).
pub(crate) async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = c
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css(css))
            .await;
        let error = match found {
            Ok(element) => match element.click().await {
                Ok(()) => return,
                Err(e) => e,
            },
            Err(e) => e,
        };
        assert!(Instant::now() < deadline, "cannot click {css}: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types a key into the page (the body is always keyboard-interactable; the page listens on
/// the document).
async fn press(c: &Client, key: char) {
    let body = c.find(Locator::Css("body")).await.expect("the body");
    body.send_keys(&key.to_string()).await.expect("a key press");
}

/// Every overlay of boxes covers its image exactly: box coordinates are the image's pixels.
async fn on_the_images(c: &Client) {
    let misplaced = c
        .execute(
            "return [...document.querySelectorAll('svg.boxes')].map(s => { \
               const i = s.parentElement.querySelector('img').getBoundingClientRect(), \
                     b = s.getBoundingClientRect(); \
               return [i.left - b.left, i.top - b.top, i.width - b.width, i.height - b.height]; \
             }).filter(d => d.some(v => Math.abs(v) > 1))",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        misplaced,
        json!([]),
        "overlays that do not cover their image"
    );
}

/// The number of boxes drawn on each tile, by the item's name.
async fn boxes_per_tile(c: &Client) -> std::collections::BTreeMap<String, usize> {
    let value = c
        .execute(
            "return [...document.querySelectorAll('#grid .tile')].map(t => \
             [t.querySelector('.meta span').textContent, t.querySelectorAll('svg rect').length])",
            vec![],
        )
        .await
        .expect("script");
    serde_json::from_value::<Vec<(String, usize)>>(value)
        .expect("pairs")
        .into_iter()
        .collect()
}

fn item_id(server: &Server, name: &str) -> i64 {
    let items = server.ok("/api/items?dataset=photos");
    let items = items.as_array().expect("a list");
    let item = items.iter().find(|i| i["name"] == name).expect("the item");
    item["id"].as_i64().expect("an id")
}

fn annotations(server: &Server, item: i64) -> Vec<Value> {
    let list = server.ok(&format!("/api/items/{item}/annotations"));
    list.as_array().expect("a list").clone()
}

fn coordinate(annotation: &Value, side: &str) -> f64 {
    annotation["geometry"][side].as_f64().expect("a coordinate")
}

/// The exported annotations of one item.
fn export_of(server: &Server, item: i64, accepted_only: bool) -> Vec<Value> {
    let export = server.ok(&format!(
        "/api/datasets/photos/export?format=json&accepted_only={accepted_only}"
    ));
    let entry = export
        .as_array()
        .expect("a list")
        .iter()
        .find(|e| e["item"]["id"] == item)
        .expect("the item in the export");
    entry["annotations"].as_array().expect("a list").clone()
}

fn review_states(annotations: &[Value]) -> Vec<&str> {
    annotations
        .iter()
        .map(|a| a["review"].as_str().expect("a state"))
        .collect()
}

/// Waits until pipeline node `node`'s counts on the graph read `want`.
async fn until_counts(c: &Client, node: &str, want: &str) {
    let script = format!(
        "const t = document.querySelector('#graph [data-node={node}] .counts'); \
         return t !== null && t.textContent === '{want}'"
    );
    until(c, &format!("node {node} to count {want}"), &script).await;
}

#[test]
fn a_reviewer_completes_an_item_of_a_review_task_and_the_graph_counts_it_live() {
    let home = Home::new();
    home.deploy_face_detector();
    let review = fixtures().join("pipelines/review.toml");
    home.ok(&["pipeline", "apply", path(&review)]);
    home.ok(&[
        "upload",
        path(&fixtures().join("images")),
        "--dataset",
        "photos",
    ]);
    home.ok(&["work", "--until-idle"]);
    let waiting = home.json(&["task", "items", "uncertain-faces"]);
    let waiting: Vec<i64> = waiting
        .as_array()
        .expect("a list")
        .iter()
        .map(|h| h["item"]["id"].as_i64().expect("an item"))
        .collect();
    let n = waiting.len();
    assert!(n >= 3, "{waiting:?}");
    let server = Server::start(&home, &[]);
    let browser = Browser::start();
    let c = &browser.client;
    browser.run(async {
        // The graph: every node, the task holding what waits, faces done for all ten.
        c.goto(&format!("{}/#/pipeline/review", server.base))
            .await
            .expect("open the pipeline");
        until_counts(c, "faces", "wait 0 · run 0 · done 10 · fail 0").await;
        until_counts(c, "review", &format!("wait {n} · run 0 · done 0 · fail 0")).await;
        browser.screenshot("pipeline").await;
        // The task's page: each waiting photo with its boxes; completing the first moves it on.
        click(c, "#graph [data-node=review]").await;
        until(
            c,
            "the waiting photos",
            &format!("return document.querySelectorAll('#held .tile').length === {n}"),
        )
        .await;
        let first: i64 = serde_json::from_value(
            c.execute(
                "return Number(document.querySelector('#held .tile').dataset.item)",
                vec![],
            )
            .await
            .expect("a tile"),
        )
        .expect("an id");
        assert_eq!(first, waiting[0], "oldest first");
        click(c, "#held .tile .complete").await;
        until(
            c,
            "one photo fewer",
            &format!("return document.querySelectorAll('#held .tile').length === {}", n - 1),
        )
        .await;
        until(
            c,
            "the decision in the history",
            "const d = document.querySelector('#decided'); return d !== null && d.textContent.includes('completed')",
        )
        .await;
    });
    let reviewed = home.json(&["items", "list", "--dataset", "reviewed", "--json"]);
    assert_eq!(reviewed.as_array().map(Vec::len), Some(1));
    let paths = home.json(&["pipeline", "path", &waiting[0].to_string()]);
    let steps = &paths[0]["steps"];
    assert_eq!(steps[1]["outcome"], "completed");
    assert_eq!(steps[1]["decided_by"], "web");
    assert_eq!(steps[2]["node"], "reviewed");
    browser.run(async {
        // Back on the graph, another process discards one: the counts follow, live.
        c.goto(&format!("{}/#/pipeline/review", server.base))
            .await
            .expect("open the pipeline");
        until_counts(c, "reviewed", "wait 0 · run 0 · done 1 · fail 0").await;
        home.ok(&["task", "discard", "uncertain-faces", &waiting[1].to_string()]);
        until_counts(c, "review", &format!("wait {} · run 0 · done 2 · fail 0", n - 2)).await;
        // The item's own page shows its path, and the decision buttons for one still held.
        c.goto(&format!("{}/#/item/{}", server.base, waiting[2]))
            .await
            .expect("open an item");
        click(c, "#paths .complete").await;
        until(
            c,
            "its path completed",
            "const p = document.querySelector('#paths'); return p !== null && p.textContent.includes('review completed')",
        )
        .await;
    });
    assert_eq!(
        home.json(&["task", "show", "uncertain-faces"])["completed"],
        2
    );
}
