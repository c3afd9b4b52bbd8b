//! `prelabel watch`: a package folder kept live on a service. When a file of the folder (or
//! the component, an artifact, or a path added with `--also`) changes, the package is rebuilt
//! (its manifest's `build` command, or cargo for a crate), pushed as a new revision if it
//! differs from what the service runs, and deployed to the service, live. A build that fails
//! or a package that is refused leaves the service on its revision, and says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::catalog::revision::Revision;
use crate::error::Result;
use crate::package::Package;
use crate::package::build::{self, Built, NotBuilt};
use crate::package::manifest::{self, Manifest};

/// Folders inside a package folder that are outputs or tools' state, not sources: a build
/// writing into them must not look like an edit.
const SKIPPED: &[&str] = &["target", "node_modules", "__pycache__"];

/// A package folder being watched for a service.
#[derive(Debug)]
pub struct Watch {
    pub dir: PathBuf,
    /// See [`Package::load_within`].
    pub root: Option<PathBuf>,
    pub service: String,
    /// More files or folders whose changes count (a path dependency's sources, say).
    pub also: Vec<PathBuf>,
    seen: Option<Seen>,
}

/// Every watched file's size and modification time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Fingerprint(BTreeMap<PathBuf, (u64, Option<SystemTime>)>);

/// The sources (the folder, `--also`) and the outputs (component, artifacts) apart: a pass
/// writes the outputs itself, and an edit made while it builds must still start the next.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    sources: Fingerprint,
    outputs: Fingerprint,
}

/// What one pass did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Pass {
    /// A new revision, deployed: the service runs it from its next execution on.
    Deployed {
        revision: Box<Revision>,
        /// What the service ran before (`package revision N`), unless it is new.
        was: Option<String>,
        built: Option<Built>,
    },
    /// The package is the one the service runs (same component, artifacts and manifest).
    Unchanged {
        serving: String,
        built: Option<Built>,
    },
    /// The build command failed: nothing pushed.
    BuildFailed {
        command: String,
        status: String,
        serving: Option<String>,
    },
    /// The package, its push or its deploy was refused.
    Refused {
        error: String,
        serving: Option<String>,
    },
}

impl Watch {
    pub fn new(dir: PathBuf, root: Option<PathBuf>, service: String, also: Vec<PathBuf>) -> Self {
        Self {
            dir,
            root,
            service,
            also,
            seen: None,
        }
    }

    /// Whether a watched file changed since the last call (the first call: yes).
    pub fn changed(&mut self) -> bool {
        let now = self.look();
        let changed = self.seen.as_ref() != Some(&now);
        self.seen = Some(now);
        changed
    }

    /// Takes the component and artifacts as they are now as seen, so that what a pass
    /// wrote itself does not start another; sources edited during the pass still do.
    pub fn settle(&mut self) {
        let outputs = self.look().outputs;
        if let Some(seen) = &mut self.seen {
            seen.outputs = outputs;
        }
    }

    fn look(&self) -> Seen {
        let mut sources = Fingerprint::default();
        walk(&self.dir, &mut sources, true);
        for path in &self.also {
            walk(path, &mut sources, true);
        }
        // The component and artifacts, wherever the manifest puts them.
        let mut outputs = Fingerprint::default();
        if let Ok(manifest) = Manifest::from_file(&self.dir.join(manifest::FILE_NAME)) {
            let paths = std::iter::once(&manifest.component)
                .chain(manifest.artifacts.iter().map(|a| &a.path));
            for path in paths {
                walk(&self.dir.join(path), &mut outputs, false);
            }
        }
        // A component built into the folder is an output, not a source.
        sources.0.retain(|path, _| !outputs.0.contains_key(path));
        Seen { sources, outputs }
    }

    /// Runs the build, if there is one (the manifest's `build`, or cargo for a crate).
    pub fn build(&self) -> std::result::Result<Option<Built>, NotBuilt> {
        build::run(&self.dir, build::Fallback::Cargo)
    }

    /// The package as it is now, read as `package push` reads it.
    pub fn package(&self) -> Result<Package> {
        Ok(Package::load_within(&self.dir, self.root.as_deref())?)
    }
}

/// Whether `package` is the revision: the same component, artifacts and manifest.
pub fn same(package: &Package, revision: &Revision) -> bool {
    if package.manifest.name != revision.package
        || package.manifest != revision.manifest
        || crate::files::sha256_hex(&package.component) != revision.component_digest
        || package.artifacts.len() != revision.artifacts.len()
    {
        return false;
    }
    package.artifacts.iter().all(|(name, path)| {
        revision.artifacts.get(name).is_some_and(|(digest, _)| {
            std::fs::read(path).is_ok_and(|bytes| crate::files::sha256_hex(&bytes) == *digest)
        })
    })
}

/// Adds `path` (a file, or a folder's files, recursively; hidden entries and output folders
/// skipped when `sources`) to the fingerprint. Links are not followed.
fn walk(path: &Path, files: &mut Fingerprint, sources: bool) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        files.0.insert(path.to_path_buf(), (0, None));
        return;
    };
    if meta.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if sources && (name.starts_with('.') || SKIPPED.contains(&name.as_ref())) {
                continue;
            }
            walk(&entry.path(), files, sources);
        }
    } else {
        files
            .0
            .insert(path.to_path_buf(), (meta.len(), meta.modified().ok()));
    }
}

/// How often `watch` looks, and how long files must stay still before a pass (editors and
/// builds write in bursts).
pub const INTERVAL: Duration = Duration::from_millis(500);
