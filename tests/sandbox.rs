//! The sandbox's promises, each proved against a guest that breaks it on purpose
//! (`tests/guests/hostile`): every execution ends with the right status and an error naming
//! the cause, the next item still runs, and nothing of the host is reachable.

mod support;

use serde_json::Value;
use support::*;

/// Uploads one 10x10 PNG per name and runs the queue; returns executions by item name.
fn run_items(home: &Home, names: &[&str]) -> std::collections::BTreeMap<String, Value> {
    let dir = tempdir();
    for name in names {
        std::fs::write(dir.path().join(name), png(10, 10)).expect("write item");
    }
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    home.ok(&["work", "--until-idle"]);
    home.executions()
        .into_iter()
        .map(|e| (e["item"].as_str().expect("item").to_string(), e))
        .collect()
}

fn deploy_hostile(home: &Home, service: &str, extra: &[&str]) {
    home.ok(&["package", "push", path(&hostile_guest())]);
    let mut args = vec![
        "service",
        "deploy",
        "hostile",
        "--name",
        service,
        "--timeout",
        "2",
        "--memory-mb",
        "256",
    ];
    args.extend_from_slice(extra);
    home.ok(&args);
    home.ok(&["trigger", "create", service, "--service", service]);
}

#[test]
fn each_hostile_guest_fails_alone_with_its_cause_named() {
    let home = Home::new();
    deploy_hostile(&home, "hostile", &[]);
    let names = [
        "ok-1.png",
        "panic.png",
        "ok-2.png",
        "loop.png",
        "ok-3.png",
        "oom.png",
        "ok-4.png",
        "many.png",
        "huge.png",
        "nan.png",
        "inf.png",
        "inverted.png",
        "confidence.png",
        "ok-5.png",
    ];
    let by_item = run_items(&home, &names);
    let expect = |name: &str, status: &str, error: &str| {
        let e = &by_item[name];
        assert_eq!(e["status"], status, "{name}: {e:#}");
        let text = e["error"].as_str().unwrap_or_default();
        assert!(
            text.contains(error),
            "{name}: expected `{error}` in `{text}`"
        );
    };
    for ok in ["ok-1.png", "ok-2.png", "ok-3.png", "ok-4.png", "ok-5.png"] {
        expect(ok, "success", "");
    }
    expect(
        "panic.png",
        "failed",
        "guest trapped in detect: wasm trap: wasm `unreachable` instruction executed (guest panicked at",
    );
    expect(
        "panic.png",
        "failed",
        "detect failed on purpose on panic.png",
    );
    expect("loop.png", "timed-out", "detect timed out after 2s (limit)");
    expect(
        "oom.png",
        "failed",
        "detect exceeded the memory limit of 256 MiB",
    );
    expect(
        "many.png",
        "failed",
        "the guest returned 1000000 annotations, over the limit of 10000",
    );
    expect(
        "huge.png",
        "failed",
        "annotation 0: label must be 1 to 256 bytes, got 67108864 bytes",
    );
    expect("nan.png", "failed", "annotation 0: left is NaN");
    expect("inf.png", "failed", "annotation 0: right is inf");
    expect("inverted.png", "failed", "annotation 0: box is inverted");
    expect(
        "confidence.png",
        "failed",
        "annotation 0: confidence 1.5 is not within 0..1",
    );
    // Nothing invalid was stored.
    let export = home.export("d");
    for entry in export.as_array().expect("items") {
        let n = entry["annotations"].as_array().map_or(0, Vec::len);
        let name = entry["item"]["name"].as_str().expect("name");
        assert_eq!(n, usize::from(name.starts_with("ok-")), "{name}");
    }
    // The panic's wasm backtrace is in the logs.
    let logs = home.ok(&[
        "executions",
        "logs",
        &by_item["panic.png"]["id"].to_string(),
    ]);
    assert!(
        logs.contains("panicked at") && logs.contains("wasm backtrace"),
        "{logs}"
    );
}

#[test]
fn the_guest_cannot_reach_host_files_env_args_or_network() {
    let home = Home::new();
    deploy_hostile(&home, "hostile", &[]);
    let by_item = run_items(&home, &["probe.png"]);
    assert_eq!(by_item["probe.png"]["status"], "success");
    let export = home.export("d");
    let labels: Vec<String> = export[0]["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .map(|a| a["label"].as_str().expect("label").to_string())
        .collect();
    assert_eq!(labels.len(), 8, "{labels:?}");
    for label in &labels {
        assert!(
            label.contains(":denied:"),
            "the sandbox let this through: {label}"
        );
    }
    assert!(
        !std::path::Path::new("/tmp/prelabel-escape").exists(),
        "the guest wrote a host file"
    );
    let everything = serde_json::to_string(&export).expect("json")
        + &home.ok(&[
            "executions",
            "logs",
            &by_item["probe.png"]["id"].to_string(),
        ]);
    assert!(
        !everything.contains("root:x:0:0"),
        "host file content leaked"
    );
}

#[test]
fn chatty_guests_are_truncated_and_boxes_clipped() {
    let home = Home::new();
    deploy_hostile(&home, "hostile", &[]);
    let by_item = run_items(&home, &["stdout.png", "outside.png"]);
    assert_eq!(by_item["stdout.png"]["status"], "success");
    let logs = home.ok(&[
        "executions",
        "logs",
        &by_item["stdout.png"]["id"].to_string(),
    ]);
    assert!(
        logs.contains("[prelabel: output truncated at 1048576 bytes]"),
        "no truncation marker"
    );
    assert!(
        logs.len() < (1 << 20) + 4096,
        "logs are bounded: {} bytes",
        logs.len()
    );
    assert_eq!(by_item["outside.png"]["status"], "success");
    let export = home.export("d");
    let outside = export
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["item"]["name"] == "outside.png")
        .expect("outside");
    assert_eq!(
        outside["annotations"][0]["geometry"],
        serde_json::json!({"type": "box", "left": 0.0, "top": 0.0, "right": 10.0, "bottom": 3.0}),
        "clipped to the 10x10 image"
    );
}

#[test]
fn a_guest_that_traps_in_init_fails_its_executions_and_others_carry_on() {
    let home = Home::new();
    deploy_hostile(
        &home,
        "broken",
        &["--init", "fail_init=true", "--max-attempts", "2"],
    );
    let by_item = run_items(&home, &["ok-1.png"]);
    let e = &by_item["ok-1.png"];
    assert_eq!(e["status"], "failed");
    assert_eq!(e["attempts"], 2, "a trap in init is retried like any trap");
    let error = e["error"].as_str().expect("error");
    assert!(
        error.contains("guest trapped in init") && error.contains("init failed on purpose"),
        "{error}"
    );
    // The same package with a working init, on the same home, is unaffected.
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "working",
        "--init",
        "fail_init=false",
    ]);
    let out = home.ok(&["execute", "working", "--item", &e["item_id"].to_string()]);
    assert!(out.contains("\"status\": \"success\""), "{out}");
}

#[test]
fn limits_are_per_service() {
    let home = Home::new();
    deploy_hostile(
        &home,
        "tight",
        &[
            "--max-annotations",
            "3",
            "--log-kb",
            "4",
            "--max-item-mb",
            "1",
        ],
    );
    let dir = tempdir();
    std::fs::write(dir.path().join("ok-big.png"), vec![0u8; 2 << 20]).expect("write");
    home.ok(&["upload", path(dir.path()), "--dataset", "big"]);
    let by_item = run_items(&home, &["stdout.png", "ok-1.png"]);
    let big = home
        .executions()
        .into_iter()
        .find(|e| e["item"] == "ok-big.png")
        .expect("big");
    assert_eq!(big["status"], "failed");
    assert!(
        big["error"]
            .as_str()
            .is_some_and(|e| e.contains("the item is 2097152 bytes, over the limit of 1048576")),
        "{big:#}"
    );
    let logs = home.ok(&[
        "executions",
        "logs",
        &by_item["stdout.png"]["id"].to_string(),
    ]);
    assert!(
        logs.contains("[prelabel: output truncated at 4096 bytes]"),
        "{}",
        &logs[..logs.len().min(200)]
    );
    assert_eq!(by_item["ok-1.png"]["status"], "success");
    let s = home.json(&["service", "show", "tight"]);
    assert_eq!(s["settings"]["max_annotations"], 3);
    assert_eq!(s["settings"]["init_timeout_ms"], 120000);
}

#[test]
fn hostile_inputs_end_as_boxes_or_a_named_failure() {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&["service", "deploy", "face-detector", "--name", "faces"]);
    // No mimetype filter: every file reaches the guest, to prove it copes.
    home.ok(&["trigger", "create", "all", "--service", "faces"]);
    home.ok(&[
        "upload",
        path(&fixtures().join("hostile_inputs")),
        "--dataset",
        "d",
    ]);
    home.ok(&["work", "--until-idle"]);
    let by_item: std::collections::BTreeMap<String, Value> = home
        .executions()
        .into_iter()
        .map(|e| (e["item"].as_str().expect("item").to_string(), e))
        .collect();
    assert_eq!(by_item.len(), 15);
    for (name, error) in [
        (
            "bomb.png",
            "image is 100000x100000 = 10000000000 pixels, over the limit of 67108864",
        ),
        ("empty.png", "the item is empty (0 bytes)"),
        ("text_named.jpg", "has mimetype `text/plain`, not an image"),
        ("truncated.png", "cannot decode image"),
    ] {
        assert_eq!(by_item[name]["status"], "failed", "{name}");
        let text = by_item[name]["error"].as_str().unwrap_or_default();
        assert!(text.contains(error), "{name}: `{text}`");
    }
    let export = home.export("d");
    let boxes = |name: &str| {
        boxes(
            export
                .as_array()
                .expect("items")
                .iter()
                .find(|e| e["item"]["name"] == name)
                .expect("item"),
        )
    };
    // Re-encodings of the astronaut and of Grace Hopper find the same face.
    for (name, original) in [
        ("gray.png", "skimage_astronaut.png"),
        ("gray16.png", "skimage_astronaut.png"),
        ("palette.png", "skimage_astronaut.png"),
        ("rgba.png", "skimage_astronaut.png"),
        ("png_named.jpg", "skimage_astronaut.png"),
        ("cmyk.jpg", "matplotlib_grace_hopper.jpg"),
        ("progressive.jpg", "matplotlib_grace_hopper.jpg"),
    ] {
        assert_eq!(by_item[name]["status"], "success", "{name}");
        let got = boxes(name);
        assert_eq!(got.len(), 1, "{name}: {got:?}");
        let want = reference(original)[0];
        assert!(
            iou(&got[0].0, &want.bbox) >= 0.9,
            "{name}: {:?} vs {:?}",
            got[0],
            want
        );
        assert!(got[0].1 > 0.9, "{name}");
    }
    // The animated GIF's first frame is the astronaut at 256x256; tiny and strip images have no face.
    assert_eq!(boxes("animated.gif").len(), 1);
    assert!(boxes("one_pixel.png").is_empty() && boxes("strip.png").is_empty());
    // A truncated JPEG decodes what it has (as libjpeg does): the face is in the first half.
    assert_eq!(by_item["truncated.jpg"]["status"], "success");
    let items = home.json(&["items", "list", "--json"]);
    let lying = items
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "png_named.jpg")
        .expect("item");
    assert_eq!(
        lying["mimetype"], "image/png",
        "the mimetype comes from the bytes, not the name"
    );
}

#[test]
fn killing_the_host_mid_run_loses_and_duplicates_nothing() {
    let home = Home::new();
    deploy_hostile(&home, "quick", &[]);
    let dir = tempdir();
    let image = png(10, 10);
    for i in 0..300 {
        // Same pixels, different bytes: each file is its own item and blob.
        let mut bytes = image.clone();
        bytes.extend_from_slice(format!("{i}").as_bytes());
        std::fs::write(dir.path().join(format!("slow-{i:03}.png")), bytes).expect("write");
    }
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    let mut serve = home.spawn(&["serve"]);
    home.wait_for(120, "some executions to finish", |all| {
        status_count(all, "success") >= 30
    });
    serve.kill().expect("kill -9");
    let _ = serve.wait();
    let done_before = status_count(&home.executions(), "success");
    assert!(
        done_before < 300,
        "the kill came mid-run ({done_before} done)"
    );

    home.ok(&["work", "--until-idle"]);
    let all = home.executions();
    assert_eq!(all.len(), 300, "no execution lost or added");
    assert_eq!(status_count(&all, "success"), 300);
    let export = home.export("d");
    let items = export.as_array().expect("items");
    assert_eq!(items.len(), 300);
    for entry in items {
        assert_eq!(
            entry["annotations"].as_array().map(Vec::len),
            Some(1),
            "{}: exactly one box",
            entry["item"]["name"]
        );
    }
    assert_eq!(home.ok(&["check"]).trim(), "ok");
}

#[test]
fn several_processes_on_one_home_never_see_a_locked_database() {
    let home = Home::new();
    deploy_hostile(&home, "quick", &[]);
    let mut serve = home.spawn(&["serve"]);
    let dirs: Vec<TempDir> = (0..3)
        .map(|d| {
            let dir = tempdir();
            for i in 0..40 {
                let mut bytes = png(10, 10);
                bytes.extend_from_slice(format!("{d}-{i}").as_bytes());
                std::fs::write(dir.path().join(format!("ok-{i:02}.png")), bytes).expect("write");
            }
            dir
        })
        .collect();
    std::thread::scope(|scope| {
        for (d, dir) in dirs.iter().enumerate() {
            let home = &home;
            scope.spawn(move || {
                home.ok(&["upload", path(dir.path()), "--dataset", &format!("d{d}")])
            });
        }
        scope.spawn(|| {
            for _ in 0..5 {
                home.ok(&["service", "deploy", "hostile", "--name", "quick"]);
            }
        });
    });
    let all = home.wait_for(120, "all uploads to be processed", |all| {
        all.len() == 120 && status_count(all, "success") == 120
    });
    assert_eq!(all.len(), 120);
    serve.kill().expect("stop serve");
    let stderr_text = {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut e) = serve.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    };
    let _ = serve.wait();
    assert!(!stderr_text.contains("locked"), "{stderr_text}");
    assert_eq!(home.ok(&["check"]).trim(), "ok");
}

#[test]
fn a_failed_write_is_a_clear_error_and_leaves_no_partial_item() {
    let home = Home::new();
    deploy_hostile(&home, "quick", &[]);
    let good = tempdir();
    std::fs::write(good.path().join("ok-1.png"), png(10, 10)).expect("write");
    home.ok(&["upload", path(good.path()), "--dataset", "d"]);
    // Make the blob's directory unwritable in a way that holds even for root: a file
    // where the directory should be (what a full or broken disk looks like to us).
    let bytes = png(11, 11);
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let blocker = home.path().join("blobs/sha256").join(&digest[..2]);
    let _ = std::fs::remove_dir_all(&blocker);
    std::fs::write(&blocker, b"not a directory").expect("block");
    let file = tempdir();
    std::fs::write(file.path().join("ok-2.png"), &bytes).expect("write");
    let err = home.fails(&[
        "upload",
        path(&file.path().join("ok-2.png")),
        "--dataset",
        "d",
    ]);
    assert!(err.contains("cannot write blob"), "{err}");
    let items = home.json(&["items", "list", "--json"]);
    assert_eq!(
        items.as_array().map(Vec::len),
        Some(1),
        "no item row without its bytes"
    );
    assert!(home.executions().len() == 1, "and no execution for it");
    std::fs::remove_file(&blocker).expect("unblock");
    assert_eq!(home.ok(&["check"]).trim(), "ok");
}

#[test]
fn a_missing_component_blob_fails_executions_and_check_names_it() {
    let home = Home::new();
    deploy_hostile(&home, "quick", &[]);
    let show = home.ok(&["package", "show", "hostile"]);
    let digest = show
        .split("component sha256:")
        .nth(1)
        .and_then(|s| s.lines().next())
        .expect("digest")
        .trim()
        .to_string();
    std::fs::remove_file(
        home.path()
            .join("blobs/sha256")
            .join(&digest[..2])
            .join(&digest[2..]),
    )
    .expect("remove blob");
    let by_item = run_items(&home, &["ok-1.png"]);
    let e = &by_item["ok-1.png"];
    assert_eq!(e["status"], "failed", "never left running: {e:#}");
    assert!(
        e["error"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("blob {digest} is missing"))),
        "{e:#}"
    );
    let out = home.run(&["check"]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains(&format!("blob {digest} is missing")),
        "{}",
        stdout(&out)
    );
}
