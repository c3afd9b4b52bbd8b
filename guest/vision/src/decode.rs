//! Decoding item bytes into 8-bit RGB, as OpenCV's `imread(IMREAD_COLOR)` does for the seed:
//! grey becomes three channels, alpha is dropped, EXIF orientation is applied.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use crate::Error;

/// 64 megapixels: larger images are refused before any pixel is decoded.
pub const DEFAULT_MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Decodes PNG, JPEG, GIF (first frame), BMP or WebP bytes, sniffing the format from the
/// bytes themselves. The pixel count is checked against `max_pixels` from the header, so a
/// decompression bomb is refused without allocating its pixels.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, Error> {
    // From the header alone, before any decoder sizes its buffers (on wasm32 a decoder
    // refuses a bomb only as "memory limit exceeded", which does not say why).
    if let Ok(size) = imagesize::blob_size(bytes) {
        check_pixels(size.width as u64, size.height as u64, max_pixels)?;
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Decode(e.to_string()))?;
    // Our own limits, below: the pixel count first, so that a bomb is named as such.
    reader.no_limits();
    if reader.format().is_none() {
        return Err(Error::Decode(
            "unknown format (expected PNG, JPEG, GIF, BMP or WebP)".into(),
        ));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| Error::Decode(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    let pixels = check_pixels(u64::from(width), u64::from(height), max_pixels)?;
    // Belt and braces: the decoder's own allocation cap, in case a format
    // needs more than its header says (16-bit RGBA is 8 bytes a pixel).
    let mut limits = Limits::default();
    limits.max_alloc = Some(pixels.saturating_mul(16).max(1 << 20));
    decoder
        .set_limits(limits)
        .map_err(|e| Error::Decode(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .map_err(|e| Error::Decode(e.to_string()))?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| Error::Decode(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(into_rgb8(image))
}

/// The image as 8-bit RGB. Grey and RGBA, the common 8-bit layouts besides RGB, are
/// converted here by copying channels; `image`'s general conversion goes through its colour
/// management and took three times as long as decoding a grey PNG in the sandbox.
fn into_rgb8(image: DynamicImage) -> RgbImage {
    let (width, height) = (image.width(), image.height());
    let pixels = width as usize * height as usize;
    let rgb: Option<Vec<u8>> = match &image {
        DynamicImage::ImageLuma8(grey) => {
            let mut raw = vec![0u8; pixels * 3];
            for (out, &v) in raw.chunks_exact_mut(3).zip(grey.as_raw()) {
                out.fill(v);
            }
            Some(raw)
        }
        DynamicImage::ImageRgba8(rgba) => {
            let mut raw = vec![0u8; pixels * 3];
            for (out, p) in raw.chunks_exact_mut(3).zip(rgba.as_raw().chunks_exact(4)) {
                out.copy_from_slice(&p[..3]);
            }
            Some(raw)
        }
        _ => None,
    };
    match rgb.and_then(|raw| RgbImage::from_raw(width, height, raw)) {
        Some(rgb) => rgb,
        None => image.into_rgb8(),
    }
}

/// The pixel count of a `width` x `height` image, if it is within the limit.
fn check_pixels(width: u64, height: u64, max_pixels: u64) -> Result<u64, Error> {
    let pixels = width.saturating_mul(height);
    let (width, height) = (
        width.min(u32::MAX as u64) as u32,
        height.min(u32::MAX as u64) as u32,
    );
    if pixels == 0 {
        return Err(Error::Empty { width, height });
    }
    if pixels > max_pixels {
        return Err(Error::TooLarge {
            width,
            height,
            pixels,
            max_pixels,
        });
    }
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgba, RgbaImage};

    fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    #[test]
    fn grey_png_becomes_three_equal_channels() {
        let grey = image::GrayImage::from_fn(4, 3, |x, y| image::Luma([(x * 10 + y) as u8]));
        let rgb = decode(
            &encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Png),
            DEFAULT_MAX_PIXELS,
        )
        .expect("decodes");
        assert_eq!(rgb.dimensions(), (4, 3));
        assert_eq!(rgb.get_pixel(3, 2).0, [32, 32, 32]);
    }

    #[test]
    fn alpha_is_dropped_not_blended() {
        let rgba = RgbaImage::from_pixel(2, 2, Rgba([200, 100, 50, 0]));
        let rgb = decode(
            &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
            DEFAULT_MAX_PIXELS,
        )
        .expect("decodes");
        assert_eq!(rgb.get_pixel(0, 0).0, [200, 100, 50]);
    }

    #[test]
    fn every_supported_format_decodes() {
        let rgb = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, image::Rgb([10, 200, 30])));
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::Bmp,
            ImageFormat::WebP,
        ] {
            let decoded = decode(&encode(&rgb, format), DEFAULT_MAX_PIXELS)
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!(decoded.dimensions(), (8, 8), "{format:?}");
        }
    }

    #[test]
    fn text_is_not_an_image() {
        let err = decode(b"name,label\nfoo,face\n", DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err}");
        assert!(err.to_string().contains("unknown format"), "{err}");
    }

    #[test]
    fn truncated_png_is_a_decode_error() {
        let rgb = DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3])));
        let png = encode(&rgb, ImageFormat::Png);
        let err = decode(&png[..png.len() / 2], DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err}");
    }

    #[test]
    fn corrupt_jpeg_is_a_decode_error() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.extend(std::iter::repeat_n(0x42, 200));
        let err = decode(&jpeg, DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err}");
    }

    #[test]
    fn pixel_limit_is_checked_from_the_header() {
        // A PNG header that claims 100000 x 100000 pixels: refused before decoding.
        let small = DynamicImage::ImageLuma8(image::GrayImage::new(1, 1));
        let mut png = encode(&small, ImageFormat::Png);
        // IHDR: chunk type at 12..16, width/height at 16..24, its CRC at 29..33.
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32fast::hash(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode(&png, DEFAULT_MAX_PIXELS).unwrap_err();
        match err {
            Error::TooLarge { width, height, .. } => {
                assert_eq!((width, height), (100_000, 100_000))
            }
            Error::Decode(msg) => panic!("expected the pixel limit, got a decode error: {msg}"),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn pixel_limit_is_configurable() {
        let rgb = DynamicImage::ImageRgb8(RgbImage::new(100, 100));
        let err = decode(&encode(&rgb, ImageFormat::Png), 9_999).unwrap_err();
        assert!(err.to_string().contains("over the limit of 9999"), "{err}");
    }
}
