//! The image code every detector shares, natively and inside components: decoding item bytes
//! as OpenCV's `imread` does, OpenCV's INTER_LINEAR resize to the bit, greedy NMS,
//! Prelabel's box policy; for a user's own detector (issue 34), an image as its input tensor
//! (`blob`), its YOLO-family outputs as boxes (`yolo`), and the guess of which format a model
//! has (`format`). It does no I/O and knows nothing of WebAssembly or of any network;
//! `res10` and `centerface` build their pipelines on it.

pub mod blob;
pub mod centernet;
mod decode;
pub mod format;
mod nms;
mod resize;
pub mod ssd;
pub mod yolo;

pub use decode::{DEFAULT_MAX_PIXELS, decode};
pub use image::RgbImage;
pub use nms::{greedy_nms, iou};
pub use resize::resize_linear;

use std::time::{Duration, Instant};

/// How long each stage of one detection took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub decode: Duration,
    /// Resize to the network's input and build the blob.
    pub preprocess: Duration,
    pub infer: Duration,
    /// The network's outputs to boxes (NMS, scaling to pixels).
    pub postprocess: Duration,
}

/// Times consecutive stages: each [`Laps::lap`] records the time since the previous one.
pub struct Laps(Instant);

impl Laps {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn lap(&mut self, slot: &mut Duration) {
        let now = Instant::now();
        *slot = now - self.0;
        self.0 = now;
    }
}

/// What can go wrong with an item's image. Every variant names the cause in its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {max_pixels}")]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        max_pixels: u64,
    },
    #[error("image has no pixels ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("cannot decode image: {0}")]
    Decode(String),
}

/// An object found, in pixels of the original image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
    pub confidence: f32,
}

impl Detection {
    pub fn area(&self) -> f32 {
        (self.right - self.left).max(0.0) * (self.bottom - self.top).max(0.0)
    }

    /// Prelabel's box policy (the seed keeps boxes that leave the image; we do not): clipped to
    /// a `width` x `height` image, and dropped when under 1 px² is left.
    pub fn clipped(self, width: u32, height: u32) -> Option<Self> {
        let (w, h) = (width as f32, height as f32);
        let clipped = Self {
            left: self.left.clamp(0.0, w),
            top: self.top.clamp(0.0, h),
            right: self.right.clamp(0.0, w),
            bottom: self.bottom.clamp(0.0, h),
            confidence: self.confidence,
        };
        (clipped.area() >= 1.0).then_some(clipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_keeps_what_is_inside_and_drops_slivers() {
        let d = Detection {
            left: -5.0,
            top: 10.0,
            right: 20.0,
            bottom: 130.0,
            confidence: 0.9,
        };
        let c = d.clipped(100, 100).expect("kept");
        assert_eq!((c.left, c.top, c.right, c.bottom), (0.0, 10.0, 20.0, 100.0));
        let outside = Detection {
            left: 100.0,
            right: 120.0,
            ..d
        };
        assert_eq!(outside.clipped(100, 100), None);
    }
}
