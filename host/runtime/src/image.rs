//! The `prelabel:detector/image` import: an item's bytes decoded and made into a network's
//! input by the host, natively, for guests that cannot do it fast (a Python guest has no JPEG
//! decoder, and its arithmetic is slow). The work is the Rust detectors' own ([`vision`]'s
//! decoder and OpenCV-exact INTER_LINEAR resize), so a guest that asks gets the pixels a
//! Rust guest computes for itself.
//!
//! Limits: the detectors' pixel limit (a decompression bomb is refused from its header);
//! the decoded image and the tensor count against the instance's memory cap while the host
//! holds them; and the decode runs on a blocking thread that the call awaits, so a call
//! past its deadline ends `timed-out` like one parked in any other host call (the thread
//! finishes its bounded decode and its result is dropped).

use wasmtime::component::Resource;

use super::bindings::prelabel::detector::image::{self, BlobOptions, ChannelOrder, Layout, Size};
use super::bindings::resources::Tensor;
use super::bindings::wasi::nn::tensor::TensorType;
use super::bindings::{ErrorKind, GuestError};
use super::instance::HostState;

/// What goes over the memory cap, when it is this import.
const HOLDER: &str = "image decoding";
/// The largest side a blob may have: far beyond any network's input, small enough that
/// the tensor's size cannot overflow.
const MAX_SIDE: u32 = 16_384;

/// The checked recipe of one blob.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub width: u32,
    pub height: u32,
    pub bgr: bool,
    pub mean: [f32; 3],
    pub scale: f32,
    pub planar: bool,
    pub max_pixels: u64,
}

impl Recipe {
    /// The guest's options, checked; the message names what is wrong.
    pub fn check(options: &BlobOptions) -> Result<Self, String> {
        for (name, side) in [("width", options.width), ("height", options.height)] {
            if side == 0 || side > MAX_SIDE {
                return Err(format!(
                    "blob {name} must be within 1..={MAX_SIDE}, got {side}"
                ));
            }
        }
        let mean = match options.mean.as_slice() {
            [] => [0.0; 3],
            &[a, b, c] => [a, b, c],
            other => {
                return Err(format!(
                    "blob mean must be three values (one per channel) or none, got {}",
                    other.len()
                ));
            }
        };
        if !options.scale.is_finite() || mean.iter().any(|m| !m.is_finite()) {
            return Err("blob scale and mean must be finite numbers".into());
        }
        Ok(Self {
            width: options.width,
            height: options.height,
            bgr: options.channels == ChannelOrder::Bgr,
            mean,
            scale: options.scale,
            planar: options.layout == Layout::Nchw,
            max_pixels: options
                .max_pixels
                .map_or(vision::DEFAULT_MAX_PIXELS, |max| {
                    max.min(vision::DEFAULT_MAX_PIXELS)
                }),
        })
    }

    /// The tensor's bytes.
    pub fn tensor_bytes(&self) -> usize {
        self.width as usize * self.height as usize * 3 * std::mem::size_of::<f32>()
    }

    /// The tensor's dimensions.
    pub fn dimensions(&self) -> Vec<u32> {
        if self.planar {
            vec![1, 3, self.height, self.width]
        } else {
            vec![1, self.height, self.width, 3]
        }
    }

    /// Decodes `data` and makes the blob: the image's (width, height) and the tensor's
    /// little-endian f32 bytes.
    pub fn make(&self, data: &[u8]) -> Result<((u32, u32), Vec<u8>), vision::Error> {
        let image = vision::decode(data, self.max_pixels)?;
        let size = (image.width(), image.height());
        let resized = vision::resize_linear(&image, self.width, self.height);
        let plane = self.width as usize * self.height as usize;
        // Written as the tensor's bytes directly: no second copy of it.
        let mut bytes = vec![0u8; self.tensor_bytes()];
        for (i, pixel) in resized.pixels().enumerate() {
            let [r, g, b] = pixel.0;
            let ordered = if self.bgr { [b, g, r] } else { [r, g, b] };
            for (c, value) in ordered.into_iter().enumerate() {
                let at = 4 * if self.planar {
                    c * plane + i
                } else {
                    i * 3 + c
                };
                let value = (f32::from(value) - self.mean[c]) * self.scale;
                bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        Ok((size, bytes))
    }
}

/// What decoding an image takes, in bytes, from its header: the decoder's own buffer at the
/// image's depth (16-bit channels and alpha take up to 8 bytes a pixel), a second one when its
/// EXIF orientation turns it, and the 8-bit RGB copy the resize reads. `None` when the header
/// does not say (the decoder then names what is wrong).
fn decoding_bytes(data: &[u8], max_pixels: u64) -> Option<u64> {
    use ::image::ImageDecoder;
    let mut decoder = ::image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    let (width, height) = decoder.dimensions();
    let pixels = (u64::from(width) * u64::from(height)).min(max_pixels);
    let color = decoder.color_type();
    let depth = u64::from(color.bytes_per_pixel());
    let turned = decoder
        .orientation()
        .is_ok_and(|o| o != ::image::metadata::Orientation::NoTransforms);
    let rgb = if color == ::image::ColorType::Rgb8 {
        0
    } else {
        3
    };
    let per_pixel = depth + if turned { depth } else { 0 } + rgb;
    Some(pixels.saturating_mul(per_pixel))
}

impl image::Host for HostState {
    async fn blob(
        &mut self,
        data: Vec<u8>,
        options: BlobOptions,
    ) -> wasmtime::Result<Result<(Size, Resource<Tensor>), GuestError>> {
        let recipe = match Recipe::check(&options) {
            Ok(recipe) => recipe,
            Err(message) => {
                return Ok(Err(GuestError {
                    kind: ErrorKind::Internal,
                    message,
                }));
            }
        };
        // While decoding, the host holds the item's bytes the guest passed, the decoded
        // image, its resized copy and the tensor; an image over the pixel limit is refused by
        // the decoder from its header.
        let decoding = decoding_bytes(&data, recipe.max_pixels).unwrap_or(0);
        let resized = recipe.width as usize * recipe.height as usize * 3;
        let working = usize::try_from(decoding)
            .unwrap_or(usize::MAX)
            .saturating_add(data.len())
            .saturating_add(resized)
            .saturating_add(recipe.tensor_bytes());
        self.hold(working, HOLDER)?;
        let made = {
            let recipe = recipe.clone();
            tokio::task::spawn_blocking(move || recipe.make(&data)).await
        };
        self.release(working);
        let (size, bytes) = match made {
            Ok(Ok(made)) => made,
            Ok(Err(e)) => {
                return Ok(Err(GuestError {
                    kind: ErrorKind::InvalidItem,
                    message: format!("cannot make a blob of the item: {e}"),
                }));
            }
            // The decoder panicked (a bug in it, on hostile bytes): the call ends, the host goes on.
            Err(e) => return Err(wasmtime::format_err!("image decoding failed: {e}")),
        };
        self.hold(bytes.len(), HOLDER)?;
        let tensor = self.table.push(Tensor {
            dimensions: recipe.dimensions(),
            ty: TensorType::Fp32,
            data: bytes,
        })?;
        Ok(Ok((
            Size {
                width: size.0,
                height: size.1,
            },
            tensor,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BlobOptions {
        BlobOptions {
            width: 300,
            height: 300,
            channels: ChannelOrder::Bgr,
            mean: vec![104.0, 177.0, 123.0],
            scale: 1.0,
            layout: Layout::Nchw,
            max_pixels: None,
        }
    }

    fn photo() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/images/skimage_rocket.jpg"
        );
        std::fs::read(path).expect("fixture photo")
    }

    #[test]
    fn the_seed_blob_is_the_res10_detectors_own_input() {
        let data = photo();
        let ((width, height), bytes) = Recipe::check(&options()).unwrap().make(&data).unwrap();
        let image = res10::decode(&data, res10::DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((width, height), (image.width(), image.height()));
        let expected = res10::preprocess(&image);
        let expected: Vec<u8> = expected
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn pixels_first_rgb_scaled_holds_the_same_pixels() {
        let data = photo();
        let planar = Recipe::check(&options()).unwrap().make(&data).unwrap().1;
        let mut interleaved = options();
        interleaved.channels = ChannelOrder::Rgb;
        interleaved.layout = Layout::Nhwc;
        interleaved.mean = vec![123.0, 177.0, 104.0];
        interleaved.scale = 0.5;
        let recipe = Recipe::check(&interleaved).unwrap();
        assert_eq!(recipe.dimensions(), vec![1, 300, 300, 3]);
        let interleaved = recipe.make(&data).unwrap().1;
        let f = |bytes: &[u8], at: usize| {
            f32::from_le_bytes(bytes[at * 4..at * 4 + 4].try_into().unwrap())
        };
        let plane = 300 * 300;
        for i in [0, 1234, plane - 1] {
            // Planar BGR's blue plane is the third value of each interleaved RGB pixel.
            assert_eq!(f(&planar, i) * 0.5, f(&interleaved, i * 3 + 2));
            assert_eq!(f(&planar, 2 * plane + i) * 0.5, f(&interleaved, i * 3));
        }
    }

    #[test]
    fn nonsense_options_and_bytes_are_named() {
        let mut bad = options();
        bad.width = 0;
        assert!(Recipe::check(&bad).unwrap_err().contains("width"));
        let mut bad = options();
        bad.mean = vec![1.0, 2.0];
        assert!(Recipe::check(&bad).unwrap_err().contains("three values"));
        let mut bad = options();
        bad.scale = f32::NAN;
        assert!(Recipe::check(&bad).unwrap_err().contains("finite"));
        let err = Recipe::check(&options())
            .unwrap()
            .make(b"not an image")
            .unwrap_err();
        assert!(err.to_string().contains("image"), "{err}");
    }

    #[test]
    fn the_pixel_limit_is_the_smaller_of_the_guests_and_the_detectors() {
        let mut small = options();
        small.max_pixels = Some(1000);
        let err = Recipe::check(&small).unwrap().make(&photo()).unwrap_err();
        assert!(err.to_string().contains("over the limit of 1000"), "{err}");
        let mut huge = options();
        huge.max_pixels = Some(u64::MAX);
        assert_eq!(
            Recipe::check(&huge).unwrap().max_pixels,
            vision::DEFAULT_MAX_PIXELS
        );
    }
}
