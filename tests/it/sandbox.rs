//! The sandbox's promises, each proved against a guest that breaks it on purpose
//! (`tests/guests/hostile`): every execution ends with the right status and an error naming
//! the cause, the next item still runs, and nothing of the host is reachable.

use crate::support::*;
use serde_json::Value;

fn deploy_hostile(home: &Home, service: &str, extra: &[&str]) {
    deploy_hostile_package(home, &hostile_guest(), service, extra);
    home.ok(&["trigger", "create", service, "--service", service]);
}

/// The hostile guest is built against the contract as released in 0.1.0 (a frozen copy of
/// the WIT): it imports the 0.1.0 interfaces, and this 0.1.1 host runs it.
#[test]
fn a_component_built_for_0_1_0_runs_on_this_host() {
    let home = Home::new();
    deploy_hostile(&home, "hostile", &[]);
    let wasm = std::fs::read(root().join("target/wasm32-wasip2/release/hostile_guest.wasm"))
        .expect("the hostile component");
    let imports = |version: &str| {
        let name = format!("prelabel:detector/host@{version}");
        wasm.windows(name.len()).any(|w| w == name.as_bytes())
    };
    assert!(imports("0.1.0") && !imports("0.1.1"));
    let by_item = run_items(&home, &["ok.png"]);
    assert_outcome(&by_item, "ok.png", "success", "");
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
        "flood.png",
        "huge.png",
        "long.png",
        "hugelog.png",
        "nan.png",
        "inf.png",
        "inverted.png",
        "confidence.png",
        "ok-5.png",
    ];
    let by_item = run_items(&home, &names);
    let expect =
        |name: &str, status: &str, error: &str| assert_outcome(&by_item, name, status, error);
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
        "the guest returned 10001 annotations, over the limit of 10000",
    );
    // More than one crossing may copy out of the guest: the memory limit, before the copy.
    for name in ["flood.png", "huge.png", "hugelog.png"] {
        expect(
            name,
            "failed",
            "detect exceeded the memory limit of 256 MiB (data the guest passed to the host)",
        );
    }
    expect(
        "long.png",
        "failed",
        "annotation 0: label must be 1 to 256 bytes, got 1048576 bytes",
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
    assert_eq!(labels.len(), 9, "{labels:?}");
    for label in &labels {
        assert!(
            label.contains(":denied:"),
            "the sandbox let this through: {label}"
        );
    }
    let http = labels
        .iter()
        .find(|l| l.starts_with("http GET"))
        .expect("http probe");
    assert!(http.contains("may call no host"), "{http}");
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
    home.work_measured("hostile inputs");
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

// ---------------------------------------------------------------------------------------
// Time: nothing a guest does outlives its limit.

/// `prelabel detect` of the hostile guest on one 10x10 PNG named `name`; returns the JSON
/// result for that file and the wall-clock time the command took.
fn detect_one(
    package: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> (Value, std::time::Duration) {
    detect_bytes(package, name, &png(10, 10), extra)
}

/// [`detect_one`] on an item of `bytes`. The host process tree stays under the cap (the
/// `--memory-mb` given, else the default 1 GiB) plus the margin throughout.
fn detect_bytes(
    package: &std::path::Path,
    name: &str,
    bytes: &[u8],
    extra: &[&str],
) -> (Value, std::time::Duration) {
    let dir = tempdir();
    let image = dir.path().join(name);
    std::fs::write(&image, bytes).expect("write item");
    let mut command = command(dir.path());
    command.args(["detect", path(package), path(&image)]);
    command.args(extra);
    let started = std::time::Instant::now();
    let (out, peak) = run_measured(command);
    let elapsed = started.elapsed();
    let cap = extra
        .iter()
        .position(|a| *a == "--memory-mb")
        .and_then(|at| extra.get(at + 1)?.parse().ok())
        .unwrap_or(1024);
    assert_under_cap(name, peak, cap);
    // Non-zero when the file failed; the JSON says how.
    let results: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    (results[0].clone(), elapsed)
}

#[test]
fn a_guest_that_sleeps_in_detect_ends_timed_out_at_its_limit() {
    let home = Home::new();
    deploy_hostile(&home, "hostile", &[]);
    let by_item = run_items(&home, &["sleep.png", "ok-1.png"]);
    let e = &by_item["sleep.png"];
    assert_eq!(e["status"], "timed-out", "{e:#}");
    assert_eq!(e["error"], "detect timed out after 2s (limit)");
    let ms = e["duration_ms"].as_u64().expect("duration");
    assert!(
        (2000..3000).contains(&ms),
        "ended after {ms} ms; the limit is 2 s"
    );
    assert_eq!(
        by_item["ok-1.png"]["status"], "success",
        "the next item still runs"
    );
}

#[test]
fn a_guest_that_sleeps_or_loops_in_init_ends_at_the_init_timeout() {
    for (input, phase_error) in [
        ("sleep_init=true", "init timed out after 1s (limit)"),
        ("busy_init=true", "init timed out after 1s (limit)"),
    ] {
        // Through the queue, with the service's --init-timeout...
        let home = Home::new();
        deploy_hostile(
            &home,
            "slow-init",
            &["--init", input, "--init-timeout", "1"],
        );
        let by_item = run_items(&home, &["ok-1.png"]);
        let e = &by_item["ok-1.png"];
        assert_eq!(e["status"], "timed-out", "{input}: {e:#}");
        assert_eq!(e["error"], phase_error, "{input}");
        let ms = e["duration_ms"].as_u64().expect("duration");
        assert!(
            ms < 2000,
            "{input}: ended after {ms} ms; the init limit is 1 s"
        );
        // ...and through `prelabel detect --init-timeout`.
        let dir = tempdir();
        let image = dir.path().join("ok.png");
        std::fs::write(&image, png(10, 10)).expect("write");
        let started = std::time::Instant::now();
        let out = prelabel(
            dir.path(),
            &[
                "detect",
                path(&hostile_guest()),
                path(&image),
                "--init",
                input,
                "--init-timeout",
                "1",
            ],
        );
        assert!(!out.status.success(), "{input}: detect succeeded");
        assert!(
            stderr(&out).contains(phase_error),
            "{input}: {}",
            stderr(&out)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{input}: detect took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn serve_drains_on_sigint_while_a_guest_sleeps() {
    let home = Home::new();
    deploy_hostile(&home, "hostile", &[]);
    let dir = tempdir();
    std::fs::write(dir.path().join("sleep.png"), png(10, 10)).expect("write");
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    let mut serve = home.spawn(&["serve"]);
    home.wait_for(30, "the sleeping execution to start", |all| {
        status_count(all, "running") == 1
    });
    // The guest sleeps for an hour; its limit is 2 s: serve drains within the limit.
    let status = interrupt(&mut serve, 10);
    assert!(status.success(), "{status}");
    let executions = home.executions();
    assert_eq!(executions[0]["status"], "timed-out", "{executions:#?}");
}

// ---------------------------------------------------------------------------------------
// Native inference: a permission, in a worker process, under the cap and the deadline.

/// The hostile package with attack models as artifacts, in a folder of its own.
fn hostile_with_models() -> TempDir {
    let dir = tempdir();
    // Not an artifact: a file the `external` model tries to read.
    std::fs::write(dir.path().join("secret.bin"), 42f32.to_le_bytes()).expect("write");
    attacks::hostile_with_artifacts(
        dir.path(),
        &[
            ("identity", attacks::identity()),
            ("constant", attacks::constant_bomb()),
            ("expand", attacks::expand_bomb()),
            ("wide", attacks::wide()),
            ("external", attacks::external_data()),
            ("slow", attacks::slow()),
        ],
    );
    dir
}

#[test]
fn native_inference_is_off_unless_granted() {
    let package = hostile_with_models();
    let (denied, _) = detect_one(package.path(), "nn_identity.png", &[]);
    let error = denied["error"].as_str().expect("error");
    assert!(
        error.contains("native inference is not granted") && error.contains("--allow-inference"),
        "{error}"
    );
    let (granted, _) = detect_one(package.path(), "nn_identity.png", &["--allow-inference"]);
    assert_eq!(granted["error"], Value::Null, "{granted:#}");
    assert_eq!(granted["annotations"][0]["label"], "1 outputs, 1 values");
    // And per service: `service show` says so, and the queue obeys it.
    let home = Home::new();
    home.ok(&["package", "push", path(package.path())]);
    home.ok(&["service", "deploy", "hostile", "--name", "nn"]);
    assert_eq!(
        home.json(&["service", "show", "nn"])["settings"]["allow_inference"],
        false
    );
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "nn",
        "--allow-inference",
    ]);
    assert_eq!(
        home.json(&["service", "show", "nn"])["settings"]["allow_inference"],
        true
    );
    home.ok(&["trigger", "create", "nn", "--service", "nn"]);
    let by_item = run_items(&home, &["nn_identity.png"]);
    assert_eq!(by_item["nn_identity.png"]["status"], "success");
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "nn",
        "--allow-inference=false",
    ]);
    assert_eq!(
        home.json(&["service", "show", "nn"])["settings"]["allow_inference"],
        false
    );
}

/// Every engine the hostile models run on: tract (built in) and ONNX Runtime (C++ parsing the
/// same bytes, in the same confined worker).
const ENGINES: [&str; 2] = ["tract", "onnxruntime"];

/// A service chooses its engine; asking by name for one this host lacks is refused at deploy,
/// saying how to get it; `auto` takes ONNX Runtime where it loads and tract where it does not
/// (saying so); each execution records the engine that ran it.
#[test]
fn the_inference_engine_is_chosen_per_service_and_recorded_per_execution() {
    let package = hostile_with_models();
    let home = Home::new();
    home.ok(&["package", "push", path(package.path())]);
    let without = |args: &[&str]| {
        command(home.path())
            .env("ORT_DYLIB_PATH", home.path().join("no-libonnxruntime.so"))
            .args(args)
            .output()
            .expect("prelabel runs")
    };
    let refused = without(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "nn",
        "--allow-inference",
        "--inference-engine",
        "onnxruntime",
    ]);
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(
        said.contains("inference-engine")
            && said.contains("no-libonnxruntime.so: cannot load it")
            && said.contains("pip install onnxruntime==1.22.*"),
        "{said}"
    );
    let dir = tempdir();
    let image = dir.path().join("nn_identity.png");
    std::fs::write(&image, png(10, 10)).expect("write");
    let detect = [
        "detect",
        path(package.path()),
        path(&image),
        "--allow-inference",
    ];
    let fallback = without(&detect);
    let results: Value = serde_json::from_str(&stdout(&fallback)).expect("json");
    assert_eq!(
        results[0]["inference_engine"], "tract 0.23.9",
        "{results:#}"
    );
    assert_eq!(
        stderr(&fallback)
            .matches("native inference runs on tract")
            .count(),
        1,
        "{}",
        stderr(&fallback)
    );
    let (found, _) = detect_one(package.path(), "nn_identity.png", &["--allow-inference"]);
    assert_eq!(
        found["inference_engine"],
        format!("onnxruntime {ONNXRUNTIME}")
    );
    // Per service, and in each execution's provenance.
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "nn",
        "--allow-inference",
        "--inference-engine",
        "onnxruntime",
        "--inference-threads",
        "2",
    ]);
    let settings = &home.json(&["service", "show", "nn"])["settings"];
    assert_eq!(
        (
            &settings["inference_engine"],
            &settings["inference_threads"]
        ),
        (&Value::from("onnxruntime"), &Value::from(2))
    );
    home.ok(&["trigger", "create", "nn", "--service", "nn"]);
    let by_item = run_items(&home, &["nn_identity.png"]);
    assert_eq!(
        by_item["nn_identity.png"]["inference_engine"],
        format!("onnxruntime {ONNXRUNTIME}")
    );
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "nn",
        "--inference-engine",
        "tract",
    ]);
    let by_item = run_items(&home, &["nn_identity-2.png"]);
    assert_eq!(
        by_item["nn_identity-2.png"]["inference_engine"],
        "tract 0.23.9"
    );
    // Zero threads is no setting.
    let e = home.fails(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "nn",
        "--inference-threads",
        "0",
    ]);
    assert!(e.contains("inference-threads"), "{e}");
}

#[test]
fn hostile_models_and_tensors_fail_their_item_and_stay_under_the_cap() {
    for engine in ENGINES {
        hostile_models_on(engine);
    }
}

fn hostile_models_on(engine: &str) {
    let package = hostile_with_models();
    let dir = tempdir();
    let names = [
        "nn_constant.png",
        "nn_expand.png",
        "nn_wide.png",
        "nn_external.png",
        "nn3_identity.png",
        "nnlie_identity.png",
        "nnbig_identity.png",
        "nngpu_identity.png",
        "nntf_identity.png",
        "nn_identity.png",
        "nnbytes_identity.png",
        "legacy_identity.png",
    ];
    let mut args = vec!["detect".to_string(), path(package.path()).to_string()];
    for name in names {
        let image = dir.path().join(name);
        std::fs::write(&image, png(10, 10)).expect("write");
        args.push(path(&image).to_string());
    }
    args.extend(
        [
            "--allow-inference",
            "--memory-mb",
            "256",
            "--timeout",
            "20",
            "--inference-engine",
            engine,
        ]
        .map(String::from),
    );
    let mut command = command(dir.path());
    command.args(&args);
    let (out, peak) = run_measured(command);
    // Exit code 1: some files failed, as they should; the host itself must not have died.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let results: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let error = |name: &str| {
        let entry = results
            .as_array()
            .expect("results")
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no result for {name}"));
        entry["error"].as_str().unwrap_or_default().to_string()
    };
    // Over the memory cap, while optimising or while running: the worker dies, not the host.
    for bomb in ["nn_constant.png", "nn_expand.png"] {
        let e = error(bomb);
        eprintln!("{engine}: {bomb}: {e}");
        // Or refused outright: tract's shape check panics, ONNX Runtime checks the size.
        assert!(
            e.contains("detect exceeded the memory limit of 256 MiB (native inference)")
                || e.contains(&format!("{engine} panicked"))
                || e.contains("Calculation for Tensor storage size overflowed"),
            "{engine}: {bomb}: {e}"
        );
    }
    // A result as large as the cap: the worker that builds it dies at its heap limit.
    assert_eq!(
        error("nn_wide.png"),
        "detect exceeded the memory limit of 256 MiB (native inference)",
        "{engine}"
    );
    // A model reads no file but itself (beside an artifact in the store lie other blobs):
    // both engines refuse external data in a model given as bytes (and were they to try, the
    // confined worker may open nothing: the test below).
    let external = match engine {
        "tract" => "external data was detected",
        _ => "model_path must not be empty",
    };
    for (name, expected) in [
        ("nn_external.png", external),
        (
            "nn3_identity.png",
            "ErrorCode::InvalidArgument: the model has no input named `1` (it has: x)",
        ),
        (
            "nnlie_identity.png",
            "ErrorCode::InvalidArgument: input `0`: shape [4294967295, 4294967295] of F32 needs more than 2^64 bytes, got 4",
        ),
        (
            "nnbig_identity.png",
            "the model declares rank 1, got shape [512, 512]",
        ),
        (
            "nngpu_identity.png",
            "ErrorCode::UnsupportedOperation: this host runs models on the CPU, not the GPU",
        ),
        (
            "nntf_identity.png",
            "ErrorCode::InvalidEncoding: this host runs ONNX models, not TensorFlow",
        ),
    ] {
        let e = error(name);
        assert!(e.contains(expected), "{engine}: {name}: {e}");
    }
    // Good calls after the bombs still work: wasi-nn by name and from bytes, and the
    // `inference` import of components built before wasi-nn.
    for name in [
        "nn_identity.png",
        "nnbytes_identity.png",
        "legacy_identity.png",
    ] {
        assert_eq!(error(name), "", "{engine}: {name}");
    }
    let engines: Vec<&str> = (results.as_array().expect("results").iter())
        .filter_map(|r| r["inference_engine"].as_str())
        .collect();
    assert!(
        !engines.is_empty() && engines.iter().all(|e| e.starts_with(engine)),
        "{engines:?}"
    );
    // The bound these attacks held before the worker shared the instance's cap.
    assert_within(&format!("hostile models on {engine}"), peak, 256, 160 << 20);
}

#[test]
fn what_the_host_holds_for_wasi_nn_counts_against_the_cap() {
    let package = hostile_with_models();
    // Tensors the guest keeps: their bytes are the host's memory, under the guest's cap.
    let (flood, _) = detect_one(
        package.path(),
        "nnflood.png",
        &["--allow-inference", "--memory-mb", "64"],
    );
    assert_eq!(
        flood["error"], "detect exceeded the memory limit of 64 MiB (native inference)",
        "{flood:#}"
    );
    // Empty tensors cost no bytes, but each handle is host memory: the table is bounded.
    let (handles, _) = detect_one(package.path(), "nnhandles.png", &["--allow-inference"]);
    let error = handles["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("guest trapped in detect") && error.contains("resource"),
        "{handles:#}"
    );
}

/// Issue 28: what the host allocates because a guest asked is charged to its one cap before
/// it is allocated, so the host and its inference worker together stay under the cap plus the
/// margin, and each attack ends as the memory limit, naming what went over.
#[test]
fn what_the_host_holds_for_a_guest_counts_against_its_cap() {
    let package = hostile_with_models();
    let cap = ["--allow-inference", "--memory-mb", "256", "--timeout", "20"];
    let limit = |what: &str| format!("detect exceeded the memory limit of 256 MiB ({what})");
    // Tensors whose dimension lists are long, kept: each list is the host's memory.
    let (dims, _) = detect_one(package.path(), "nndims.png", &cap);
    assert_eq!(dims["error"], limit("native inference"), "{dims:#}");
    // An image whose pixels decode at 8 bytes each (16-bit RGBA): half a GiB decoded,
    // refused from its header rather than decoded.
    let deep = attacks::png16_rgba(8192, 8192);
    let (blob, _) = detect_bytes(package.path(), "blob.png", &deep, &cap);
    assert_eq!(blob["error"], limit("image decoding"), "{blob:#}");
    // The same at 8 bits and a small size decodes (the import works).
    let (small, _) = detect_bytes(package.path(), "blob.png", &png(640, 480), &cap);
    assert_eq!(small["error"], Value::Null, "{small:#}");
}

#[test]
fn a_long_native_inference_call_ends_timed_out() {
    let package = hostile_with_models();
    // Installed (once) before the clock starts.
    onnxruntime_library();
    for engine in ENGINES {
        let started = std::time::Instant::now();
        let (result, _) = detect_one(
            package.path(),
            "nnbig_slow.png",
            &[
                "--allow-inference",
                "--timeout",
                "2",
                "--inference-engine",
                engine,
            ],
        );
        assert_eq!(
            result["error"], "detect timed out after 2s (limit)",
            "{engine}: {result:#}"
        );
        // Model loading and optimising count too; a second for the process around it.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(6),
            "{engine}: took {:?}",
            started.elapsed()
        );
    }
}

/// The worker runs what a model makes its engine do, so once its engine is loaded it can open
/// no file, connect nowhere, run no program and trace no process. A worker set up exactly as
/// for a service tries each for real (what this test process does freely).
#[test]
fn the_inference_worker_can_open_no_file_connect_nowhere_and_run_nothing() {
    let dir = tempdir();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the host's secret").expect("write");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let address = listener.local_addr().expect("address").to_string();
    assert!(std::fs::read(&secret).is_ok() && std::net::TcpStream::connect(&address).is_ok());
    let library = onnxruntime_library();
    for engine in ENGINES {
        let mut args = vec![
            "__inference-worker",
            "confinement",
            path(&secret),
            &address,
            "268435456",
            engine,
            "1",
        ];
        if engine == "onnxruntime" {
            args.push(path(&library));
        }
        let out = prelabel(dir.path(), &args);
        assert!(out.status.success(), "{engine}: {}", stderr(&out));
        let refused = "refused: Operation not permitted (os error 1)";
        assert_eq!(
            stdout(&out).lines().collect::<Vec<_>>(),
            ["open", "connect", "run", "ptrace"].map(|what| format!("{what}: {refused}")),
            "{engine}"
        );
    }
}

/// A crash inside the engine (here SIGABRT sent to the worker mid-call, as an uncaught C++
/// exception or a failed assertion in ONNX Runtime ends it) is that call's error, named; the
/// host goes on with the next file on a new worker.
#[test]
fn a_crash_inside_the_engine_ends_that_call_and_the_host_goes_on() {
    let package = hostile_with_models();
    for engine in ENGINES {
        let dir = tempdir();
        let slow = dir.path().join("nnbig_slow.png");
        // Runs after the slow one (by name too): a good call, its model from bytes.
        let next = dir.path().join("nnbytes_identity.png");
        for image in [&slow, &next] {
            std::fs::write(image, png(10, 10)).expect("write");
        }
        let mut command = command(dir.path());
        command
            .args(["detect", path(package.path()), path(&slow), path(&next)])
            .args(["--allow-inference", "--jobs", "1", "--timeout", "60"])
            .args(["--inference-engine", engine])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = command.spawn().expect("detect runs");
        // The worker is a child of this detect, computing the slow model.
        abort_worker(child.id());
        let out = child.wait_with_output().expect("detect ends");
        let results: Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{engine}: {e}: {}", stderr(&out)));
        let [crashed, next] = [0, 1].map(|i| &results[i]);
        assert_eq!(crashed["name"], "nnbig_slow.png");
        let error = crashed["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("the inference worker died (signal: 6 (SIGABRT)"),
            "{engine}: {crashed:#}"
        );
        assert_eq!(next["error"], Value::Null, "{engine}: {next:#}");
        assert_eq!(next["annotations"][0]["label"], "1 outputs, 1 values");
    }
}

/// Sends SIGABRT to the inference worker under `parent` once it has run a while (into the
/// slow model's run). Through a pidfd taken while the process is seen to be the worker, so
/// that a worker that ended meanwhile is looked for again and never a reused pid signalled
/// (a process of another test could have it).
fn abort_worker(parent: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let Some(pidfd) = find_worker(parent) else {
            std::thread::sleep(std::time::Duration::from_millis(50));
            continue;
        };
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SAFETY: pidfd_send_signal on a descriptor this function owns; closed after.
        let sent = unsafe {
            let sent = libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd,
                libc::SIGABRT,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
            libc::close(pidfd);
            sent
        };
        if sent == 0 {
            return;
        }
    }
    panic!("no inference worker under {parent} to abort");
}

/// A pidfd of a process under `parent` whose command line is the inference worker's, checked
/// after the pidfd is open (so it names that process, not a later one with its pid).
fn find_worker(parent: u32) -> Option<i32> {
    let is_worker = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        ppid == Some(parent)
            && cmdline.starts_with(b"/")
            && cmdline.windows(18).any(|w| w == b"__inference-worker")
    };
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !is_worker(pid) {
            continue;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if pidfd < 0 {
            continue;
        }
        if is_worker(pid) {
            return Some(pidfd);
        }
        // SAFETY: closing the descriptor just opened.
        unsafe { libc::close(pidfd) };
    }
    None
}

// ---------------------------------------------------------------------------------------
// Memory: the cap is the guest's whole footprint.

#[test]
fn several_memories_and_huge_tables_count_against_one_cap() {
    for (what, component) in [
        ("memories", attacks::many_memories()),
        ("table", attacks::huge_table()),
    ] {
        let dir = tempdir();
        attacks::wat_package(dir.path(), &component);
        let image = dir.path().join("x.png");
        std::fs::write(&image, png(10, 10)).expect("write");
        let mut command = command(dir.path());
        command.args([
            "detect",
            path(dir.path()),
            path(&image),
            "--memory-mb",
            "256",
        ]);
        let (out, peak) = run_measured(command);
        let results: Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{what}: {e}: {}", stderr(&out)));
        assert_eq!(
            results[0]["error"], "detect exceeded the memory limit of 256 MiB",
            "{what}: {results:#}"
        );
        assert_within(what, peak, 256, 160 << 20);
    }
}

// ---------------------------------------------------------------------------------------
// Results and names: bounded, and never copied whole into a message.

#[test]
fn huge_names_from_the_guest_are_refused_and_cut_in_messages() {
    let (result, _) = detect_one(&hostile_guest(), "modelname.png", &[]);
    assert_eq!(
        result["error"],
        "invalid result from the guest: annotation 0: model name must be at most 256 bytes, got 1048576 bytes"
    );
    let (result, _) = detect_one(&hostile_guest(), "errmsg.png", &[]);
    let error = result["error"].as_str().expect("error");
    assert!(
        error.ends_with("... (1048576 bytes)"),
        "{}",
        &error[error.len().saturating_sub(200)..]
    );
    assert!(error.len() < 5000, "the message is {} bytes", error.len());
    let (result, _) = detect_one(&hostile_guest(), "artifactname.png", &[]);
    let error = result["error"].as_str().expect("error");
    assert!(
        error.contains("no artifact named `aaaa"),
        "{}",
        &error[..200.min(error.len())]
    );
    assert!(error.len() < 1024, "the message is {} bytes", error.len());
}

// ---------------------------------------------------------------------------------------
// Files: a package reads only its own files.

#[test]
fn package_paths_outside_the_package_are_refused() {
    let dir = tempdir();
    let package = dir.path().join("pkg");
    std::fs::create_dir(&package).expect("mkdir");
    std::fs::copy(
        root().join("target/wasm32-wasip2/release/hostile_guest.wasm"),
        package.join("hostile.wasm"),
    )
    .expect("copy component");
    std::fs::write(dir.path().join("secret.txt"), "root:x:0:0").expect("write secret");
    std::fs::copy(
        package.join("hostile.wasm"),
        dir.path().join("outside.wasm"),
    )
    .expect("copy");
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), package.join("link.onnx"))
        .expect("symlink");
    let manifest = |component: &str, artifact: &str| {
        format!(
            "name = \"sneaky\"\nversion = \"0.1.0\"\ncomponent = \"{component}\"\n\n\
             [[artifacts]]\nname = \"model\"\npath = \"{artifact}\"\n\n\
             [module]\nname = \"sneaky\"\n\n[[module.functions]]\nname = \"detect\"\n\
             inputs = [{{ name = \"item\", type = \"item\" }}]\n"
        )
    };
    let home = tempdir();
    let refuse = |component: &str, artifact: &str, expected: &str| {
        std::fs::write(package.join("prelabel.toml"), manifest(component, artifact))
            .expect("write manifest");
        for args in [
            vec!["package", "push", path(&package)],
            vec![
                "detect",
                path(&package),
                path(&dir.path().join("secret.txt")),
            ],
        ] {
            // Without the tests' package root: only the package folder counts.
            let out = command(home.path())
                .env_remove("PRELABEL_PACKAGE_ROOT")
                .args(&args)
                .output()
                .expect("runs");
            assert!(!out.status.success(), "{args:?} accepted {artifact}");
            let err = stderr(&out);
            assert!(err.contains(expected), "{args:?} {artifact}: {err}");
        }
    };
    hostile_guest();
    refuse(
        "hostile.wasm",
        "/proc/self/environ",
        "artifacts[0] `model`: `/proc/self/environ` is an absolute path",
    );
    refuse(
        "hostile.wasm",
        "../secret.txt",
        "artifacts[0] `model`: `../secret.txt` leads outside the package folder",
    );
    refuse(
        "hostile.wasm",
        "link.onnx",
        "artifacts[0] `model`: `link.onnx` leads outside the package folder",
    );
    refuse(
        "../outside.wasm",
        "link.onnx",
        "component: `../outside.wasm` leads outside the package folder",
    );
    // Inside the folder, `..` that stays inside is fine; `--root` widens it on purpose.
    std::fs::write(package.join("model.onnx"), "bytes").expect("write");
    std::fs::write(
        package.join("prelabel.toml"),
        manifest("hostile.wasm", "sub/../model.onnx"),
    )
    .expect("write manifest");
    std::fs::create_dir(package.join("sub")).expect("mkdir");
    let out = command(home.path())
        .env_remove("PRELABEL_PACKAGE_ROOT")
        .args(["package", "push", path(&package)])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        package.join("prelabel.toml"),
        manifest("hostile.wasm", "../secret.txt"),
    )
    .expect("write manifest");
    let out = command(home.path())
        .env_remove("PRELABEL_PACKAGE_ROOT")
        .args([
            "package",
            "push",
            path(&package),
            "--root",
            path(dir.path()),
        ])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Executions: no loops, no duplicates, no stale overwrites, nothing left `running`.

#[test]
fn an_item_that_keeps_stopping_the_host_fails_after_max_attempts() {
    let home = Home::new();
    home.ok(&["package", "push", path(&hostile_guest())]);
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "crashy",
        "--timeout",
        "600",
    ]);
    home.ok(&["trigger", "create", "crashy", "--service", "crashy"]);
    let dir = tempdir();
    std::fs::write(dir.path().join("sleep.png"), png(10, 10)).expect("write");
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    // Each host dies (kill -9) while the item runs, as a native crash would.
    let mut started = Value::Null;
    for round in 1..=2 {
        let mut serve = home.spawn(&["serve"]);
        // Running, in this host: started anew (the row a killed host left says `running` too).
        let all = home.wait_for(30, "the execution to run", |all| {
            all[0]["status"] == "running" && all[0]["started_at"] != started
        });
        started = all[0]["started_at"].clone();
        serve.kill().expect("kill -9");
        serve.wait().expect("reaped");
        let e = &home.executions()[0];
        assert_eq!(e["status"], "running", "round {round}: {e:#}");
    }
    // max_attempts is 1: one interruption is forgiven, the second ends it.
    let out = home.run(&["work", "--until-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed 1 executions"),
        "{}",
        stderr(&out)
    );
    let executions = home.executions();
    assert_eq!(executions.len(), 1, "{executions:#?}");
    assert_eq!(executions[0]["status"], "failed");
    assert_eq!(
        executions[0]["error"],
        "host stopped during this execution 2 times"
    );
}

#[test]
fn a_stale_outcome_does_not_replace_newer_annotations() {
    let home = Home::new();
    home.ok(&["package", "push", path(&hostile_guest())]);
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "nap",
        "--concurrency",
        "2",
    ]);
    home.ok(&[
        "trigger",
        "create",
        "nap",
        "--service",
        "nap",
        "--actions",
        "created,updated",
        "--mode",
        "always",
    ]);
    let dir = tempdir();
    let item = dir.path().join("nap.png");
    // The first version takes 3 s, the second 0.1 s: the older execution ends last.
    std::fs::write(&item, png(300, 10)).expect("write");
    home.ok(&["upload", path(&item), "--dataset", "d"]);
    let mut serve = home.spawn(&["serve"]);
    home.wait_for(30, "the first version to run", |all| {
        status_count(all, "running") == 1
    });
    std::fs::write(&item, png(10, 10)).expect("write");
    home.ok(&["upload", path(&item), "--dataset", "d"]);
    let all = home.wait_for(30, "both versions to finish", |all| {
        status_count(all, "success") == 2
    });
    interrupt(&mut serve, 30);
    let export = home.export("d");
    let labels: Vec<&str> = export[0]["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .map(|a| a["label"].as_str().expect("label"))
        .collect();
    assert_eq!(
        labels,
        ["w10"],
        "the newer version's result stays: {all:#?}"
    );
    let old = home.ok(&["executions", "logs", &all[0]["id"].to_string()]);
    assert!(old.contains("not stored over the newer ones"), "{old}");
}

#[test]
fn a_direct_execution_is_not_taken_for_interrupted_queue_work() {
    let home = Home::new();
    home.ok(&["package", "push", path(&hostile_guest())]);
    home.ok(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "direct",
        "--timeout",
        "3",
    ]);
    let dir = tempdir();
    std::fs::write(dir.path().join("sleep.png"), png(10, 10)).expect("write");
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    let id = home.json(&["items", "list", "--json"])[0]["id"].to_string();
    let execute = home.spawn(&["execute", "direct", "--item", &id]);
    home.wait_for(30, "the direct execution to run", |all| {
        status_count(all, "running") == 1
    });
    // A scheduler started meanwhile leaves it to its process, and has nothing to do.
    let out = home.run(&["work", "--until-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = execute.wait_with_output().expect("execute ends");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the execution timed out: {}",
        stderr(&out)
    );
    let executions = home.executions();
    assert_eq!(executions.len(), 1, "{executions:#?}");
    let e = &executions[0];
    assert_eq!(e["status"], "timed-out", "{e:#}");
    assert_eq!(e["attempts"], 1, "it ran once");
    let logs = home.ok(&["executions", "logs", &e["id"].to_string()]);
    assert!(!logs.contains("host stopped"), "{logs}");
}

#[test]
fn an_outcome_that_cannot_be_recorded_fails_the_execution_and_the_scheduler_goes_on() {
    let home = Home::new();
    deploy_hostile(&home, "hostile", &[]);
    // The store refuses to take annotations, as a full disk would.
    home.sql(
        "CREATE TRIGGER full_disk BEFORE INSERT ON annotations
         BEGIN SELECT RAISE(ABORT, 'database or disk is full (simulated)'); END;",
        "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'database or disk is full (simulated)'; END $$;
         CREATE TRIGGER full_disk BEFORE INSERT ON annotations
             FOR EACH ROW EXECUTE FUNCTION full_disk();",
    );
    let dir = tempdir();
    for name in ["ok-1.png", "ok-2.png"] {
        std::fs::write(dir.path().join(name), png(10, 10)).expect("write");
    }
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    let mut work = home.spawn(&["work", "--until-idle"]);
    wait_exit(&mut work, 60, "work --until-idle");
    let executions = home.executions();
    assert_eq!(status_count(&executions, "failed"), 2, "{executions:#?}");
    for e in &executions {
        let error = e["error"].as_str().expect("error");
        assert!(
            error.contains("could not record the outcome") && error.contains("disk is full"),
            "{error}"
        );
    }
}

#[test]
fn file_names_that_are_not_utf8_are_refused_not_merged() {
    use std::os::unix::ffi::OsStrExt;
    let home = Home::new();
    let dir = tempdir();
    for byte in [0xff_u8, 0xfe] {
        let bytes = [b'a', byte, b'.', b'p', b'n', b'g'];
        let name = std::ffi::OsStr::from_bytes(&bytes);
        std::fs::write(dir.path().join(name), png(10, 10)).expect("write");
    }
    let err = home.fails(&["upload", path(dir.path()), "--dataset", "d"]);
    assert!(err.contains("the file name is not valid UTF-8"), "{err}");
    assert_eq!(
        home.json(&["items", "list", "--json"]),
        serde_json::json!([])
    );
}

#[test]
fn upload_follows_no_symbolic_link_out_of_the_folder_or_into_a_loop() {
    let home = Home::new();
    let outside = tempdir();
    std::fs::write(outside.path().join("id_ed25519"), "PRIVATE KEY").expect("write");
    let cases: [(&str, &std::path::Path); 2] = [
        ("leak.png", &outside.path().join("id_ed25519")),
        ("loop", std::path::Path::new(".")),
    ];
    for (link, target) in cases {
        let dir = tempdir();
        std::fs::write(dir.path().join("a.png"), png(10, 10)).expect("write");
        std::os::unix::fs::symlink(target, dir.path().join(link)).expect("symlink");
        let err = home.fails(&["upload", path(dir.path()), "--dataset", "d"]);
        assert!(
            err.contains(link) && err.contains("is not followed"),
            "{link}: {err}"
        );
        assert_eq!(
            home.json(&["items", "list", "--json"]),
            serde_json::json!([])
        );
    }
    // A link to a file inside the folder is fine: it is one of the folder's files.
    let dir = tempdir();
    std::fs::write(dir.path().join("a.png"), png(10, 10)).expect("write");
    std::os::unix::fs::symlink("a.png", dir.path().join("b.png")).expect("symlink");
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    assert_eq!(
        home.json(&["items", "list", "--json"])
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn concurrency_has_an_upper_bound() {
    let home = Home::new();
    home.ok(&["package", "push", path(&hostile_guest())]);
    let err = home.fails(&[
        "service",
        "deploy",
        "hostile",
        "--name",
        "h",
        "--concurrency",
        "100000",
    ]);
    assert!(err.contains("--concurrency must be at most 64"), "{err}");
}
