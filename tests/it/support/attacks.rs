//! Hostile inputs that the tests build themselves: ONNX graphs written to hurt the host's
//! native inference, and components written in WAT that reach past one linear memory.

use std::path::Path;

use prost::Message;
use tract_onnx::pb;

use super::graphs::{FLOAT, INT64, node, value_info};

fn int64s(name: &str, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![values.len() as i64],
        data_type: INT64,
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

fn model(nodes: Vec<pb::NodeProto>, initializer: Vec<pb::TensorProto>, input: &[i64]) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            name: "attack".into(),
            node: nodes,
            initializer,
            input: vec![value_info("x", input)],
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `y = x`, x of shape [1]: a model that works.
pub fn identity() -> Vec<u8> {
    model(vec![node("Identity", &["x"], "y")], vec![], &[1])
}

/// A 16384 x 16384 float constant (1 GiB) that tract folds while optimising.
pub fn constant_bomb() -> Vec<u8> {
    model(
        vec![
            node("ConstantOfShape", &["shape"], "c"),
            node("Add", &["x", "c"], "y"),
        ],
        vec![int64s("shape", &[16384, 16384])],
        &[1],
    )
}

/// x of shape [1] expanded to 2^31 x 2^31 at run time.
pub fn expand_bomb() -> Vec<u8> {
    model(
        vec![node("Expand", &["x", "shape"], "y")],
        vec![int64s("shape", &[1 << 31, 1 << 31])],
        &[1],
    )
}

/// `y = x + w` where `w` is "external data": 4 bytes of `secret.bin`, a file beside the model
/// that the package never declared (in the store: another blob).
pub fn external_data() -> Vec<u8> {
    let w = pb::TensorProto {
        name: "w".into(),
        dims: vec![1],
        data_type: FLOAT,
        data_location: Some(pb::tensor_proto::DataLocation::External as i32),
        external_data: vec![
            pb::StringStringEntryProto {
                key: "location".into(),
                value: "secret.bin".into(),
            },
            pb::StringStringEntryProto {
                key: "length".into(),
                value: "4".into(),
            },
        ],
        ..Default::default()
    };
    model(vec![node("Add", &["x", "w"], "y")], vec![w], &[1])
}

/// x of shape [1] expanded to 8192 x 8192 (256 MiB): a legal result the size of the cap.
pub fn wide() -> Vec<u8> {
    model(
        vec![node("Expand", &["x", "shape"], "y")],
        vec![int64s("shape", &[8192, 8192])],
        &[1],
    )
}

/// A chain of 2000 512x512 matrix products: minutes of work for one call.
pub fn slow() -> Vec<u8> {
    let n = 2000;
    let weights = pb::TensorProto {
        name: "w".into(),
        dims: vec![512, 512],
        data_type: FLOAT,
        raw_data: 0.001f32.to_le_bytes().repeat(512 * 512),
        ..Default::default()
    };
    let nodes = (0..n)
        .map(|i| {
            let input = if i == 0 {
                "x".to_string()
            } else {
                format!("h{i}")
            };
            let output = if i == n - 1 {
                "y".to_string()
            } else {
                format!("h{}", i + 1)
            };
            node("MatMul", &[&input, "w"], &output)
        })
        .collect();
    model(nodes, vec![weights], &[512, 512])
}

/// A package folder for the hostile component with `artifacts` (name, bytes) beside it.
pub fn hostile_with_artifacts(dir: &Path, artifacts: &[(&str, Vec<u8>)]) {
    hostile_package(dir, artifacts, &[]);
}

/// The same, declaring the hosts it may call (`[module] allowed_outbound_hosts`).
pub fn hostile_package(dir: &Path, artifacts: &[(&str, Vec<u8>)], hosts: &[&str]) {
    let source = super::hostile_guest();
    let component = super::root().join("target/wasm32-wasip2/release/hostile_guest.wasm");
    std::fs::copy(&component, dir.join("hostile.wasm")).expect("copy component");
    let mut manifest = std::fs::read_to_string(source.join("prelabel.toml"))
        .expect("manifest")
        .replace(
            "../../../target/wasm32-wasip2/release/hostile_guest.wasm",
            "hostile.wasm",
        );
    for (name, bytes) in artifacts {
        std::fs::write(dir.join(name), bytes).expect("write artifact");
        manifest = manifest.replacen(
            "[module]",
            &format!("[[artifacts]]\nname = \"{name}\"\npath = \"{name}\"\n\n[module]"),
            1,
        );
    }
    if !hosts.is_empty() {
        let list: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        manifest = manifest.replacen(
            "[module]\n",
            &format!("[module]\nallowed_outbound_hosts = [{}]\n", list.join(", ")),
            1,
        );
    }
    std::fs::write(dir.join("prelabel.toml"), manifest).expect("write manifest");
}

/// The world's types, exported so that the lifted functions may use them.
const WORLD_TYPES: &str = r#"
  (type $value (variant (case "string" string) (case "float" f64) (case "integer" s64) (case "boolean" bool)))
  (export $value-e "value" (type $value))
  (type $init-input (record (field "name" string) (field "value" $value-e)))
  (export $init-input-e "init-input" (type $init-input))
  (type $error-kind (enum "invalid-input" "invalid-item" "artifact" "not-initialized" "internal"))
  (export $error-kind-e "error-kind" (type $error-kind))
  (type $error (record (field "kind" $error-kind-e) (field "message" string)))
  (export $error-e "error" (type $error))
  (type $item (record (field "id" string) (field "name" string) (field "mimetype" string) (field "metadata" string) (field "data" (list u8))))
  (export $item-e "item" (type $item))
  (type $bbox (record (field "left" f32) (field "top" f32) (field "right" f32) (field "bottom" f32)))
  (export $bbox-e "bbox" (type $bbox))
  (type $point (record (field "x" f32) (field "y" f32)))
  (export $point-e "point" (type $point))
  (type $geometry (variant (case "bbox" $bbox-e) (case "point" $point-e) (case "polygon" (list $point-e)) (case "classification")))
  (export $geometry-e "geometry" (type $geometry))
  (type $model-info (record (field "name" string) (field "version" string) (field "confidence" f32)))
  (export $model-info-e "model-info" (type $model-info))
  (type $annotation (record (field "geometry" $geometry-e) (field "label" string) (field "model" $model-info-e)))
  (export $annotation-e "annotation" (type $annotation))
  (func $init (param "inputs" (list $init-input-e)) (result (result (error $error-e)))
    (canon lift (core func $i "init") (memory $i "memory") (realloc (func $i "realloc"))))
  (export "init" (func $init))
  (func $detect (param "item" $item-e) (result (result (list $annotation-e) (error $error-e)))
    (canon lift (core func $i "detect") (memory $i "memory") (realloc (func $i "realloc"))))
  (export "detect" (func $detect))
"#;

/// A component (no WASI, no imports) whose `detect` runs `attack` (core wasm instructions
/// over the module's extra `declarations`) and then returns no annotations.
fn component(declarations: &str, attack: &str) -> Vec<u8> {
    let text = format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    {declarations}
    (global $next (mut i32) (i32.const 1024))
    ;; A bump allocator in the first memory, for the arguments the host passes.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $ptr i32)
      (local.set $ptr (global.get $next))
      (global.set $next (i32.add (local.get $ptr)
        (i32.and (i32.add (local.get 3) (i32.const 15)) (i32.const -16))))
      (block $done
        (loop $grow
          (br_if $done (i32.le_u (global.get $next) (i32.mul (memory.size 0) (i32.const 65536))))
          (br_if $done (i32.eq (memory.grow 0 (i32.const 16)) (i32.const -1)))
          (br $grow)))
      (local.get $ptr))
    (func (export "init") (param i32 i32) (result i32)
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.const 0))
    (func (export "detect") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      {attack}
      ;; ok, an empty list
      (i32.store8 (i32.const 0) (i32.const 0))
      (i32.store (i32.const 4) (i32.const 0))
      (i32.store (i32.const 8) (i32.const 0))
      (i32.const 0)))
  (core instance $i (instantiate $m))
  {WORLD_TYPES}
)"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("invalid WAT: {e}"))
}

/// Twelve more memories, each grown by 240 MiB and written to end to end.
pub fn many_memories() -> Vec<u8> {
    let count = 12;
    let declarations: String = (1..=count).map(|i| format!("(memory $m{i} 1)\n")).collect();
    let attack: String = (1..=count)
        .map(|i| {
            format!(
                "(drop (memory.grow $m{i} (i32.const 3840)))
                 (memory.fill $m{i} (i32.const 0) (i32.const 1) (i32.mul (memory.size $m{i}) (i32.const 65536)))\n"
            )
        })
        .collect();
    component(&declarations, &attack)
}

/// A table grown to 2^28 entries (2 GiB of host memory in wasmtime).
pub fn huge_table() -> Vec<u8> {
    component(
        "(table $t 1 funcref)",
        "(if (i32.eq (table.grow $t (ref.null func) (i32.const 0x10000000)) (i32.const -1))
           (then unreachable))",
    )
}

/// A package folder for a WAT-built component: one `detect` function, no init inputs.
pub fn wat_package(dir: &Path, component: &[u8]) {
    std::fs::write(dir.join("attack.wasm"), component).expect("write component");
    std::fs::write(
        dir.join("prelabel.toml"),
        r#"name = "attack"
version = "0.1.0"
component = "attack.wasm"

[module]
name = "attack"

[[module.functions]]
name = "detect"
inputs = [{ name = "item", type = "item" }]
"#,
    )
    .expect("write manifest");
}

/// A `width` x `height` PNG of 16-bit RGBA (8 bytes a pixel decoded), all black: a few
/// hundred KiB that decode to half a GiB at 8192 x 8192. Written a row at a time, so the
/// test itself never holds the pixels.
pub fn png16_rgba(width: u32, height: u32) -> Vec<u8> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    // 16 bits a channel, colour type 6 (RGBA), deflate, no filter, no interlace.
    header.extend_from_slice(&[16, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &header);
    let mut pixels = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    // Each row: filter type 0, then its pixels.
    let row = vec![0u8; 1 + width as usize * 8];
    for _ in 0..height {
        pixels.write_all(&row).expect("deflate a row");
    }
    chunk(&mut out, b"IDAT", &pixels.finish().expect("deflate"));
    chunk(&mut out, b"IEND", &[]);
    out
}
