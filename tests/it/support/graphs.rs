//! ONNX graphs the tests write themselves with tract's own protobuf types: the pieces the
//! hostile graphs (`attacks`) and the detectors whose right answer is known by construction
//! (`yolo`) are made of.

use prost::Message;
use tract_onnx::pb;

pub const FLOAT: i32 = 1;
pub const INT64: i32 = 7;

pub fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: format!("{op}_{output}"),
        ..Default::default()
    }
}

/// A float tensor of `dims` holding `values`.
pub fn floats(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: values,
        ..Default::default()
    }
}

/// A YOLO-style detector over a `[1, 3, side, side]` input named `images` whose one output
/// `output0` (declared `output_dims`) is `values` whatever the image: the mean of the image
/// times zero plus the constant, so that the input is read but the boxes are known. `names`
/// go into the metadata as Ultralytics writes them.
pub fn constant_detector(
    side: i64,
    output_dims: &[i64],
    values: Vec<f32>,
    names: &[&str],
) -> Vec<u8> {
    let int = |name: &str, i: i64| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    };
    let ints = |name: &str, ints: Vec<i64>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints,
        ..Default::default()
    };
    let mut mean = node("ReduceMean", &["images"], "mean");
    mean.attribute = vec![ints("axes", vec![1, 2, 3]), int("keepdims", 0)];
    let names: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}: '{n}'"))
        .collect();
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        metadata_props: vec![pb::StringStringEntryProto {
            key: "names".into(),
            value: format!("{{{}}}", names.join(", ")),
        }],
        graph: Some(pb::GraphProto {
            name: "constant-detector".into(),
            node: vec![
                mean,
                node("Mul", &["mean", "zero"], "nothing"),
                node("Add", &["nothing", "boxes"], "output0"),
            ],
            initializer: vec![
                floats("zero", &[1], vec![0.0]),
                floats("boxes", output_dims, values),
            ],
            input: vec![value_info("images", &[1, 3, side, side])],
            output: vec![value_info("output0", output_dims)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}
