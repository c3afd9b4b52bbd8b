//! One attempt of a function on one item: the per-item pipeline that the scheduler and local
//! runs (`prelabel detect`, the demo) share, so that both check and keep the same things in
//! the same order: the item's size, a started instance (reused while it survives), the call
//! (`detect`, or a transformer's `transform`), the captured logs, and the result's checks at
//! the boundary (annotations, and the items it made).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::items::item;
use crate::items::made::{self, Made};
use crate::package::manifest::InputValue;
use crate::results::annotation::{self, Annotation};
use crate::runtime::bindings::Annotation as WitAnnotation;
use crate::runtime::{ErrorKind, ExecError, Grants, Instance, Item, Limits, Loaded, Runtime};
use crate::work::execution::{Outcome, Status};
use crate::work::metrics::{self, Stage};

/// What an instance is started from: a loaded component, its grants (artifacts, outbound
/// hosts), the service's limits and init inputs; and the function of the manifest called.
pub struct Function<'a> {
    pub name: &'a str,
    pub runtime: &'a Runtime,
    pub loaded: &'a Loaded,
    pub grants: Grants,
    pub limits: Limits,
    pub init: &'a BTreeMap<String, InputValue>,
    /// The service whose stage times `/metrics` reports; none for a local run.
    pub service: Option<&'a str>,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The guest failed, trapped, or went over a limit while it ran.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The host refused the item before the guest saw it, or the result after.
    #[error("{0}")]
    Refused(String),
    /// A linked item's bytes could not be downloaded (`download failed: URL: cause`).
    #[error("{0}")]
    Download(String),
}

impl Failure {
    /// The status an execution that failed so ends with.
    pub fn status(&self) -> Status {
        match self {
            Failure::Exec(ExecError::Timeout { .. }) => Status::TimedOut,
            _ => Status::Failed,
        }
    }

    /// Whether another attempt could end otherwise: not for an item the guest called invalid,
    /// nor for what the host refused (the same bytes are refused again).
    pub fn retryable(&self) -> bool {
        match self {
            Failure::Exec(ExecError::Guest {
                kind: ErrorKind::InvalidItem | ErrorKind::InvalidInput,
                ..
            }) => false,
            Failure::Exec(_) | Failure::Download(_) => true,
            Failure::Refused(_) => false,
        }
    }

    /// The outcome of attempt number `attempt` of at most `max_attempts`.
    pub fn into_outcome(self, attempt: u32, max_attempts: u32) -> Outcome {
        Outcome::Failed {
            status: self.status(),
            retry: self.retryable() && attempt < max_attempts,
            error: self.to_string(),
        }
    }
}

/// What a function is given: the item, and (a transformer's) the annotations stored on it.
pub struct Given {
    pub item: Item,
    pub annotations: Vec<WitAnnotation>,
}

impl From<Item> for Given {
    fn from(item: Item) -> Self {
        Given {
            item,
            annotations: Vec::new(),
        }
    }
}

/// What an attempt notes of how it ran, whatever its outcome.
#[derive(Debug, Default)]
pub struct Noted {
    /// The native inference engine its instance ran models on, with its version.
    pub engine: Option<String>,
    /// How long making its instance took (its `init` included); none on a warm one.
    pub cold_start: Option<std::time::Duration>,
}

/// What an attempt that succeeded returned, checked.
#[derive(Debug, Default)]
pub struct Done {
    pub annotations: Vec<Annotation>,
    /// The items a transformer made (none for a detector).
    pub made: Vec<Made>,
}

/// Runs the function on what `load` gives, on `instance` (started when there is none; kept
/// when it survives). `size`, when known, is checked before the item's bytes are loaded, and
/// the bytes' size after. What the guest
/// printed and logged, init included, is appended to `logs`; `noted` gets the native inference
/// engine the instance ran models on, if any (provenance), and the cold start, if it made one.
pub fn run(
    function: &Function<'_>,
    instance: &mut Option<Instance>,
    size: Option<u64>,
    load: impl FnOnce() -> Result<Given, Failure>,
    size_px: Option<(u32, u32)>,
    logs: &mut String,
    noted: &mut Noted,
) -> Result<Done, Failure> {
    let limits = function.limits;
    if let Some(size) = size {
        item::check_size(size, limits.max_item_bytes).map_err(Failure::Refused)?;
    }
    let Given { item, annotations } = load()?;
    // A linked item's size is known once it is downloaded (within the limit, but maybe empty).
    item::check_size(item.data.len() as u64, limits.max_item_bytes).map_err(Failure::Refused)?;
    // A linked item's size is known once it is downloaded.
    let size_px = size_px.or_else(|| item::image_size(&item.data));
    let mut live = match instance.take() {
        Some(live) => live,
        None => {
            let starting = Instant::now();
            let (started, init_logs) = function.runtime.start(
                function.loaded,
                function.grants.clone(),
                limits,
                function.init,
            );
            logs.push_str(&init_logs);
            observe(function, Stage::init, starting);
            noted.cold_start = Some(starting.elapsed());
            started?
        }
    };
    let calling = Instant::now();
    let result = live.call(function.name, &item, &annotations);
    observe(function, Stage::call, calling);
    logs.push_str(&live.take_logs());
    if let Some(ran) = live.inference_engine() {
        noted.engine = Some(ran);
    }
    if !live.is_poisoned() {
        *instance = Some(live);
    }
    let output = result?;
    let invalid =
        |e: &dyn std::fmt::Display| Failure::Refused(format!("invalid result from the guest: {e}"));
    Ok(Done {
        annotations: annotation::from_guest(output.annotations, size_px, limits.max_annotations)
            .map_err(|e| invalid(&e))?,
        made: made::from_guest(output.items, limits.max_item_bytes).map_err(|e| invalid(&e))?,
    })
}

/// A stage's time since `from`, for the function's service.
fn observe(function: &Function<'_>, stage: Stage, from: Instant) {
    if let Some(service) = function.service {
        metrics::global().stage(service, stage, from.elapsed());
    }
}
