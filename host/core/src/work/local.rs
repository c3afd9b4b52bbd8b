//! Runs a package directly on files, storing nothing: what `prelabel detect`, the demo and
//! `prelabel compare` do, and what module authors use to try a detector. One instance is initialised once and
//! reused; if the guest traps, a fresh instance is initialised for the next file.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::catalog::revision::Revision;
use crate::error::{Error, Result};
use crate::items::item;
use crate::package::Package;
use crate::package::manifest::InputValue;
use crate::results::annotation::Annotation;
use crate::runtime::outbound::AllowedHosts;
use crate::runtime::{Grants, Instance, Item, Limits, Loaded, Runtime};
use crate::store::Store;
use crate::work::attempt;

/// The function a local run calls: the manifest's first.
fn first_function(manifest: &crate::package::manifest::Manifest) -> String {
    manifest
        .module
        .functions
        .first()
        .map_or_else(|| "detect".into(), |f| f.name.clone())
}

/// The outcome for one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub name: String,
    pub mimetype: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub annotations: Vec<Annotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub logs: String,
    #[serde(skip)]
    pub duration: Duration,
    /// The engine that ran its models natively, with its version (`onnxruntime 1.22.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_engine: Option<String>,
}

pub struct LocalRunner<'r> {
    runtime: &'r Runtime,
    loaded: Loaded,
    grants: Grants,
    init: BTreeMap<String, InputValue>,
    /// The secret values among `init`, taken out of logs and errors.
    hidden: Vec<String>,
    limits: Limits,
    /// The function run: the manifest's first (a detector has one, `detect`).
    function: String,
    instance: Option<Instance>,
    /// Output of `init`, reported with the first file.
    init_logs: String,
}

impl<'r> LocalRunner<'r> {
    /// Loads the package's component, checks it against the manifest, and initialises one
    /// instance with `given` init inputs over the manifest's defaults.
    pub fn new(
        runtime: &'r Runtime,
        package: &Package,
        given: &BTreeMap<String, InputValue>,
        limits: Limits,
    ) -> Result<Self> {
        let loaded = package.compile(runtime)?;
        Self::with_loaded(runtime, package, loaded, given, limits)
    }

    /// [`LocalRunner::new`] for a component the caller compiled (or loaded from the cache)
    /// already: several runners of one package share that work.
    pub fn with_loaded(
        runtime: &'r Runtime,
        package: &Package,
        loaded: Loaded,
        given: &BTreeMap<String, InputValue>,
        limits: Limits,
    ) -> Result<Self> {
        let init = package.manifest.resolve_init(given)?;
        let hidden = crate::catalog::secret::values(&package.manifest, &init);
        // The hosts the package declares, as a service deployed from it would have.
        let outbound = package
            .manifest
            .allowed_hosts()
            .map_err(|e| Error::invalid("allowed-outbound-hosts", e.to_string()))?;
        let grants = Grants::artifacts(package.artifacts.clone()).with_outbound(outbound);
        Self::start(
            runtime,
            loaded,
            grants,
            (init, hidden),
            limits,
            (&package.manifest.name, first_function(&package.manifest)),
        )
    }

    /// The same for a pushed revision, with resolved init values and the hosts it may call
    /// (what `compare` and `replay` run).
    pub fn for_revision(
        runtime: &'r Runtime,
        store: &Store,
        revision: &Revision,
        init: &BTreeMap<String, InputValue>,
        limits: Limits,
        outbound: AllowedHosts,
    ) -> Result<Self> {
        let loaded = revision.load(store, runtime)?;
        let init = crate::catalog::secret::reveal(store, &revision.manifest, init)?;
        let hidden = crate::catalog::secret::values(&revision.manifest, &init);
        let grants = Grants::artifacts(revision.artifact_paths(store)?).with_outbound(outbound);
        Self::start(
            runtime,
            loaded,
            grants,
            (init, hidden),
            limits,
            (&revision.label(), first_function(&revision.manifest)),
        )
    }

    /// `init` with the secret values in it (hidden from logs and errors).
    fn start(
        runtime: &'r Runtime,
        loaded: Loaded,
        grants: Grants,
        (init, hidden): (BTreeMap<String, InputValue>, Vec<String>),
        limits: Limits,
        (package, function): (&str, String),
    ) -> Result<Self> {
        // Started now, so that a package whose init fails says so before any file runs;
        // after a trap, `attempt::run` starts the next one.
        let (started, init_logs) = runtime.start(&loaded, grants.clone(), limits, &init);
        let instance = started.map_err(|error| Error::Exec {
            package: package.to_string(),
            error,
        })?;
        Ok(Self {
            runtime,
            loaded,
            grants,
            init,
            hidden,
            limits,
            function,
            instance: Some(instance),
            init_logs,
        })
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The native inference engine its instance ran models on, with its version.
    pub fn inference_engine(&self) -> Option<String> {
        self.instance.as_ref()?.inference_engine()
    }

    /// The digest of the component being run.
    pub fn component_digest(&self) -> &str {
        &self.loaded.digest
    }

    /// A file that could not be read, as a failed result.
    pub fn failed(&self, name: &str, error: String) -> FileResult {
        FileResult {
            name: name.to_string(),
            mimetype: String::new(),
            width: None,
            height: None,
            annotations: Vec::new(),
            error: Some(error),
            logs: String::new(),
            duration: Duration::ZERO,
            inference_engine: None,
        }
    }

    /// Runs `detect` on one file's bytes. Failures are part of the result, never a panic.
    pub fn run(&mut self, name: &str, bytes: Vec<u8>) -> FileResult {
        let system = item::system_metadata(name, &bytes, &crate::files::sha256_hex(&bytes));
        let mimetype = system["mimetype"].as_str().unwrap_or_default().to_string();
        let item = Item {
            id: name.to_string(),
            name: name.to_string(),
            mimetype,
            metadata: serde_json::json!({"system": system, "user": {}}).to_string(),
            data: bytes,
        };
        self.run_item(item)
    }

    /// Runs `detect` on an item as given (what `replay` passes: the stored item's id, name and
    /// metadata, as the scheduler did).
    pub fn run_item(&mut self, item: Item) -> FileResult {
        let started = Instant::now();
        let metadata: serde_json::Value = serde_json::from_str(&item.metadata).unwrap_or_default();
        let dimension = |key: &str| metadata["system"][key].as_u64().map(|v| v as u32);
        let (width, height) = (dimension("width"), dimension("height"));
        let (name, mimetype) = (item.name.clone(), item.mimetype.clone());
        let mut logs = std::mem::take(&mut self.init_logs);
        let function = attempt::Function {
            name: &self.function,
            runtime: self.runtime,
            loaded: &self.loaded,
            grants: self.grants.clone(),
            limits: self.limits,
            init: &self.init,
            service: None,
        };
        let size = item.data.len() as u64;
        let mut noted = attempt::Noted::default();
        let result = attempt::run(
            &function,
            &mut self.instance,
            Some(size),
            || Ok(item.into()),
            width.zip(height),
            &mut logs,
            &mut noted,
        );
        let (annotations, error) = match result {
            Ok(done) => (done.annotations, None),
            Err(failure) => (
                Vec::new(),
                Some(crate::catalog::secret::redact(
                    &failure.to_string(),
                    &self.hidden,
                )),
            ),
        };
        FileResult {
            name,
            mimetype,
            width,
            height,
            annotations,
            error,
            logs: crate::catalog::secret::redact(&logs, &self.hidden),
            duration: started.elapsed(),
            inference_engine: noted.engine,
        }
    }
}
