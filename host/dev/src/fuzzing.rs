//! The entry points fuzzed by `tests/fuzz` (cargo-fuzz) and by the short deterministic run
//! in the test suite (`tests/fuzz_smoke.rs`): each takes any bytes and must never panic.

use std::collections::BTreeMap;
use std::path::Path;

use prelabel::package::manifest::Manifest;
use prelabel::work::trigger::Filter;

/// Parses a manifest; if it parses, resolves init values and parses `key=value` pairs.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::from_str(text, Path::new("fuzz.toml")) {
        let _ = m.resolve_init(&BTreeMap::new());
        let _ = m.parse_init_args(&[text.lines().next().unwrap_or_default().to_string()]);
    }
}

/// Parses a filter; if it parses, matches it against a typical item document.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = Filter::parse(text) {
        let doc = serde_json::json!({"id": 1, "name": "a.jpg", "metadata": {"system": {"mimetype": "image/jpeg", "size": 10}}});
        let _ = f.matches(&doc);
    }
}

/// Decodes an image with a small pixel limit and resizes it like the detector does.
pub fn image(data: &[u8]) {
    if let Ok(img) = res10::decode(data, 1 << 22) {
        let _ = res10::resize_linear(&img, res10::INPUT_SIZE, res10::INPUT_SIZE);
    }
}
