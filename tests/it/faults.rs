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

/// A raw HTTP/1.1 connection to the server: the head of a multipart upload of `length`
/// bytes, and the start of its one file part.
fn upload_head(server: &Server, length: usize) -> std::net::TcpStream {
    use std::io::Write;
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    let head = format!(
        "POST /api/datasets/slow/items HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {length}\r\n\r\n\
         --B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream
}

/// A client that sends its upload a byte every 2 s (never stalling as long as the body
/// timeout, here 3 s, but slower than a byte a second) is answered 408 and dropped within two
/// stretches of the timeout, while another client is served at once; one that hangs up halfway leaves
/// nothing either. Nothing of either upload is stored.
#[test]
fn a_slow_or_vanishing_upload_is_dropped_and_stores_nothing() {
    use std::io::{Read, Write};
    let home = Home::new();
    let server = Server::start(&home, &["--body-timeout", "3"]);
    let mut slow = upload_head(&server, 100_000);
    slow.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("a read timeout");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    loop {
        // Meanwhile the server answers others at once.
        let quick = std::time::Instant::now();
        assert_eq!(server.get("/api/datasets").status(), StatusCode::OK);
        assert!(quick.elapsed().as_millis() < 500, "{:?}", quick.elapsed());
        if slow.write_all(b"x").is_err() {
            break;
        }
        let mut buffer = [0u8; 4096];
        match slow.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(_) => {} // nothing yet: send the next byte
        }
        if answer.ends_with(b"}") || started.elapsed().as_secs() > 20 {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("slower than a byte a second"), "{answer}");
    assert!(
        started.elapsed().as_secs() < 15,
        "dropped late: {:?}",
        started.elapsed()
    );

    let mut gone = upload_head(&server, 100_000);
    gone.write_all(&[0u8; 5000]).expect("half a body");
    drop(gone);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let datasets = server.json(server.get("/api/datasets"), StatusCode::OK);
    assert_eq!(datasets, serde_json::json!([]), "nothing stored");
    assert_eq!(home.count("SELECT COUNT(*) FROM items"), 0);
}

/// A small tmpfs mounted over a folder for as long as it lives (root only: CI runs as root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            path(dir),
        ]);
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}"), path(&self.0)]);
    }
}

/// `mount ARGS`, asserted to succeed.
fn mount(args: &[&str]) {
    let out = std::process::Command::new("mount")
        .args(args)
        .output()
        .expect("mount runs");
    assert!(
        out.status.success(),
        "this test mounts a small tmpfs, which needs root (CI runs as root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l", path(&self.0)])
            .output();
    }
}

/// The disk fills during uploads (the home on a 6 MiB tmpfs): each refused upload is a 507
/// saying so, every upload answered 200 is stored whole and no other is, `check` finds the
/// store sound, and uploads work again once there is room.
#[test]
fn a_full_disk_refuses_uploads_with_507_and_work_resumes_with_room() {
    let home = Home::new();
    let disk = Tmpfs::mount(home.path(), "6m");
    let server = Server::start(&home, &[]);
    let upload = |n: u32| {
        // A megabyte no other upload has (blobs are stored once per content).
        let bytes: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(n + 7) >> 3) as u8)
            .collect();
        let form = reqwest::blocking::multipart::Form::new().part(
            "file",
            reqwest::blocking::multipart::Part::bytes(bytes).file_name(format!("{n}.bin")),
        );
        let answer = server
            .client
            .post(server.url("/api/datasets/full/items"))
            .multipart(form)
            .send()
            .expect("an answer");
        let status = answer.status();
        (status, answer.text().unwrap_or_default())
    };
    let mut stored = 0;
    let refused = (0..20).find_map(|n| match upload(n) {
        (StatusCode::OK, _) => {
            stored += 1;
            None
        }
        other => Some(other),
    });
    let (status, body) = refused.expect("the disk never filled");
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert!(body.contains("the disk is full"), "{body}");
    assert!(stored >= 2, "only {stored} uploads before the disk filled");
    let items = server.json(server.get("/api/items?dataset=full"), StatusCode::OK);
    assert_eq!(items.as_array().map(Vec::len), Some(stored), "{items}");
    let checked = home.run(&["check"]);
    assert!(checked.status.success(), "{}", stdout(&checked));

    disk.resize("64m");
    let (status, body) = upload(100);
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = server.json(server.get("/api/items?dataset=full"), StatusCode::OK);
    assert_eq!(items.as_array().map(Vec::len), Some(stored + 1));
    drop(server);
}

/// The disk fills while an execution runs (the home on a tmpfs, the database's log emptied
/// first so that its commit needs new room): its outcome cannot be written, and it is not
/// failed for it (the item is not at fault) but queued again once there is room, then runs
/// to success, annotated once; the server answers reads meanwhile; `check` is clean.
#[test]
fn a_disk_that_fills_during_an_execution_runs_it_again_with_room() {
    if crate::support::postgres::enabled() {
        return; // The home's tmpfs holds the SQLite database; PostgreSQL's disk is its own.
    }
    let home = Home::new();
    let disk = Tmpfs::mount(home.path(), "48m");
    home.ok(&["package", "push", path(&hostile_guest()), "--no-build"]);
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "naps",
        "--timeout",
        "60",
    ]);
    home.ok(&["trigger", "create", "all", "--service", "naps"]);
    let server = Server::start(&home, &[]);
    // The hostile guest's `nap` sleeps ten milliseconds per pixel of width: 3 s.
    let answer = server.upload("d", &[("nap-1.png", png(300, 2))]);
    assert_eq!(answer.status(), StatusCode::OK);
    server.wait_executions("?status=running", |running| running.len() == 1);
    home.sql("PRAGMA wal_checkpoint(TRUNCATE);", "");
    let filler = home.path().join("filler");
    let _ = std::fs::write(&filler, vec![1u8; 64 << 20]);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let stuck = server.ok("/api/executions?status=running");
    assert_eq!(
        stuck["executions"].as_array().map(Vec::len),
        Some(1),
        "neither failed nor lost while the disk is full: {stuck}"
    );

    std::fs::remove_file(&filler).expect("room again");
    let done = server.wait_executions("", |all| all.iter().all(|e| e["status"] == "success"));
    assert_eq!(done.len(), 1, "{done:?}");
    drop(server);
    assert_eq!(
        home.count("SELECT interrupted FROM executions"),
        1,
        "run again once, not charged to the item"
    );
    assert_eq!(home.count("SELECT COUNT(*) FROM annotations"), 1);
    let checked = home.run(&["check"]);
    assert!(checked.status.success(), "{}", stdout(&checked));
    drop(disk);
}
