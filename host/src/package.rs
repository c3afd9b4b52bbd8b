//! A package directory: `prelabel.toml`, the component it names and its artifacts,
//! resolved to files that exist, and checked against what the component exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::manifest::{self, Manifest, ManifestError};
use crate::runtime::Loaded;

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
    #[error("{field}: {} does not exist or cannot be read ({source})", path.display())]
    MissingFile {
        field: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the component does not export function `{function}` that {} declares (it exports: {exports})",
        manifest::FILE_NAME
    )]
    MissingFunction { function: String, exports: String },
}

impl Package {
    /// Reads `dir/prelabel.toml` and everything it points to.
    pub fn load(dir: &Path) -> Result<Self, PackageError> {
        let manifest_path = dir.join(manifest::FILE_NAME);
        if !manifest_path.is_file() {
            return Err(PackageError::NoManifest {
                dir: dir.to_path_buf(),
            });
        }
        let manifest = Manifest::from_file(&manifest_path)?;
        let component_path = dir.join(&manifest.component);
        let component =
            std::fs::read(&component_path).map_err(|source| PackageError::MissingFile {
                field: "component".into(),
                path: component_path.clone(),
                source,
            })?;
        let mut artifacts = BTreeMap::new();
        for (i, artifact) in manifest.artifacts.iter().enumerate() {
            let path = dir.join(&artifact.path);
            std::fs::metadata(&path)
                .and_then(|m| {
                    if m.is_file() {
                        Ok(())
                    } else {
                        Err(std::io::Error::other("not a file"))
                    }
                })
                .map_err(|source| PackageError::MissingFile {
                    field: format!("artifacts[{i}] `{}`", artifact.name),
                    path: path.clone(),
                    source,
                })?;
            artifacts.insert(artifact.name.clone(), path);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            component,
            artifacts,
        })
    }

    /// Every function the manifest declares must be exported by the component.
    pub fn check_exports(&self, loaded: &Loaded) -> Result<(), PackageError> {
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
