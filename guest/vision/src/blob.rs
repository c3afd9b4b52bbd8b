//! An image as a detector's input tensor (issue 34): resized to the network's input by
//! letterbox (aspect kept, padded with grey 114 as Ultralytics does) or stretch, with OpenCV's
//! INTER_LINEAR as Ultralytics' `cv2.resize` does; then `(value * scale - mean) / std` per
//! channel, in RGB or BGR order, planar (NCHW). The [`Fit`] it returns maps boxes back.

use image::RgbImage;

use crate::resize_linear;
use crate::yolo::Fit;

/// How an image is fitted to the network's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Scaled keeping its aspect and padded with grey `pad`: centred around it as Ultralytics
    /// does; or (`corner`) padded right and below to the input's shape, then scaled, as
    /// NudeNet does.
    Letterbox {
        corner: bool,
        pad: u8,
    },
    Stretch,
}

impl Resize {
    /// Ultralytics' letterbox: centred, grey 114.
    pub const LETTERBOX: Resize = Resize::Letterbox {
        corner: false,
        pad: PAD,
    };
}

/// What each pixel value becomes: `(value * scale - mean[c]) / std[c]`, channels in BGR
/// order or RGB, `mean` and `std` given in the tensor's order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalise {
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub bgr: bool,
}

impl Default for Normalise {
    /// Ultralytics' exports: RGB, values over 255, no mean or deviation.
    fn default() -> Self {
        Normalise {
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            bgr: false,
        }
    }
}

/// The network's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSize {
    /// Always this `width` x `height` (what the graph declares, or what the deployer says).
    Fixed(u32, u32),
    /// The image's own size, scaled so its longer side is at most `max_side` (never
    /// enlarged), each side rounded up to a multiple of `align`: for fully convolutional
    /// models (CenterFace) whose graph leaves the size open.
    Image { max_side: u32, align: u32 },
}

impl InputSize {
    /// The input for a `width` x `height` image.
    pub fn for_image(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            InputSize::Fixed(w, h) => (w, h),
            InputSize::Image { max_side, align } => {
                let longer = width.max(height).max(1);
                let scale = (f64::from(max_side) / f64::from(longer)).min(1.0);
                let align = align.max(1);
                let side = |v: u32| {
                    let scaled = (f64::from(v) * scale).round().max(1.0) as u32;
                    scaled.div_ceil(align) * align
                };
                (side(width), side(height))
            }
        }
    }
}

/// The grey Ultralytics pads a letterbox with.
const PAD: u8 = 114;

/// `image` as a `[1, 3, height, width]` tensor's values, and how it was fitted.
pub fn blob(
    image: &RgbImage,
    (width, height): (u32, u32),
    resize: Resize,
    norm: &Normalise,
) -> (Vec<f32>, Fit) {
    let (fitted, fit) = fitted(image, width, height, resize);
    let plane = (width * height) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, pixel) in fitted.pixels().enumerate() {
        for c in 0..3 {
            // The plane this channel goes to: BGR puts red last.
            let to = if norm.bgr { 2 - c } else { c };
            let value = f32::from(pixel[c]) * norm.scale;
            out[to * plane + i] = (value - norm.mean[to]) / norm.std[to];
        }
    }
    (out, fit)
}

/// The image at the input's size, and the fit that made it.
fn fitted(image: &RgbImage, width: u32, height: u32, resize: Resize) -> (RgbImage, Fit) {
    let (w, h) = image.dimensions();
    match resize {
        Resize::Stretch => (
            resize_linear(image, width, height),
            Fit::stretch(w, h, width, height),
        ),
        Resize::Letterbox { corner: true, pad } => padded_then_resized(image, width, height, pad)
            .unwrap_or_else(|| resized_then_padded(image, width, height, pad, true)),
        Resize::Letterbox { corner: false, pad } => {
            resized_then_padded(image, width, height, pad, false)
        }
    }
}

/// Padded right and below to the input's shape at the image's own resolution, then the whole
/// resized, as NudeNet does: no rounding of the scaled size. `None` when the padding would be
/// many times the image (a strip into a square): the caller scales first instead.
fn padded_then_resized(
    image: &RgbImage,
    width: u32,
    height: u32,
    pad: u8,
) -> Option<(RgbImage, Fit)> {
    let (w, h) = (u64::from(image.width()), u64::from(image.height()));
    let (iw, ih) = (u64::from(width), u64::from(height));
    let (padded_w, padded_h) = if w * ih >= h * iw {
        (w, (w * ih).div_ceil(iw))
    } else {
        ((h * iw).div_ceil(ih), h)
    };
    if padded_w * padded_h > 16 * w * h {
        return None;
    }
    let (padded_w, padded_h) = (u32::try_from(padded_w).ok()?, u32::try_from(padded_h).ok()?);
    let mut canvas = RgbImage::from_pixel(padded_w, padded_h, image::Rgb([pad; 3]));
    image::imageops::replace(&mut canvas, image, 0, 0);
    Some((
        resize_linear(&canvas, width, height),
        Fit::stretch(padded_w, padded_h, width, height),
    ))
}

/// Scaled keeping its aspect, then placed on a `pad` canvas of the input's size: centred as
/// Ultralytics pastes it (whole pixels), or at the top left `corner`.
fn resized_then_padded(
    image: &RgbImage,
    width: u32,
    height: u32,
    pad: u8,
    corner: bool,
) -> (RgbImage, Fit) {
    let (w, h) = image.dimensions();
    let Fit::Letterbox {
        scale,
        mut pad_x,
        mut pad_y,
    } = Fit::letterbox(w, h, width, height)
    else {
        unreachable!("a letterbox's fit")
    };
    if corner {
        (pad_x, pad_y) = (0.0, 0.0);
    }
    let new_w = ((w as f32 * scale).round() as u32).clamp(1, width);
    let new_h = ((h as f32 * scale).round() as u32).clamp(1, height);
    let scaled = resize_linear(image, new_w, new_h);
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([pad; 3]));
    image::imageops::replace(&mut canvas, &scaled, pad_x as i64, pad_y as i64);
    (
        canvas,
        Fit::Letterbox {
            scale,
            pad_x,
            pad_y,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_sized_inputs_round_up_and_respect_the_cap() {
        let image = InputSize::Image {
            max_side: 1280,
            align: 32,
        };
        assert_eq!(image.for_image(800, 564), (800, 576));
        assert_eq!(image.for_image(451, 300), (480, 320));
        assert_eq!(image.for_image(1, 1), (32, 32));
        let capped = InputSize::Image {
            max_side: 640,
            align: 32,
        };
        assert_eq!(capped.for_image(4000, 3000), (640, 480));
        assert_eq!(InputSize::Fixed(640, 640).for_image(10, 20), (640, 640));
    }

    #[test]
    fn a_letterbox_pads_with_grey_and_maps_back() {
        // A 4x2 image into 4x4: scaled by 1, one grey row above and below.
        let image = RgbImage::from_pixel(4, 2, image::Rgb([255, 0, 51]));
        let (values, fit) = blob(&image, (4, 4), Resize::LETTERBOX, &Normalise::default());
        assert_eq!(
            fit,
            Fit::Letterbox {
                scale: 1.0,
                pad_x: 0.0,
                pad_y: 1.0
            }
        );
        let red: Vec<f32> = values[..16].iter().map(|v| (v * 255.0).round()).collect();
        let grey = [114.0; 4];
        let full = [255.0; 4];
        assert_eq!(red, [grey, full, full, grey].concat());
        // The blue plane: 51/255 = 0.2 where the image is.
        assert!((values[32 + 4] - 0.2).abs() < 1e-6);
    }

    #[test]
    fn bgr_mean_and_std_apply_per_channel() {
        let image = RgbImage::from_pixel(2, 2, image::Rgb([10, 20, 30]));
        let norm = Normalise {
            scale: 1.0,
            mean: [1.0, 2.0, 3.0],
            std: [1.0, 2.0, 3.0],
            bgr: true,
        };
        let (values, fit) = blob(&image, (2, 2), Resize::Stretch, &norm);
        assert_eq!(fit, Fit::stretch(2, 2, 2, 2));
        // Planes B, G, R: (30-1)/1, (20-2)/2, (10-3)/3.
        assert_eq!(values[0], 29.0);
        assert_eq!(values[4], 9.0);
        assert!((values[8] - 7.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn a_corner_letterbox_pads_right_and_below_with_its_own_value() {
        // 4x2 into 4x4 from the corner, padded black: the image on the top two rows.
        let image = RgbImage::from_pixel(4, 2, image::Rgb([255, 255, 255]));
        let corner = Resize::Letterbox {
            corner: true,
            pad: 0,
        };
        let (values, fit) = blob(&image, (4, 4), corner, &Normalise::default());
        // Padded to 4x4 at its own size, so nothing is scaled.
        assert_eq!(fit, Fit::stretch(4, 4, 4, 4));
        let rows: Vec<f32> = (0..4).map(|r| values[r * 4]).collect();
        assert_eq!(rows, [1.0, 1.0, 0.0, 0.0]);
        // A strip would be padded to a huge square: it is scaled first instead.
        let strip = RgbImage::from_pixel(400, 2, image::Rgb([255, 255, 255]));
        let (values, fit) = blob(&strip, (4, 4), corner, &Normalise::default());
        assert!(
            matches!(
                fit,
                Fit::Letterbox {
                    pad_x: 0.0,
                    pad_y: 0.0,
                    ..
                }
            ),
            "{fit:?}"
        );
        assert_eq!(values[0], 1.0);
        assert_eq!(values[4], 0.0, "the padding below");
    }

    #[test]
    fn an_odd_padding_puts_the_odd_row_after() {
        // 4x1 into 4x4: three free rows, one above (round(1.5 - 0.1)), two below.
        let image = RgbImage::from_pixel(4, 1, image::Rgb([0, 0, 0]));
        let (values, fit) = blob(&image, (4, 4), Resize::LETTERBOX, &Normalise::default());
        let Fit::Letterbox { pad_y, .. } = fit else {
            panic!("{fit:?}")
        };
        assert_eq!(pad_y, 1.0);
        let rows: Vec<f32> = (0..4).map(|r| (values[r * 4] * 255.0).round()).collect();
        assert_eq!(rows, [114.0, 0.0, 114.0, 114.0]);
    }
}
