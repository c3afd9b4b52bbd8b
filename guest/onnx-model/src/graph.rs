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
        let names = proto
            .metadata_props
            .iter()
            .find(|p| p.key == "names")
            .and_then(|p| crate::parse_names(&p.value));
        Ok(Self {
            input: input.name.clone(),
            input_shape: shape(input),
            outputs: graph
                .output
                .iter()
                .map(|o| (o.name.clone(), shape(o)))
                .collect(),
            names,
        })
    }

    /// The input's width and height when the graph fixes them (`[N, 3, H, W]`).
    pub fn fixed_size(&self) -> Option<(u32, u32)> {
        match self.input_shape[..] {
            [_, _, Some(h), Some(w)] => Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?)),
            _ => None,
        }
    }

    /// The decoder its outputs need, or why that cannot be told from their shapes.
    pub fn format(&self) -> Result<Format, String> {
        let shapes: Vec<Shape> = self.outputs.iter().map(|(_, s)| s.clone()).collect();
        format::guess(&shapes)
    }
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
