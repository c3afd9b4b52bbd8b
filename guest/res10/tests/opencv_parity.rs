//! The detector library, built natively, against what the seed's OpenCV pipeline outputs:
//! the 300x300 resize (OpenCV 5.0 `cv2.resize`, INTER_LINEAR) and the final detections.

use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn resize_is_bit_exact_with_opencv_inter_linear() {
    for name in ["skimage_chelsea", "mosaic_row", "skimage_camera"] {
        let src = res10::decode(
            &read(&fixtures().join(format!("images/{name}.png"))),
            res10::DEFAULT_MAX_PIXELS,
        )
        .expect("decode source");
        let want = res10::decode(
            &read(&fixtures().join(format!("opencv_resize/{name}_300x300.png"))),
            res10::DEFAULT_MAX_PIXELS,
        )
        .expect("decode reference");
        let got = res10::resize_linear(&src, 300, 300);
        let differing = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        // OpenCV's scalar tail (the last 4 bytes of each row) rounds differently from its
        // SIMD body by at most one level; everything else must match to the bit.
        let max_diff = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        assert!(max_diff <= 1, "{name}: max difference {max_diff}");
        assert!(differing <= 300 * 4, "{name}: {differing} values differ");
    }
}

#[test]
fn native_detections_match_the_seed() {
    let model = res10::Model::from_onnx(&read(
        &fixtures().join("../../models/res10_300x300_ssd.onnx"),
    ))
    .expect("model loads");
    let reference_dir = fixtures().join("reference/res10_opencv");
    let mut checked = 0;
    for entry in std::fs::read_dir(&reference_dir).expect("reference dir") {
        let path = entry.expect("entry").path();
        let reference: serde_json::Value = serde_json::from_slice(&read(&path)).expect("json");
        let image_name = reference["image"].as_str().expect("image name");
        let (w, h) = (
            reference["width"].as_f64().expect("width") as f32,
            reference["height"].as_f64().expect("height") as f32,
        );
        let got = res10::detect(
            &model,
            &read(&fixtures().join("images").join(image_name)),
            res10::DEFAULT_MAX_PIXELS,
            0.5,
        )
        .expect("detect");
        let want: Vec<([f32; 4], f32)> = reference["detections"]
            .as_array()
            .expect("detections")
            .iter()
            .filter_map(|d| {
                let b: Vec<f32> = d["box"]
                    .as_array()?
                    .iter()
                    .filter_map(|v| v.as_f64())
                    .map(|v| v as f32)
                    .collect();
                let clipped = [
                    b[0].clamp(0.0, w),
                    b[1].clamp(0.0, h),
                    b[2].clamp(0.0, w),
                    b[3].clamp(0.0, h),
                ];
                let area = (clipped[2] - clipped[0]).max(0.0) * (clipped[3] - clipped[1]).max(0.0);
                (area >= 1.0).then_some((clipped, d["confidence"].as_f64()? as f32))
            })
            .collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{image_name}: got {got:?}, want {want:?}"
        );
        for (g, (wb, wc)) in got.iter().zip(&want) {
            let gb = [g.left, g.top, g.right, g.bottom];
            let iou = iou(&gb, wb);
            assert!(iou >= 0.95, "{image_name}: IoU {iou} of {gb:?} vs {wb:?}");
            assert!(
                (g.confidence - wc).abs() <= 0.02,
                "{image_name}: confidence {} vs {wc}",
                g.confidence
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 10, "all ten reference images were compared");
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    inter / union
}
