//! One detection with a user's model: the image decoded, fitted to the input and normalised
//! (`vision::blob`), the network run by whichever engine the caller has, the outputs decoded
//! by the model's format and mapped back to the image.

use vision::blob::{self, InputSize, Normalise, Resize};
use vision::centernet::Maps;
use vision::format::Format;
use vision::yolo::{self, Fit, Labelled, Layout, Params};
use vision::{Laps, Timings, ssd};

use crate::{Error, Outputs};

/// How a model is run and read.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub format: Format,
    pub input: InputSize,
    pub resize: Resize,
    pub normalise: Normalise,
    /// Confidence, overlap, class filter, how many.
    pub params: Params,
    /// SSD's class that is no object (a `background` first label), never a box.
    pub background: Option<usize>,
    /// The output a YOLO decoder reads, by name (the graph's first: exports with extra
    /// per-stride outputs list the decoded one first); `None`: the first one answered.
    pub output: Option<String>,
    pub max_pixels: u64,
}

/// Detects with a model in `config`'s format, inference done by `infer` (given the input's
/// values, `[1, 3, height, width]`, and its width and height); boxes best first, in pixels of
/// the image, each with its class index.
pub fn detect_with(
    bytes: &[u8],
    config: &Config,
    infer: impl FnOnce(Vec<f32>, (u32, u32)) -> Result<Outputs, Error>,
) -> Result<(Vec<Labelled>, Timings), Error> {
    let mut t = Timings::default();
    let mut laps = Laps::start();
    let image = vision::decode(bytes, config.max_pixels)?;
    laps.lap(&mut t.decode);
    let size = (image.width(), image.height());
    let input = config.input.for_image(size.0, size.1);
    let (values, fit) = blob::blob(&image, input, config.resize, &config.normalise);
    laps.lap(&mut t.preprocess);
    let outputs = infer(values, input)?;
    laps.lap(&mut t.infer);
    let found = decode(config, outputs, input, fit, size)?;
    laps.lap(&mut t.postprocess);
    Ok((found, t))
}

/// The outputs as boxes on the `size` image.
fn decode(
    config: &Config,
    outputs: Outputs,
    input: (u32, u32),
    fit: Fit,
    size: (u32, u32),
) -> Result<Vec<Labelled>, Error> {
    let format = config.format;
    let failed = |error| Error::Decode {
        format: format.name(),
        error,
    };
    let params = &config.params;
    // The YOLO decoders read one output: the named one, else the first.
    let chosen = config
        .output
        .as_ref()
        .and_then(|name| outputs.iter().position(|(n, _, _)| n == name))
        .unwrap_or(0);
    let mut outputs: Vec<(Vec<usize>, Vec<f32>)> =
        outputs.into_iter().map(|(_, s, v)| (s, v)).collect();
    match format {
        Format::Yolov5 | Format::Yolov8 => {
            let layout = if format == Format::Yolov5 {
                Layout::V5
            } else {
                Layout::V8
            };
            if outputs.is_empty() {
                return Err(failed(yolo::DecodeError::Outputs {
                    count: 0,
                    expected: "one output",
                }));
            }
            let (shape, values) = outputs.swap_remove(chosen);
            yolo::decode(layout, &values, &shape, fit, size, params).map_err(failed)
        }
        Format::Ssd => {
            ssd::decode(&outputs, input, fit, size, params, config.background).map_err(failed)
        }
        Format::CenterNet => {
            let maps = Maps::from_shapes(outputs).map_err(failed)?;
            let (rows, _) = maps.size();
            let stride = input.1 as f32 / rows.max(1) as f32;
            let wanted = params.classes.as_ref().is_none_or(|c| c.contains(&0));
            let mut found: Vec<Labelled> = maps
                .decode(params.confidence, stride, input, params.iou)
                .into_iter()
                .filter(|_| wanted)
                .filter_map(|face| {
                    let d = face.detection;
                    let (left, top) = fit.to_image(d.left, d.top);
                    let (right, bottom) = fit.to_image(d.right, d.bottom);
                    let detection = vision::Detection {
                        left,
                        top,
                        right,
                        bottom,
                        ..d
                    };
                    Some(Labelled {
                        detection: detection.clipped(size.0, size.1)?,
                        class: 0,
                    })
                })
                .collect();
            found.truncate(params.max_detections);
            Ok(found)
        }
    }
}
