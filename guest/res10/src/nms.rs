//! The post-processing of Caffe's `DetectionOutput` layer, as the res10 prototxt configures it
//! and OpenCV's dnn module runs it: score threshold, top-k, greedy NMS (the shared
//! [`vision::greedy_nms`]), keep-top-k.

/// A box that survived NMS: normalised (x1, y1, x2, y2) and its face score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub index: usize,
    pub bbox: [f32; 4],
    pub score: f32,
}

/// The parameters of the res10 prototxt's `detection_output_param`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionOutputParams {
    /// Scores must be strictly above this to be considered.
    pub confidence_threshold: f32,
    /// How many of the best-scoring boxes enter NMS.
    pub top_k: usize,
    /// A box whose IoU with a kept box is above this is suppressed.
    pub nms_threshold: f32,
    /// How many boxes are kept after NMS.
    pub keep_top_k: usize,
}

impl Default for DetectionOutputParams {
    fn default() -> Self {
        Self {
            confidence_threshold: 0.01,
            top_k: 400,
            nms_threshold: 0.45,
            keep_top_k: 200,
        }
    }
}

/// Runs `DetectionOutput` on decoded boxes and their scores; returns the kept boxes,
/// best score first.
pub fn detection_output(
    boxes: &[[f32; 4]],
    scores: &[f32],
    params: &DetectionOutputParams,
) -> Vec<Candidate> {
    let mut order: Vec<usize> = (0..scores.len().min(boxes.len()))
        .filter(|&i| scores[i] > params.confidence_threshold)
        .collect();
    // Stable: equal scores keep the network's order, as std::stable_sort does in Caffe.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(params.top_k);

    // Kept boxes come out in descending score order, so keep-top-k is a truncation.
    vision::greedy_nms(boxes, order, params.nms_threshold)
        .into_iter()
        .take(params.keep_top_k)
        .map(|i| Candidate {
            index: i,
            bbox: boxes[i],
            score: scores[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppresses_overlaps_above_the_threshold_and_keeps_the_best() {
        let boxes = [
            [0.10, 0.10, 0.50, 0.50], // 0: 0.8
            [0.12, 0.12, 0.52, 0.52], // 1: 0.9, overlaps 0 heavily
            [0.60, 0.60, 0.90, 0.90], // 2: 0.7, separate
            [0.00, 0.00, 0.10, 0.10], // 3: 0.005, under the score threshold
        ];
        let scores = [0.8, 0.9, 0.7, 0.005];
        let kept = detection_output(&boxes, &scores, &DetectionOutputParams::default());
        let idx: Vec<usize> = kept.iter().map(|c| c.index).collect();
        assert_eq!(idx, vec![1, 2]);
    }

    #[test]
    fn overlap_exactly_at_the_threshold_is_kept() {
        // IoU of these two is exactly 0.5; with an NMS threshold of 0.5 both stay
        // (Caffe suppresses only when overlap > threshold).
        let boxes = [[0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 1.0, 0.25]];
        let params = DetectionOutputParams {
            nms_threshold: 0.5,
            ..Default::default()
        };
        let kept = detection_output(&boxes, &[0.9, 0.8], &params);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn ties_keep_network_order_and_top_k_cuts_before_nms() {
        let boxes = [
            [0.0, 0.0, 0.1, 0.1],
            [0.2, 0.2, 0.3, 0.3],
            [0.4, 0.4, 0.5, 0.5],
        ];
        let params = DetectionOutputParams {
            top_k: 2,
            ..Default::default()
        };
        let kept = detection_output(&boxes, &[0.5, 0.5, 0.5], &params);
        let idx: Vec<usize> = kept.iter().map(|c| c.index).collect();
        assert_eq!(idx, vec![0, 1]);
    }

    #[test]
    fn keep_top_k_caps_the_result() {
        let boxes: Vec<[f32; 4]> = (0..10)
            .map(|i| {
                let x = i as f32 * 0.1;
                [x, 0.0, x + 0.05, 0.05]
            })
            .collect();
        let scores: Vec<f32> = (0..10).map(|i| 0.1 + i as f32 * 0.05).collect();
        let params = DetectionOutputParams {
            keep_top_k: 3,
            ..Default::default()
        };
        let kept = detection_output(&boxes, &scores, &params);
        let idx: Vec<usize> = kept.iter().map(|c| c.index).collect();
        assert_eq!(idx, vec![9, 8, 7]);
    }
}
