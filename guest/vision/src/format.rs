//! Which decoder an ONNX detector's outputs need (issue 34's `--format auto`), guessed from
//! their shapes as the graph declares them (a dimension the graph leaves symbolic is `None`),
//! with the reason named when the shapes do not say.

/// The output formats people export detectors in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[1, N, 5+C]`: YOLOv5, v7 and other anchor-based exports.
    Yolov5,
    /// `[1, 4+C, N]`: YOLOv8, v9, v11 (Ultralytics' anchor-free head).
    Yolov8,
    /// `[1, 1, N, 7]`: Caffe's and OpenCV's SSD `DetectionOutput`; or that layer cut off,
    /// decoded boxes `[1, N, 4]` with scores `[1, N]` or `[1, N, C]` (res10 as we ship it).
    Ssd,
    /// A heatmap `[1, 1, H, W]` with its scale and offset maps `[1, 2, H, W]` (and optional
    /// landmarks): CenterNet-style (CenterFace).
    CenterNet,
}

impl Format {
    /// Every format, in the order `--format` lists them.
    pub const ALL: [Format; 4] = [
        Format::Yolov5,
        Format::Yolov8,
        Format::Ssd,
        Format::CenterNet,
    ];

    /// The format `--format` names so.
    pub fn from_name(name: &str) -> Option<Format> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Yolov5 => "yolov5",
            Format::Yolov8 => "yolov8",
            Format::Ssd => "ssd",
            Format::CenterNet => "centernet",
        }
    }
}

/// An output's declared shape; `None` for a symbolic dimension.
pub type Shape = Vec<Option<usize>>;

fn show(shapes: &[Shape]) -> String {
    let one = |s: &Shape| {
        let dims: Vec<String> = s
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        format!("[{}]", dims.join(", "))
    };
    shapes.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// The format of a detector whose outputs have `shapes`, or why it cannot be told.
pub fn guess(shapes: &[Shape]) -> Result<Format, String> {
    let say = |why: &str| {
        format!(
            "outputs {}: {why}; say which with --format yolov5|yolov8|ssd|centernet",
            show(shapes)
        )
    };
    match shapes {
        [one] => match one.as_slice() {
            [_, Some(1), _, Some(7)] => Ok(Format::Ssd),
            [_, Some(a), Some(b)] | [Some(a), Some(b)] => match (*a, *b) {
                // Candidates outnumber the values each has, by far, in every real export
                // (25200 x 85, 84 x 8400); a square-ish output could be either.
                (rows, per) if per > 5 && rows >= 4 * per => Ok(Format::Yolov5),
                (per, columns) if per > 4 && columns >= 4 * per => Ok(Format::Yolov8),
                _ => Err(say(
                    "one output of two dimensions, but neither is clearly the candidates",
                )),
            },
            // A dynamic export leaves the candidates' count symbolic (it follows the input's
            // size): the fixed dimension is the values each candidate has.
            [_, Some(per), None] if *per > 4 => Ok(Format::Yolov8),
            [_, None, Some(per)] if *per > 5 => Ok(Format::Yolov5),
            _ => Err(say(
                "one output, but not [1, N, 5+C], [1, 4+C, N] or [1, 1, N, 7]",
            )),
        },
        [a, b] if is_boxes_and_scores(a, b) || is_boxes_and_scores(b, a) => Ok(Format::Ssd),
        [first, rest @ ..]
            if is_heatmap(first) && rest.iter().filter(|s| maps(s, 2)).count() >= 2 =>
        {
            Ok(Format::CenterNet)
        }
        [] => Err(say("no output")),
        _ => Err(say(
            "several outputs, but neither boxes [1, N, 4] with scores [1, N(, C)] nor a heatmap [1, 1, H, W] with [1, 2, H, W] scale and offset maps",
        )),
    }
}

/// Boxes `[1, N, 4]` and scores `[1, N]` or `[1, N, C]` for as many candidates.
fn is_boxes_and_scores(boxes: &Shape, scores: &Shape) -> bool {
    match (boxes.as_slice(), scores.as_slice()) {
        ([_, n, Some(4)], [_, m] | [_, m, _]) => n == m,
        _ => false,
    }
}

fn is_heatmap(shape: &Shape) -> bool {
    maps(shape, 1)
}

/// A `[1, channels, H, W]` map.
fn maps(shape: &Shape, channels: usize) -> bool {
    matches!(shape.as_slice(), [_, Some(c), _, _] if *c == channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(dims: &[usize]) -> Shape {
        dims.iter().map(|&d| Some(d)).collect()
    }

    #[test]
    fn the_shapes_real_exports_have() {
        // YOLOv5s and YOLOv8n at 640, NudeNet's YOLOv8n at 320 (18 classes), res10, and
        // CenterFace (its maps' sizes symbolic).
        assert_eq!(guess(&[fixed(&[1, 25200, 85])]), Ok(Format::Yolov5));
        assert_eq!(guess(&[fixed(&[1, 84, 8400])]), Ok(Format::Yolov8));
        assert_eq!(guess(&[fixed(&[1, 22, 2100])]), Ok(Format::Yolov8));
        // Dynamic exports (NudeNet's): the candidates' count is symbolic.
        assert_eq!(guess(&[vec![None, Some(22), None]]), Ok(Format::Yolov8));
        assert_eq!(guess(&[vec![None, None, Some(85)]]), Ok(Format::Yolov5));
        assert_eq!(guess(&[fixed(&[1, 1, 200, 7])]), Ok(Format::Ssd));
        let res10 = [fixed(&[1, 8892, 4]), fixed(&[1, 8892])];
        assert_eq!(guess(&res10), Ok(Format::Ssd));
        let scores_first = [fixed(&[1, 3000, 21]), fixed(&[1, 3000, 4])];
        assert_eq!(guess(&scores_first), Ok(Format::Ssd));
        let map = |c: usize| vec![Some(1), Some(c), None, None];
        let centerface = [map(1), map(2), map(2), map(10)];
        assert_eq!(guess(&centerface), Ok(Format::CenterNet));
    }

    #[test]
    fn what_cannot_be_told_is_named() {
        let err = guess(&[fixed(&[1, 10, 12])]).expect_err("ambiguous");
        assert!(
            err.starts_with("outputs [1, 10, 12]: one output of two dimensions"),
            "{err}"
        );
        assert!(err.ends_with("say which with --format yolov5|yolov8|ssd|centernet"));
        let err = guess(&[fixed(&[1, 3, 224, 224])]).expect_err("a map");
        assert!(err.contains("not [1, N, 5+C]"), "{err}");
        let err = guess(&[fixed(&[1, 4]), vec![None, Some(3)]]).expect_err("two outputs");
        assert!(
            err.starts_with("outputs [1, 4], [?, 3]: several outputs"),
            "{err}"
        );
        assert!(guess(&[]).expect_err("none").contains("no output"));
        assert_eq!(Format::CenterNet.name(), "centernet");
    }
}
