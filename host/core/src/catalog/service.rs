//! Services: a deployed package revision with its init-input values and runtime settings.
//!
//! Deploying a name that exists updates it in place and bumps its generation: executions
//! already running finish on their instance, queued ones run on a fresh instance of the new
//! revision (see `scheduler`). Nothing needs a restart.

use std::collections::BTreeMap;

use crate::store::{NOW, OptionalExtension, Row, Store, params};
use serde::Serialize;

use crate::catalog::instance_type::InstanceType;
use crate::catalog::revision::{self, Revision};
pub use crate::catalog::settings::{
    DEFAULT_IDLE_MS, MAX_CONCURRENCY, MAX_INFERENCE_THREADS, Settings,
};
use crate::catalog::settings::{millis, positive, within};
use crate::error::{Error, Kind, Result};
use crate::package::manifest::InputValue;
use crate::runtime::EngineChoice;
use crate::runtime::outbound::AllowedHosts;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Service {
    pub id: i64,
    pub name: String,
    pub package: String,
    pub revision: i64,
    pub revision_id: i64,
    pub previous_revision_id: Option<i64>,
    pub init_inputs: BTreeMap<String, InputValue>,
    pub settings: Settings,
    /// The instance type it was deployed on, if any (its values are in `settings`).
    pub instance_type: Option<String>,
    pub paused: bool,
    /// Bumped by every deploy and rollback: instances of an older generation are replaced.
    pub generation: i64,
    /// The hosts its guest may call over `wasi:http`: the package's `allowed_outbound_hosts`,
    /// or the narrower list its deployer gave (`--allow-host`). Empty: no network.
    pub allowed_outbound_hosts: Vec<String>,
    /// The deployer's list as given, to carry to another revision (`None`: the package's).
    #[serde(skip)]
    #[schema(ignore)]
    narrowed: Option<AllowedHosts>,
    pub updated_at: String,
}

/// What `service deploy` asks for. `None` keeps the current value (or the default).
/// The HTTP API reads it as the body of `PUT /api/services/{name}`: the name comes from the
/// path, and `init` is an object of values by name.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// The package to deploy.
    pub package: String,
    #[serde(skip)]
    pub name: String,
    /// The package revision (default: the latest).
    pub revision: Option<i64>,
    /// `key=value` pairs, typed by the manifest (in JSON, an object of values by name).
    #[serde(default, deserialize_with = "init_object")]
    #[schema(value_type = Object)]
    pub init: Vec<String>,
    pub concurrency: Option<u32>,
    /// Instances kept however idle (at most `concurrency`).
    pub min_instances: Option<u32>,
    /// Seconds an instance above `min_instances` may sit idle before it is given back.
    pub idle: Option<f64>,
    /// Seconds.
    pub timeout: Option<f64>,
    /// Seconds.
    pub init_timeout: Option<f64>,
    pub max_attempts: Option<u32>,
    pub memory_mb: Option<u32>,
    pub max_item_mb: Option<u32>,
    pub max_annotations: Option<u32>,
    pub log_kb: Option<u32>,
    pub allow_inference: Option<bool>,
    /// `auto`, `onnxruntime` or `tract`.
    pub inference_engine: Option<EngineChoice>,
    pub inference_threads: Option<u32>,
    /// A named class of instance (`small`, `large`, or the home's): its memory cap and
    /// inference threads, under the flags given beside it.
    pub instance_type: Option<String>,
    /// Narrows the package's `allowed_outbound_hosts` to these (each must be one of them);
    /// `None` keeps the service's list.
    pub allow_host: Option<Vec<String>>,
}

/// Init values given as a JSON object (`{"min_confidence": 0.6}`), as the `key=value` pairs
/// the command line gives: the manifest types both the same way.
pub(crate) fn init_object<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    use serde::Deserialize as _;
    use serde::de::Error as _;
    BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok(format!("{key}={s}")),
            serde_json::Value::Number(n) => Ok(format!("{key}={n}")),
            serde_json::Value::Bool(b) => Ok(format!("{key}={b}")),
            _ => Err(D::Error::custom(format!(
                "init input `{key}` must be a string, a number or a boolean"
            ))),
        })
        .collect()
}

const SELECT: &str = "SELECT s.id, s.name, p.name AS package, r.revision, s.revision_id, s.previous_revision_id, s.init_inputs,
        s.concurrency, s.timeout_ms, s.max_attempts, s.memory_mb, s.paused, s.generation, s.updated_at,
        s.init_timeout_ms, s.max_item_mb, s.max_annotations, s.log_kb, s.allow_inference,
        s.allowed_outbound_hosts, r.manifest, s.inference_engine, s.inference_threads,
        s.min_instances, s.idle_ms, s.instance_type
   FROM services s JOIN revisions r ON r.id = s.revision_id JOIN packages p ON p.id = s.package_id";

fn from_row(r: &Row) -> crate::store::db::Result<Service> {
    // Outbound hosts, the deployer's and the package's: anything unreadable allows nothing.
    let hosts = |column: &str| -> crate::store::db::Result<Option<AllowedHosts>> {
        Ok(r.get::<Option<String>>(column)?
            .map(|json| serde_json::from_str(&json).unwrap_or_default()))
    };
    // The package's list, from its manifest as stored (JSON).
    let manifest: String = r.get("manifest")?;
    let package = serde_json::from_str::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|m| m.pointer("/module/allowed_outbound_hosts").cloned())
        .and_then(|hosts| serde_json::from_value(hosts).ok())
        .unwrap_or_default();
    let narrowed = hosts("allowed_outbound_hosts")?;
    let mut service = Service {
        id: r.get("id")?,
        name: r.get("name")?,
        package: r.get("package")?,
        revision: r.get("revision")?,
        revision_id: r.get("revision_id")?,
        previous_revision_id: r.get("previous_revision_id")?,
        init_inputs: r.json("init_inputs")?,
        settings: Settings {
            concurrency: r.get("concurrency")?,
            min_instances: r.get("min_instances")?,
            idle_ms: r.get("idle_ms")?,
            timeout_ms: r.get("timeout_ms")?,
            max_attempts: r.get("max_attempts")?,
            memory_mb: r.get("memory_mb")?,
            init_timeout_ms: r.get("init_timeout_ms")?,
            max_item_mb: r.get("max_item_mb")?,
            max_annotations: r.get("max_annotations")?,
            log_kb: r.get("log_kb")?,
            allow_inference: r.get("allow_inference")?,
            // Written by `deploy` from a checked choice; anything else is the default.
            inference_engine: r
                .get::<String>("inference_engine")?
                .parse()
                .unwrap_or_default(),
            inference_threads: r.get("inference_threads")?,
        },
        instance_type: r.get("instance_type")?,
        paused: r.get("paused")?,
        generation: r.get("generation")?,
        updated_at: r.get("updated_at")?,
        allowed_outbound_hosts: Vec::new(),
        narrowed,
    };
    service.allowed_outbound_hosts = service.allowed_within(&package).entries();
    Ok(service)
}

impl Service {
    /// The hosts its guest may call now.
    pub fn outbound(&self) -> AllowedHosts {
        AllowedHosts::parse(&self.allowed_outbound_hosts).unwrap_or_default()
    }

    /// The hosts it would call running `revision` (deployed, or compared): the deployer's
    /// narrowed list where that revision's package still declares it, or the package's list.
    pub fn outbound_for(&self, revision: &Revision) -> AllowedHosts {
        let package = revision.manifest.allowed_hosts().unwrap_or_default();
        self.allowed_within(&package)
    }

    fn allowed_within(&self, package: &AllowedHosts) -> AllowedHosts {
        match &self.narrowed {
            None => package.clone(),
            Some(narrowed) => narrowed.within(package),
        }
    }
}

pub fn get(store: &Store, name: &str) -> Result<Service> {
    store
        .conn()
        .query_row(
            &format!("{SELECT} WHERE s.name = $1"),
            params![name],
            from_row,
        )
        .optional()?
        .ok_or_else(|| {
            Error::not_found(
                Kind::Service,
                name,
                format!("no service named `{name}` (see: prelabel service list)"),
            )
        })
}

pub fn by_id(store: &Store, id: i64) -> Result<Option<Service>> {
    Ok(store
        .conn()
        .query_row(&format!("{SELECT} WHERE s.id = $1"), params![id], from_row)
        .optional()?)
}

pub fn list(store: &Store) -> Result<Vec<Service>> {
    let services =
        store
            .conn()
            .query_map(&format!("{SELECT} ORDER BY s.name"), params![], from_row)?;
    Ok(services)
}

/// Creates or updates a service. Returns it and whether it is new.
/// `kind`: the request's instance type, resolved by the caller (the home's table).
pub fn deploy(
    store: &mut Store,
    request: &Deploy,
    kind: Option<(&str, &InstanceType)>,
) -> Result<(Service, bool)> {
    if request.name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    let revision = revision::revision(store, &request.package, request.revision)?;
    let existing = match get(store, &request.name) {
        Ok(s) => Some(s),
        Err(Error::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let init = match &existing {
        Some(s) => init_for(store, s, &revision, &request.init)?,
        None => resolve_init(store, &revision, &BTreeMap::new(), &request.init)?,
    };
    let current = existing.as_ref().map(|s| s.settings).unwrap_or_default();
    let settings = request.settings(current, kind.map(|(_, k)| k))?;
    let narrowed = match &request.allow_host {
        Some(given) => {
            let package = revision
                .manifest
                .allowed_hosts()
                .map_err(|e| Error::invalid("allow-host", e.to_string()))?;
            let narrowed = package
                .narrowed_to(given)
                .map_err(|e| Error::invalid("allow-host", e.to_string()))?;
            Some(serde_json::to_string(&narrowed).expect("a list serializes"))
        }
        None => None,
    };
    write(
        store,
        &request.name,
        existing.as_ref(),
        &revision,
        &init,
        (&settings, kind.map(|(name, _)| name)),
        narrowed.as_deref(),
    )?;
    Ok((get(store, &request.name)?, existing.is_none()))
}

impl Deploy {
    /// `current` with what this request changes, each value checked.
    fn settings(&self, mut settings: Settings, kind: Option<&InstanceType>) -> Result<Settings> {
        // The type's values first: a flag given beside it wins.
        if let Some(kind) = kind {
            settings.memory_mb = kind.memory_mb;
            settings.inference_threads = kind.inference_threads;
        }
        if let Some(n) = self.concurrency {
            let why = " (one worker thread and instance each)";
            settings.concurrency = within(n, MAX_CONCURRENCY, "concurrency", why)?;
        }
        if let Some(t) = self.timeout {
            settings.timeout_ms = millis(t, "timeout")?;
        }
        if let Some(t) = self.init_timeout {
            settings.init_timeout_ms = millis(t, "init-timeout")?;
        }
        if let Some(t) = self.idle {
            settings.idle_ms = millis(t, "idle")?;
        }
        if let Some(n) = self.min_instances {
            settings.min_instances = n;
        }
        if settings.min_instances > settings.concurrency {
            return Err(Error::invalid(
                "min-instances",
                format!(
                    "must be at most the service's concurrency (its most instances), {}, got {}",
                    settings.concurrency, settings.min_instances
                ),
            ));
        }
        for (value, field, setting) in [
            (
                self.max_attempts,
                "max-attempts",
                &mut settings.max_attempts,
            ),
            (self.memory_mb, "memory-mb", &mut settings.memory_mb),
            (self.max_item_mb, "max-item-mb", &mut settings.max_item_mb),
            (
                self.max_annotations,
                "max-annotations",
                &mut settings.max_annotations,
            ),
            (self.log_kb, "log-kb", &mut settings.log_kb),
        ] {
            if let Some(n) = value {
                *setting = positive(n, field)?;
            }
        }
        if let Some(allow) = self.allow_inference {
            settings.allow_inference = allow;
        }
        if let Some(n) = self.inference_threads {
            let field = "inference-threads";
            settings.inference_threads = within(n, MAX_INFERENCE_THREADS, field, "")?;
        }
        if let Some(engine) = self.inference_engine {
            engine
                .available()
                .map_err(|e| Error::invalid("inference-engine", e.to_string()))?;
            settings.inference_engine = engine;
        }
        Ok(settings)
    }
}

/// Inserts the service, or updates it in place with a new generation (remembering the
/// revision it ran before, for `rollback`). `narrowed`: the deployer's outbound hosts (JSON),
/// or `None` to keep the service's (a new one: the package's).
fn write(
    store: &mut Store,
    name: &str,
    existing: Option<&Service>,
    revision: &Revision,
    init: &BTreeMap<String, InputValue>,
    (settings, kind): (&Settings, Option<&str>),
    narrowed: Option<&str>,
) -> Result<()> {
    let init_json = serde_json::to_string(init).expect("init values serialize");
    let tx = store.write()?;
    let package_id: i64 = tx.query_row(
        "SELECT package_id FROM revisions WHERE id = $1",
        params![revision.id],
        |r| r.get(0),
    )?;
    match existing {
        None => {
            tx.execute(
                "INSERT INTO services (name, package_id, revision_id, init_inputs, concurrency, timeout_ms, max_attempts, memory_mb,
                                       init_timeout_ms, max_item_mb, max_annotations, log_kb, allow_inference, allowed_outbound_hosts,
                                       inference_engine, inference_threads, min_instances, idle_ms, instance_type)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                params![
                    name, package_id, revision.id, init_json, settings.concurrency, settings.timeout_ms, settings.max_attempts,
                    settings.memory_mb, settings.init_timeout_ms, settings.max_item_mb, settings.max_annotations, settings.log_kb,
                    settings.allow_inference, narrowed, settings.inference_engine.as_str(), settings.inference_threads,
                    settings.min_instances, settings.idle_ms, kind
                ],
            )?;
        }
        Some(s) => {
            let previous = if s.revision_id != revision.id {
                Some(s.revision_id)
            } else {
                s.previous_revision_id
            };
            tx.execute(
                &format!(
                    "UPDATE services SET revision_id = $2, previous_revision_id = $3, init_inputs = $4, concurrency = $5,
                            timeout_ms = $6, max_attempts = $7, memory_mb = $8, init_timeout_ms = $9, max_item_mb = $10,
                            max_annotations = $11, log_kb = $12, allow_inference = $13, package_id = $14,
                            allowed_outbound_hosts = COALESCE($15, allowed_outbound_hosts),
                            inference_engine = $16, inference_threads = $17, min_instances = $18, idle_ms = $19,
                            instance_type = COALESCE($20, instance_type),
                            generation = generation + 1, updated_at = {NOW}
                      WHERE id = $1"
                ),
                params![
                    s.id, revision.id, previous, init_json, settings.concurrency, settings.timeout_ms, settings.max_attempts,
                    settings.memory_mb, settings.init_timeout_ms, settings.max_item_mb, settings.max_annotations, settings.log_kb,
                    settings.allow_inference, package_id, narrowed, settings.inference_engine.as_str(),
                    settings.inference_threads, settings.min_instances, settings.idle_ms, kind
                ],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The service's init values that a deploy (or rollback) of `to` starts from. A service may
/// switch packages (a hot swap to another detector): then only what the deployer chose for
/// the old package carries over, not its defaults (its `model_filename` is not the new one's).
fn carried_init(
    store: &Store,
    service: &Service,
    to: &Revision,
) -> Result<BTreeMap<String, InputValue>> {
    if service.package == to.package {
        return Ok(service.init_inputs.clone());
    }
    let defaults = revision::revision_by_id(store, service.revision_id)?
        .manifest
        .defaults();
    Ok(service
        .init_inputs
        .iter()
        .filter(|(name, value)| defaults.get(*name) != Some(*value))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect())
}

/// The init values `service` would run `revision` with if it were deployed now with `given`
/// (what a deploy, a rollback and `compare` run it with).
pub fn init_for(
    store: &Store,
    service: &Service,
    revision: &Revision,
    given: &[String],
) -> Result<BTreeMap<String, InputValue>> {
    resolve_init(
        store,
        revision,
        &carried_init(store, service, revision)?,
        given,
    )
}

/// Init values for a deploy: the manifest's defaults, then the `carried` values (the
/// service's current ones) that the revision still declares, then the ones given now; all
/// checked against the types, and each secret input naming a stored secret.
fn resolve_init(
    store: &Store,
    revision: &Revision,
    carried: &BTreeMap<String, InputValue>,
    given: &[String],
) -> Result<BTreeMap<String, InputValue>> {
    let manifest = &revision.manifest;
    let declared = |name: &str| manifest.module.init_inputs.iter().find(|i| i.name == name);
    let mut values: BTreeMap<String, InputValue> = BTreeMap::new();
    for (name, value) in carried {
        if let Some(decl) = declared(name)
            && let Ok(v) = decl.ty.accept(value)
        {
            values.insert(name.clone(), v);
        }
    }
    values.extend(manifest.parse_init_args(given)?);
    let init = manifest.resolve_init(&values)?;
    crate::catalog::secret::check_init(store, manifest, &init)?;
    Ok(init)
}

pub fn set_paused(store: &mut Store, name: &str, paused: bool) -> Result<Service> {
    let service = get(store, name)?;
    store.conn().execute(
        &format!("UPDATE services SET paused = $2, updated_at = {NOW} WHERE id = $1"),
        params![service.id, paused],
    )?;
    get(store, name)
}

/// Deletes a service and its triggers; its queued executions are canceled. Executions
/// already finished and their annotations are kept.
pub fn delete(store: &mut Store, name: &str) -> Result<usize> {
    let service = get(store, name)?;
    let tx = store.write()?;
    let canceled = tx.execute(
        &format!("UPDATE executions SET status = 'canceled', error = 'service deleted', finished_at = {NOW}
          WHERE service_id = $1 AND status = 'queued'"),
        params![service.id],
    )?;
    tx.execute(
        "DELETE FROM triggers WHERE service_id = $1",
        params![service.id],
    )?;
    tx.execute("DELETE FROM services WHERE id = $1", params![service.id])?;
    tx.commit()?;
    Ok(canceled)
}

/// Goes back to the revision deployed before the current one (and swaps them, so a second
/// rollback undoes the first).
pub fn rollback(store: &mut Store, name: &str) -> Result<Service> {
    let service = get(store, name)?;
    let previous = service
        .previous_revision_id
        .ok_or_else(|| Error::Conflict {
            kind: Kind::Service,
            name: name.to_string(),
            message: format!("service `{name}` has no previous revision to roll back to"),
        })?;
    let revision = revision::revision_by_id(store, previous)?;
    let init = init_for(store, &service, &revision, &[])?;
    store.conn().execute(
        &format!("UPDATE services SET revision_id = $2, previous_revision_id = $3, init_inputs = $4, generation = generation + 1,
                package_id = (SELECT package_id FROM revisions WHERE id = $2), updated_at = {NOW} WHERE id = $1"),
        params![service.id, previous, service.revision_id, serde_json::to_string(&init).expect("init values serialize")],
    )?;
    get(store, name)
}
