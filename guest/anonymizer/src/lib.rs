//! The anonymizer: blurs or pixelates boxes of an image, so that what was in them (a face, a
//! licence plate) cannot be recognised in the copy. A plain library, natively tested; the
//! component (`component.rs`, the `transformer` world) only reads init inputs and bytes.

#[cfg(target_family = "wasm")]
mod component;

use std::io::Cursor;

use image::{ImageFormat, RgbImage};

/// How a box is made unrecognisable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A Gaussian blur whose sigma grows with the box (a quarter of its shorter side, at least
    /// 4 px), so a large face is as unreadable as a small one.
    Blur,
    /// Blocks of one colour (their mean), about 8 across the box's shorter side.
    Pixelate,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "blur" => Ok(Mode::Blur),
            "pixelate" => Ok(Mode::Pixelate),
            other => Err(format!("mode must be `blur` or `pixelate`, got `{other}`")),
        }
    }
}

/// Why an image could not be anonymized.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Decode(#[from] vision::Error),
    #[error("cannot encode the anonymized image: {0}")]
    Encode(String),
}

/// A box in pixels: left, top, right, bottom.
pub type Bbox = [f32; 4];

/// `bbox` grown by `margin` of its size on every side, in whole pixels within the image; `None`
/// when nothing of it is inside.
pub fn region(bbox: Bbox, margin: f32, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let [l, t, r, b] = bbox;
    if !(l.is_finite() && t.is_finite() && r.is_finite() && b.is_finite()) || r <= l || b <= t {
        return None;
    }
    let (dx, dy) = ((r - l) * margin.max(0.0), (b - t) * margin.max(0.0));
    let clamp = |v: f32, max: u32| v.clamp(0.0, max as f32);
    let (l, t) = (
        clamp((l - dx).floor(), width),
        clamp((t - dy).floor(), height),
    );
    let (r, b) = (
        clamp((r + dx).ceil(), width),
        clamp((b + dy).ceil(), height),
    );
    let (x, y) = (l as u32, t as u32);
    let (w, h) = ((r as u32).saturating_sub(x), (b as u32).saturating_sub(y));
    (w > 0 && h > 0).then_some((x, y, w, h))
}

/// Anonymizes every box of `boxes` in `image`, in place.
pub fn anonymize(image: &mut RgbImage, boxes: &[Bbox], mode: Mode, margin: f32) {
    let (width, height) = image.dimensions();
    for &bbox in boxes {
        let Some((x, y, w, h)) = region(bbox, margin, width, height) else {
            continue;
        };
        let patch = image::imageops::crop_imm(image, x, y, w, h).to_image();
        let covered = match mode {
            Mode::Blur => {
                let sigma = (w.min(h) as f32 / 4.0).max(4.0);
                image::imageops::blur(&patch, sigma)
            }
            Mode::Pixelate => pixelate(&patch, (w.min(h) / 8).max(2)),
        };
        image::imageops::replace(image, &covered, i64::from(x), i64::from(y));
    }
}

/// Each `block` x `block` square of `patch` as its mean colour.
fn pixelate(patch: &RgbImage, block: u32) -> RgbImage {
    let (w, h) = patch.dimensions();
    let mut out = patch.clone();
    for by in (0..h).step_by(block as usize) {
        for bx in (0..w).step_by(block as usize) {
            let (bw, bh) = (block.min(w - bx), block.min(h - by));
            let mut sum = [0u64; 3];
            for y in by..by + bh {
                for x in bx..bx + bw {
                    let p = patch.get_pixel(x, y);
                    for c in 0..3 {
                        sum[c] += u64::from(p[c]);
                    }
                }
            }
            let n = u64::from(bw * bh);
            let mean = image::Rgb(sum.map(|s| (s / n) as u8));
            for y in by..by + bh {
                for x in bx..bx + bw {
                    out.put_pixel(x, y, mean);
                }
            }
        }
    }
    out
}

/// The anonymized copy of `bytes` (decoded as the detectors decode: EXIF orientation applied,
/// so the boxes line up), encoded as the original was when it is a JPEG (quality 90), else as
/// PNG. Returns the bytes and their mimetype.
pub fn anonymize_bytes(
    bytes: &[u8],
    boxes: &[Bbox],
    mode: Mode,
    margin: f32,
) -> Result<(Vec<u8>, &'static str), Error> {
    let mut image = vision::decode(bytes, vision::DEFAULT_MAX_PIXELS)?;
    anonymize(&mut image, boxes, mode, margin);
    let jpeg = image::guess_format(bytes).ok() == Some(ImageFormat::Jpeg);
    let mut out = Cursor::new(Vec::new());
    if jpeg {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        image
            .write_with_encoder(encoder)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok((out.into_inner(), "image/jpeg"))
    } else {
        image
            .write_to(&mut out, ImageFormat::Png)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok((out.into_inner(), "image/png"))
    }
}

/// The copy's name: the original's, with `.png` in place of its extension when the copy is a
/// PNG made from another format.
pub fn copy_name(name: &str, mimetype: &str) -> String {
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    let stem = if stem.is_empty() { "item" } else { stem };
    match mimetype {
        "image/jpeg"
            if name.to_ascii_lowercase().ends_with(".jpg")
                || name.to_ascii_lowercase().ends_with(".jpeg") =>
        {
            name.to_string()
        }
        "image/jpeg" => format!("{stem}.jpg"),
        _ if name.to_ascii_lowercase().ends_with(".png") => name.to_string(),
        _ => format!("{stem}.png"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A noisy image: every pixel differs from its neighbours, as a face's texture does.
    fn noise(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = (x.wrapping_mul(73) ^ y.wrapping_mul(151)).wrapping_mul(2654435761) >> 24;
            image::Rgb([
                v as u8,
                (v >> 1) as u8 ^ x as u8,
                (v as u8).wrapping_add(y as u8),
            ])
        })
    }

    fn changed_share(a: &RgbImage, b: &RgbImage, (x, y, w, h): (u32, u32, u32, u32)) -> f64 {
        let mut changed = 0;
        for yy in y..y + h {
            for xx in x..x + w {
                changed += usize::from(a.get_pixel(xx, yy) != b.get_pixel(xx, yy));
            }
        }
        changed as f64 / f64::from(w * h)
    }

    #[test]
    fn every_pixel_of_a_box_changes_and_nothing_outside_it() {
        for mode in [Mode::Blur, Mode::Pixelate] {
            let original = noise(200, 150);
            let mut copy = original.clone();
            let bbox = [40.0, 30.0, 120.0, 110.0];
            anonymize(&mut copy, &[bbox], mode, 0.0);
            let inside = region(bbox, 0.0, 200, 150).unwrap();
            assert!(changed_share(&original, &copy, inside) > 0.95, "{mode:?}");
            assert_eq!(
                changed_share(&original, &copy, (150, 0, 50, 150)),
                0.0,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn regions_grow_by_the_margin_and_stay_inside_the_image() {
        assert_eq!(
            region([10.0, 10.0, 20.0, 30.0], 0.1, 100, 100),
            Some((9, 8, 12, 24))
        );
        assert_eq!(
            region([-50.0, 90.0, 10.0, 200.0], 0.0, 100, 100),
            Some((0, 90, 10, 10))
        );
        assert_eq!(region([200.0, 0.0, 300.0, 10.0], 0.0, 100, 100), None);
        assert_eq!(region([f32::NAN, 0.0, 1.0, 1.0], 0.0, 100, 100), None);
        assert_eq!(region([5.0, 5.0, 5.0, 9.0], 0.0, 100, 100), None);
    }

    #[test]
    fn a_png_copy_keeps_its_name_and_a_jpeg_stays_a_jpeg() {
        assert_eq!(copy_name("a.png", "image/png"), "a.png");
        assert_eq!(copy_name("b.webp", "image/png"), "b.png");
        assert_eq!(copy_name("c.JPG", "image/jpeg"), "c.JPG");
        assert_eq!(copy_name("d", "image/png"), "d.png");
        let mut png = Cursor::new(Vec::new());
        noise(64, 48).write_to(&mut png, ImageFormat::Png).unwrap();
        let (bytes, mimetype) = anonymize_bytes(
            png.get_ref(),
            &[[0.0, 0.0, 32.0, 32.0]],
            Mode::Pixelate,
            0.0,
        )
        .unwrap();
        assert_eq!(mimetype, "image/png");
        assert_eq!(
            image::load_from_memory(&bytes)
                .unwrap()
                .to_rgb8()
                .dimensions(),
            (64, 48)
        );
    }
}
