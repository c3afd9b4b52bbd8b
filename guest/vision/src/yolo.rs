//! YOLO-family outputs to boxes, the decoders a no-code ONNX detector needs (issue 34):
//! YOLOv5-style rows `[1, N, 5+C]` (centre x, centre y, width, height, objectness, then a
//! score per class) and YOLOv8/v11-style columns `[1, 4+C, N]` (the same without objectness,
//! transposed), in the network's input pixels; mapped back to the image through the
//! letterbox or stretch that made the input; then greedy NMS per class, as Ultralytics does.
//! Plain code with native tests; the component that runs a user's model calls it.

use crate::{Detection, greedy_nms};

/// How a detector's output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[1, N, 5+C]`: a row per candidate, objectness times class score is its confidence.
    V5,
    /// `[1, 4+C, N]`: a column per candidate, the class score is its confidence.
    V8,
}

/// How an image became the network's input (its inverse maps boxes back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fit {
    /// Scaled by `scale` keeping its aspect, then padded by `pad_x`, `pad_y` whole pixels on
    /// the left and top (Ultralytics' letterbox: the padding split evenly, the odd pixel
    /// after).
    Letterbox { scale: f32, pad_x: f32, pad_y: f32 },
    /// Stretched to the input: x by `sx`, y by `sy`.
    Stretch { sx: f32, sy: f32 },
}

impl Fit {
    /// A `width` x `height` image letterboxed into `input_w` x `input_h`.
    pub fn letterbox(width: u32, height: u32, input_w: u32, input_h: u32) -> Fit {
        let scale = (input_w as f32 / width as f32).min(input_h as f32 / height as f32);
        let (new_w, new_h) = (
            (width as f32 * scale).round(),
            (height as f32 * scale).round(),
        );
        // Whole pixels, as Ultralytics pastes the image: round(padding / 2 - 0.1).
        let pad = |free: f32| (free / 2.0 - 0.1).round().max(0.0);
        Fit::Letterbox {
            scale,
            pad_x: pad(input_w as f32 - new_w),
            pad_y: pad(input_h as f32 - new_h),
        }
    }

    /// A `width` x `height` image stretched to `input_w` x `input_h`.
    pub fn stretch(width: u32, height: u32, input_w: u32, input_h: u32) -> Fit {
        Fit::Stretch {
            sx: input_w as f32 / width as f32,
            sy: input_h as f32 / height as f32,
        }
    }

    /// A point of the input in the image's pixels.
    pub fn to_image(self, x: f32, y: f32) -> (f32, f32) {
        match self {
            Fit::Letterbox {
                scale,
                pad_x,
                pad_y,
            } => ((x - pad_x) / scale, (y - pad_y) / scale),
            Fit::Stretch { sx, sy } => (x / sx, y / sy),
        }
    }
}

/// What a decode keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Candidates under this confidence are dropped before NMS.
    pub confidence: f32,
    /// A box overlapping a better one of its class by more than this is suppressed.
    pub iou: f32,
    /// Only these classes, when given.
    pub classes: Option<Vec<usize>>,
    /// At most this many boxes, best first.
    pub max_detections: usize,
    /// One NMS over all classes (a box suppresses any class's), as Ultralytics' `agnostic`
    /// and NudeNet's postprocessing do.
    pub agnostic: bool,
}

impl Default for Params {
    /// Ultralytics' defaults for prediction: 0.25, 0.45 (its `val` uses 0.7), 300.
    fn default() -> Self {
        Params {
            confidence: 0.25,
            iou: 0.45,
            classes: None,
            max_detections: 300,
            agnostic: false,
        }
    }
}

/// A box with its class (an index into the model's names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    pub detection: Detection,
    pub class: usize,
}

/// An output that is not what its layout says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("output shape {shape:?} is not {expected}")]
    Shape {
        shape: Vec<usize>,
        expected: &'static str,
    },
    #[error("the model has {count} outputs; expected {expected}")]
    Outputs {
        count: usize,
        expected: &'static str,
    },
    #[error("output shape {shape:?} holds {want} values, the output has {got}")]
    Length {
        shape: Vec<usize>,
        want: usize,
        got: usize,
    },
}

/// Candidates and classes of an output of `shape` in `layout`: (N, C).
fn dims(layout: Layout, shape: &[usize], len: usize) -> Result<(usize, usize), DecodeError> {
    let (expected, fixed) = match layout {
        Layout::V5 => ("[1, N, 5+C] (YOLOv5)", 5),
        Layout::V8 => ("[1, 4+C, N] (YOLOv8)", 4),
    };
    let dims = match shape {
        [1, a, b] | [a, b] => (*a, *b),
        _ => {
            return Err(DecodeError::Shape {
                shape: shape.to_vec(),
                expected,
            });
        }
    };
    let (n, per) = match layout {
        Layout::V5 => dims,
        Layout::V8 => (dims.1, dims.0),
    };
    if per <= fixed {
        return Err(DecodeError::Shape {
            shape: shape.to_vec(),
            expected,
        });
    }
    let want = n.saturating_mul(per);
    if want != len {
        return Err(DecodeError::Length {
            shape: shape.to_vec(),
            want,
            got: len,
        });
    }
    Ok((n, per - fixed))
}

/// The boxes of one output: decoded, mapped to the `width` x `height` image, clipped to it,
/// thresholded, then NMS per class; best first.
pub fn decode(
    layout: Layout,
    output: &[f32],
    shape: &[usize],
    fit: Fit,
    (width, height): (u32, u32),
    params: &Params,
) -> Result<Vec<Labelled>, DecodeError> {
    let (n, classes) = dims(layout, shape, output.len())?;
    // Value `k` of candidate `i`, whichever way the output runs.
    let at = |i: usize, k: usize| match layout {
        Layout::V5 => output[i * (classes + 5) + k],
        Layout::V8 => output[k * n + i],
    };
    let first_class = match layout {
        Layout::V5 => 5,
        Layout::V8 => 4,
    };
    let wanted = |c: usize| params.classes.as_ref().is_none_or(|only| only.contains(&c));
    let mut found: Vec<Labelled> = Vec::new();
    for i in 0..n {
        let objectness = match layout {
            Layout::V5 => at(i, 4),
            Layout::V8 => 1.0,
        };
        // The best class of the candidate (Ultralytics keeps one class per box).
        let Some((class, score)) = (0..classes)
            .filter(|&c| wanted(c))
            .map(|c| (c, at(i, first_class + c) * objectness))
            .max_by(|a, b| a.1.total_cmp(&b.1))
        else {
            continue;
        };
        if score.is_nan() || score < params.confidence {
            continue;
        }
        let (cx, cy, w, h) = (at(i, 0), at(i, 1), at(i, 2), at(i, 3));
        let (left, top) = fit.to_image(cx - w / 2.0, cy - h / 2.0);
        let (right, bottom) = fit.to_image(cx + w / 2.0, cy + h / 2.0);
        let detection = Detection {
            left,
            top,
            right,
            bottom,
            confidence: score,
        };
        if let Some(detection) = detection.clipped(width, height) {
            found.push(Labelled { detection, class });
        }
    }
    Ok(per_class_nms(found, params))
}

/// Greedy NMS within each class; the kept boxes of all classes, best first, at most
/// `max_detections`.
pub(crate) fn per_class_nms(found: Vec<Labelled>, params: &Params) -> Vec<Labelled> {
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&found[a].detection, &found[b].detection);
        b.confidence.total_cmp(&a.confidence)
    });
    let boxes: Vec<[f32; 4]> = found
        .iter()
        .map(|l| {
            let d = &l.detection;
            [d.left, d.top, d.right, d.bottom]
        })
        .collect();
    // Agnostic NMS is NMS within one class that all boxes are of.
    let class_of = |i: usize| if params.agnostic { 0 } else { found[i].class };
    let mut classes: Vec<usize> = (0..found.len()).map(class_of).collect();
    classes.sort_unstable();
    classes.dedup();
    let mut kept: Vec<usize> = classes
        .into_iter()
        .flat_map(|class| {
            let of_class = order.iter().copied().filter(|&i| class_of(i) == class);
            greedy_nms(&boxes, of_class, params.iou)
        })
        .collect();
    kept.sort_by(|&a, &b| {
        let (a, b) = (&found[a].detection, &found[b].detection);
        b.confidence.total_cmp(&a.confidence)
    });
    kept.truncate(params.max_detections);
    kept.into_iter().map(|i| found[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A YOLOv5 output of `rows` (cx, cy, w, h, objectness, class scores...).
    fn v5(rows: &[Vec<f32>]) -> (Vec<f32>, Vec<usize>) {
        let per = rows[0].len();
        (rows.concat(), vec![1, rows.len(), per])
    }

    /// The same candidates as YOLOv8 columns (no objectness: the class scores as given).
    fn v8(rows: &[Vec<f32>]) -> (Vec<f32>, Vec<usize>) {
        let per = rows[0].len() - 1;
        let mut out = vec![0.0; rows.len() * per];
        for (i, row) in rows.iter().enumerate() {
            let without_objectness = row[..4].iter().chain(&row[5..]);
            for (k, v) in without_objectness.enumerate() {
                out[k * rows.len() + i] = *v;
            }
        }
        (out, vec![1, per, rows.len()])
    }

    fn boxes(found: &[Labelled]) -> Vec<(usize, [i32; 4])> {
        found
            .iter()
            .map(|l| {
                let d = l.detection;
                let r = |v: f32| v.round() as i32;
                (l.class, [r(d.left), r(d.top), r(d.right), r(d.bottom)])
            })
            .collect()
    }

    const DEFAULT: Params = Params {
        confidence: 0.25,
        iou: 0.45,
        classes: None,
        max_detections: 300,
        agnostic: false,
    };

    #[test]
    fn the_defaults_are_ultralytics() {
        assert_eq!(Params::default(), DEFAULT);
    }

    #[test]
    fn letterboxed_boxes_come_back_to_the_image() {
        // A 1280x720 image in a 640x640 input: scale 0.5, 140 rows of padding on top.
        let fit = Fit::letterbox(1280, 720, 640, 640);
        assert_eq!(
            fit,
            Fit::Letterbox {
                scale: 0.5,
                pad_x: 0.0,
                pad_y: 140.0
            }
        );
        // A 100x50 box at (200, 100)-(300, 150) in the image is (100, 190)-(150, 215) in the
        // input: centre (125, 202.5), 50x25.
        let rows = vec![vec![125.0, 202.5, 50.0, 25.0, 0.9, 0.1, 0.8]];
        let (out, shape) = v5(&rows);
        let found = decode(Layout::V5, &out, &shape, fit, (1280, 720), &DEFAULT);
        let found = found.expect("decodes");
        assert_eq!(boxes(&found), vec![(1, [200, 100, 300, 150])]);
        assert!((found[0].detection.confidence - 0.72).abs() < 1e-6);
        // YOLOv8's columns of the same candidate: the class score alone.
        let (out, shape) = v8(&rows);
        let found = decode(Layout::V8, &out, &shape, fit, (1280, 720), &DEFAULT);
        let found = found.expect("decodes");
        assert_eq!(boxes(&found), vec![(1, [200, 100, 300, 150])]);
        assert!((found[0].detection.confidence - 0.8).abs() < 1e-6);
    }

    #[test]
    fn stretched_boxes_come_back_and_are_clipped() {
        let fit = Fit::stretch(200, 100, 320, 320);
        // (16, 32)-(48, 96) in the input is (10, 10)-(30, 30); a box past the right edge is
        // clipped; one wholly outside is dropped.
        let rows = vec![
            vec![32.0, 64.0, 32.0, 64.0, 1.0, 0.9],
            vec![316.0, 64.0, 16.0, 64.0, 1.0, 0.8],
            vec![500.0, 500.0, 10.0, 10.0, 1.0, 0.95],
        ];
        let (out, shape) = v5(&rows);
        let found = decode(Layout::V5, &out, &shape, fit, (200, 100), &DEFAULT);
        assert_eq!(
            boxes(&found.expect("decodes")),
            vec![(0, [10, 10, 30, 30]), (0, [193, 10, 200, 30])]
        );
    }

    #[test]
    fn nms_is_per_class_and_thresholds_and_filters_hold() {
        let fit = Fit::stretch(100, 100, 100, 100);
        let rows = vec![
            // Two overlapping boxes of class 0: the better one stays.
            vec![50.0, 50.0, 40.0, 40.0, 1.0, 0.9, 0.0],
            vec![52.0, 52.0, 40.0, 40.0, 1.0, 0.8, 0.0],
            // The same place, class 1: kept beside class 0's.
            vec![51.0, 51.0, 40.0, 40.0, 1.0, 0.0, 0.7],
            // Under the confidence threshold (objectness 0.2 x 0.9).
            vec![20.0, 20.0, 10.0, 10.0, 0.2, 0.9, 0.0],
            // NaN scores are never kept.
            vec![80.0, 80.0, 10.0, 10.0, f32::NAN, 0.9, 0.0],
        ];
        let (out, shape) = v5(&rows);
        let all = decode(Layout::V5, &out, &shape, fit, (100, 100), &DEFAULT);
        let all = all.expect("decodes");
        assert_eq!(
            boxes(&all),
            vec![(0, [30, 30, 70, 70]), (1, [31, 31, 71, 71])]
        );
        let only_1 = Params {
            classes: Some(vec![1]),
            ..DEFAULT
        };
        let found = decode(Layout::V5, &out, &shape, fit, (100, 100), &only_1);
        assert_eq!(boxes(&found.expect("decodes")), vec![(1, [31, 31, 71, 71])]);
        let one = Params {
            max_detections: 1,
            ..DEFAULT
        };
        let found = decode(Layout::V5, &out, &shape, fit, (100, 100), &one);
        assert_eq!(boxes(&found.expect("decodes")), vec![(0, [30, 30, 70, 70])]);
        // A looser IoU keeps both class 0 boxes.
        let loose = Params {
            iou: 0.95,
            ..DEFAULT
        };
        let found = decode(Layout::V5, &out, &shape, fit, (100, 100), &loose);
        assert_eq!(found.expect("decodes").len(), 3);
        // Agnostic: the class 1 box is suppressed by class 0's better one.
        let agnostic = Params {
            agnostic: true,
            ..DEFAULT
        };
        let found = decode(Layout::V5, &out, &shape, fit, (100, 100), &agnostic);
        assert_eq!(boxes(&found.expect("decodes")), vec![(0, [30, 30, 70, 70])]);
    }

    #[test]
    fn shapes_that_do_not_fit_are_named() {
        let fit = Fit::stretch(10, 10, 10, 10);
        let p = Params::default();
        let err = decode(Layout::V5, &[0.0; 12], &[1, 2, 3, 2], fit, (10, 10), &p);
        assert_eq!(
            err.expect_err("4 dims").to_string(),
            "output shape [1, 2, 3, 2] is not [1, N, 5+C] (YOLOv5)"
        );
        let err = decode(Layout::V5, &[0.0; 10], &[1, 2, 5], fit, (10, 10), &p);
        assert!(err.expect_err("no class").to_string().contains("5+C"));
        let err = decode(Layout::V8, &[0.0; 11], &[1, 6, 2], fit, (10, 10), &p);
        assert_eq!(
            err.expect_err("short").to_string(),
            "output shape [1, 6, 2] holds 12 values, the output has 11"
        );
    }
}
