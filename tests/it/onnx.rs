//! Bring your own model: `prelabel new onnx` around a trained detector, no code. The two face
//! models through the generic decoders give the dedicated detectors' boxes; YOLO graphs whose
//! right boxes are known by construction come back through the letterbox with the metadata's
//! names; models and settings that cannot work are refused naming why.

use std::path::{Path, PathBuf};

use crate::support::graphs::constant_detector;
use crate::support::*;
use serde_json::Value;

/// `prelabel new onnx NAME` with `args` into a fresh folder; its output and the package.
fn package(dir: &Path, name: &str, args: &[&str]) -> (String, PathBuf) {
    let home = Home::new();
    let package = dir.join(name);
    let mut all = vec!["new", "onnx", name, "--dir", path(&package)];
    all.extend_from_slice(args);
    let out = home.ok(&all);
    // The folder is the package: it names nothing outside itself.
    let manifest = std::fs::read_to_string(package.join("prelabel.toml")).expect("manifest");
    assert!(!manifest.contains("../"), "{manifest}");
    (out, package)
}

/// `prelabel detect` outside the checkout's package root (the folder must be whole).
fn run_detect(package: &Path, images: &Path, extra: &[&str]) -> std::process::Output {
    let home = tempdir();
    command(home.path())
        .env_remove("PRELABEL_PACKAGE_ROOT")
        .args(["detect", path(package), path(images)])
        .args(extra)
        .output()
        .expect("prelabel runs")
}

/// [`run_detect`], asserted to succeed: a result per image.
fn detect(package: &Path, images: &Path, extra: &[&str]) -> Vec<Value> {
    let out = run_detect(package, images, extra);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    json.as_array().expect("a result per image").clone()
}

/// [`run_detect`], asserted to fail: what it says (an image's error, or init's).
fn detect_error(package: &Path, images: &Path, extra: &[&str]) -> String {
    let out = run_detect(package, images, extra);
    assert!(!out.status.success(), "{}", stdout(&out));
    format!("{}{}", stdout(&out), stderr(&out))
}

/// Every result has the same boxes as `want`'s (IoU 0.99, confidence within 1e-4), labelled
/// `label`.
fn assert_same_boxes(got: &[Value], want: &[Value], label: &str) -> usize {
    assert_eq!(got.len(), want.len());
    let mut count = 0;
    for (g, w) in got.iter().zip(want) {
        let name = &w["name"];
        assert_eq!(g["name"], *name);
        assert!(g.get("error").is_none(), "{name}: {}", g["error"]);
        let only_boxes = |r: &Value| -> Vec<([f32; 4], f32)> {
            let mut r = r.clone();
            let kept: Vec<Value> = r["annotations"]
                .as_array()
                .expect("annotations")
                .iter()
                .filter(|a| a["geometry"]["type"] == "box")
                .cloned()
                .collect();
            r["annotations"] = Value::Array(kept);
            boxes(&r)
        };
        let (got_boxes, want_boxes) = (only_boxes(g), only_boxes(w));
        assert_eq!(got_boxes.len(), want_boxes.len(), "{name}: {got_boxes:?}");
        for (wb, wc) in &want_boxes {
            let (gb, gc) = got_boxes
                .iter()
                .max_by(|a, b| iou(&a.0, wb).total_cmp(&iou(&b.0, wb)))
                .expect("a box");
            assert!(iou(gb, wb) >= 0.99, "{name}: {gb:?} against {wb:?}");
            assert!((gc - wc).abs() <= 1e-4, "{name}: {gc} against {wc}");
        }
        for a in g["annotations"].as_array().expect("annotations") {
            assert_eq!(a["label"], label, "{name}");
        }
        count += want_boxes.len();
    }
    count
}

#[test]
fn the_face_models_through_the_generic_decoders_give_the_dedicated_boxes() {
    let dir = tempdir();
    let labels = dir.path().join("face.txt");
    std::fs::write(&labels, "face\n").expect("labels");
    let images = fixtures().join("images");

    // res10 as OpenCV feeds it: BGR, its means, stretched to the 300x300 it declares.
    let (said, res10) = package(
        dir.path(),
        "res10-generic",
        &[
            "--model",
            path(&root().join("models/res10_300x300_ssd.onnx")),
            "--labels",
            path(&labels),
            "--channels",
            "bgr",
            "--mean",
            "104,177,123",
        ],
    );
    assert!(
        said.contains(
            "format ssd (from its outputs), input 300x300, 1 labels from the labels file"
        ),
        "{said}"
    );
    let dedicated = detect_results(&["detect", path(&face_detector()), path(&images)]);
    let generic = detect(&res10, &images, &[]);
    assert_eq!(
        assert_same_boxes(&generic, &dedicated, "face"),
        10,
        "res10's faces"
    );
    // The host's engine through wasi-nn: the same boxes (ONNX Runtime's sums differ in the
    // last bits).
    let on_host = detect(
        &res10,
        &images,
        &["--init", "inference=host", "--allow-inference"],
    );
    assert_same_boxes(&on_host, &dedicated, "face");

    // CenterFace: a placeholder 32x32 input, so it runs at each image's own size.
    let (said, centerface_generic) = package(
        dir.path(),
        "centerface-generic",
        &[
            "--model",
            path(&root().join("models/centerface.onnx")),
            "--labels",
            path(&labels),
        ],
    );
    assert!(
        said.contains("format centernet (from its outputs), input image"),
        "{said}"
    );
    let dedicated = detect_results(&["detect", path(&centerface()), path(&images)]);
    let generic = detect(&centerface_generic, &images, &[]);
    assert_eq!(
        assert_same_boxes(&generic, &dedicated, "face"),
        26,
        "CenterFace's faces"
    );
}

/// An image box (left, top, right, bottom) as a YOLO candidate (centre x, centre y, width,
/// height) on the input it is letterboxed into.
fn on_input(b: [f32; 4], scale: f32, pad: (f32, f32)) -> [f32; 4] {
    let [l, t, r, bt] = b.map(|v| v * scale);
    [(l + r) / 2.0 + pad.0, (t + bt) / 2.0 + pad.1, r - l, bt - t]
}

#[test]
fn yolo_boxes_come_back_through_the_letterbox_with_the_metadata_s_names() {
    // A 200x100 image into 64x64: scaled by 0.32 to 64x32, 16 grey rows above.
    let (scale, pad) = (0.32, (0.0, 16.0));
    let cat = [20.0, 10.0, 70.0, 60.0];
    let near = [25.0, 12.0, 72.0, 62.0];
    let far = [120.0, 40.0, 180.0, 90.0];
    // (box, objectness, cat score, dog score)
    let candidates = [
        (cat, 1.0, 0.9, 0.0),      // kept
        (near, 1.0, 0.8, 0.1),     // a worse cat on the cat: suppressed
        (near, 1.0, 0.1, 0.7),     // a dog there: another class, kept
        (far, 1.0, 0.0, 0.2),      // under 0.25
        (far, f32::NAN, 0.9, 0.9), // NaN is never kept
        (far, 0.5, 0.0, 0.6),      // 0.5 x 0.6 = 0.3
    ];
    let dir = tempdir();
    let image_dir = dir.path().join("images");
    std::fs::create_dir(&image_dir).expect("dir");
    std::fs::write(image_dir.join("wide.png"), png(200, 100)).expect("image");
    for layout in ["yolov5", "yolov8"] {
        let n = candidates.len();
        let rows: Vec<Vec<f32>> = candidates
            .iter()
            .map(|(b, objectness, c, d)| {
                let mut row = on_input(*b, scale, pad).to_vec();
                if layout == "yolov5" {
                    row.extend([*objectness, *c, *d]);
                } else {
                    // v8 has no objectness: its class scores are final.
                    row.extend([c * objectness, d * objectness]);
                }
                row
            })
            .collect();
        let (dims, values) = if layout == "yolov5" {
            (vec![1, n as i64, 7], rows.concat())
        } else {
            // Transposed: a column per candidate.
            let values = (0..6)
                .flat_map(|k| rows.iter().map(move |r| r[k]))
                .collect();
            (vec![1, 6, n as i64], values)
        };
        // Many candidates per value, as real exports have, so the format can be told.
        let model = dir.path().join(format!("{layout}.onnx"));
        let padded = pad_candidates(&dims, values, layout);
        std::fs::write(
            &model,
            constant_detector(64, &padded.0, padded.1, &["cat", "dog"]),
        )
        .expect("model");
        let (said, package) = package(dir.path(), layout, &["--model", path(&model)]);
        assert!(
            said.contains(&format!("format {layout} (from its outputs), input 64x64, 2 labels from the model's metadata")),
            "{said}"
        );
        let results = detect(&package, &image_dir, &[]);
        let found: Vec<(String, [f32; 4], f32)> = results[0]["annotations"]
            .as_array()
            .expect("annotations")
            .iter()
            .zip(boxes(&results[0]))
            .map(|(a, (b, c))| (a["label"].as_str().expect("label").to_string(), b, c))
            .collect();
        let want = [("cat", cat, 0.9), ("dog", near, 0.7), ("dog", far, 0.3)];
        assert_eq!(found.len(), want.len(), "{layout}: {found:?}");
        for ((label, b, c), (wl, wb, wc)) in found.iter().zip(&want) {
            assert_eq!(label, wl, "{layout}: {found:?}");
            assert!(iou(b, wb) > 0.999, "{layout}: {b:?} against {wb:?}");
            assert!((c - wc).abs() < 1e-5, "{layout}: {c} against {wc}");
        }
        // A service keeps only what it asks for.
        let dogs = detect(&package, &image_dir, &["--init", "classes=dog"]);
        let labels: Vec<&Value> = dogs[0]["annotations"]
            .as_array()
            .expect("annotations")
            .iter()
            .map(|a| &a["label"])
            .collect();
        assert_eq!(labels, ["dog", "dog"], "{layout}");
    }
}

/// The candidates padded with empty ones (all zeros) to 200, in the layout's order.
fn pad_candidates(dims: &[i64], values: Vec<f32>, layout: &str) -> (Vec<i64>, Vec<f32>) {
    const N: usize = 200;
    if layout == "yolov5" {
        let per = dims[2] as usize;
        let mut values = values;
        values.resize(N * per, 0.0);
        (vec![1, N as i64, per as i64], values)
    } else {
        let (per, n) = (dims[1] as usize, dims[2] as usize);
        let mut out = vec![0.0; per * N];
        for k in 0..per {
            out[k * N..k * N + n].copy_from_slice(&values[k * n..(k + 1) * n]);
        }
        (vec![1, per as i64, N as i64], out)
    }
}

#[test]
fn models_and_settings_that_cannot_work_are_refused_naming_why() {
    let home = Home::new();
    let dir = tempdir();
    let new = |name: &str, model: &Path, extra: &[&str]| {
        let package = dir.path().join(name);
        let mut args = vec![
            "new",
            "onnx",
            name,
            "--dir",
            path(&package),
            "--model",
            path(model),
        ];
        args.extend_from_slice(extra);
        let err = home.fails(&args);
        assert!(
            !package.join("prelabel.toml").exists(),
            "{name}: nothing is made"
        );
        err
    };
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a model").expect("file");
    let err = new("text", &text, &[]);
    assert!(
        err.contains("notes.txt is not an ONNX model we can read"),
        "{err}"
    );

    // Ten values per candidate and twelve candidates: neither layout is clear.
    let square = dir.path().join("square.onnx");
    std::fs::write(
        &square,
        constant_detector(32, &[1, 10, 12], vec![0.0; 120], &[]),
    )
    .expect("model");
    let err = new("square", &square, &[]);
    assert!(err.contains("cannot tell the model's format"), "{err}");
    assert!(
        err.contains("[1, 10, 12]") && err.contains("--format"),
        "{err}"
    );

    let good = dir.path().join("good.onnx");
    std::fs::write(
        &good,
        constant_detector(32, &[1, 6, 200], vec![0.0; 1200], &["a", "b"]),
    )
    .expect("model");
    for (extra, named) in [
        (&["--mean", "1,2"][..], "--mean 1,2"),
        (&["--std", "x"], "--std x"),
        (&["--resize", "zoom"], "--resize zoom"),
        (&["--channels", "rbg"], "--channels rbg"),
        (&["--min-confidence", "2"], "--min-confidence 2"),
        (&["--input-size", "0x10"], "--input-size 0x10"),
    ] {
        let err = new("options", &good, extra);
        assert!(err.contains(named), "{extra:?}: {err}");
    }
    let latin1 = dir.path().join("labels.txt");
    std::fs::write(&latin1, b"caf\xe9\nd\xf6g\n").expect("labels");
    let err = new("labels", &good, &["--labels", path(&latin1)]);
    assert!(err.contains("labels.txt: must be UTF-8 text"), "{err}");

    // What only running can show: each image's error names it, nothing panics.
    let (_, forced) = package(
        dir.path(),
        "forced",
        &["--model", path(&good), "--format", "ssd"],
    );
    let images = fixtures().join("images/skimage_camera.png");
    let error = detect_error(&forced, &images, &[]);
    assert!(error.contains("do not read as ssd"), "{error}");
    assert!(error.contains("[1, 6, 200]"), "{error}");

    let (_, filtered) = package(dir.path(), "filtered", &["--model", path(&good)]);
    let error = detect_error(&filtered, &images, &["--init", "classes=a,zebra"]);
    assert!(
        error.contains("`zebra`, which is not one of the model's 2 labels"),
        "{error}"
    );

    // A graph that takes no image fails init, naming the artifact.
    let bomb_model = dir.path().join("bomb.onnx");
    std::fs::write(&bomb_model, attacks::expand_bomb()).expect("model");
    let (_, bomb) = package(
        dir.path(),
        "bomb",
        &[
            "--model",
            path(&bomb_model),
            "--format",
            "yolov8",
            "--input-size",
            "8x8",
        ],
    );
    let error = detect_error(&bomb, &images, &[]);
    assert!(error.contains("artifact `model.onnx`"), "{error}");
}

#[test]
fn a_real_detector_from_pypi_gives_what_its_own_package_finds() {
    let dir = tempdir();
    let (said, package) = nudenet_package(dir.path());
    assert!(
        said.contains(
            "format yolov8 (from its outputs), input 320x320, 18 labels from the model's metadata"
        ),
        "{said}"
    );
    let results = detect(&package, &fixtures().join("images"), &[]);
    let mut found = 0;
    for r in &results {
        let name = r["name"].as_str().expect("name");
        let stem = name.rsplit_once('.').expect("an extension").0;
        let file = fixtures().join(format!("reference/nudenet/{stem}.json"));
        let reference: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("reference")).expect("JSON");
        let want = reference["detections"].as_array().expect("detections");
        let got: Vec<(&Value, ([f32; 4], f32))> = r["annotations"]
            .as_array()
            .expect("annotations")
            .iter()
            .zip(boxes(r))
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: {got:?}");
        for w in want {
            let b: Vec<f32> = w["box"]
                .as_array()
                .expect("box")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect();
            // NudeNet answers x, y, width, height in whole pixels (truncated).
            let wb = [b[0], b[1], b[0] + b[2], b[1] + b[3]];
            let (a, (gb, gc)) = got
                .iter()
                .max_by(|x, y| iou(&x.1.0, &wb).total_cmp(&iou(&y.1.0, &wb)))
                .expect("a box");
            assert_eq!(a["label"], w["label"], "{name}");
            assert!(iou(gb, &wb) >= 0.95, "{name}: {gb:?} against {wb:?}");
            // The same pixels give the same scores; a JPEG is decoded by another library than
            // NudeNet's OpenCV, a few levels apart, which moves a score by up to 0.02.
            let tolerance = if name.ends_with(".png") { 1e-3 } else { 0.03 };
            let wc = w["confidence"].as_f64().expect("confidence") as f32;
            assert!((gc - wc).abs() <= tolerance, "{name}: {gc} against {wc}");
        }
        found += want.len();
    }
    assert_eq!(found, 5, "NudeNet's faces on the sample photos");
}
