//! The house as a newcomer meets it: a README that fits in five minutes and points at every
//! other page, paths in the docs that exist, and host crates whose top-level modules import
//! one another without a circle (cargo already forbids one between crates).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::root;

/// The README's budget: what Prelabel is, the two commands, a tour; the rest is in docs/.
const README_LIMIT: usize = 15 * 1024;

fn markdown_pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("CHANGELOG.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ lists").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// Relative link targets (`[text](docs/x.md#part)`) of a page, resolved from its folder.
fn links(page: &Path, text: &str) -> Vec<PathBuf> {
    let dir = page.parent().expect("a page is in a folder");
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| target.split('#').next().unwrap_or_default())
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .map(|t| dir.join(t))
        .collect()
}

#[test]
fn the_readme_fits_and_reaches_every_page_of_the_docs() {
    let readme = root().join("README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md reads");
    assert!(
        text.len() <= README_LIMIT,
        "README.md is {} bytes, over {README_LIMIT}: move a section to docs/ and link it",
        text.len()
    );
    // Every page of docs/ is reachable from the README, directly or through another page.
    let mut reached = BTreeSet::new();
    let mut todo = vec![readme.canonicalize().expect("README.md")];
    while let Some(page) = todo.pop() {
        if !reached.insert(page.clone()) || page.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&page) else {
            continue;
        };
        todo.extend(
            links(&page, &text)
                .into_iter()
                .filter_map(|p| p.canonicalize().ok()),
        );
    }
    for page in markdown_pages() {
        let page = page.canonicalize().expect("a page");
        if page.ends_with("CHANGELOG.md") || page.parent().is_some_and(|d| d.ends_with("docs")) {
            assert!(
                reached.contains(&page),
                "nothing from README.md leads to {}",
                page.display()
            );
        }
    }
}

#[test]
fn every_path_the_docs_name_exists() {
    let tops = [
        "host/", "guest/", "tests/", "docs/", "wit/", "models/", ".ci/", "deploy/",
    ];
    let mut missing = Vec::new();
    for page in markdown_pages() {
        let text = std::fs::read_to_string(&page).expect("a page reads");
        let quoted = text.split('`').skip(1).step_by(2).map(str::to_string);
        for name in quoted {
            let path = name.split("::").next().unwrap_or_default();
            let placeholder = path.contains(['*', '{', '<', ' ', '$']) || path.contains("NAME");
            if tops.iter().any(|t| path.starts_with(t))
                && !placeholder
                && !root().join(path).exists()
            {
                missing.push(format!("{}: `{name}`", page.display()));
            }
        }
        for target in links(&page, &text) {
            if !target.exists() {
                missing.push(format!("{}: link to {}", page.display(), target.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "paths that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Each `.rs` file under `path`, with how many modules deep below the top one it is (a
/// folder's `mod.rs` is the folder's own module).
fn sources(path: &Path, depth: usize, out: &mut Vec<(PathBuf, usize)>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("a source folder lists") {
            sources(&entry.expect("an entry").path(), depth + 1, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        let own = path.file_name().is_some_and(|n| n == "mod.rs");
        out.push((path.to_path_buf(), depth.saturating_sub(usize::from(own))));
    }
}

/// The top-level modules of a crate (`src/NAME.rs` or `src/NAME/`) and, for each, the others
/// it names outside its tests: as `crate::OTHER`, or as `super::OTHER` from as deep as the
/// crate's root (`super::super::` from a file in a module's folder), one name or a group.
fn module_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, Vec<(PathBuf, usize)>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src/ lists") {
        let path = entry.expect("an entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if stem == "lib" || stem == "main" {
            continue;
        }
        sources(&path, 0, files.entry(stem.to_string()).or_default());
    }
    let names: BTreeSet<String> = files.keys().cloned().collect();
    files
        .into_iter()
        .map(|(module, paths)| {
            let mut uses = BTreeSet::new();
            for (path, depth) in paths {
                let text = std::fs::read_to_string(&path).expect("a source reads");
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                for prefix in ["crate::".to_string(), "super::".repeat(depth + 1)] {
                    uses.extend(named_after(text, &prefix));
                }
            }
            uses.retain(|u| u != &module && names.contains(u));
            (module, uses)
        })
        .collect()
}

/// The first name after each `prefix` in `text` that is not part of a longer path, or each
/// name at the top of a group (`prefix{a, b::C}`).
fn named_after(text: &str, prefix: &str) -> Vec<String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        if text[..i].ends_with(|c: char| ident(c) || c == ':') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            for part in group.split(',') {
                names.push(
                    part.trim()
                        .split("::")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        } else {
            names.push(rest.chars().take_while(|c| ident(*c)).collect());
        }
    }
    names
}

/// A circle through `start`, if its imports lead back to it.
fn circle(imports: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    fn walk(
        imports: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().cloned().unwrap_or_default();
        for next in imports.get(&here).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(imports, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(imports, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn no_host_crate_has_a_circle_between_its_modules() {
    let mut circles = Vec::new();
    for krate in ["files", "store", "runtime", "core", "api", "cli", "dev"] {
        let src = root().join("host").join(krate).join("src");
        let imports = module_imports(&src);
        assert!(
            !imports.is_empty() || krate == "files",
            "host/{krate}/src has no modules"
        );
        for module in imports.keys() {
            if let Some(path) = circle(&imports, module) {
                circles.push(format!("host/{krate}: {} -> {module}", path.join(" -> ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

/// The checker itself finds a circle where there is one (so that the test above can fail).
#[test]
fn the_circle_check_sees_a_circle() {
    let dir = std::env::temp_dir().join(format!("prelabel-house-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).expect("a temp dir");
    std::fs::write(dir.join("a.rs"), "use crate::b::Thing;\n").expect("writes");
    std::fs::write(dir.join("b/mod.rs"), "use crate::{c, other};\n").expect("writes");
    std::fs::write(
        dir.join("c.rs"),
        "fn f() { crate::a::g() }\n#[cfg(test)]\nuse crate::b;\n",
    )
    .expect("writes");
    let imports = module_imports(&dir);
    assert_eq!(
        circle(&imports, "a"),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    std::fs::write(dir.join("c.rs"), "#[cfg(test)]\nuse crate::a;\n").expect("writes");
    assert_eq!(circle(&module_imports(&dir), "a"), None);
    // `super::` reaches the root from a top file, `super::super::` from a folder's file.
    std::fs::write(dir.join("c.rs"), "use super::{a, x};\n").expect("writes");
    assert!(circle(&module_imports(&dir), "a").is_some());
    std::fs::write(dir.join("c.rs"), "use super::super::a;\n").expect("writes");
    assert_eq!(circle(&module_imports(&dir), "a"), None);
    std::fs::write(dir.join("c.rs"), "").expect("writes");
    std::fs::write(dir.join("b/d.rs"), "use super::super::a::f;\n").expect("writes");
    assert!(circle(&module_imports(&dir), "a").is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// At most this many lines in a host source file, and in one function.
const MAX_FILE_LINES: usize = 600;
const MAX_FUNCTION_LINES: usize = 80;

/// `fn` lines of `text` with how many lines each function spans: from its `fn` line to the
/// first later line that closes it at the same indentation (`rustfmt`'s layout).
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        let mut words = code.split_whitespace().skip_while(|w| {
            w.starts_with("pub") || ["async", "unsafe", "const", "extern"].contains(w)
        });
        if words.next() != Some("fn") || line.trim_end().ends_with(';') {
            continue;
        }
        let name: String = words
            .next()
            .unwrap_or_default()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            found.push((name, end + 2));
        }
    }
    found
}

#[test]
fn host_files_and_functions_stay_short() {
    let mut files = Vec::new();
    sources(&root().join("host"), 0, &mut files);
    assert!(files.len() > 50, "the host's sources: {}", files.len());
    let mut long = Vec::new();
    for (file, _) in files {
        let text = std::fs::read_to_string(&file).expect("a source reads");
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            long.push(format!("{}: {lines} lines", file.display()));
        }
        for (name, lines) in function_lengths(&text) {
            if lines > MAX_FUNCTION_LINES {
                long.push(format!("{}: fn {name}: {lines} lines", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_FILE_LINES} lines a file or {MAX_FUNCTION_LINES} a function:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_measures_functions() {
    let text = "fn a() {\n    one();\n}\n\nimpl X {\n    pub(crate) async fn b(\n        x: u8,\n    ) -> u8 {\n        x\n    }\n    fn c();\n}\n";
    assert_eq!(
        function_lengths(text),
        vec![("a".to_string(), 3), ("b".to_string(), 5)]
    );
}
