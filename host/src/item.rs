//! What Prelabel knows about an item's bytes before any guest sees them: its mimetype,
//! sniffed from the content (never trusted from the name), and an image's size, read from
//! the header alone.

use std::io::Cursor;

/// The mimetype of `bytes`, from magic numbers; UTF-8 text is `text/plain`, anything else
/// unknown is `application/octet-stream`.
pub fn sniff_mimetype(bytes: &[u8]) -> String {
    if let Some(kind) = infer::get(bytes) {
        return kind.mime_type().to_string();
    }
    if std::str::from_utf8(bytes).is_ok() {
        "text/plain".into()
    } else {
        "application/octet-stream".into()
    }
}

/// Width and height from an image header, without decoding pixels.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_from_content_not_name() {
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::new_rgb8(3, 2)
            .write_to(&mut png, image::ImageFormat::Png)
            .expect("encode");
        let png = png.into_inner();
        assert_eq!(sniff_mimetype(&png), "image/png");
        assert_eq!(image_size(&png), Some((3, 2)));
        assert_eq!(sniff_mimetype(b"hello, world\n"), "text/plain");
        assert_eq!(
            sniff_mimetype(&[0xff, 0xfe, 0x00, 0x81]),
            "application/octet-stream"
        );
        assert_eq!(image_size(b"hello"), None);
    }
}
