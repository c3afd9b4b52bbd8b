//! A transformer (world `transformer`) that makes items wrongly on purpose, to prove the host
//! checks what a function makes before anything is stored. What it does depends on the item's
//! name (its stem before the first `-` or `.`):
//!
//! | name | what it makes |
//! |---|---|
//! | `ok` | a copy of the item, named `copy-NAME`, and echoes the boxes it was given as labels `given` |
//! | `many` | 17 copies (one over the limit) |
//! | `big` | one item of 64 MiB + 1 byte (over the default item limit) |
//! | `flood` | one item of 512 MiB (over what may cross from the guest) |
//! | `liar` | PNG bytes said to be `image/jpeg` |
//! | `path` | a copy named `../../etc/passwd` |
//! | `meta` | a copy whose metadata is not JSON |
//! | `empty` | an item of 0 bytes |

#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({ world: "transformer", path: "../../../wit", generate_all });
}

use bindings::prelabel::detector::types::{Bbox, Geometry, MadeItem, ModelInfo, Output};
use bindings::{Annotation, Error, Guest, InitInput, Item};

struct Maker;

fn made(name: &str, mimetype: &str, metadata: &str, data: Vec<u8>) -> MadeItem {
    MadeItem {
        name: name.into(),
        mimetype: mimetype.into(),
        metadata: metadata.into(),
        data,
    }
}

impl Guest for Maker {
    fn init(_: Vec<InitInput>) -> Result<(), Error> {
        Ok(())
    }

    fn transform(_: String, item: Item, given: Vec<Annotation>) -> Result<Output, Error> {
        let stem = item
            .name
            .split(['-', '.'])
            .next()
            .unwrap_or_default()
            .to_string();
        let copy = |name: &str| made(name, &item.mimetype, "", item.data.clone());
        let items = match stem.as_str() {
            "ok" => vec![copy(&format!("copy-{}", item.name))],
            "many" => (0..17).map(|i| copy(&format!("{i}.png"))).collect(),
            "big" => vec![made(
                "big.bin",
                "application/octet-stream",
                "",
                vec![1; (64 << 20) + 1],
            )],
            "flood" => vec![made(
                "flood.bin",
                "application/octet-stream",
                "",
                vec![1; 512 << 20],
            )],
            "liar" => vec![made("liar.jpg", "image/jpeg", "", item.data.clone())],
            "path" => vec![copy("../../etc/passwd")],
            "meta" => vec![made(
                "meta.png",
                &item.mimetype,
                "{not json",
                item.data.clone(),
            )],
            "empty" => vec![made("empty.png", "image/png", "", Vec::new())],
            _ => Vec::new(),
        };
        // What it was given, so a test sees which annotations reached it.
        let annotations = given
            .iter()
            .filter_map(|a| match a.geometry {
                Geometry::Bbox(b) => Some(Annotation {
                    geometry: Geometry::Bbox(Bbox { ..b }),
                    label: "given".into(),
                    model: ModelInfo {
                        name: "hostile-maker".into(),
                        version: a.label.clone(),
                        confidence: a.model.confidence,
                    },
                }),
                _ => None,
            })
            .collect();
        Ok(Output { annotations, items })
    }
}

bindings::export!(Maker with_types_in bindings);
