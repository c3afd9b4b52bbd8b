//! Thumbnails for the review UI: made by the host once per item bytes and size and cached
//! under the home (`cache/thumbnails/`), so a grid of a thousand photos moves kilobytes, not
//! the originals scaled down by the browser. Decoded with the detector library's decoder: the
//! same formats, EXIF orientation and pixel limit (a decompression bomb is refused from its
//! header), so a hostile upload costs the host no more than it costs a guest.

use std::io::Cursor;
use std::path::PathBuf;

use image::DynamicImage;

use crate::error::{Error, Result};
use crate::items::item::ItemRecord;
use crate::store::Store;

/// The sides a thumbnail may have: the grid's and the item view's.
pub const SIDES: [u32; 2] = [320, 1600];

/// A JPEG of the item's image whose longer side is at most `side` pixels (never upscaled).
pub fn get(store: &Store, item: &ItemRecord, side: u32) -> Result<Vec<u8>> {
    if !SIDES.contains(&side) {
        return Err(Error::invalid(
            "size",
            format!("must be one of {SIDES:?}, got {side}"),
        ));
    }
    let path = cache_path(store, &item.digest, side);
    if let Ok(bytes) = std::fs::read(&path) {
        return Ok(bytes);
    }
    let original = store.read_blob(&item.digest)?;
    let rgb = vision::decode(&original, vision::DEFAULT_MAX_PIXELS).map_err(|e| {
        Error::invalid(
            "item",
            format!("item {} is not an image it can show: {e}", item.id),
        )
    })?;
    let image = DynamicImage::ImageRgb8(rgb);
    let small = if image.width().max(image.height()) > side {
        image.thumbnail(side, side)
    } else {
        image
    };
    let mut jpeg = Cursor::new(Vec::new());
    small
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .map_err(|e| Error::invalid("item", format!("cannot encode a thumbnail: {e}")))?;
    let jpeg = jpeg.into_inner();
    // A cache: failing to keep it costs a decode next time, nothing else.
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = crate::files::write_atomically(&path, &jpeg) {
        tracing::warn!("cannot cache a thumbnail at {}: {e}", path.display());
    }
    Ok(jpeg)
}

fn cache_path(store: &Store, digest: &str, side: u32) -> PathBuf {
    store
        .home()
        .join("cache/thumbnails")
        .join(format!("{digest}-{side}.jpg"))
}
