//! SSD-style outputs to boxes (issue 34's `--format ssd`), in the two forms SSD detectors are
//! exported in: Caffe's and OpenCV's `DetectionOutput` rows `[1, 1, N, 7]` (image, class,
//! confidence, x1, y1, x2, y2; already suppressed by the layer), or the decoded priors with the
//! layer cut off, boxes `[1, N, 4]` (x1, y1, x2, y2) and scores `[1, N]` (one class) or
//! `[1, N, C]`, which get greedy NMS per class here, on the unclipped boxes as Caffe's layer
//! does (res10's `models/res10_300x300_ssd.onnx` is this form). Coordinates are normalised to
//! the network's input; the [`Fit`] maps them back to the image.

use crate::Detection;
use crate::yolo::{DecodeError, Fit, Labelled, Params, per_class_nms};

/// The output SSD is read from: `outputs` as (shape, values) in the graph's order.
pub fn decode(
    outputs: &[(Vec<usize>, Vec<f32>)],
    (input_w, input_h): (u32, u32),
    fit: Fit,
    (width, height): (u32, u32),
    params: &Params,
    skip_class: Option<usize>,
) -> Result<Vec<Labelled>, DecodeError> {
    // A normalised box on the input, in the image's pixels (not clipped yet).
    let to_image = |b: &[f32]| {
        let (w, h) = (input_w as f32, input_h as f32);
        let (left, top) = fit.to_image(b[0] * w, b[1] * h);
        let (right, bottom) = fit.to_image(b[2] * w, b[3] * h);
        (left, top, right, bottom)
    };
    let mut found = Vec::new();
    let suppressed = match outputs {
        [(shape, values)] => {
            let rows = rows(shape, values.len())?;
            for row in values.chunks_exact(7).take(rows) {
                let (class, score) = (row[1], row[2]);
                // The layer pads with rows of class -1; a class is a whole number.
                if class.is_nan() || class < 0.0 || score.is_nan() || score < params.confidence {
                    continue;
                }
                let class = class as usize;
                let only = params.classes.as_ref();
                if Some(class) != skip_class && only.is_none_or(|only| only.contains(&class)) {
                    found.push(labelled(to_image(&row[3..7]), score, class));
                }
            }
            true
        }
        [first, second] => {
            // Whichever order the graph lists them in: the boxes are the [1, N, 4] one.
            let ((boxes_shape, boxes), (scores_shape, scores)) =
                if first.0.len() == 3 && first.0.last() == Some(&4) {
                    (first, second)
                } else {
                    (second, first)
                };
            let (n, classes) = decoded(boxes_shape, scores_shape, scores.len())?;
            // One score per box is the object's: there is no background column to skip.
            let wanted = |c: usize| {
                (classes == 1 || Some(c) != skip_class)
                    && params.classes.as_ref().is_none_or(|only| only.contains(&c))
            };
            for (i, b) in boxes.chunks_exact(4).take(n).enumerate() {
                for class in (0..classes).filter(|&c| wanted(c)) {
                    let score = scores[i * classes + class];
                    if score.is_nan() || score < params.confidence {
                        continue;
                    }
                    found.push(labelled(to_image(b), score, class));
                }
            }
            false
        }
        _ => {
            return Err(DecodeError::Outputs {
                count: outputs.len(),
                expected: "one [1, 1, N, 7] output, or boxes [1, N, 4] and scores (SSD)",
            });
        }
    };
    let kept = if suppressed {
        found.sort_by(|a, b| b.detection.confidence.total_cmp(&a.detection.confidence));
        found
    } else {
        // The layer would clip after suppression, so the overlap is of the boxes as decoded.
        per_class_nms(
            found,
            &Params {
                max_detections: usize::MAX,
                ..params.clone()
            },
        )
    };
    Ok(kept
        .into_iter()
        .filter_map(|l| {
            Some(Labelled {
                detection: l.detection.clipped(width, height)?,
                class: l.class,
            })
        })
        .take(params.max_detections)
        .collect())
}

fn labelled(
    (left, top, right, bottom): (f32, f32, f32, f32),
    score: f32,
    class: usize,
) -> Labelled {
    Labelled {
        detection: Detection {
            left,
            top,
            right,
            bottom,
            confidence: score,
        },
        class,
    }
}

/// The rows of a `[1, 1, N, 7]` output.
fn rows(shape: &[usize], len: usize) -> Result<usize, DecodeError> {
    let [1, 1, n, 7] = shape[..] else {
        return Err(DecodeError::Shape {
            shape: shape.to_vec(),
            expected: "[1, 1, N, 7] (SSD DetectionOutput)",
        });
    };
    check_len(shape, n * 7, len)?;
    Ok(n)
}

/// Candidates and classes of boxes `[1, N, 4]` with scores `[1, N]` or `[1, N, C]`.
fn decoded(
    boxes: &[usize],
    scores: &[usize],
    scores_len: usize,
) -> Result<(usize, usize), DecodeError> {
    let expected = "boxes [1, N, 4] with scores [1, N] or [1, N, C] (SSD)";
    let n = match boxes {
        [1, n, 4] => *n,
        _ => {
            return Err(DecodeError::Shape {
                shape: boxes.to_vec(),
                expected,
            });
        }
    };
    let classes = match scores {
        [1, m] if *m == n => 1,
        [1, m, c] if *m == n && *c > 0 => *c,
        _ => {
            return Err(DecodeError::Shape {
                shape: scores.to_vec(),
                expected,
            });
        }
    };
    check_len(scores, n * classes, scores_len)?;
    Ok((n, classes))
}

fn check_len(shape: &[usize], want: usize, got: usize) -> Result<(), DecodeError> {
    if want == got {
        Ok(())
    } else {
        Err(DecodeError::Length {
            shape: shape.to_vec(),
            want,
            got,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: (u32, u32) = (200, 100);

    fn stretch() -> Fit {
        Fit::stretch(IMAGE.0, IMAGE.1, 300, 300)
    }

    fn close(d: &Detection, want: [f32; 4]) -> bool {
        let got = [d.left, d.top, d.right, d.bottom];
        got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-3)
    }

    #[test]
    fn detection_output_rows_become_boxes_on_the_image() {
        let values = vec![
            0.0, 1.0, 0.9, 0.1, 0.2, 0.3, 0.4, // kept
            0.0, 2.0, 0.1, 0.0, 0.0, 0.5, 0.5, // under the threshold
            0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, // padding
            0.0, 3.0, 0.8, 0.5, 0.5, 1.2, 1.0, // leaves the image: clipped
        ];
        let out = decode(
            &[(vec![1, 1, 4, 7], values)],
            (300, 300),
            stretch(),
            IMAGE,
            &Params::default(),
            None,
        )
        .expect("decodes");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].class, 1);
        assert!(
            close(&out[0].detection, [20.0, 20.0, 60.0, 40.0]),
            "{out:?}"
        );
        assert!(
            close(&out[1].detection, [100.0, 50.0, 200.0, 100.0]),
            "{out:?}"
        );
    }

    #[test]
    fn decoded_boxes_get_nms_per_class_and_the_background_is_skipped() {
        let boxes = vec![
            0.1, 0.1, 0.5, 0.5, // 0
            0.12, 0.12, 0.52, 0.52, // 1: overlaps 0
            0.6, 0.6, 0.9, 0.9, // 2
        ];
        // Classes: background, face, cat.
        let scores = vec![
            0.9, 0.8, 0.1, //
            0.9, 0.7, 0.6, // the cat on box 1 survives: NMS is per class
            0.99, 0.01, 0.0, // background only
        ];
        let out = decode(
            &[(vec![1, 3, 3], scores), (vec![1, 3, 4], boxes)],
            (300, 300),
            stretch(),
            IMAGE,
            &Params::default(),
            Some(0),
        )
        .expect("decodes");
        let got: Vec<(usize, f32)> = out
            .iter()
            .map(|l| (l.class, l.detection.confidence))
            .collect();
        assert_eq!(got, [(1, 0.8), (2, 0.6)]);
    }

    #[test]
    fn one_score_per_box_is_one_class() {
        let out = decode(
            &[
                (vec![1, 2, 4], vec![0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5]),
                (vec![1, 2], vec![0.6, 0.7]),
            ],
            (300, 300),
            stretch(),
            IMAGE,
            &Params::default(),
            Some(0),
        )
        .expect("decodes");
        assert_eq!(
            out.len(),
            1,
            "the same box twice is one, and never background"
        );
        assert_eq!((out[0].class, out[0].detection.confidence), (0, 0.7));
    }

    #[test]
    fn shapes_that_are_not_ssd_are_named() {
        let err = decode(
            &[(vec![1, 1, 2, 6], vec![0.0; 12])],
            (300, 300),
            stretch(),
            IMAGE,
            &Params::default(),
            None,
        )
        .expect_err("six per row");
        assert!(err.to_string().contains("[1, 1, 2, 6]"), "{err}");
        let err = decode(
            &[(vec![1, 2, 4], vec![0.0; 8]), (vec![1, 3], vec![0.0; 3])],
            (300, 300),
            stretch(),
            IMAGE,
            &Params::default(),
            None,
        )
        .expect_err("three scores for two boxes");
        assert!(err.to_string().contains("[1, 3]"), "{err}");
    }
}
