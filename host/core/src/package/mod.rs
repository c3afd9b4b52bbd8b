//! Packages, what a developer writes and pushes: the manifest ([`manifest`]), the build
//! ([`build`]), one file to push elsewhere ([`archive`]), new ones from templates
//! ([`scaffold`]), the checkout the demo's come from ([`workspace`]); and the file that chains
//! deployed functions ([`pipeline`]). This file: a package
//! directory, `prelabel.toml`, the component it names and its artifacts, resolved to files that
//! exist and checked against what the component exports.

pub mod archive;
pub mod build;
pub mod manifest;
pub mod onnx;
pub mod pipeline;
pub mod scaffold;
pub mod workspace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::runtime::{LoadError, Loaded, Runtime};
use manifest::{Manifest, ManifestError};

/// A package read from disk.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The component's bytes.
    pub component: Vec<u8>,
    /// Artifact name → file.
    pub artifacts: BTreeMap<String, PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{} is not a package directory: it has no {}", dir.display(), manifest::FILE_NAME)]
    NoManifest { dir: PathBuf },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{field}: {} does not exist or cannot be read ({error})", path.display())]
    MissingFile {
        field: String,
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("{field}: `{}` is an absolute path; paths in {} are relative to the package folder", path.display(), manifest::FILE_NAME)]
    AbsolutePath { field: String, path: PathBuf },
    #[error(
        "{field}: `{}` leads outside the package folder {} (to {}); a package reads only its own files (`--root DIR` widens the folder to one you trust)",
        path.display(), root.display(), target.display()
    )]
    OutsidePackage {
        field: String,
        path: PathBuf,
        root: PathBuf,
        target: PathBuf,
    },
    #[error(
        "the component does not export function `{function}` that {} declares (it exports: {exports})",
        manifest::FILE_NAME
    )]
    MissingFunction { function: String, exports: String },
    /// The component is not one this host runs (not a component, not our world, ...).
    #[error("{package}: {error}")]
    Load {
        package: String,
        #[source]
        error: LoadError,
    },
}

impl Package {
    /// Reads `dir/prelabel.toml` and everything it points to, all inside `dir`.
    pub fn load(dir: &Path) -> Result<Self, PackageError> {
        Self::load_within(dir, None)
    }

    /// [`Package::load`], where the files may also lie anywhere inside `root` (a folder
    /// that holds `dir` and that the user trusts, such as a source checkout whose `target/`
    /// and `models/` the package names).
    pub fn load_within(dir: &Path, root: Option<&Path>) -> Result<Self, PackageError> {
        let manifest_path = dir.join(manifest::FILE_NAME);
        if !manifest_path.is_file() {
            return Err(PackageError::NoManifest {
                dir: dir.to_path_buf(),
            });
        }
        let manifest = Manifest::from_file(&manifest_path)?;
        let files = Files::new(dir, root)?;
        let component_path = files.resolve("component", &manifest.component)?;
        let component =
            std::fs::read(&component_path).map_err(|error| PackageError::MissingFile {
                field: "component".into(),
                path: component_path.clone(),
                error,
            })?;
        let mut artifacts = BTreeMap::new();
        for (i, artifact) in manifest.artifacts.iter().enumerate() {
            let field = format!("artifacts[{i}] `{}`", artifact.name);
            let path = files.resolve(&field, &artifact.path)?;
            if !path.is_file() {
                return Err(PackageError::MissingFile {
                    field,
                    path,
                    error: std::io::Error::other("not a file"),
                });
            }
            artifacts.insert(artifact.name.clone(), path);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            component,
            artifacts,
        })
    }

    /// Compiles (or loads from the cache) the component and checks it against the world
    /// and against the functions the manifest declares.
    pub fn compile(&self, runtime: &Runtime) -> Result<Loaded, PackageError> {
        let loaded = runtime
            .load(&self.component)
            .map_err(|error| PackageError::Load {
                package: self.manifest.name.clone(),
                error,
            })?;
        self.check_exports(&loaded)?;
        Ok(loaded)
    }

    /// Every function the manifest declares must be exported by the component; a
    /// transformer exports one `transform` that is called with the function's name instead.
    pub fn check_exports(&self, loaded: &Loaded) -> Result<(), PackageError> {
        if loaded.is_transformer() {
            return Ok(());
        }
        for function in &self.manifest.module.functions {
            if !loaded.exports.iter().any(|e| e == &function.name) {
                return Err(PackageError::MissingFunction {
                    function: function.name.clone(),
                    exports: loaded.exports.join(", "),
                });
            }
        }
        Ok(())
    }
}

/// Where a package's files may come from: relative paths, inside the package folder (or
/// the wider root the user named) once `..` and symlinks are resolved. A manifest is input
/// like any other: `path = "/proc/self/environ"` or `"../../.ssh/id_ed25519"` would hand a
/// host file to the guest, which can put it in its annotations.
struct Files {
    dir: PathBuf,
    root: PathBuf,
}

impl Files {
    fn new(dir: &Path, root: Option<&Path>) -> Result<Self, PackageError> {
        let canonical = |path: &Path, field: &str| {
            path.canonicalize()
                .map_err(|error| PackageError::MissingFile {
                    field: field.into(),
                    path: path.to_path_buf(),
                    error,
                })
        };
        let dir = canonical(dir, "the package folder")?;
        let root = match root {
            Some(root) => canonical(root, "--root")?,
            None => dir.clone(),
        };
        Ok(Self { dir, root })
    }

    fn resolve(&self, field: &str, path: &Path) -> Result<PathBuf, PackageError> {
        if path.is_absolute() {
            return Err(PackageError::AbsolutePath {
                field: field.into(),
                path: path.to_path_buf(),
            });
        }
        let joined = self.dir.join(path);
        let target = joined
            .canonicalize()
            .map_err(|error| PackageError::MissingFile {
                field: field.into(),
                path: joined.clone(),
                error,
            })?;
        if !target.starts_with(&self.root) {
            return Err(PackageError::OutsidePackage {
                field: field.into(),
                path: path.to_path_buf(),
                root: self.root.clone(),
                target,
            });
        }
        Ok(target)
    }
}
