//! `prelabel new python|rust NAME`: a package folder that builds and runs out of the box,
//! from templates compiled into the binary (`host/core/templates/`), with Prelabel's WIT files
//! (and, for Python, the SDK and its build script) copied in, so that it needs nothing of
//! this repository.

use std::path::{Path, PathBuf};

/// The language a package is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Python,
    Rust,
}

crate::named::named!(Language {
    Python => "python",
    Rust => "rust",
});

/// Why a package folder was not made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{name}` is not a package name: lowercase letters, digits and `-`, starting with a letter"
    )]
    BadName { name: String },
    #[error("{} already exists and is not empty; choose another folder", dir.display())]
    Exists { dir: PathBuf },
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

/// Files every package gets: the world it implements.
const WIT: &[(&str, &str)] = &[
    (
        "wit/detector.wit",
        include_str!("../../../../wit/detector.wit"),
    ),
    (
        "wit/deps/wasi-nn/wasi-nn.wit",
        include_str!("../../../../wit/deps/wasi-nn/wasi-nn.wit"),
    ),
];

const PYTHON: &[(&str, &str)] = &[
    ("app.py", include_str!("../../templates/python/app.py")),
    (
        "prelabel.toml",
        include_str!("../../templates/python/prelabel.toml"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/python/gitignore"),
    ),
    (
        "prelabel.py",
        include_str!("../../../../guest/python/prelabel.py"),
    ),
    (
        "build.py",
        include_str!("../../../../guest/python/build.py"),
    ),
];

const RUST: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rust/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rust/src/lib.rs"),
    ),
    (
        "prelabel.toml",
        include_str!("../../templates/rust/prelabel.toml"),
    ),
    (".gitignore", include_str!("../../templates/rust/gitignore")),
];

/// Writes a new package `name` in `language` into `dir` (made; it must not hold anything).
/// Returns the files written, relative to `dir`.
pub fn create(dir: &Path, name: &str, language: Language) -> Result<Vec<PathBuf>, ScaffoldError> {
    check(dir, name)?;
    let files = match language {
        Language::Python => PYTHON,
        Language::Rust => RUST,
    };
    let crate_name = name.replace('-', "_");
    let mut written = Vec::new();
    for (file, text) in files.iter().chain(WIT) {
        let path = dir.join(file);
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name);
        write(&path, text.as_bytes())?;
        written.push(PathBuf::from(file));
    }
    Ok(written)
}

/// Refuses a bad package name, or a folder that holds something.
pub(crate) fn check(dir: &Path, name: &str) -> Result<(), ScaffoldError> {
    if !crate::package::manifest::is_name(name) {
        return Err(ScaffoldError::BadName { name: name.into() });
    }
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ScaffoldError::Exists { dir: dir.into() });
    }
    Ok(())
}

/// Writes a package's file, making its folders.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), ScaffoldError> {
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)
    };
    write().map_err(|error| ScaffoldError::Write {
        path: path.into(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::manifest::Manifest;

    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("prelabel-scaffold-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn each_template_is_a_valid_package_named_as_asked() {
        for (language, component) in [
            (Language::Python, "target/my_detector.wasm"),
            (
                Language::Rust,
                "target/wasm32-wasip2/release/my_detector.wasm",
            ),
        ] {
            let dir = folder(&format!("{language:?}"));
            let files = create(&dir, "my-detector", language).unwrap();
            assert!(files.contains(&PathBuf::from("wit/detector.wit")));
            let manifest = Manifest::from_file(&dir.join("prelabel.toml")).unwrap();
            assert_eq!(manifest.name, "my-detector");
            assert_eq!(manifest.component, PathBuf::from(component));
            assert!(manifest.build.is_some());
            for file in files {
                let text = std::fs::read_to_string(dir.join(&file)).unwrap();
                assert!(
                    !text.contains("{{"),
                    "{} keeps a placeholder",
                    file.display()
                );
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn a_bad_name_or_a_folder_in_use_is_refused() {
        let dir = folder("refused");
        assert!(matches!(
            create(&dir, "My Detector", Language::Python),
            Err(ScaffoldError::BadName { .. })
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("keep.txt"), "mine").unwrap();
        assert!(matches!(
            create(&dir, "ok", Language::Rust),
            Err(ScaffoldError::Exists { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
            "mine"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
