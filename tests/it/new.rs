//! `prelabel new python|rust NAME`: each scaffold builds and passes `prelabel detect` on the
//! sample photos as it is, outside this repository's workspace.

use crate::support::*;
use serde_json::Value;

/// Makes a package with `prelabel new`, then runs `prelabel detect` on it (which builds it)
/// over the sample photos; returns the labels.
fn scaffold_detects(language: &str) -> Vec<String> {
    let home = Home::new();
    let dir = tempdir();
    let package = dir.path().join("pkg");
    let made = home.ok(&["new", language, "my-detector", "--dir", path(&package)]);
    assert!(made.contains("prelabel.toml"), "{made}");
    // The package names nothing of this checkout, so it needs no --root.
    let text = std::fs::read_to_string(package.join("prelabel.toml")).expect("manifest");
    assert!(!text.contains("../"), "{text}");
    let images = fixtures().join("images");
    let out = command(home.path())
        .env_remove("PRELABEL_PACKAGE_ROOT")
        .args(["detect", path(&package), path(&images)])
        .output()
        .expect("prelabel runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let results: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let results = results.as_array().expect("a result per photo");
    assert_eq!(results.len(), 10);
    results
        .iter()
        .map(|r| {
            assert!(r.get("error").is_none(), "{r:#}");
            let annotations = r["annotations"].as_array().expect("annotations");
            assert_eq!(annotations.len(), 1, "{r:#}");
            assert_eq!(annotations[0]["geometry"]["type"], "classification");
            annotations[0]["label"].as_str().expect("label").to_string()
        })
        .collect()
}

/// Both labels occur on the sample photos: the template looked at the pixels.
fn assert_both_labels(labels: &[String]) {
    assert!(labels.iter().any(|l| l == "bright"), "{labels:?}");
    assert!(labels.iter().any(|l| l == "dark"), "{labels:?}");
}

#[test]
fn a_new_python_package_builds_and_detects_as_it_is() {
    python_face_detector();
    assert_both_labels(&scaffold_detects("python"));
}

#[test]
fn a_new_rust_package_builds_and_detects_as_it_is() {
    // Built as a user builds it: its own target folder, wit-bindgen from crates.io (about
    // 20 seconds here).
    let labels = scaffold_detects("rust");
    assert_both_labels(&labels);
}

#[test]
fn new_refuses_a_bad_name_and_a_folder_in_use() {
    let home = tempdir();
    let err = stderr(&prelabel(home.path(), &["new", "python", "My Detector"]));
    assert!(err.contains("is not a package name"), "{err}");
    let used = home.path().join("used");
    std::fs::create_dir_all(&used).expect("folder");
    std::fs::write(used.join("mine.txt"), "keep").expect("file");
    let err = stderr(&prelabel(
        home.path(),
        &["new", "rust", "ok", "--dir", path(&used)],
    ));
    assert!(err.contains("already exists and is not empty"), "{err}");
}
