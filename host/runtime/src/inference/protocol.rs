//! What crosses between the host and an inference worker: tensors, where a model comes from,
//! a graph's signature, and the requests and answers themselves, each one length-delimited
//! frame encoded by postcard.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// The element types native inference computes with (wasi-nn's, but BF16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Element {
    F16,
    F32,
    F64,
    U8,
    I32,
    I64,
}

impl Element {
    pub fn size(self) -> usize {
        match self {
            Element::U8 => 1,
            Element::F16 => 2,
            Element::F32 | Element::I32 => 4,
            Element::F64 | Element::I64 => 8,
        }
    }
}

/// A dense tensor: row-major elements, little-endian bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tensor {
    pub element: Element,
    pub shape: Vec<u32>,
    /// As bytes on the wire (one copy), not a sequence of numbers (one call per byte).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Tensor {
    /// The number of elements, if it is representable and the bytes hold exactly that many.
    pub fn check(&self) -> Result<usize, String> {
        let elements = self
            .shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
            .ok_or_else(|| format!("shape {:?} has too many elements", self.shape))?;
        let bytes = elements.checked_mul(self.element.size());
        if bytes != Some(self.data.len()) {
            return Err(format!(
                "shape {:?} of {:?} needs {} bytes, got {}",
                self.shape,
                self.element,
                bytes.map_or("more than 2^64".to_string(), |b| b.to_string()),
                self.data.len()
            ));
        }
        Ok(elements)
    }

    pub fn from_f32(shape: Vec<u32>, values: &[f32]) -> Self {
        Tensor {
            element: Element::F32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn to_f32(&self) -> Result<Vec<f32>, String> {
        if self.element != Element::F32 {
            return Err(format!("an output is {:?}, not F32", self.element));
        }
        Ok(values(&self.data, f32::from_le_bytes))
    }
}

/// Little-endian bytes as values of `N` bytes each: a tensor's data as either engine takes it.
pub(super) fn values<T, const N: usize>(data: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    data.chunks_exact(N)
        .map(|c| {
            let mut bytes = [0u8; N];
            bytes.copy_from_slice(c);
            from(bytes)
        })
        .collect()
}

/// Where a graph comes from: a package artifact (read by the host, which sends its bytes:
/// the worker opens no file) or bytes the guest passed.
#[derive(Clone)]
pub enum Source {
    Artifact(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

impl Source {
    /// What tells two sources apart: the path, or the bytes' digest.
    pub(super) fn key(&self) -> String {
        match self {
            Source::Artifact(path) => format!("artifact:{}", path.display()),
            Source::Bytes(bytes) => format!("bytes:{}", prelabel_files::sha256_hex(bytes)),
        }
    }

    /// Bytes of this source the host holds in memory.
    pub fn held(&self) -> usize {
        match self {
            Source::Artifact(_) => 0,
            Source::Bytes(bytes) => bytes.len(),
        }
    }
}

/// A loaded graph's inputs and outputs, by name, in the model's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl Signature {
    /// What a copy of it holds: the model chose how many names, and how long.
    pub fn weight(&self) -> usize {
        self.inputs
            .iter()
            .chain(&self.outputs)
            .map(|name| name.len() + std::mem::size_of::<String>())
            .sum()
    }
}

/// A graph as the host tracks it (the worker knows it by `id`).
pub type GraphId = u32;

#[derive(Serialize, Deserialize)]
pub(super) enum Request {
    /// Read a model's bytes, `size` of them in the frame that follows this one, and keep it
    /// as `graph`; answers its signature. The bytes travel as a frame of their own, streamed
    /// from the file, so neither side copies a model whole into a message (each 10 MB copy
    /// page-faults fresh memory: res10's load took a third longer that way).
    Load { graph: GraphId, size: u64 },
    /// Runs `graph` on `inputs`, given in the model's input order.
    Run { graph: GraphId, inputs: Vec<Tensor> },
    /// Forget graphs the instance let go of (sent ahead of the next request).
    Forget { graphs: Vec<GraphId> },
}

#[derive(Serialize, Deserialize)]
pub(super) enum Answer {
    Loaded(Signature),
    /// The outputs, and how long the engine took to compute them (the rest of a call is the
    /// crossing: `PRELABEL_LOG=prelabel=debug` shows both).
    Outputs {
        outputs: Vec<Tensor>,
        engine_us: u64,
    },
    Forgotten,
    /// An allocation failed at the worker's limit (tract asks fallibly, then panics; ONNX
    /// Runtime throws): the memory limit, as when the Rust runtime aborts the worker on one.
    OverMemory,
}

pub(super) type Response = Result<Answer, String>;

pub(super) fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u64>()
        .max_frame_length(max_frame)
        .new_codec()
}
