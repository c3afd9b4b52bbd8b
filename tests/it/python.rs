//! Detectors written in Python (`guest/python`, built by componentize-py): the SDK's mapping
//! in plain CPython, the seed's face detector in Python against the Rust component, a Python
//! package built by `package push` and run as a service, and the hostile behaviours of
//! `tests/guests/hostile` in Python.

use crate::support::*;
use serde_json::Value;

#[test]
fn the_sdk_maps_a_class_onto_the_world() {
    // In plain CPython against the bindings componentize-py generates for the world, the
    // host's imports replaced by recorders: each rule of the mapping alone, in a second.
    let venv = venv("componentize-py", &["componentize-py==0.25.1"]);
    let bindings = tempdir();
    let generated = std::process::Command::new(venv.join("bin/componentize-py"))
        .args([
            "-d",
            path(&root().join("wit")),
            "-w",
            "detector",
            "bindings",
        ])
        .arg(bindings.path())
        .output()
        .expect("componentize-py runs");
    assert!(generated.status.success(), "{}", stderr(&generated));
    let python_path = format!(
        "{}:{}",
        path(bindings.path()),
        path(&root().join("guest/python"))
    );
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg(root().join("tests/it/python/sdk_test.py"))
        .env("PYTHONPATH", python_path)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("Ran 8 tests"), "{}", stderr(&out));
}

#[test]
fn the_python_face_detector_finds_the_rust_components_faces_on_every_sample_photo() {
    let python = python_face_detector();
    let images = fixtures().join("images");
    let ours = detect_results(&[
        "detect",
        path(&python),
        path(&images),
        "--allow-inference",
        "--no-build",
    ]);
    let rust = detect_results(&["detect", path(&face_detector()), path(&images)]);
    assert_eq!(ours.len(), 10);
    assert_eq!(rust.len(), 10);
    let mut faces = 0;
    for (py, rs) in ours.iter().zip(&rust) {
        let name = py["name"].as_str().expect("name");
        assert_eq!(rs["name"], name);
        assert!(py.get("error").is_none(), "{name}: {}", py["error"]);
        let want: Vec<Reference> = boxes(rs)
            .into_iter()
            .map(|(bbox, confidence)| Reference { bbox, confidence })
            .collect();
        // Same count, IoU >= 0.95, confidence within 0.02.
        assert_matches(name, &boxes(py), &want, 0.95);
        faces += want.len();
        for a in py["annotations"].as_array().expect("annotations") {
            assert_eq!(a["label"], "face");
            assert_eq!(a["model"]["name"], "res10_300x300_ssd");
        }
    }
    // Not a match of two empty lists: the sample photos hold faces.
    assert!(faces >= 8, "only {faces} faces in the sample photos");
}

#[test]
fn without_the_inference_permission_the_python_detector_says_what_it_needs() {
    let python = python_face_detector();
    let home = tempdir();
    let out = prelabel(
        home.path(),
        &[
            "detect",
            path(&python),
            path(&fixtures().join("images/skimage_camera.png")),
            "--no-build",
        ],
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("init failed (artifact)") && text.contains("--allow-inference"),
        "{text}"
    );
}

#[test]
fn a_python_package_is_built_by_push_and_runs_as_a_service() {
    python_face_detector();
    let home = Home::new();
    // A copy of the package whose app is edited: push must build it, not read a stale component.
    let dir = tempdir();
    let package = dir.path().join("pkg");
    std::fs::create_dir_all(&package).expect("folder");
    let source = root().join("guest/python-face-detector");
    let app = std::fs::read_to_string(source.join("app.py"))
        .expect("app.py")
        .replace(
            "model_version = \"0.1.0\"",
            "model_version = \"0.1.0-edited\"",
        );
    std::fs::write(package.join("app.py"), app).expect("app.py");
    let up = up_to_root(&package);
    let manifest = std::fs::read_to_string(source.join("prelabel.toml"))
        .expect("manifest")
        .replace(
            "\"../python/build.py\"",
            &format!("\"{up}guest/python/build.py\""),
        )
        .replace("\"../../wit\"", &format!("\"{up}wit\""))
        .replace("../../models", &format!("{up}models"));
    std::fs::write(package.join("prelabel.toml"), manifest).expect("manifest");

    let out = home.run(&["package", "push", path(&package)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        package.join("target/python_face_detector.wasm").is_file(),
        "push ran the build"
    );
    assert!(stdout(&out).contains("pushed python-face-detector revision 1"));
    home.ok(&[
        "service",
        "deploy",
        "python-face-detector",
        "--name",
        "faces",
        "--allow-inference",
    ]);
    home.ok(&["trigger", "create", "faces", "--service", "faces"]);
    home.ok(&[
        "upload",
        path(&fixtures().join("images/matplotlib_grace_hopper.jpg")),
        "--dataset",
        "d",
    ]);
    home.ok(&["work", "--until-idle"]);
    let export = home.export("d");
    let annotations = export[0]["annotations"].as_array().expect("annotations");
    assert_eq!(annotations.len(), 1, "{export:#}");
    assert_eq!(annotations[0]["model"]["version"], "0.1.0-edited");

    // A build that fails is named, and nothing is pushed.
    std::fs::write(package.join("app.py"), "this is not python").expect("app.py");
    let err = home.fails(&["package", "push", path(&package)]);
    assert!(
        err.contains("the package's build") && err.contains("failed"),
        "{err}"
    );
    let revisions = home.ok(&["package", "show", "python-face-detector"]);
    assert!(
        revisions.contains("python-face-detector revision 1") && !revisions.contains("revision 2"),
        "{revisions}"
    );
}

#[test]
fn each_hostile_python_guest_fails_alone_with_its_cause_named() {
    let home = Home::new();
    home.ok(&["package", "push", path(&hostile_python()), "--no-build"]);
    home.ok(&[
        "service",
        "deploy",
        "hostile-python",
        "--name",
        "hostile",
        "--timeout",
        "2",
        "--memory-mb",
        "256",
    ]);
    home.ok(&["trigger", "create", "hostile", "--service", "hostile"]);
    let by_item = run_items(
        &home,
        &[
            "ok-1.png",
            "loop.png",
            "ok-2.png",
            "alloc.png",
            "ok-3.png",
            "sleep.png",
            "ok-4.png",
            "raise.png",
            "invalid.png",
            "return.png",
            "bomb.png",
            "nonsense.png",
            "huge.png",
            "blob.png",
            "ok-5.png",
        ],
    );
    let expect =
        |name: &str, status: &str, error: &str| assert_outcome(&by_item, name, status, error);
    for ok in ["ok-1.png", "ok-2.png", "ok-3.png", "ok-4.png", "ok-5.png"] {
        expect(ok, "success", "");
    }
    expect("loop.png", "timed-out", "detect timed out after 2s (limit)");
    expect(
        "sleep.png",
        "timed-out",
        "detect timed out after 2s (limit)",
    );
    expect(
        "alloc.png",
        "failed",
        "detect exceeded the memory limit of 256 MiB",
    );
    expect(
        "raise.png",
        "failed",
        "detect failed (internal): ValueError: boom on purpose on raise.png",
    );
    expect(
        "invalid.png",
        "failed",
        "detect failed (invalid item): invalid.png is not for me",
    );
    expect(
        "return.png",
        "failed",
        "TypeError: detect must return Box, Point or Label values, got str",
    );
    expect(
        "bomb.png",
        "failed",
        "detect failed (invalid item): cannot make a blob of the item: image is 100000x100000",
    );
    expect(
        "nonsense.png",
        "failed",
        "detect failed (internal): blob width must be within 1..=16384, got 0",
    );
    expect(
        "huge.png",
        "failed",
        "detect exceeded the memory limit of 256 MiB (image decoding)",
    );
    expect("blob.png", "success", "");
    let export = home.export("d");
    let label_of = |name: &str| {
        export
            .as_array()
            .expect("items")
            .iter()
            .find(|e| e["item"]["name"] == name)
            .map(|e| e["annotations"][0]["label"].clone())
    };
    assert_eq!(label_of("blob.png"), Some(Value::from("10x10")));
    // The exception's traceback is in the execution's logs.
    let logs = home.ok(&[
        "executions",
        "logs",
        &by_item["raise.png"]["id"].to_string(),
    ]);
    assert!(
        logs.contains("Traceback") && logs.contains("in detect"),
        "{logs}"
    );
}
