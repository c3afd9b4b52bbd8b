//! The platform end to end through the real binary: packages, services, triggers, uploads,
//! executions, the scheduler (serve / work), exports, and what survives a killed host.

use crate::support::*;
use serde_json::Value;

fn images() -> std::path::PathBuf {
    fixtures().join("images")
}

#[test]
fn the_seed_flow_annotates_every_image_and_skips_the_rest() {
    let home = Home::new();
    home.seed_flow(&[]);
    let out = home.ok(&[
        "upload",
        path(&images()),
        path(&fixtures().join("PROVENANCE.md")),
        "--dataset",
        "photos",
    ]);
    assert!(
        out.contains("uploaded 11 files to photos: 11 created; 10 executions queued"),
        "{out}"
    );
    home.ok(&["work", "--until-idle"]);

    let executions = home.executions();
    assert_eq!(
        executions.len(),
        10,
        "one per image, none for the text file"
    );
    assert_eq!(status_count(&executions, "success"), 10, "{executions:#?}");
    let items = home.json(&["items", "list", "--dataset", "photos", "--json"]);
    let text = items
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "PROVENANCE.md")
        .expect("text item");
    assert_eq!(text["mimetype"], "text/plain");
    assert_eq!(
        text["metadata"]["system"]["size"],
        std::fs::metadata(fixtures().join("PROVENANCE.md"))
            .expect("size")
            .len()
    );

    // Prelabel's JSON: every image's boxes match the seed, with provenance.
    let export = home.export("photos");
    for entry in export.as_array().expect("items") {
        let name = entry["item"]["name"].as_str().expect("name");
        for a in entry["annotations"].as_array().expect("annotations") {
            assert_eq!(a["service"], "face-detector");
            assert_eq!(a["revision"], 1);
            assert_eq!(a["component_digest"].as_str().map(str::len), Some(64));
        }
        let got = boxes(entry);
        if name.ends_with(".md") {
            assert!(got.is_empty());
        } else {
            assert_matches_seed(name, &got);
        }
    }

    // COCO and the seed platform's format, to files.
    let coco_path = home.path().join("coco.json");
    home.ok(&[
        "annotations",
        "export",
        "--dataset",
        "photos",
        "--format",
        "coco",
        "--output",
        path(&coco_path),
    ]);
    let coco: Value =
        serde_json::from_slice(&std::fs::read(&coco_path).expect("coco")).expect("json");
    assert_eq!(
        coco["images"].as_array().map(Vec::len),
        Some(10),
        "images only"
    );
    assert_eq!(coco["annotations"].as_array().map(Vec::len), Some(10));
    let seed = home.json(&[
        "annotations",
        "export",
        "--dataset",
        "photos",
        "--format",
        "dataloop",
    ]);
    let astronaut = seed
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["filename"] == "/skimage_astronaut.png")
        .expect("astronaut");
    let a = &astronaut["annotations"][0];
    assert_eq!(a["type"], "box");
    assert_eq!(a["label"], "face");
    assert_eq!(a["coordinates"].as_array().map(Vec::len), Some(2));
    assert_eq!(a["metadata"]["user"]["model"]["name"], "res10_300x300_ssd");
    assert!(
        a["metadata"]["user"]["model"]["confidence"]
            .as_f64()
            .expect("confidence")
            > 0.99
    );

    // Logs are captured per execution.
    let id = executions[0]["id"].as_i64().expect("id").to_string();
    let logs = home.ok(&["executions", "logs", &id]);
    assert!(
        logs.contains("[info] loading model res10_300x300_ssd.onnx"),
        "{logs}"
    );
}

#[test]
fn packages_get_revisions_and_artifacts_are_stored_once() {
    let home = Home::new();
    let first = home.ok(&["package", "push", path(&face_detector_dir())]);
    assert!(first.contains("pushed face-detector revision 1"), "{first}");
    let blobs = || walk_count(&home.path().join("blobs"));
    let before = blobs();
    let second = home.ok(&["package", "push", path(&face_detector_dir())]);
    assert!(
        second.contains("pushed face-detector revision 2"),
        "{second}"
    );
    assert_eq!(
        blobs(),
        before,
        "an unchanged component and model are not stored again"
    );
    let list = home.ok(&["package", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("face-detector") && l.contains(" 2 ")),
        "{list}"
    );
    let show = home.ok(&["package", "show", "face-detector"]);
    assert_eq!(show.matches("artifact res10_300x300_ssd.onnx: sha256:93e9c5f997a510e5186ff14e3b536d19e49b32b5d1e358705dc25b2accd9f605").count(), 2, "{show}");

    let err = home.fails(&["package", "show", "nope"]);
    assert!(err.contains("no package named `nope`"), "{err}");
    let missing_model =
        package_variant(|m| m.replace("models/res10_300x300_ssd.onnx", "models/gone.onnx"));
    let err = home.fails(&["package", "push", path(missing_model.path())]);
    assert!(
        err.contains("gone.onnx") && err.contains("artifacts[0]"),
        "{err}"
    );
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    if e.path().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn deploy_checks_init_inputs_and_settings() {
    let home = Home::new();
    let err = home.fails(&["service", "deploy", "face-detector", "--name", "x"]);
    assert!(err.contains("no package named `face-detector`"), "{err}");
    // A variant that declares an input without a default.
    let required =
        package_variant(|m| m + "\n[[module.init_inputs]]\nname = \"camera\"\ntype = \"string\"\n");
    home.ok(&["package", "push", path(required.path())]);
    for (args, expected) in [
        (
            vec![],
            "init input `camera` is required (type string) and has no default",
        ),
        (
            vec!["--init", "camera=front", "--init", "zoom=2"],
            "unknown init input `zoom`",
        ),
        (
            vec!["--init", "camera=front", "--init", "min_confidence=most"],
            "init input `min_confidence`: expected a float, got `most`",
        ),
        (
            vec!["--init", "camera=front", "--concurrency", "0"],
            "--concurrency must be at least 1",
        ),
        (
            vec!["--init", "camera=front", "--revision", "7"],
            "package `face-detector` has no revision 7 (latest is 1)",
        ),
    ] {
        let mut all = vec!["service", "deploy", "face-detector", "--name", "faces"];
        all.extend(args.iter());
        let err = home.fails(&all);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let out = home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "faces",
        "--init",
        "camera=front",
        "--concurrency",
        "2",
        "--timeout",
        "5",
        "--max-attempts",
        "3",
        "--memory-mb",
        "512",
    ]);
    assert!(
        out.contains("created service faces (face-detector revision 1, generation 1)"),
        "{out}"
    );
    let s = home.json(&["service", "show", "faces"]);
    assert_eq!(
        s["settings"],
        serde_json::json!({
            "concurrency": 2, "timeout_ms": 5000, "max_attempts": 3, "memory_mb": 512,
            "init_timeout_ms": 120000, "max_item_mb": 256, "max_annotations": 10000, "log_kb": 1024,
            "allow_inference": false, "inference_engine": "auto", "inference_threads": 1,
            "min_instances": 0, "idle_ms": 300000
        })
    );
    assert_eq!(s["init_inputs"]["camera"], "front");
    assert_eq!(s["init_inputs"]["min_confidence"], 0.5);

    // Updating keeps what is not given, bumps the generation; rollback returns to revision 1.
    home.ok(&["package", "push", path(required.path())]);
    let out = home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "faces",
        "--init",
        "min_confidence=0.7",
    ]);
    assert!(
        out.contains("updated service faces (face-detector revision 2, generation 2)"),
        "{out}"
    );
    let s = home.json(&["service", "show", "faces"]);
    assert_eq!(
        (
            s["init_inputs"]["camera"].clone(),
            s["init_inputs"]["min_confidence"].clone()
        ),
        ("front".into(), 0.7.into())
    );
    assert_eq!(s["settings"]["concurrency"], 2);
    let out = home.ok(&["service", "rollback", "faces"]);
    assert!(
        out.contains("now runs face-detector revision 1 (generation 3)"),
        "{out}"
    );
    let list = home.ok(&["service", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("faces") && l.contains("active")),
        "{list}"
    );
    home.ok(&["service", "pause", "faces"]);
    assert!(home.ok(&["service", "list"]).contains("paused"));
    home.ok(&["service", "delete", "faces"]);
    let err = home.fails(&["service", "show", "faces"]);
    assert!(err.contains("no service named `faces`"), "{err}");
}

#[test]
fn triggers_validate_service_function_and_filters() {
    let home = Home::new();
    home.seed_flow(&[]);
    for (args, expected) in [
        (
            vec!["trigger", "create", "t", "--service", "nope"],
            "no service named `nope`",
        ),
        (
            vec![
                "trigger",
                "create",
                "t",
                "--service",
                "face-detector",
                "--function",
                "segment",
            ],
            "has no function `segment`",
        ),
        (
            vec![
                "trigger",
                "create",
                "t",
                "--service",
                "face-detector",
                "--filter",
                "mimetype",
            ],
            "invalid filter `mimetype`",
        ),
        (
            vec![
                "trigger",
                "create",
                "t",
                "--service",
                "face-detector",
                "--filter",
                "a ~ b",
            ],
            "expected `=`, `!=` or ` in `",
        ),
        (
            vec!["trigger", "create", "faces", "--service", "face-detector"],
            "a trigger named `faces` exists already",
        ),
        (
            vec![
                "trigger",
                "create",
                "t",
                "--service",
                "face-detector",
                "--mode",
                "twice",
            ],
            "invalid value 'twice'",
        ),
    ] {
        let err = home.fails(&args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let list = home.json(&["trigger", "list"]);
    assert_eq!(list[0]["filters"][0], "metadata.system.mimetype=image/*");
}

fn upload_twice(mode: &str) -> Vec<Value> {
    let home = Home::new();
    home.seed_flow(&[
        "--actions",
        "created,updated",
        "--mode",
        mode,
        "--dataset",
        "d",
    ]);
    let dir = tempdir();
    let file = dir.path().join("face.png");
    std::fs::copy(images().join("skimage_astronaut.png"), &file).expect("copy");
    home.ok(&["upload", path(&file), "--dataset", "d"]);
    // The same bytes again: no event at all.
    let out = home.ok(&["upload", path(&file), "--dataset", "d"]);
    assert!(out.contains("1 unchanged; 0 executions queued"), "{out}");
    // Changed bytes under the same name: an update.
    std::fs::copy(images().join("skimage_camera.png"), &file).expect("copy");
    let out = home.ok(&["upload", path(&file), "--dataset", "d"]);
    assert!(out.contains("1 updated"), "{out}");
    // Another dataset is not watched by this trigger.
    home.ok(&["upload", path(&file), "--dataset", "other"]);
    home.ok(&["work", "--until-idle"]);
    home.executions()
}

#[test]
fn once_runs_an_item_once_always_runs_every_event() {
    let once = upload_twice("once");
    assert_eq!(once.len(), 1, "{once:#?}");
    let always = upload_twice("always");
    assert_eq!(always.len(), 2, "{always:#?}");
    assert_eq!(status_count(&always, "success"), 2);
}

#[test]
fn failures_are_recorded_rerun_and_direct_execution_replaces_annotations() {
    let home = Home::new();
    home.seed_flow(&[]);
    let dir = tempdir();
    let png = std::fs::read(images().join("skimage_astronaut.png")).expect("read");
    std::fs::write(dir.path().join("broken.png"), &png[..png.len() / 4]).expect("write");
    std::fs::copy(
        images().join("skimage_astronaut.png"),
        dir.path().join("good.png"),
    )
    .expect("copy");
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    home.ok(&["work", "--until-idle"]);
    let failed = home.json(&["executions", "list", "--status", "failed", "--json"]);
    assert_eq!(failed.as_array().map(Vec::len), Some(1));
    assert_eq!(failed[0]["item"], "broken.png");
    let error = failed[0]["error"].as_str().expect("error");
    assert!(
        error.contains("invalid item") && error.contains("cannot decode image"),
        "{error}"
    );

    let out = home.ok(&["executions", "rerun", "--status", "failed"]);
    assert!(out.contains("queued 1 executions again"), "{out}");
    home.ok(&["work", "--until-idle"]);
    assert_eq!(
        status_count(&home.executions(), "failed"),
        2,
        "the rerun failed too, and history is kept"
    );
    // Reruns never multiply: only the latest execution of an item is rerun, and one that
    // is queued again already is not queued a second time.
    let out = home.ok(&["executions", "rerun", "--status", "failed"]);
    assert!(
        out.contains("queued 1 executions again; skipped 1"),
        "{out}"
    );
    let out = home.ok(&["executions", "rerun", "--status", "failed"]);
    assert!(
        out.contains("queued 0 executions again; skipped 2"),
        "{out}"
    );
    home.ok(&["work", "--until-idle"]);
    assert_eq!(status_count(&home.executions(), "failed"), 3);

    // Direct execution, twice: annotations are replaced, not duplicated.
    let items = home.json(&["items", "list", "--json"]);
    let good = items
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["name"] == "good.png")
        .expect("good")["id"]
        .to_string();
    for _ in 0..2 {
        let result = home.json(&["execute", "face-detector", "--item", &good]);
        assert_eq!(result["execution"]["status"], "success", "{result:#}");
        assert_eq!(result["annotations"].as_array().map(Vec::len), Some(1));
    }
    let export = home.export("d");
    let good_entry = export
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["item"]["name"] == "good.png")
        .expect("good");
    assert_eq!(
        good_entry["annotations"].as_array().map(Vec::len),
        Some(1),
        "no duplicates"
    );
    let err = home.fails(&["execute", "face-detector", "--item", "999"]);
    assert!(err.contains("no item with id 999"), "{err}");
}

#[test]
fn paused_services_keep_their_queue_until_resumed() {
    let home = Home::new();
    home.seed_flow(&[]);
    home.ok(&["service", "pause", "face-detector"]);
    home.ok(&[
        "upload",
        path(&images().join("skimage_camera.png")),
        "--dataset",
        "d",
    ]);
    home.ok(&["work", "--until-idle"]);
    assert_eq!(status_count(&home.executions(), "queued"), 1);
    home.ok(&["service", "resume", "face-detector"]);
    home.ok(&["work", "--until-idle"]);
    assert_eq!(status_count(&home.executions(), "success"), 1);
}

#[test]
fn deploying_while_busy_loses_nothing_and_switches_revision_between_executions() {
    let home = Home::new();
    home.seed_flow(&[]);
    let mut serve = home.spawn(&["serve"]);
    // Uploaded from another process while `serve` runs.
    for d in ["d1", "d2", "d3"] {
        home.ok(&["upload", path(&images()), "--dataset", d]);
    }
    home.wait_for(60, "the first execution to finish", |all| {
        status_count(all, "success") >= 1
    });
    let v2 = package_variant(|m| m.replace("version = \"0.1.0\"", "version = \"0.2.0\""));
    home.ok(&["package", "push", path(v2.path())]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "face-detector",
    ]);
    let all = home.wait_for(120, "every execution to succeed", |all| {
        all.len() == 30 && status_count(all, "success") == 30
    });
    serve.kill().expect("stop serve");
    let _ = serve.wait();

    assert_switched_once(&all, 30);
}

#[test]
fn a_killed_host_is_recovered_on_restart() {
    let home = Home::new();
    home.seed_flow(&[]);
    home.ok(&["upload", path(&images()), "--dataset", "d"]);
    let mut serve = home.spawn(&["serve"]);
    home.wait_for(
        60,
        "an execution to be running after one succeeded",
        |all| status_count(all, "success") >= 1 && status_count(all, "running") == 1,
    );
    // A real SIGKILL: no chance to clean up.
    serve.kill().expect("kill -9");
    let _ = serve.wait();
    // Almost always one execution was mid-run; the kill can also land in the instant
    // between one commit and the next claim.
    let interrupted = status_count(&home.executions(), "running");
    assert!(interrupted <= 1, "one worker, so at most one was running");

    let out = home.run(&["work", "--until-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    if interrupted == 1 {
        assert!(
            stderr(&out).contains("re-queued 1 executions interrupted by a stopped host"),
            "{}",
            stderr(&out)
        );
    }
    let all = home.executions();
    assert_eq!(all.len(), 10);
    assert_eq!(status_count(&all, "success"), 10, "{all:#?}");
    let export = home.export("d");
    for entry in export.as_array().expect("items") {
        let name = entry["item"]["name"].as_str().expect("name");
        assert_eq!(
            entry["annotations"].as_array().map(Vec::len),
            Some(reference(name).len()),
            "{name}: no duplicates"
        );
    }
}

#[test]
fn serve_drains_on_interrupt_and_one_scheduler_runs_per_home() {
    let home = Home::new();
    home.seed_flow(&[]);
    let mut serve = home.spawn(&["serve"]);
    home.ok(&[
        "upload",
        path(&images().join("skimage_astronaut.png")),
        "--dataset",
        "d",
    ]);
    home.wait_for(60, "the execution", |all| status_count(all, "success") == 1);
    let err = home.fails(&["work", "--until-idle"]);
    assert!(
        err.contains("another `prelabel serve` or `prelabel work` is running"),
        "{err}"
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &serve.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let exit = serve.wait().expect("serve exits");
    assert!(exit.success(), "Ctrl-C is a clean exit: {exit:?}");
}

/// (start, end) of each finished execution, as milliseconds comparable strings.
fn intervals(all: &[Value]) -> Vec<(String, String)> {
    all.iter()
        .map(|e| {
            (
                e["started_at"].as_str().expect("started").to_string(),
                e["finished_at"].as_str().expect("finished").to_string(),
            )
        })
        .collect()
}

fn max_overlap(spans: &[(String, String)]) -> usize {
    spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(s2, e2)| s2 <= s && s < e2).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn concurrency_bounds_how_many_run_at_once() {
    for (concurrency, expected) in [("1", 1), ("2", 2)] {
        let home = Home::new();
        home.ok(&["package", "push", path(&face_detector_dir())]);
        home.ok(&[
            "service",
            "deploy",
            "face-detector",
            "--name",
            "faces",
            "--concurrency",
            concurrency,
        ]);
        home.ok(&["trigger", "create", "t", "--service", "faces"]);
        home.ok(&["upload", path(&images()), "--dataset", "d"]);
        home.ok(&["work", "--until-idle"]);
        let all = home.executions();
        assert_eq!(status_count(&all, "success"), 10);
        let spans = intervals(&all);
        assert_eq!(
            max_overlap(&spans),
            expected,
            "concurrency {concurrency}: {spans:#?}"
        );
        if expected == 1 {
            let starts: Vec<&String> = spans.iter().map(|(s, _)| s).collect();
            assert!(
                starts.windows(2).all(|w| w[0] <= w[1]),
                "one at a time runs in queue order"
            );
        }
    }
}

#[test]
fn timeouts_fail_the_execution_after_its_attempts_and_the_service_carries_on() {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "faces",
        "--timeout",
        "0.001",
        "--max-attempts",
        "2",
    ]);
    home.ok(&["trigger", "create", "t", "--service", "faces"]);
    home.ok(&[
        "upload",
        path(&images().join("skimage_camera.png")),
        path(&images().join("skimage_astronaut.png")),
        "--dataset",
        "d",
    ]);
    home.ok(&["work", "--until-idle"]);
    let all = home.executions();
    assert_eq!(status_count(&all, "timed-out"), 2, "{all:#?}");
    for e in &all {
        assert_eq!(e["attempts"], 2);
        let error = e["error"].as_str().expect("error");
        assert!(
            error.contains("detect timed out after 0.001s (limit)"),
            "{error}"
        );
    }
    let logs = home.ok(&["executions", "logs", &all[0]["id"].to_string()]);
    assert_eq!(logs.matches("[prelabel] attempt").count(), 2, "{logs}");
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "faces",
        "--timeout",
        "60",
    ]);
    home.ok(&["executions", "rerun"]);
    home.ok(&["work", "--until-idle"]);
    assert_eq!(status_count(&home.executions(), "success"), 2);
}

#[test]
fn stored_rows_are_read_strictly_and_missing_datasets_are_named() {
    let home = Home::new();
    for args in [
        &[
            "annotations",
            "export",
            "--dataset",
            "nope",
            "--format",
            "coco",
        ][..],
        &["items", "list", "--dataset", "nope"][..],
    ] {
        let err = home.fails(args);
        assert!(err.contains("no dataset named `nope`"), "{args:?}: {err}");
    }
    home.seed_flow(&[]);
    let dir = tempdir();
    std::fs::write(dir.path().join("a.png"), png(10, 10)).expect("write");
    // A stored filter that no longer parses is an error, not a trigger that matches more.
    let corrupt = "UPDATE triggers SET filters = '[\"metadata.system.mimetype ~ image\"]'";
    home.sql(corrupt, corrupt);
    let err = home.fails(&["upload", path(dir.path()), "--dataset", "d"]);
    assert!(err.contains("metadata.system.mimetype ~ image"), "{err}");
    // A column that is not JSON names the column.
    let corrupt = "UPDATE triggers SET filters = 'not json'";
    home.sql(corrupt, corrupt);
    let err = home.fails(&["trigger", "list"]);
    assert!(
        err.contains("stored column `filters` holds `not json`"),
        "{err}"
    );
    let err = home.fails(&["upload", path(dir.path()), "--dataset", "d"]);
    assert!(err.contains("stored column `filters`"), "{err}");
    assert_eq!(
        home.json(&["items", "list", "--json"]),
        serde_json::json!([]),
        "the failed uploads stored nothing"
    );
}

/// Issue 36: a process whose heartbeat could not be written in time (another process held
/// the store's write lock past the lease, or the row's lock; a machine too busy) took itself
/// for lost and queued its own running executions again, failing a photo as "host stopped
/// during this execution 2 times". Here the worker's heartbeat is stalled for real (the
/// write lock on SQLite, the worker's row on PostgreSQL, for twice the lease) and, all along,
/// made stale behind its back: every execution still runs once and succeeds, and the late
/// heartbeat is logged.
#[test]
fn a_worker_never_takes_its_own_running_executions_for_lost() {
    let home = Home::new();
    deploy_hostile_package(
        &home,
        &hostile_guest(),
        "naps",
        &["--concurrency", "2", "--max-attempts", "3"],
    );
    home.ok(&["trigger", "create", "naps", "--service", "naps"]);
    const ITEMS: usize = 16;
    let dir = tempdir();
    for i in 0..ITEMS {
        // 20 pixels wide: the guest naps 200 ms.
        std::fs::write(dir.path().join(format!("nap-{i:02}.png")), png(20, 20)).expect("an item");
    }
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    let lease = 1.0;
    let mut work = command(home.path())
        .env("PRELABEL_LEASE", lease.to_string())
        .args(["work", "--until-idle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prelabel work starts");
    let stale = "UPDATE workers SET heartbeat_ms = 0";
    let started = std::time::Instant::now();
    let mut held = false;
    while work.try_wait().expect("wait").is_none() {
        assert!(started.elapsed().as_secs() < 120, "work did not finish");
        if !held && started.elapsed().as_secs_f64() > 1.0 {
            hold_the_heartbeat(&home, std::time::Duration::from_secs_f64(2.0 * lease));
            held = true;
        }
        home.sql(stale, stale);
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    let out = work.wait_with_output().expect("work's output");
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(held, "work ended before its heartbeat was held: {log}");
    let all = home.executions();
    assert_eq!(all.len(), ITEMS);
    for e in &all {
        assert_eq!(e["status"], "success", "{e:#}");
        assert_eq!(e["attempts"], 1, "run once: {e:#}");
        let logs = e["logs"].as_str().unwrap_or_default();
        assert!(!logs.contains("host stopped"), "{e:#}");
    }
    assert!(
        log.contains("its heartbeat was") && log.contains("past its lease"),
        "the late heartbeat is logged: {log}"
    );
}

/// Holds what a heartbeat writes for `how_long`, from another process's session: the store's
/// write lock on SQLite, the workers' rows on PostgreSQL.
fn hold_the_heartbeat(home: &Home, how_long: std::time::Duration) {
    if crate::support::postgres::enabled() {
        let mut db = crate::support::postgres::client(home.path());
        let mut tx = db.transaction().expect("a transaction");
        tx.batch_execute("SELECT * FROM workers FOR UPDATE")
            .expect("the rows locked");
        std::thread::sleep(how_long);
        tx.commit().expect("commit");
    } else {
        let db = rusqlite::Connection::open(home.path().join("prelabel.db")).expect("the store");
        db.execute_batch("BEGIN IMMEDIATE").expect("the write lock");
        std::thread::sleep(how_long);
        db.execute_batch("COMMIT").expect("commit");
    }
}
