//! The demo's annotated pictures: each box outlined, with its label and confidence written
//! on a tag above it in a bitmap font (font8x8, MIT: no font file to ship or load).

use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};

use prelabel::results::annotation::Geometry;
use prelabel::results::annotation::Stored;

const BOX: Rgb<u8> = Rgb([0, 230, 64]);
const TEXT: Rgb<u8> = Rgb([0, 0, 0]);

/// Draws every box of `annotations` on `img`, with a `label 0.97` tag on each.
pub fn draw(img: &mut RgbImage, annotations: &[Stored]) {
    // Lines and letters grow with the picture so that they read the same at any size.
    let scale = (img.width().max(img.height()) / 300).max(2);
    for a in annotations {
        if let Geometry::Box {
            left,
            top,
            right,
            bottom,
        } = a.annotation.geometry
        {
            let b = [left, top, right, bottom].map(|v| v.max(0.0) as u32);
            outline(img, b, scale);
            let text = format!(
                "{} {:.2}",
                a.annotation.label, a.annotation.model.confidence
            );
            tag(img, &text, b[0], b[1], scale);
        }
    }
}

fn outline(img: &mut RgbImage, [l, t, r, b]: [u32; 4], thickness: u32) {
    let (w, h) = img.dimensions();
    let (r, b) = (r.min(w.saturating_sub(1)), b.min(h.saturating_sub(1)));
    for y in t..=b {
        for x in l..=r {
            if x < l + thickness || x + thickness > r || y < t + thickness || y + thickness > b {
                img.put_pixel(x, y, BOX);
            }
        }
    }
}

/// A filled tag with `text` on it, above the box's top-left corner, or just inside the box
/// when there is no room above; shifted left to stay in the picture, clipped if wider.
fn tag(img: &mut RgbImage, text: &str, left: u32, top: u32, scale: u32) {
    let glyph = 8 * scale;
    let (width, height) = (
        text.chars().count() as u32 * glyph + 2 * scale,
        glyph + 2 * scale,
    );
    let x0 = left.min(img.width().saturating_sub(width));
    let y0 = if top >= height { top - height } else { top };
    fill(img, x0, y0, width, height, BOX);
    for (i, c) in text.chars().enumerate() {
        let rows = font8x8::BASIC_FONTS.get(c).unwrap_or([0; 8]);
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..8 {
                // font8x8: bit 0 is the leftmost pixel of a row.
                if bits >> col & 1 == 1 {
                    let x = x0 + scale + i as u32 * glyph + col * scale;
                    let y = y0 + scale + row as u32 * scale;
                    fill(img, x, y, scale, scale, TEXT);
                }
            }
        }
    }
}

fn fill(img: &mut RgbImage, x0: u32, y0: u32, width: u32, height: u32, color: Rgb<u8>) {
    for y in y0..(y0 + height).min(img.height()) {
        for x in x0..(x0 + width).min(img.width()) {
            img.put_pixel(x, y, color);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_pixels(img: &RgbImage, x: std::ops::Range<u32>, y: std::ops::Range<u32>) -> usize {
        y.flat_map(|y| x.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| *img.get_pixel(x, y) == TEXT)
            .count()
    }

    #[test]
    fn a_tag_sits_above_the_box_or_inside_it_at_the_top_edge() {
        let mut img = RgbImage::from_pixel(200, 100, Rgb([255, 255, 255]));
        tag(&mut img, "face 0.97", 10, 50, 2);
        // 9 characters of 16 px plus a 2 px margin on each side; 20 px tall above y = 50.
        assert_eq!(*img.get_pixel(10, 30), BOX);
        assert_eq!(*img.get_pixel(10 + 9 * 16 + 3, 49), BOX);
        assert_eq!(*img.get_pixel(10 + 9 * 16 + 4, 40), Rgb([255, 255, 255]));
        assert!(
            text_pixels(&img, 10..158, 30..50) > 100,
            "letters were drawn"
        );
        assert_eq!(
            text_pixels(&img, 0..200, 50..100),
            0,
            "nothing inside the box"
        );

        let mut img = RgbImage::from_pixel(200, 100, Rgb([255, 255, 255]));
        tag(&mut img, "face", 190, 5, 2);
        assert!(
            text_pixels(&img, 130..200, 5..25) > 40,
            "moved left, inside the box"
        );
    }

    #[test]
    fn each_character_is_its_own_glyph() {
        let mut one = RgbImage::from_pixel(100, 40, Rgb([255, 255, 255]));
        let mut other = one.clone();
        tag(&mut one, "0.97", 0, 30, 2);
        tag(&mut other, "0.98", 0, 30, 2);
        assert_ne!(one, other);
        assert_eq!(
            text_pixels(&one, 0..50, 0..40),
            text_pixels(&other, 0..50, 0..40),
            "the same first three characters"
        );
    }
}
