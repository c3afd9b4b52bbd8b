//! A prediction another tool asks for and waits on (CVAT's automatic annotation; Label
//! Studio's ML backend next): the image is stored as an item of that tool's dataset like an
//! upload (triggers fire as usual), one execution of the service's function on it goes through
//! the queue, so the service's concurrency, limits and current revision hold, and the caller
//! gets the item's boxes when it ends. Asking again for the same bytes answers from the store.

use std::time::{Duration, Instant};

use crate::store::{OptionalExtension, Store, params};

use crate::error::{Error, Kind, Result};
use crate::items::item::ItemRecord;
use crate::named::Named;
use crate::results::annotation::Review;
use crate::results::annotation::Stored;
use crate::work::execution::{Execution, Status};
use crate::{catalog::revision, catalog::service};

/// How often a waiting caller looks at its execution.
const POLL: Duration = Duration::from_millis(25);

/// The execution that answers for `function` of `service` on `item`: one queued or running
/// already (a trigger may have queued it with the upload), the last success when it ran the
/// service's current revision on these bytes, else a new one, queued now.
pub fn queue(store: &mut Store, service: &str, function: &str, item: &ItemRecord) -> Result<i64> {
    let service = service::get(store, service)?;
    if service.paused {
        return Err(Error::Conflict {
            kind: Kind::Service,
            name: service.name.clone(),
            message: format!(
                "service `{}` is paused: resume it to get predictions",
                service.name
            ),
        });
    }
    revision::revision_by_id(store, service.revision_id)?
        .check_function(&service.name, function)?;
    let tx = store.write()?;
    let latest: Option<(i64, Status, Option<i64>, Option<String>)> = tx
        .query_row(
            "SELECT id, status, revision_id, item_digest FROM executions
              WHERE service_id = $1 AND item_id = $2 AND function = $3 ORDER BY id DESC LIMIT 1",
            params![service.id, item.id, function],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let answers =
        |(_, status, revision, digest): &(i64, Status, Option<i64>, Option<String>)| match status {
            Status::Queued | Status::Running => true,
            Status::Success => {
                *revision == Some(service.revision_id) && digest.as_deref() == Some(&item.digest)
            }
            _ => false,
        };
    if let Some(found) = latest.as_ref().filter(|l| answers(l)) {
        return Ok(found.0);
    }
    let id: i64 = tx.query_row(
        "INSERT INTO executions (service_id, service_name, item_id, function, status)
         VALUES ($1, $2, $3, $4, 'queued') RETURNING id",
        params![service.id, service.name, item.id, function],
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(id)
}

/// Waits until the execution `read` returns ends (polling: whichever process runs the queue
/// writes it to the store); an error if it did not succeed, or has not ended within `wait`.
pub fn wait(read: impl Fn() -> Result<Execution>, wait: Duration) -> Result<Execution> {
    let deadline = Instant::now() + wait;
    loop {
        let execution = read()?;
        match execution.status {
            Status::Success => return Ok(execution),
            Status::Queued | Status::Running => {}
            status => {
                return Err(Error::Failed {
                    execution: execution.id,
                    status: status.name(),
                    error: execution.error.unwrap_or_default(),
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Pending {
                execution: execution.id,
                secs: wait.as_secs(),
            });
        }
        std::thread::sleep(POLL);
    }
}

/// What the service says about the item now: its boxes that a person did not reject (a later
/// run keeps reviewed ones, so this is the reviewed state, not only the last run's).
pub fn answer(annotations: Vec<Stored>, service: &str) -> Vec<Stored> {
    annotations
        .into_iter()
        .filter(|a| a.service.as_deref() == Some(service) && a.review != Review::Rejected)
        .collect()
}

/// The labels a service gives: those its package declares, its `label` init input when it
/// has one, and every label it has stored.
pub fn labels(store: &Store, service: &service::Service) -> Result<Vec<String>> {
    let declared = crate::catalog::revision::revision_by_id(store, service.revision_id)?
        .manifest
        .module
        .labels;
    let mut labels: Vec<String> = declared;
    let init_label = service.init_inputs.get("label").and_then(|v| match v {
        crate::package::manifest::InputValue::String(s) => Some(s.clone()),
        _ => None,
    });
    if let Some(label) = init_label
        && !labels.contains(&label)
    {
        labels.push(label);
    }
    for label in store.conn().query_map(
        "SELECT DISTINCT label FROM annotations WHERE service_id = $1 ORDER BY label",
        params![service.id],
        |r| r.get::<String>(0),
    )? {
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    Ok(labels)
}
