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
    #[error("{field}: {} does not exist or cannot be read ({error})", path.display())]
    MissingFile {
        field: String,
        path: PathBuf,
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

// ---------------------------------------------------------------------------------------
// The package registry in the store: each push is a new revision.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::runtime::Runtime;
use crate::store::Store;

/// A pushed revision of a package.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    pub id: i64,
    pub package: String,
    pub revision: i64,
    pub version: String,
    pub component_digest: String,
    /// Artifact name → (digest, size).
    pub artifacts: BTreeMap<String, (String, u64)>,
    pub created_at: String,
    #[serde(skip)]
    pub manifest: Manifest,
}

impl Package {
    /// Compiles (or loads from the cache) the component and checks it against the world
    /// and against the functions the manifest declares.
    pub fn compile(&self, runtime: &Runtime) -> Result<crate::runtime::Loaded> {
        let loaded = runtime.load(&self.component).map_err(|error| Error::Load {
            package: self.manifest.name.clone(),
            error,
        })?;
        self.check_exports(&loaded)?;
        Ok(loaded)
    }
}

impl Revision {
    /// Artifact name → blob path, for the runtime.
    pub fn artifact_paths(&self, store: &Store) -> BTreeMap<String, PathBuf> {
        self.artifacts
            .iter()
            .map(|(name, (digest, _))| (name.clone(), store.blob_path(digest)))
            .collect()
    }
}

/// Reads a package directory, checks its component against the world and the manifest,
/// stores component and artifacts (each blob once) and records revision N+1.
/// `root`: see [`Package::load_within`].
pub fn push(
    store: &mut Store,
    runtime: &Runtime,
    dir: &Path,
    root: Option<&Path>,
) -> Result<Revision> {
    let package = Package::load_within(dir, root)?;
    let name = package.manifest.name.clone();
    package.compile(runtime)?;

    let component_digest = store.put_blob(&package.component)?;
    let mut artifacts = BTreeMap::new();
    for (artifact, path) in &package.artifacts {
        let bytes = std::fs::read(path).map_err(|error| PackageError::MissingFile {
            field: format!("artifact `{artifact}`"),
            path: path.clone(),
            error,
        })?;
        artifacts.insert(
            artifact.clone(),
            (store.put_blob(&bytes)?, bytes.len() as u64),
        );
    }
    let manifest_json = serde_json::to_string(&package.manifest).expect("a manifest serializes");

    let tx = store.write()?;
    tx.execute("INSERT OR IGNORE INTO packages (name) VALUES (?1)", [&name])?;
    let package_id: i64 =
        tx.query_row("SELECT id FROM packages WHERE name = ?1", [&name], |r| {
            r.get(0)
        })?;
    let revision: i64 = tx.query_row(
        "SELECT COALESCE(MAX(revision), 0) + 1 FROM revisions WHERE package_id = ?1",
        [package_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO revisions (package_id, revision, version, manifest, component_digest) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![package_id, revision, package.manifest.version, manifest_json, component_digest],
    )
    ?;
    let revision_id = tx.last_insert_rowid();
    for (artifact, (digest, size)) in &artifacts {
        tx.execute(
            "INSERT INTO revision_artifacts (revision_id, name, digest, size) VALUES (?1, ?2, ?3, ?4)",
            params![revision_id, artifact, digest, *size as i64],
        )
        ?;
    }
    tx.commit()?;
    revision_by_id(store, revision_id)
}

/// Each package with its latest revision.
pub fn list(store: &Store) -> Result<Vec<Revision>> {
    let ids: Vec<i64> = {
        let mut stmt = store
            .conn()
            .prepare("SELECT MAX(r.id) FROM revisions r JOIN packages p ON p.id = r.package_id GROUP BY p.id ORDER BY p.name")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    ids.into_iter()
        .map(|id| revision_by_id(store, id))
        .collect()
}

/// Every revision of a package, oldest first.
pub fn revisions(store: &Store, name: &str) -> Result<Vec<Revision>> {
    let ids: Vec<i64> = {
        let mut stmt = store
            .conn()
            .prepare("SELECT r.id FROM revisions r JOIN packages p ON p.id = r.package_id WHERE p.name = ?1 ORDER BY r.revision")?;
        stmt.query_map([name], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    if ids.is_empty() {
        return Err(no_package(name));
    }
    ids.into_iter()
        .map(|id| revision_by_id(store, id))
        .collect()
}

/// A given revision of a package, or its latest.
pub fn revision(store: &Store, name: &str, revision: Option<i64>) -> Result<Revision> {
    let all = revisions(store, name)?;
    let latest = all.last().map_or(0, |r| r.revision);
    match revision {
        None => Ok(all.into_iter().last().ok_or_else(|| no_package(name))?),
        Some(n) => all.into_iter().find(|r| r.revision == n).ok_or_else(|| {
            Error::not_found(
                Kind::Revision,
                format!("{name} revision {n}"),
                format!("package `{name}` has no revision {n} (latest is {latest})"),
            )
        }),
    }
}

pub fn revision_by_id(store: &Store, id: i64) -> Result<Revision> {
    let row = store
        .conn()
        .query_row(
            "SELECT p.name, r.revision, r.version, r.manifest, r.component_digest, r.created_at
           FROM revisions r JOIN packages p ON p.id = r.package_id WHERE r.id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )
        .optional()?;
    let (package, revision, version, manifest, component_digest, created_at) =
        row.ok_or_else(|| {
            Error::not_found(Kind::Revision, id, format!("no package revision #{id}"))
        })?;
    let manifest: Manifest = serde_json::from_str(&manifest).map_err(|e| {
        Error::Package(PackageError::Manifest(ManifestError::Parse {
            path: PathBuf::from(format!("stored manifest of {package} revision {revision}")),
            message: e.to_string(),
        }))
    })?;
    let mut stmt = store
        .conn()
        .prepare("SELECT name, digest, size FROM revision_artifacts WHERE revision_id = ?1")?;
    let artifacts = stmt
        .query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, String>(1)?, r.get::<_, i64>(2)? as u64),
            ))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<BTreeMap<_, _>>>())?;
    Ok(Revision {
        id,
        package,
        revision,
        version,
        component_digest,
        artifacts,
        created_at,
        manifest,
    })
}

fn no_package(name: &str) -> Error {
    Error::not_found(
        Kind::Package,
        name,
        format!("no package named `{name}` (push it first: prelabel package push DIR)"),
    )
}
