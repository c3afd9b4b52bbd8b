//! Items a function made (a component of the `transformer` world): checked at the host
//! boundary, as annotations are, before anything is stored. The name is a file name, the
//! bytes are within the item size limit and are what the function says they are, and the
//! user metadata is a small JSON object.

use serde_json::Value;

use crate::error::Result;
use crate::items::item::{Content, check_size, sniff_mimetype};
use crate::runtime::MadeItem;
use crate::store::Store;

/// The most items one call may make.
pub const MAX_MADE_ITEMS: usize = 16;
const MAX_NAME_LEN: usize = 255;
const MAX_METADATA_BYTES: usize = 64 << 10;

/// A made item that breaks the contract or a limit.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum InvalidMade {
    #[error("the function made {count} items, over the limit of {limit}")]
    TooMany { count: usize, limit: usize },
    #[error("made item {index}: {problem}")]
    Item { index: usize, problem: String },
}

/// A made item, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    pub name: String,
    pub data: Vec<u8>,
    /// Its user metadata (an object).
    pub user: Value,
}

/// Stores the bytes of what a function made (by digest, as an upload does), before the
/// outcome that names them is recorded; returns them as contents a dataset node can put.
pub fn store(store: &Store, made: Vec<Made>) -> Result<Vec<Content>> {
    made.into_iter()
        .map(|made| {
            let digest = crate::files::sha256_hex(&made.data);
            store.put_blob_as(&made.data, &digest)?;
            Ok(Content::of_bytes(
                &made.name, &made.data, &digest, made.user,
            ))
        })
        .collect()
}

/// Checks what a function made: at most [`MAX_MADE_ITEMS`], each within `max_bytes`.
pub fn from_guest(items: Vec<MadeItem>, max_bytes: u64) -> Result<Vec<Made>, InvalidMade> {
    if items.len() > MAX_MADE_ITEMS {
        return Err(InvalidMade::TooMany {
            count: items.len(),
            limit: MAX_MADE_ITEMS,
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, made)| {
            check(made, max_bytes).map_err(|problem| InvalidMade::Item { index, problem })
        })
        .collect()
}

fn check(made: MadeItem, max_bytes: u64) -> Result<Made, String> {
    check_name(&made.name)?;
    check_size(made.data.len() as u64, max_bytes)?;
    let sniffed = sniff_mimetype(&made.data);
    if made.mimetype != sniffed {
        return Err(format!(
            "`{}` is said to be {} but its bytes are {sniffed}",
            made.name,
            shown(&made.mimetype)
        ));
    }
    if made.metadata.len() > MAX_METADATA_BYTES {
        return Err(format!(
            "its metadata is {} bytes, over the limit of {MAX_METADATA_BYTES}",
            made.metadata.len()
        ));
    }
    let user = if made.metadata.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_str::<Value>(&made.metadata) {
            Ok(object @ Value::Object(_)) => object,
            Ok(_) => return Err("its metadata is JSON but not an object".into()),
            Err(e) => return Err(format!("its metadata is not JSON: {e}")),
        }
    };
    Ok(Made {
        name: made.name,
        data: made.data,
        user,
    })
}

/// A file name: 1 to 255 bytes, no path separator or control character, not `.` or `..`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "its name must be 1 to {MAX_NAME_LEN} bytes, got {}",
            name.len()
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(format!(
            "its name {} is not a file name (no `/`, `\\`, control characters, `.` or `..`)",
            shown(name)
        ));
    }
    Ok(())
}

/// A guest's text in a message: quoted, escaped, and cut short.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(64).collect();
    format!("{cut:?}{}", if cut.len() < text.len() { "…" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

    fn made(name: &str, mimetype: &str, metadata: &str) -> MadeItem {
        MadeItem {
            name: name.into(),
            mimetype: mimetype.into(),
            metadata: metadata.into(),
            data: PNG.to_vec(),
        }
    }

    fn problem(item: MadeItem) -> String {
        match from_guest(vec![item], 1 << 20) {
            Err(InvalidMade::Item { problem, .. }) => problem,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_made_item_is_checked_at_the_boundary() {
        let ok = from_guest(vec![made("a.png", "image/png", r#"{"k": 1}"#)], 1 << 20).unwrap();
        assert_eq!(ok[0].user["k"], 1);
        assert!(problem(made("../a.png", "image/png", "")).contains("not a file name"));
        assert!(problem(made("a\nb", "image/png", "")).contains("not a file name"));
        assert!(problem(made("", "image/png", "")).contains("1 to 255"));
        assert!(problem(made("a.png", "image/jpeg", "")).contains("its bytes are image/png"));
        assert!(problem(made("a.png", "image/png", "[1]")).contains("not an object"));
        assert!(problem(made("a.png", "image/png", "{")).contains("not JSON"));
        let mut empty = made("a.png", "image/png", "");
        empty.data.clear();
        assert!(problem(empty).contains("empty"));
        let many = (0..=MAX_MADE_ITEMS)
            .map(|_| made("a.png", "image/png", ""))
            .collect();
        assert!(matches!(
            from_guest(many, 1 << 20),
            Err(InvalidMade::TooMany { .. })
        ));
    }
}
