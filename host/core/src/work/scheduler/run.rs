//! One claimed execution, run to its end on a worker's slot: the slot made ready for the
//! service's generation, the item read or downloaded, an attempt on the instance, the outcome
//! recorded. Also the direct path (`prelabel execute`), which runs one outside the queue.

use std::collections::BTreeMap;
use std::time::Instant;

use super::record::record;
use super::{Components, Slot};
use crate::catalog::revision;
use crate::catalog::secret;
use crate::catalog::service::{self, Service};
use crate::error::{Error, Result};
use crate::items::item;
use crate::items::link;
use crate::items::made;
use crate::package::manifest::InputValue;
use crate::runtime::{self, Runtime};
use crate::store::{Location, Store};
use crate::work::attempt::{self, Failure};
use crate::work::execution::{self, Claimed, Outcome, Status};
use crate::work::metrics::{self, Stage};
use crate::work::pipeline;
use crate::work::worker::Registration;

/// Runs one claimed execution to its end and records it. The slot's instance is reused
/// when it belongs to the service's current generation and survived its last call.
pub(super) fn run_claimed(
    store: &mut Store,
    runtime: &Runtime,
    components: &Components,
    service: &Service,
    current: &mut Option<Slot>,
    claimed: &Claimed,
) -> Result<()> {
    let started = Instant::now();
    let mut logs = String::new();
    let slot = match ready_slot(store, runtime, components, service, current) {
        Ok(slot) => slot,
        // A revision that cannot be loaded fails the execution; it never stays `running`.
        Err(e) => {
            let outcome = Outcome::Failed {
                status: Status::Failed,
                error: e.to_string(),
                retry: false,
            };
            let took = started.elapsed().as_millis() as u64;
            return record(store, claimed, &outcome, "", took, Default::default());
        }
    };
    // Secret inputs are read now, for `init` only: the execution records their names, and
    // their values are taken out of what it stores of the guest's words.
    let mut hidden = Vec::new();
    let mut noted = attempt::Noted::default();
    let ran = secret::reveal(store, &slot.revision.manifest, &service.init_inputs)
        .map_err(|e| Failure::Refused(e.to_string()))
        .and_then(|init| {
            hidden = secret::values(&slot.revision.manifest, &init);
            attempt(
                store,
                runtime,
                service,
                slot,
                &init,
                claimed,
                (&mut logs, &mut noted),
            )
        });
    let ran = ran.and_then(|done| {
        let made = made::store(store, done.made)
            .map_err(|e| Failure::Refused(format!("cannot store an item it made: {e}")))?;
        Ok((done.annotations, made))
    });
    let outcome = match ran {
        Ok((annotations, made)) => Outcome::Success { annotations, made },
        Err(failure) => {
            logs.push_str(&format!(
                "[prelabel] attempt {} failed: {failure}\n",
                claimed.attempts
            ));
            let mut outcome = failure.into_outcome(claimed.attempts, service.settings.max_attempts);
            if let Outcome::Failed { error, .. } = &mut outcome {
                *error = secret::redact(error, &hidden);
            }
            outcome
        }
    };
    let took = started.elapsed();
    metrics::global().stage(&service.name, Stage::total, took);
    record(
        store,
        claimed,
        &outcome,
        &secret::redact(&logs, &hidden),
        took.as_millis() as u64,
        execution::Ran {
            component_digest: &slot.loaded.digest,
            init_inputs: Some(&service.init_inputs),
            inference_engine: noted.engine.as_deref(),
            cold_start_ms: noted.cold_start.map(|d| d.as_millis() as u64),
        },
    )
}

/// The slot for the service's current generation: the one kept, or its revision loaded anew
/// (an instance of an older generation is dropped).
fn ready_slot<'s>(
    store: &Store,
    runtime: &Runtime,
    components: &Components,
    service: &Service,
    current: &'s mut Option<Slot>,
) -> Result<&'s mut Slot> {
    let slot = match current.take() {
        Some(slot) if slot.generation == service.generation => slot,
        _ => {
            let revision = revision::revision_by_id(store, service.revision_id)?;
            let loaded = components.get(store, runtime, &revision)?;
            Slot {
                generation: service.generation,
                revision,
                loaded,
                instance: None,
            }
        }
    };
    Ok(current.insert(slot))
}

/// What an instance of the slot's revision may reach: the revision's artifacts, and the
/// service's outbound hosts.
fn grants(store: &Store, service: &Service, slot: &Slot) -> Result<runtime::Grants> {
    let artifacts = slot.revision.artifact_paths(store)?;
    Ok(runtime::Grants::artifacts(artifacts).with_outbound(service.outbound()))
}

/// Makes the slot's instance of the service's current generation ahead of work (one that
/// `min_instances` keeps), as an execution would: its secrets revealed for `init` alone, the
/// same grants and limits. What its `init` printed goes to the log at debug level.
pub(super) fn warm_up(
    store: &Store,
    runtime: &Runtime,
    components: &Components,
    service: &Service,
    current: &mut Option<Slot>,
) -> Result<usize> {
    let slot = ready_slot(store, runtime, components, service, current)?;
    if let Some(instance) = &slot.instance {
        return Ok(instance.memory_bytes());
    }
    let init = secret::reveal(store, &slot.revision.manifest, &service.init_inputs)?;
    let hidden = secret::values(&slot.revision.manifest, &init);
    let starting = Instant::now();
    let limits = service.settings.limits();
    let (started, logs) = runtime.start(&slot.loaded, grants(store, service, slot)?, limits, &init);
    metrics::global().stage(&service.name, Stage::init, starting.elapsed());
    tracing::debug!(
        "service {}: warm-up: {}",
        service.name,
        secret::redact(&logs, &hidden)
    );
    let instance =
        started.map_err(|e| Error::invalid("init", secret::redact(&e.to_string(), &hidden)))?;
    let bytes = instance.memory_bytes();
    slot.instance = Some(instance);
    Ok(bytes)
}

/// One attempt of a claimed execution on the slot's instance (see [`attempt::run`]).
fn attempt(
    store: &Store,
    runtime: &Runtime,
    service: &Service,
    slot: &mut Slot,
    init: &BTreeMap<String, InputValue>,
    claimed: &Claimed,
    (logs, noted): (&mut String, &mut attempt::Noted),
) -> Result<attempt::Done, Failure> {
    (slot.revision)
        .check_function(&service.name, &claimed.function)
        .map_err(|e| Failure::Refused(e.to_string()))?;
    let item = item::get(store, claimed.item_id).map_err(|e| Failure::Refused(e.to_string()))?;
    let limits = service.settings.limits();
    // A transformer is given the annotations stored on the item before.
    let given = if slot.loaded.is_transformer() {
        pipeline::given_annotations(store, claimed.id, claimed.item_id)
            .map_err(|e| Failure::Refused(e.to_string()))?
    } else {
        Vec::new()
    };
    let function = attempt::Function {
        name: &claimed.function,
        runtime,
        loaded: &slot.loaded,
        grants: grants(store, service, slot).map_err(|e| Failure::Refused(e.to_string()))?,
        limits,
        init,
        service: Some(&service.name),
    };
    let load = || {
        let reading = Instant::now();
        // A linked item is downloaded within the item size limit and the call's timeout.
        let data = link::bytes(store, &item, limits.max_item_bytes, limits.timeout).map_err(
            |e| match e {
                Error::Download { .. } => Failure::Download(e.to_string()),
                e => Failure::Refused(e.to_string()),
            },
        )?;
        let stage = Stage::reading(item.url.is_some());
        metrics::global().stage(&service.name, stage, reading.elapsed());
        // A linked item is read again: its download recorded what the bytes are.
        let downloaded;
        let item = if item.url.is_some() {
            downloaded = item::get(store, item.id).map_err(|e| Failure::Refused(e.to_string()))?;
            &downloaded
        } else {
            &item
        };
        Ok(attempt::Given {
            item: runtime::Item {
                id: item.id.to_string(),
                name: item.name.clone(),
                mimetype: item.mimetype.clone(),
                metadata: item.metadata.to_string(),
                data,
            },
            annotations: given.iter().map(|a| a.to_guest()).collect(),
        })
    };
    // A linked item's size is checked once its bytes are there (while downloading, and after).
    let size = item.url.is_none().then_some(item.size);
    attempt::run(
        &function,
        &mut slot.instance,
        size,
        load,
        item.size_px(),
        logs,
        noted,
    )
}

/// Runs a function on an item now, in this process (not through the queue), and returns the
/// finished execution.
pub fn execute_now(
    home: &Location,
    runtime: &Runtime,
    service_name: &str,
    function: &str,
    item_id: i64,
) -> Result<execution::Execution> {
    let mut store = home.open()?;
    let service = service::get(&store, service_name)?;
    let revision = revision::revision_by_id(&store, service.revision_id)?;
    revision.check_function(&service.name, function)?;
    item::get(&store, item_id)?;
    // A worker of its own, whose lease tells other processes that it still runs.
    let registration = Registration::start(home)?;
    let claimed = execution::start_direct(
        &mut store,
        service.id,
        &service.name,
        item_id,
        function,
        service.revision_id,
        &registration.worker,
    )?;
    let components = Components::default();
    let mut current = None;
    run_claimed(
        &mut store,
        runtime,
        &components,
        &service,
        &mut current,
        &claimed,
    )?;
    execution::get(&store, claimed.id)
}
