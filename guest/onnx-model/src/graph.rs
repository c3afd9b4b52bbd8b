//! What a model's file says about it, read from its protobuf without building the network:
//! the image input and its declared shape, the outputs and theirs (a symbolic dimension is
//! `None`), and the class names exporters write into the metadata.

use tract_onnx::pb;
use tract_onnx::prelude::Framework;
use vision::format::{self, Format, Shape};

use crate::Error;

/// An ONNX model's interface.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// The first input that is not a weight: the image.
    pub input: String,
    pub input_shape: Shape,
    /// The outputs in the graph's order, with their declared shapes (empty when undeclared).
    pub outputs: Vec<(String, Shape)>,
    /// The class names from the metadata's `names`, when it has them in a form we read.
    pub names: Option<Vec<String>>,
    /// The size it was trained at, from Ultralytics' `imgsz` metadata (`[height, width]`), as
    /// (width, height): the input size of a dynamic export.
    pub imgsz: Option<(u32, u32)>,
}

impl Graph {
    /// Reads the model's interface from its bytes.
    pub fn read(bytes: &[u8]) -> Result<Self, Error> {
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| Error::Model(format!("{e:#}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| Error::Model("the file holds no graph".into()))?;
        let weights: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input = graph
            .input
            .iter()
            .find(|i| !weights.contains(&i.name.as_str()))
            .ok_or_else(|| Error::Model("the graph has no input".into()))?;
        let metadata = |key: &str| {
            proto
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.as_str())
        };
        let names = metadata("names").and_then(crate::parse_names);
        let imgsz = metadata("imgsz").and_then(imgsz);
        Ok(Self {
            input: input.name.clone(),
            input_shape: shape(input),
            outputs: graph
                .output
                .iter()
                .map(|o| (o.name.clone(), shape(o)))
                .collect(),
            names,
            imgsz,
        })
    }

    /// The input's width and height when the graph fixes them (`[N, 3, H, W]`), else the
    /// size the metadata says it was trained at.
    pub fn fixed_size(&self) -> Option<(u32, u32)> {
        match self.input_shape[..] {
            [_, _, Some(h), Some(w)] => Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?)),
            _ => self.imgsz,
        }
    }

    /// The decoder its outputs need, or why that cannot be told from their shapes.
    pub fn format(&self) -> Result<Format, String> {
        let shapes: Vec<Shape> = self.outputs.iter().map(|(_, s)| s.clone()).collect();
        format::guess(&shapes)
    }
}

/// `[320, 320]` (height, width) as (width, height), each side 1 to 4096.
fn imgsz(text: &str) -> Option<(u32, u32)> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let (h, w) = inner.split_once(',')?;
    let (h, w) = (h.trim().parse::<u32>().ok()?, w.trim().parse::<u32>().ok()?);
    ((1..=4096).contains(&w) && (1..=4096).contains(&h)).then_some((w, h))
}

/// A value's declared shape: positive sizes as `Some`, symbolic or unknown ones as `None`.
fn shape(value: &pb::ValueInfoProto) -> Shape {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(tensor)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Vec::new();
    };
    tensor
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Value::DimValue(v)) if v > 0 => usize::try_from(v).ok(),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ultralytics_imgsz_reads_as_width_and_height() {
        assert_eq!(imgsz("[320, 640]"), Some((640, 320)));
        assert_eq!(imgsz(" [64,64] "), Some((64, 64)));
        for bad in ["320", "[0, 320]", "[320, 99999]", "[a, b]", "[320, 320, 3]"] {
            assert_eq!(imgsz(bad), None, "{bad}");
        }
    }
}
