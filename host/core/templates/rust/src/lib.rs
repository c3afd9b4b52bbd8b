//! {{name}}: a Prelabel detector in Rust.
//!
//! It labels each image `bright` or `dark` from its mean brightness, which the host's image
//! service computes from a 32x32 copy: replace `detect` with your model's work. For decoding
//! and a model inside the component (tract), see `guest/face-detector` and `guest/res10` in
//! Prelabel's repository; for a model the host runs, the `wasi:nn` imports.
//!
//! Build and try it: `prelabel detect . photo.jpg` (this runs the manifest's `build` first).

use std::sync::OnceLock;

// The generated glue lowers `item` into many parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "detector", path: "wit", generate_all });
}

use bindings::prelabel::detector::image::{self, BlobOptions, ChannelOrder, Layout};
use bindings::prelabel::detector::types::{ErrorKind, Geometry, ModelInfo, Value};
use bindings::{Annotation, Error, Guest, InitInput, Item};

/// Mean brightness (0..1) at or above which an image is `bright`; set once by `init`.
static THRESHOLD: OnceLock<f32> = OnceLock::new();

fn error(kind: ErrorKind, message: String) -> Error {
    Error { kind, message }
}

struct Detector;

impl Guest for Detector {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        let mut threshold = 0.5;
        for input in inputs {
            match (input.name.as_str(), input.value) {
                ("threshold", Value::Float(value)) if (0.0..=1.0).contains(&value) => {
                    threshold = value as f32
                }
                (name, value) => {
                    return Err(error(
                        ErrorKind::InvalidInput,
                        format!("init input `{name}` = {value:?} is not a threshold within 0..1"),
                    ));
                }
            }
        }
        let _ = THRESHOLD.set(threshold);
        Ok(())
    }

    fn detect(item: Item) -> Result<Vec<Annotation>, Error> {
        let threshold = *THRESHOLD
            .get()
            .ok_or_else(|| error(ErrorKind::NotInitialized, "detect called before init".into()))?;
        // The host decodes the item and resizes it (OpenCV's INTER_LINEAR) to 32x32, RGB, 0..1.
        let (size, small) = image::blob(
            &item.data,
            &BlobOptions {
                width: 32,
                height: 32,
                channels: ChannelOrder::Rgb,
                mean: Vec::new(),
                scale: 1.0 / 255.0,
                layout: Layout::Nhwc,
                max_pixels: None,
            },
        )?;
        let values: Vec<f32> = small
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let brightness = values.iter().sum::<f32>() / values.len().max(1) as f32;
        println!(
            "{}: {}x{}, brightness {brightness:.3}",
            item.name, size.width, size.height
        );
        let (label, confidence) = if brightness >= threshold {
            ("bright", brightness)
        } else {
            ("dark", 1.0 - brightness)
        };
        Ok(vec![Annotation {
            geometry: Geometry::Classification,
            label: label.to_string(),
            model: ModelInfo {
                name: "{{name}}".to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                confidence,
            },
        }])
    }
}

bindings::export!(Detector with_types_in bindings);
