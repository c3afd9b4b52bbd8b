//! Faults a machine really has (issue 33), through the binary: a blob changed on disk, and
//! the signals a service manager sends.

use reqwest::StatusCode;

use crate::support::server::Server;
use crate::support::{
    Home, deploy_hostile_package, fixtures, hostile_guest, path, png, status_count, stdout,
    tempdir, wait_exit,
};

/// One bit of a stored photo flipped on disk: `check` names the blob, the photo's execution
/// fails naming it and stores no box, and the API answers an error naming it instead of the
/// bytes. Another photo is not held up by it.
#[test]
fn a_flipped_bit_in_a_blob_is_caught_where_it_is_read() {
    let home = Home::new();
    home.seed_flow(&[]);
    home.ok(&["service", "pause", "face-detector"]);
    let images = fixtures().join("images");
    for photo in ["skimage_astronaut.png", "matplotlib_grace_hopper.jpg"] {
        home.ok(&["upload", path(&images.join(photo)), "--dataset", "photos"]);
    }
    let items = home.json(&["items", "list", "--dataset", "photos", "--json"]);
    let (bad, good) = (&items[0], &items[1]);
    let digest = bad["digest"].as_str().expect("a digest").to_string();
    let blob = home
        .path()
        .join("blobs/sha256")
        .join(&digest[..2])
        .join(&digest[2..]);
    let mut bytes = std::fs::read(&blob).expect("the blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&blob, &bytes).expect("flip a bit");

    let checked = home.run(&["check"]);
    assert!(!checked.status.success());
    let report = stdout(&checked);
    assert!(
        report.contains(&format!("item {}: blob {digest} is corrupt", bad["id"])),
        "{report}"
    );
    assert_eq!(
        report.lines().count(),
        1,
        "the other photo is sound: {report}"
    );

    home.ok(&["service", "resume", "face-detector"]);
    home.ok(&["work", "--until-idle"]);
    let executions = home.executions();
    let of = |item: &serde_json::Value| {
        executions
            .iter()
            .find(|e| e["item_id"] == item["id"])
            .cloned()
            .expect("an execution")
    };
    let failed = of(bad);
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&digest) && error.contains("corrupt"),
        "{error}"
    );
    assert_eq!(of(good)["status"], "success");
    let boxes = home.count(&format!(
        "SELECT COUNT(*) FROM annotations WHERE item_id = {}",
        bad["id"]
    ));
    assert_eq!(boxes, 0, "nothing annotated from corrupt bytes");

    let server = Server::start(&home, &[]);
    let answer = server.get(&format!("/api/items/{}/data", bad["id"]));
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = answer.text().expect("a body");
    assert!(body.contains(&digest) && body.contains("corrupt"), "{body}");
}

/// Sends `signal` to a child process.
fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

/// SIGTERM, as a service manager sends it: the running execution finishes, the queued ones
/// stay queued, and `serve` exits 0. A second SIGTERM exits at once, mid-execution; the next
/// start re-queues what was running, and every photo is annotated exactly once in the end.
#[test]
fn sigterm_drains_the_running_and_keeps_the_queue_and_a_second_exits_at_once() {
    let home = Home::new();
    deploy_hostile_package(&home, &hostile_guest(), "hostile", &["--concurrency", "1"]);
    home.ok(&["trigger", "create", "hostile", "--service", "hostile"]);
    let dir = tempdir();
    for n in 1..=3 {
        // 150 pixels wide: a nap of 1.5 s, under the 2 s limit.
        std::fs::write(dir.path().join(format!("nap-{n}.png")), png(150, 10)).expect("write");
    }
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    let running = |all: &[serde_json::Value]| status_count(all, "running") == 1;

    let mut serve = home.spawn(&["serve"]);
    home.wait_for(30, "a nap to start", running);
    signal(&serve, libc::SIGTERM);
    let status = wait_exit(&mut serve, 10, "serve sent SIGTERM");
    assert!(status.success(), "{status}");
    let all = home.executions();
    assert_eq!(
        (status_count(&all, "success"), status_count(&all, "queued")),
        (1, 2),
        "{all:#?}"
    );

    let mut serve = home.spawn(&["serve"]);
    home.wait_for(30, "the next nap to start", running);
    let started = std::time::Instant::now();
    signal(&serve, libc::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(&serve, libc::SIGTERM);
    let status = wait_exit(&mut serve, 10, "serve sent SIGTERM twice");
    assert!(!status.success(), "{status}");
    assert!(
        started.elapsed().as_millis() < 1200,
        "not at once: {:?}",
        started.elapsed()
    );
    assert_eq!(
        status_count(&home.executions(), "running"),
        1,
        "left as it was"
    );

    home.ok(&["work", "--until-idle"]);
    let all = home.executions();
    assert_eq!(status_count(&all, "success"), 3, "{all:#?}");
    let items: std::collections::BTreeSet<i64> =
        all.iter().filter_map(|e| e["item_id"].as_i64()).collect();
    assert_eq!(
        (items.len(), all.len()),
        (3, 3),
        "one execution per photo: {all:#?}"
    );
}
