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
//! | `many` | returns a million annotations |
//! | `huge` | returns a 64 MiB label |
//! | `nan`, `inf`, `inverted`, `confidence`, `outside` | returns a broken box |
//! | `stdout` | writes 8 MiB to stdout, then one valid box |
//!
//! Init input `fail_init = true` makes `init` panic.

use std::io::Write;

#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "detector", path: "../../../wit" });
}

use bindings::prelabel::detector::types::{Bbox, ErrorKind, Geometry, ModelInfo, Value};
use bindings::{Annotation, Error, Guest, InitInput, Item};

struct Hostile;

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

impl Guest for Hostile {
    fn init(inputs: Vec<InitInput>) -> Result<(), Error> {
        if inputs
            .iter()
            .any(|i| i.name == "fail_init" && matches!(i.value, Value::Boolean(true)))
        {
            panic!("init failed on purpose");
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
        Ok(match kind.as_str() {
            "ok" => vec![bbox(1.0, 1.0, 5.0, 5.0, 0.9)],
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
                    "resolve localhost",
                    std::net::ToSocketAddrs::to_socket_addrs("localhost:80")
                        .map(|a| format!("{} addresses", a.count()))
                        .map_err(|e| e.to_string()),
                ),
            ],
            "many" => (0..1_000_000)
                .map(|i| bbox(0.0, 0.0, 2.0 + (i % 7) as f32, 2.0, 0.5))
                .collect(),
            "huge" => vec![label(Geometry::Classification, "x".repeat(64 << 20), 0.5)],
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
