//! Greedy non-maximum suppression and the overlap it uses, shared by every detector.

/// IoU of two (x1, y1, x2, y2) boxes, normalised or in pixels, as Caffe's `JaccardOverlap`
/// computes it: no +1 on sizes, disjoint or inverted boxes overlap 0. CenterFace's reference
/// NMS computes the same on pixel boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    if b[0] > a[2] || b[2] < a[0] || b[1] > a[3] || b[3] < a[1] {
        return 0.0;
    }
    let inter = [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ];
    let inter_size = size(&inter);
    let union = size(a) + size(b) - inter_size;
    if union <= 0.0 {
        0.0
    } else {
        inter_size / union
    }
}

fn size(b: &[f32; 4]) -> f32 {
    if b[2] < b[0] || b[3] < b[1] {
        0.0
    } else {
        (b[2] - b[0]) * (b[3] - b[1])
    }
}

/// Greedy NMS: walks `order` (indices into `boxes`, best first) and keeps a box unless its IoU
/// with a box already kept is above `threshold`. Returns the kept indices, best first.
pub fn greedy_nms(
    boxes: &[[f32; 4]],
    order: impl IntoIterator<Item = usize>,
    threshold: f32,
) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for i in order {
        if kept.iter().all(|&k| iou(&boxes[i], &boxes[k]) <= threshold) {
            kept.push(i);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        let a = [0.0, 0.0, 0.5, 0.5];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[0.6, 0.6, 0.9, 0.9]), 0.0);
        // Half overlapping horizontally: inter 0.25*0.5, union 2*0.25 - 0.125.
        let b = [0.25, 0.0, 0.75, 0.5];
        assert!((iou(&a, &b) - 0.125 / 0.375).abs() < 1e-6);
        // Inverted boxes have no area.
        assert_eq!(iou(&[0.5, 0.5, 0.1, 0.1], &a), 0.0);
    }

    #[test]
    fn keeps_the_best_of_each_overlapping_group_in_order() {
        let boxes = [
            [10.0, 10.0, 50.0, 50.0],
            [12.0, 12.0, 52.0, 52.0],
            [60.0, 60.0, 90.0, 90.0],
        ];
        assert_eq!(greedy_nms(&boxes, [1, 0, 2], 0.3), vec![1, 2]);
        assert_eq!(greedy_nms(&boxes, [2, 0, 1], 0.3), vec![2, 0]);
        // Nothing overlaps above 1.0.
        assert_eq!(greedy_nms(&boxes, [0, 1, 2], 1.0), vec![0, 1, 2]);
    }
}
