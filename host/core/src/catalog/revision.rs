//! Packages in the store: each push of a package folder is a new revision, its component
//! and artifacts kept as blobs; services deploy revisions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::store::{OptionalExtension, Store, params};
use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::package::manifest::{Manifest, ManifestError};
use crate::package::{Package, PackageError};
use crate::runtime::{Loaded, Runtime};

/// A pushed revision of a package.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Revision {
    pub id: i64,
    pub package: String,
    pub revision: i64,
    pub version: String,
    pub component_digest: String,
    /// Artifact name → (digest, size).
    #[schema(value_type = Object)]
    pub artifacts: BTreeMap<String, (String, u64)>,
    pub created_at: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub manifest: Manifest,
}

impl Revision {
    /// An error naming what it declares, unless this revision declares `function` (for
    /// service `service`, whose revision it is).
    pub fn check_function(&self, service: &str, function: &str) -> Result<()> {
        let declared: Vec<String> = self
            .manifest
            .module
            .functions
            .iter()
            .map(|f| f.name.clone())
            .collect();
        if declared.iter().any(|f| f == function) {
            return Ok(());
        }
        Err(Error::NoFunction {
            service: service.to_string(),
            function: function.to_string(),
            package: self.package.clone(),
            revision: self.revision,
            declared,
        })
    }

    /// `package revision N`, as messages name it.
    pub fn label(&self) -> String {
        format!("{} revision {}", self.package, self.revision)
    }

    /// Its component from the store, compiled (or from the runtime's cache) and checked
    /// against the world.
    pub fn load(&self, store: &Store, runtime: &Runtime) -> Result<Loaded> {
        let bytes = store.read_blob(&self.component_digest)?;
        runtime
            .load_with_digest(&bytes, &self.component_digest)
            .map_err(|error| Error::Load {
                package: self.label(),
                error,
            })
    }

    /// Artifact name → a local file with its bytes, for the runtime (from a bucket, fetched
    /// into the home's cache first).
    pub fn artifact_paths(&self, store: &Store) -> Result<BTreeMap<String, PathBuf>> {
        self.artifacts
            .iter()
            .map(|(name, (digest, _))| Ok((name.clone(), store.blob_file(digest)?)))
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
    push_package(store, runtime, &Package::load_within(dir, root)?)
}

/// [`push`] for a package already read from its folder.
pub fn push_package(store: &mut Store, runtime: &Runtime, package: &Package) -> Result<Revision> {
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
    tx.execute(
        "INSERT INTO packages (name) VALUES ($1) ON CONFLICT DO NOTHING",
        params![&name],
    )?;
    let package_id: i64 = tx.query_row(
        "SELECT id FROM packages WHERE name = $1",
        params![&name],
        |r| r.get(0),
    )?;
    let revision: i64 = tx.query_row(
        "SELECT COALESCE(MAX(revision), 0) + 1 FROM revisions WHERE package_id = $1",
        params![package_id],
        |r| r.get(0),
    )?;
    let revision_id: i64 = tx.query_row(
        "INSERT INTO revisions (package_id, revision, version, manifest, component_digest)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        params![
            package_id,
            revision,
            package.manifest.version,
            manifest_json,
            component_digest
        ],
        |r| r.get(0),
    )?;
    for (artifact, (digest, size)) in &artifacts {
        tx.execute(
            "INSERT INTO revision_artifacts (revision_id, name, digest, size) VALUES ($1, $2, $3, $4)",
            params![revision_id, artifact, digest, *size as i64],
        )
        ?;
    }
    tx.commit()?;
    revision_by_id(store, revision_id)
}

/// Each package with its latest revision.
pub fn list(store: &Store) -> Result<Vec<Revision>> {
    let ids: Vec<i64> = store.conn().query_map(
        "SELECT MAX(r.id) FROM revisions r JOIN packages p ON p.id = r.package_id
          GROUP BY p.id ORDER BY p.name",
        params![],
        |r| r.get(0),
    )?;
    ids.into_iter()
        .map(|id| revision_by_id(store, id))
        .collect()
}

/// Every revision of a package, oldest first.
pub fn revisions(store: &Store, name: &str) -> Result<Vec<Revision>> {
    let ids: Vec<i64> = store.conn().query_map(
        "SELECT r.id FROM revisions r JOIN packages p ON p.id = r.package_id
          WHERE p.name = $1 ORDER BY r.revision",
        params![name],
        |r| r.get(0),
    )?;
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
            "SELECT p.name AS package, r.revision, r.version, r.manifest, r.component_digest, r.created_at
           FROM revisions r JOIN packages p ON p.id = r.package_id WHERE r.id = $1",
            params![id],
            |r| {
                Ok((
                    r.get::<String>("package")?,
                    r.get::<i64>("revision")?,
                    r.get::<String>("version")?,
                    r.get::<String>("manifest")?,
                    r.get::<String>("component_digest")?,
                    r.get::<String>("created_at")?,
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
    let artifacts = store
        .conn()
        .query_map(
            "SELECT name, digest, size FROM revision_artifacts WHERE revision_id = $1",
            params![id],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    (r.get::<String>(1)?, r.get::<i64>(2)? as u64),
                ))
            },
        )?
        .into_iter()
        .collect::<BTreeMap<_, _>>();
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
