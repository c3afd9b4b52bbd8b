//! CenterNet-style outputs to boxes, as CenterFace exports them (models/PROVENANCE.md): a
//! heatmap `[1, 1, h, w]`, log-scale and offset maps `[1, 2, h, w]` and optional landmarks
//! `[1, 10, h, w]` at a stride of input/h; every cell above the threshold is a box, then greedy
//! NMS. The `centerface` detector picks the maps by their ONNX names, a user's model (issue 34)
//! by their shapes in the graph's order.

use crate::yolo::DecodeError;
use crate::{Detection, greedy_nms};

/// A box and its five landmarks, in pixels of the network's input or, after [`to_image`], of
/// the original image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    pub detection: Detection,
    pub landmarks: [[f32; 2]; 5],
}

/// An output as (shape, values).
pub type Output = (Vec<usize>, Vec<f32>);

/// The maps, checked against each other.
#[derive(Debug, Clone)]
pub struct Maps {
    rows: usize,
    cols: usize,
    heatmap: Vec<f32>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    /// Ten zeros per cell when the model has no landmarks.
    landmarks: Vec<f32>,
}

const EXPECTED: &str =
    "heatmap [1, 1, h, w], scale and offset [1, 2, h, w], landmarks [1, 10, h, w] (CenterNet)";

impl Maps {
    /// The maps from their outputs; each must be `[1, channels, h, w]` with the heatmap's h, w.
    pub fn new(
        heatmap: Output,
        scale: Output,
        offset: Output,
        landmarks: Option<Output>,
    ) -> Result<Self, DecodeError> {
        let (rows, cols) = match heatmap.0[..] {
            [1, 1, rows, cols] => (rows, cols),
            _ => {
                return Err(DecodeError::Shape {
                    shape: heatmap.0,
                    expected: EXPECTED,
                });
            }
        };
        let plane = rows * cols;
        let check = |(shape, values): Output, channels: usize| {
            if shape[..] != [1, channels, rows, cols] {
                return Err(DecodeError::Shape {
                    shape,
                    expected: EXPECTED,
                });
            }
            if values.len() != channels * plane {
                return Err(DecodeError::Length {
                    shape,
                    want: channels * plane,
                    got: values.len(),
                });
            }
            Ok(values)
        };
        Ok(Self {
            rows,
            cols,
            heatmap: check(heatmap, 1)?,
            scale: check(scale, 2)?,
            offset: check(offset, 2)?,
            landmarks: match landmarks {
                Some(landmarks) => check(landmarks, 10)?,
                None => vec![0.0; 10 * plane],
            },
        })
    }

    /// The maps among a model's outputs by their shapes, in the graph's order: the first
    /// one-channel map is the heatmap, the first two two-channel maps are the scale and the
    /// offset (CenterFace's order), a ten-channel map the landmarks.
    pub fn from_shapes(outputs: Vec<Output>) -> Result<Self, DecodeError> {
        let count = outputs.len();
        let (mut heatmap, mut pairs, mut landmarks) = (None, Vec::new(), None);
        for output in outputs {
            match output.0[..] {
                [1, 1, _, _] if heatmap.is_none() => heatmap = Some(output),
                [1, 2, _, _] if pairs.len() < 2 => pairs.push(output),
                [1, 10, _, _] if landmarks.is_none() => landmarks = Some(output),
                _ => {}
            }
        }
        let mut pairs = pairs.into_iter();
        match (heatmap, pairs.next(), pairs.next()) {
            (Some(heatmap), Some(scale), Some(offset)) => {
                Self::new(heatmap, scale, offset, landmarks)
            }
            _ => Err(DecodeError::Outputs {
                count,
                expected: EXPECTED,
            }),
        }
    }

    /// The maps' rows and columns.
    pub fn size(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Channel `c` of a map at cell `index`.
    fn at(map: &[f32], plane: usize, c: usize, index: usize) -> f32 {
        map[c * plane + index]
    }

    /// Decodes every cell whose heatmap is above `threshold` into a face on the network's input
    /// (`input_width` x `input_height`, `stride` input pixels per cell), then greedy NMS at
    /// `nms_iou`, best first.
    pub fn decode(
        &self,
        threshold: f32,
        stride: f32,
        (input_width, input_height): (u32, u32),
        nms_iou: f32,
    ) -> Vec<Face> {
        let (w, h) = (input_width as f32, input_height as f32);
        let plane = self.rows * self.cols;
        let mut faces = Vec::new();
        for (index, &score) in self.heatmap.iter().enumerate() {
            // NaN is never above the threshold.
            if score.is_nan() || score <= threshold {
                continue;
            }
            let (r, c) = ((index / self.cols) as f32, (index % self.cols) as f32);
            let s0 = Self::at(&self.scale, plane, 0, index).exp() * stride;
            let s1 = Self::at(&self.scale, plane, 1, index).exp() * stride;
            let o0 = Self::at(&self.offset, plane, 0, index);
            let o1 = Self::at(&self.offset, plane, 1, index);
            let x1 = ((c + o1 + 0.5) * stride - s1 / 2.0).max(0.0).min(w);
            let y1 = ((r + o0 + 0.5) * stride - s0 / 2.0).max(0.0).min(h);
            let mut landmarks = [[0f32; 2]; 5];
            for (j, point) in landmarks.iter_mut().enumerate() {
                *point = [
                    Self::at(&self.landmarks, plane, 2 * j + 1, index) * s1 + x1,
                    Self::at(&self.landmarks, plane, 2 * j, index) * s0 + y1,
                ];
            }
            faces.push(Face {
                detection: Detection {
                    left: x1,
                    top: y1,
                    right: (x1 + s1).min(w),
                    bottom: (y1 + s0).min(h),
                    confidence: score,
                },
                landmarks,
            });
        }
        let boxes: Vec<[f32; 4]> = faces
            .iter()
            .map(|f| {
                let d = f.detection;
                [d.left, d.top, d.right, d.bottom]
            })
            .collect();
        let mut order: Vec<usize> = (0..faces.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (faces[a].detection, faces[b].detection);
            b.confidence.total_cmp(&a.confidence)
        });
        greedy_nms(&boxes, order, nms_iou)
            .into_iter()
            .map(|i| faces[i])
            .collect()
    }
}

/// Faces on the network's input, back in pixels of a `width` x `height` image, clipped to it
/// (boxes left with under 1 px² are dropped, landmarks are clamped to the image).
pub fn to_image(faces: Vec<Face>, input: (u32, u32), width: u32, height: u32) -> Vec<Face> {
    let (w, h) = (width as f32, height as f32);
    let (sx, sy) = (input.0 as f32 / w, input.1 as f32 / h);
    faces
        .into_iter()
        .filter_map(|f| {
            let d = f.detection;
            let detection = Detection {
                left: d.left / sx,
                top: d.top / sy,
                right: d.right / sx,
                bottom: d.bottom / sy,
                confidence: d.confidence,
            }
            .clipped(width, height)?;
            Some(Face {
                detection,
                landmarks: f
                    .landmarks
                    .map(|[x, y]| [(x / sx).clamp(0.0, w), (y / sy).clamp(0.0, h)]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(rows: usize, cols: usize) -> Maps {
        let plane = rows * cols;
        Maps {
            rows,
            cols,
            heatmap: vec![0.0; plane],
            scale: vec![0.0; 2 * plane],
            offset: vec![0.0; 2 * plane],
            landmarks: vec![0.0; 10 * plane],
        }
    }

    #[test]
    fn a_cell_decodes_to_its_box_and_landmarks() {
        let mut m = maps(4, 4);
        let plane = 16;
        let cell = 4 + 2; // row 1, column 2
        m.heatmap[cell] = 0.9;
        // Height exp(ln 4) * 4 = 16, width exp(ln 2) * 4 = 8.
        m.scale[cell] = 4f32.ln();
        m.scale[plane + cell] = 2f32.ln();
        // Landmark 0 at (0.5 of the width, 0.25 of the height) from the top left corner.
        m.landmarks[cell] = 0.25;
        m.landmarks[plane + cell] = 0.5;
        let faces = m.decode(0.5, 4.0, (16, 16), 0.3);
        assert_eq!(faces.len(), 1);
        let d = faces[0].detection;
        // Centre ((2 + 0.5) * 4, (1 + 0.5) * 4) = (10, 6); x1 = 10 - 4, y1 = max(0, 6 - 8).
        assert_eq!((d.left, d.top, d.right, d.bottom), (6.0, 0.0, 14.0, 16.0));
        assert_eq!(d.confidence, 0.9);
        assert_eq!(faces[0].landmarks[0], [6.0 + 4.0, 4.0]);
    }

    #[test]
    fn overlapping_cells_keep_the_strongest() {
        let mut m = maps(4, 4);
        m.heatmap[5] = 0.7;
        m.heatmap[6] = 0.8; // the next cell: its box overlaps the first's
        m.heatmap[15] = 0.6;
        m.heatmap[0] = f32::NAN;
        for cell in [5, 6, 15] {
            m.scale[cell] = 3f32.ln();
            m.scale[16 + cell] = 3f32.ln();
        }
        let faces = m.decode(0.5, 4.0, (16, 16), 0.3);
        let scores: Vec<f32> = faces.iter().map(|f| f.detection.confidence).collect();
        assert_eq!(scores, vec![0.8, 0.6]);
    }

    #[test]
    fn maps_are_found_by_shape_and_checked() {
        let out = |c: usize| (vec![1, c, 2, 3], vec![0.0; c * 6]);
        let m = Maps::from_shapes(vec![out(1), out(2), out(2)]).expect("no landmarks is fine");
        assert_eq!(m.size(), (2, 3));
        let err = Maps::from_shapes(vec![out(1), out(2)]).expect_err("no offset");
        assert!(err.to_string().contains("has 2 outputs"), "{err}");
        let wrong = (vec![1, 2, 2, 4], vec![0.0; 16]);
        let err = Maps::new(out(1), out(2), wrong, None).expect_err("another size");
        assert!(err.to_string().contains("[1, 2, 2, 4]"), "{err}");
        let short = (vec![1, 2, 2, 3], vec![0.0; 11]);
        let err = Maps::new(out(1), short, out(2), None).expect_err("too few values");
        assert!(err.to_string().contains("holds 12 values"), "{err}");
    }
}
