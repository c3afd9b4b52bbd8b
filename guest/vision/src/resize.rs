//! OpenCV's `cv::resize(..., INTER_LINEAR)` for 8-bit images, reproduced to the bit.
//!
//! The seed resizes every image to 300x300 this way before the network sees it, and the
//! detector's confidences move by up to 0.07 with a filter that averages over its footprint
//! (such as the `image` crate's Triangle). INTER_LINEAR samples only the 2x2 neighbours of
//! each destination pixel's source position (half-pixel centres, clamped at the borders),
//! with 11-bit fixed-point weights, and rounds like OpenCV's SIMD path.

use image::RgbImage;

/// Weights are fixed point with this many fractional bits (OpenCV's `INTER_RESIZE_COEF_BITS`).
const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// For one destination coordinate: the first source index and the two weights.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    index: usize,
    next: usize,
    w0: i32,
    w1: i32,
}

/// The taps of one axis, as OpenCV's `resize` computes them.
fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            if s >= src as i64 - 1 {
                s = src as i64 - 1;
                frac = 0.0;
            }
            let index = s as usize;
            // saturate_cast<short>(x * 2048) rounds to nearest, ties to even.
            let w0 = ((1.0 - frac) * COEF_SCALE).round_ties_even() as i32;
            Tap {
                index,
                next: (index + 1).min(src - 1),
                w0,
                w1: (1 << COEF_BITS) - w0,
            }
        })
        .collect()
}

/// Resizes an RGB image to `width` x `height` exactly like OpenCV's INTER_LINEAR on 8-bit
/// images (the channel order does not matter: channels are independent).
///
/// # Panics
/// If a dimension of the source or the destination is zero.
pub fn resize_linear(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    assert!(src.width() > 0 && src.height() > 0 && width > 0 && height > 0);
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (width as usize, height as usize);
    let xs = taps(sw, dw);
    let ys = taps(sh, dh);
    let raw = src.as_raw();

    // Horizontal pass of one source row, kept at 2^11 scale (OpenCV's int buffer).
    let hresize = |row: usize, out: &mut [i32]| {
        let line = &raw[row * sw * 3..(row + 1) * sw * 3];
        for (t, o) in xs.iter().zip(out.chunks_exact_mut(3)) {
            let a = &line[t.index * 3..t.index * 3 + 3];
            let b = &line[t.next * 3..t.next * 3 + 3];
            for c in 0..3 {
                o[c] = i32::from(a[c]) * t.w0 + i32::from(b[c]) * t.w1;
            }
        }
    };

    let row_len = dw * 3;
    let mut out = vec![0u8; row_len * dh];
    let (mut row0, mut row1) = (vec![0i32; row_len], vec![0i32; row_len]);
    let mut cached: Option<(usize, usize)> = None;
    for (t, dst) in ys.iter().zip(out.chunks_exact_mut(row_len)) {
        match cached {
            Some(rows) if rows == (t.index, t.next) => {}
            // One source row further down: the old lower row is the new upper one.
            Some((_, next)) if next == t.index => {
                std::mem::swap(&mut row0, &mut row1);
                hresize(t.next, &mut row1);
            }
            _ => {
                hresize(t.index, &mut row0);
                hresize(t.next, &mut row1);
            }
        }
        cached = Some((t.index, t.next));
        for ((d, &s0), &s1) in dst.iter_mut().zip(&row0).zip(&row1) {
            *d = vertical(s0, s1, t.w0, t.w1);
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer has width * height * 3 bytes")
}

/// OpenCV's `VResizeLinearVec_32s8u`: drop 4 bits, 16x16 multiply keeping the high half,
/// then round off the last 2 bits and saturate to u8.
fn vertical(s0: i32, s1: i32, w0: i32, w1: i32) -> u8 {
    let a = ((s0 >> 4) * w0) >> 16;
    let b = ((s1 >> 4) * w1) >> 16;
    ((a + b + 2) >> 2).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn same_size_is_identity() {
        let img = RgbImage::from_fn(7, 5, |x, y| Rgb([(x * 30) as u8, (y * 40) as u8, 9]));
        assert_eq!(resize_linear(&img, 7, 5), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(640, 427, Rgb([17, 128, 255]));
        let out = resize_linear(&img, 300, 300);
        assert!(out.pixels().all(|p| p.0 == [17, 128, 255]));
    }

    #[test]
    fn taps_match_opencv_half_pixel_centres() {
        // Upscaling 2 -> 4: sx = (d + 0.5) * 0.5 - 0.5 = -0.25, 0.25, 0.75, 1.25.
        let t = taps(2, 4);
        assert_eq!((t[0].index, t[0].w0, t[0].w1), (0, 2048, 0)); // clamped at the left border
        assert_eq!((t[1].index, t[1].w0, t[1].w1), (0, 1536, 512));
        assert_eq!((t[2].index, t[2].w0, t[2].w1), (0, 512, 1536));
        assert_eq!((t[3].index, t[3].w0, t[3].w1), (1, 2048, 0)); // clamped at the right border
    }

    #[test]
    fn shrinking_samples_two_neighbours_without_area_averaging() {
        // 1 x 4 row [0, 0, 255, 255] halved: sx = 0.5 and 2.5, so each output pixel
        // mixes two neighbours half and half. An area filter would give 0 and 255.
        let img = RgbImage::from_fn(4, 1, |x, _| {
            let v = if x < 2 { 0 } else { 255 };
            Rgb([v, v, v])
        });
        let out = resize_linear(&img, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 0).0, [255, 255, 255]);
        let img = RgbImage::from_fn(3, 1, |x, _| Rgb([[0, 255, 0][x as usize]; 3]));
        // 3 -> 2: sx = 0.25, 1.75 -> 0.75*0 + 0.25*255 and 0.25*255 + 0.75*0.
        let out = resize_linear(&img, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0, [64, 64, 64]);
        assert_eq!(out.get_pixel(1, 0).0, [64, 64, 64]);
    }

    #[test]
    fn fixed_point_rounding_matches_opencv() {
        // Values that OpenCV's cv2.resize(INTER_LINEAR) gives for this 2x2 -> 3x3 upscale:
        // [[10, 30, 50], [70, 90, 110], [130, 150, 170]] on [[10, 50], [130, 170]].
        let src = RgbImage::from_fn(2, 2, |x, y| {
            let v = [[10u8, 50], [130, 170]][y as usize][x as usize];
            Rgb([v, v, v])
        });
        let out = resize_linear(&src, 3, 3);
        let got: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(got, vec![10, 30, 50, 70, 90, 110, 130, 150, 170]);
    }
}
