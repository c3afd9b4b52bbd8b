//! A component that misbehaves on purpose, to prove the sandbox's promises. What it does
//! depends on the item's name (its stem before the first `-` or `.`):
//!
//! | name | behaviour |
//! |---|---|
//! | `ok` | one valid box |
//! | `slow` | one valid box after 20 ms (to be caught mid-run) |
//! | `panic` | panics in detect |
//! | `loop` | loops forever |
//! | `oom` | allocates until it dies |
//! | `probe` | tries the host's files, env, network; reports each outcome as a label |
//! | `many` | returns 10,001 annotations (one over the default limit) |
//! | `flood` | returns a million annotations |
//! | `huge` | returns a 64 MiB label |
//! | `long` | returns a 1 MiB label |
//! | `hugelog` | logs a 100 MiB message |
//! | `nan`, `inf`, `inverted`, `confidence`, `outside` | returns a broken box |
//! | `stdout` | writes 8 MiB to stdout, then one valid box |
//! | `sleep` | sleeps for an hour (a WASI clock poll: no wasm runs meanwhile) |
//! | `nap` | sleeps 10 ms per pixel of the image's width; labels the item `wWIDTH` |
//! | `modelname` | returns a box whose model name is 1 MiB |
//! | `artifactname` | asks the host for an artifact whose name is 1 MiB |
//! | `errmsg` | returns an error whose message is 1 MiB |
//! | `blob` | has the host decode the item (`image.blob`); labels it with its size |
//! | `nn_M` | runs artifact `M` with wasi-nn (`load-by-name`) on one 1-element tensor |
//! | `nn3_M` | the same with three tensors |
//! | `nnbig_M` | the same with one 512x512 tensor |
//! | `nnlie_M` | claims a 2^32 x 2^32 tensor and sends one value |
//! | `nnbytes_M` | loads artifact `M`'s bytes with wasi-nn `load`, then as `nn_M` |
//! | `nngpu_M`, `nntf_M` | asks `load` for a GPU, or for a TensorFlow model |
//! | `legacy_M` | runs artifact `M` through the older `inference` import |
//! | `nnflood` | makes 1 MiB wasi-nn tensors, keeping every one, forever |
//! | `nnhandles` | makes empty wasi-nn tensors, keeping every one, forever |
//! | `nndims` | makes empty wasi-nn tensors of 4 Mi dimensions, keeping every one, forever |
//! | `http-WHAT` | GETs `{http_base}/WHAT` over wasi:http, following redirects as a browser would; labels the item `STATUS BYTES` |
//! | `httpmany` | GETs `{http_base}/ok` 20 times in one call |
//! | `httppost-N` | POSTs N MiB to `{http_base}/ok` |
//!
//! Init inputs: `fail_init = true` makes `init` panic, `sleep_init = true` makes it sleep
//! for an hour, `busy_init = true` makes it loop forever; `http_base` is where `http-` items
//! send their requests.

use std::io::Write;

#[allow(clippy::too_many_arguments)]
mod bindings {
    // The world the host links, so that one component tries both native inference paths:
    // wasi-nn, and the `inference` import of components built before it. As released in
    // 0.1.0 (`tests/guests/wit-0.1.0`, frozen): every sandbox test also proves that
    // components built for 0.1.0 keep working on a 0.1.1 host.
    wit_bindgen::generate!({ world: "host-links", path: "../wit-0.1.0", generate_all });
}

use bindings::prelabel::detector::inference;
use bindings::prelabel::detector::types::{Bbox, ErrorKind, Geometry, ModelInfo, Value};
use bindings::prelabel::detector::{host, image};
use bindings::wasi::nn::graph::{self, ExecutionTarget, Graph, GraphEncoding};
use bindings::wasi::nn::tensor::{Tensor, TensorType};
use bindings::{Annotation, Error, Guest, InitInput, Item};

struct Hostile;

/// `http_base`, as `init` received it.
static HTTP_BASE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// What a request failed with, as the item's error.
fn http_failed(what: &str, failure: guest_http::Failure) -> Error {
    Error {
        kind: ErrorKind::Internal,
        message: format!("{what}: {failure}"),
    }
}

fn bbox(left: f32, top: f32, right: f32, bottom: f32, confidence: f32) -> Annotation {
    label(
        Geometry::Bbox(Bbox {
            left,
            top,
            right,
            bottom,
        }),
        "face".into(),
        confidence,
    )
}

fn label(geometry: Geometry, label: String, confidence: f32) -> Annotation {
    Annotation {
        geometry,
        label,
        model: ModelInfo {
            name: "hostile".into(),
            version: "0.1.0".into(),
            confidence,
        },
    }
}

/// Tries something the sandbox must refuse; `denied` when it failed, `ALLOWED` when not.
fn probe(name: &str, result: Result<String, String>) -> Annotation {
    let text = match result {
        Ok(detail) => format!("{name}:ALLOWED:{detail}"),
        Err(e) => format!("{name}:denied:{e}"),
    };
    label(
        Geometry::Classification,
        text.chars().take(200).collect(),
        1.0,
    )
}

/// A wasi-nn error as the guest's.
fn nn_error(e: bindings::wasi::nn::errors::Error) -> Error {
    Error {
        kind: ErrorKind::Artifact,
        message: format!("{:?}: {}", e.code(), e.data()),
    }
}

/// Runs `graph` on f32 tensors of `shapes` (named by index), `values` ones each; the
/// outcome as a label.
fn infer(graph: Graph, shapes: &[(Vec<u32>, usize)]) -> Result<Vec<Annotation>, Error> {
    let context = graph.init_execution_context().map_err(nn_error)?;
    let inputs = shapes
        .iter()
        .enumerate()
        .map(|(i, (shape, values))| {
            let data: Vec<u8> = (0..*values).flat_map(|_| 1f32.to_le_bytes()).collect();
            (i.to_string(), Tensor::new(shape, TensorType::Fp32, &data))
        })
        .collect();
    let outputs = context.compute(inputs).map_err(nn_error)?;
    let values = outputs.iter().map(|(_, t)| t.data().len() / 4).sum();
    Ok(counted(outputs.len(), values))
}

/// What an inference answered, as a label.
fn counted(outputs: usize, values: usize) -> Vec<Annotation> {
    vec![label(
        Geometry::Classification,
        format!("{outputs} outputs, {values} values"),
        1.0,
    )]
}

/// The same through the older `inference` import.
fn legacy(model: &str) -> Result<Vec<Annotation>, Error> {
    let one = inference::Tensor {
        shape: vec![1],
        data: vec![1.0],
    };
    let outputs = inference::run(model, &[one])?;
    let values = outputs.iter().map(|t| t.data.len()).sum();
    Ok(counted(outputs.len(), values))
}

/// Loads artifact `model`'s bytes with wasi-nn's `load`.
fn load_bytes(
    model: &str,
    encoding: GraphEncoding,
    target: ExecutionTarget,
) -> Result<Graph, Error> {
    let bytes = host::artifact(model)?;
    graph::load(&[bytes], encoding, target).map_err(nn_error)
}

impl Guest for Hostile {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        let set = |name: &str| {
            inputs
                .iter()
                .any(|i| i.name == name && matches!(i.value, Value::Boolean(true)))
        };
        if let Some(Value::String(base)) = inputs
            .iter()
            .find(|i| i.name == "http_base")
            .map(|i| &i.value)
        {
            *HTTP_BASE.lock().unwrap_or_else(|e| e.into_inner()) = base.clone();
        }
        if set("fail_init") {
            panic!("init failed on purpose");
        }
        if set("sleep_init") {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
        if set("busy_init") {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        Ok(())
    }

    fn detect(item: Item) -> Result<Vec<Annotation>, Error> {
        let kind = item
            .name
            .split(['-', '.'])
            .next()
            .unwrap_or_default()
            .to_string();
        if let Some((how, model)) = kind.split_once('_') {
            let by_name = || graph::load_by_name(model).map_err(nn_error);
            return match how {
                "nn" => infer(by_name()?, &[(vec![1], 1)]),
                "nn3" => infer(by_name()?, &[(vec![1], 1), (vec![1], 1), (vec![1], 1)]),
                "nnbig" => infer(by_name()?, &[(vec![512, 512], 512 * 512)]),
                "nnlie" => infer(by_name()?, &[(vec![u32::MAX, u32::MAX], 1)]),
                "nnbytes" => {
                    let graph = load_bytes(model, GraphEncoding::Onnx, ExecutionTarget::Cpu)?;
                    infer(graph, &[(vec![1], 1)])
                }
                "nngpu" => {
                    load_bytes(model, GraphEncoding::Onnx, ExecutionTarget::Gpu).map(|_| vec![])
                }
                "nntf" => load_bytes(model, GraphEncoding::Tensorflow, ExecutionTarget::Cpu)
                    .map(|_| vec![]),
                "legacy" => legacy(model),
                other => Err(Error {
                    kind: ErrorKind::InvalidItem,
                    message: format!("no inference behaviour named `{other}`"),
                }),
            };
        }
        let base = HTTP_BASE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(match kind.as_str() {
            "http" => {
                let what = item.name.trim_start_matches("http-");
                let what = what.split('.').next().unwrap_or_default();
                let url = format!("{base}/{what}");
                let answer = guest_http::get_following(&url, 5)
                    .map_err(|failure| http_failed(&format!("GET {url}"), failure))?;
                let text = format!("{} {}", answer.status, answer.body.len());
                vec![label(Geometry::Classification, text, 1.0)]
            }
            "httppost" => {
                let mib: usize = item
                    .name
                    .trim_start_matches("httppost-")
                    .split('.')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let body = vec![7u8; mib << 20];
                let url = format!("{base}/ok");
                let answer = guest_http::send(&guest_http::Request {
                    method: "POST",
                    url: &url,
                    headers: &[],
                    body: &body,
                })
                .map_err(|failure| http_failed(&format!("POST {url}"), failure))?;
                vec![label(
                    Geometry::Classification,
                    format!("{} {}", answer.status, answer.body.len()),
                    1.0,
                )]
            }
            "httpmany" => {
                for n in 1..=20 {
                    guest_http::get(&format!("{base}/ok"))
                        .map_err(|failure| http_failed(&format!("request {n}"), failure))?;
                }
                vec![label(Geometry::Classification, "20 requests".into(), 1.0)]
            }
            "nap" => {
                let width: u64 = item
                    .metadata
                    .split("\"width\":")
                    .nth(1)
                    .map(|rest| {
                        rest.chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    })
                    .and_then(|digits| digits.parse().ok())
                    .unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(width * 10));
                vec![label(Geometry::Classification, format!("w{width}"), 1.0)]
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                vec![bbox(1.0, 1.0, 5.0, 5.0, 0.9)]
            }
            "modelname" => {
                let mut a = bbox(1.0, 1.0, 5.0, 5.0, 0.9);
                a.model.name = "m".repeat(1 << 20);
                vec![a]
            }
            "errmsg" => {
                return Err(Error {
                    kind: ErrorKind::Internal,
                    message: "e".repeat(1 << 20),
                });
            }
            "artifactname" => {
                host::artifact(&"a".repeat(1 << 20))?;
                vec![bbox(1.0, 1.0, 5.0, 5.0, 0.9)]
            }
            "ok" => vec![bbox(1.0, 1.0, 5.0, 5.0, 0.9)],
            "nnflood" => {
                let megabyte = vec![0u8; 1 << 20];
                let mut kept = Vec::new();
                loop {
                    kept.push(Tensor::new(&[1 << 18], TensorType::Fp32, &megabyte));
                }
            }
            "nnhandles" => {
                let mut kept = Vec::new();
                loop {
                    kept.push(Tensor::new(&[0], TensorType::Fp32, &[]));
                }
            }
            "slow" => {
                std::thread::sleep(std::time::Duration::from_millis(20));
                vec![bbox(1.0, 1.0, 5.0, 5.0, 0.9)]
            }
            "panic" => panic!("detect failed on purpose on {}", item.name),
            "loop" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                }
            }
            "probe" => vec![
                probe(
                    "read /etc/passwd",
                    std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string()),
                ),
                probe(
                    "list /",
                    std::fs::read_dir("/")
                        .map(|d| format!("{} entries", d.count()))
                        .map_err(|e| e.to_string()),
                ),
                probe(
                    "write /tmp/prelabel-escape",
                    std::fs::write("/tmp/prelabel-escape", b"x")
                        .map(|_| "written".into())
                        .map_err(|e| e.to_string()),
                ),
                probe("env", {
                    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                    if vars.is_empty() {
                        Err("no variables".into())
                    } else {
                        Ok(vars.join(","))
                    }
                }),
                probe("args", {
                    let args: Vec<String> = std::env::args().collect();
                    if args.is_empty() {
                        Err("no arguments".into())
                    } else {
                        Ok(args.join(" "))
                    }
                }),
                probe(
                    "connect 127.0.0.1:9",
                    std::net::TcpStream::connect("127.0.0.1:9")
                        .map(|_| "connected".into())
                        .map_err(|e| e.to_string()),
                ),
                probe(
                    "bind 127.0.0.1:0",
                    std::net::TcpListener::bind("127.0.0.1:0")
                        .map(|_| "bound".into())
                        .map_err(|e| e.to_string()),
                ),
                probe(
                    "http GET http://127.0.0.1:9/",
                    guest_http::get("http://127.0.0.1:9/")
                        .map(|r| format!("status {}", r.status))
                        .map_err(|e| e.to_string()),
                ),
                probe(
                    "resolve localhost",
                    std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
                        .map(|a| format!("{} addresses", a.count()))
                        .map_err(|e| e.to_string()),
                ),
            ],
            "many" => (0..10_001)
                .map(|i| bbox(0.0, 0.0, 2.0 + (i % 7) as f32, 2.0, 0.5))
                .collect(),
            "flood" => (0..1_000_000)
                .map(|i| bbox(0.0, 0.0, 2.0 + (i % 7) as f32, 2.0, 0.5))
                .collect(),
            "huge" => vec![label(Geometry::Classification, "x".repeat(64 << 20), 0.5)],
            "long" => vec![label(Geometry::Classification, "x".repeat(1 << 20), 0.5)],
            "hugelog" => {
                host::log(host::Level::Info, &"l".repeat(100 << 20));
                vec![bbox(1.0, 1.0, 5.0, 5.0, 0.9)]
            }
            "blob" => {
                let options = image::BlobOptions {
                    width: 300,
                    height: 300,
                    channels: image::ChannelOrder::Bgr,
                    mean: vec![],
                    scale: 1.0,
                    layout: image::Layout::Nchw,
                    max_pixels: None,
                };
                let (size, _tensor) = image::blob(&item.data, &options)?;
                vec![label(
                    Geometry::Classification,
                    format!("{}x{}", size.width, size.height),
                    1.0,
                )]
            }
            "nndims" => {
                let dimensions = vec![0u32; 4 << 20];
                let mut kept = Vec::new();
                loop {
                    kept.push(Tensor::new(&dimensions, TensorType::Fp32, &[]));
                }
            }
            "nan" => vec![bbox(f32::NAN, 0.0, 5.0, 5.0, 0.5)],
            "inf" => vec![bbox(0.0, 0.0, f32::INFINITY, 5.0, 0.5)],
            "inverted" => vec![bbox(10.0, 10.0, 2.0, 2.0, 0.5)],
            "confidence" => vec![bbox(0.0, 0.0, 5.0, 5.0, 1.5)],
            "outside" => vec![bbox(-50.0, -50.0, 1.0e6, 3.0, 0.5)],
            "stdout" => {
                let chunk = vec![b'y'; 1 << 20];
                let mut out = std::io::stdout();
                for _ in 0..8 {
                    let _ = out.write_all(&chunk);
                }
                let _ = out.flush();
                vec![bbox(1.0, 1.0, 5.0, 5.0, 0.9)]
            }
            other => {
                return Err(Error {
                    kind: ErrorKind::InvalidItem,
                    message: format!("no behaviour named `{other}`"),
                });
            }
        })
    }
}

bindings::export!(Hostile with_types_in bindings);
