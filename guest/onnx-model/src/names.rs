//! Class names as exporters write them into an ONNX model's metadata under `names`: the
//! Python repr of a dict (Ultralytics: `{0: 'person', 1: 'bicycle'}`) or of a list (older
//! YOLOv5 exports: `['person', 'bicycle']`).

/// The names in class order, or `None` when `text` is neither form. A dict's keys must be
/// 0..N, each once.
pub fn parse_names(text: &str) -> Option<Vec<String>> {
    let text = text.trim();
    let (inner, dict) = if let Some(inner) = text.strip_prefix('{') {
        (inner.strip_suffix('}')?, true)
    } else {
        (text.strip_prefix('[')?.strip_suffix(']')?, false)
    };
    let mut rest = inner.trim_start();
    let mut names: Vec<(usize, String)> = Vec::new();
    while !rest.is_empty() {
        let index = if dict {
            let (key, after) = rest.split_once(':')?;
            rest = after.trim_start();
            key.trim().parse().ok()?
        } else {
            names.len()
        };
        let (name, after) = quoted(rest)?;
        names.push((index, name));
        rest = after.trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    names.sort_by_key(|(i, _)| *i);
    let in_order = names.iter().enumerate().all(|(at, (i, _))| at == *i);
    in_order.then(|| names.into_iter().map(|(_, n)| n).collect())
}

/// A string in single or double quotes at the start of `text` (backslash escapes the next
/// character), and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            c if c == quote => return Some((out, &text[at + c.len_utf8()..])),
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ultralytics_dicts_and_yolov5_lists_read() {
        let names = parse_names("{0: 'person', 1: 'bicycle', 2: \"teddy's bear\"}");
        assert_eq!(
            names.as_deref(),
            Some(&["person", "bicycle", "teddy's bear"].map(String::from)[..])
        );
        let names = parse_names("['a', 'b\\'c']").expect("a list");
        assert_eq!(names, ["a", "b'c"]);
        assert_eq!(parse_names("{}"), Some(vec![]));
        // Out of order is fine, a gap or a repeat is not.
        assert_eq!(
            parse_names("{1: 'b', 0: 'a'}").expect("reordered"),
            ["a", "b"]
        );
        assert_eq!(parse_names("{0: 'a', 2: 'c'}"), None);
        assert_eq!(parse_names("{0: 'a', 0: 'b'}"), None);
    }

    #[test]
    fn anything_else_is_none() {
        for text in [
            "person",
            "{0: person}",
            "['a' 'b']",
            "{0: 'a'",
            "['a',",
            "{x: 'a'}",
        ] {
            assert_eq!(parse_names(text), None, "{text}");
        }
    }
}
