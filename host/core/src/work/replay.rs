//! `prelabel replay EXECUTION`: runs exactly what an execution ran (its revision's component
//! and artifacts, its init values, the item's bytes as they were) again, storing nothing, and
//! says whether the annotations are byte-identical to the ones it recorded.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::revision;
use crate::catalog::service;
use crate::error::{Error, Kind, Result};
use crate::items::item;
use crate::named::Named;
use crate::package::manifest::InputValue;
use crate::runtime::{Item, Runtime};
use crate::store::{Store, params};
use crate::work::execution;
use crate::work::local::LocalRunner;

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub execution_id: i64,
    pub item: String,
    /// `package@revision` that ran, then and now.
    pub revision: String,
    pub component_digest: String,
    /// The host version that recorded the execution, and this one.
    pub recorded_by: Option<String>,
    pub replayed_by: String,
    pub recorded: usize,
    pub replayed: usize,
    /// The annotations are byte-for-byte the recorded ones.
    pub identical: bool,
    /// Why the replay could not run the item, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn cannot(id: i64, why: impl Into<String>) -> Error {
    Error::Conflict {
        kind: Kind::Execution,
        name: id.to_string(),
        message: format!("execution {id} cannot be replayed: {}", why.into()),
    }
}

pub fn replay(store: &Store, runtime: &Runtime, id: i64) -> Result<Replay> {
    let execution = execution::get(store, id)?;
    let recorded = execution.result.clone().ok_or_else(|| {
        cannot(
            id,
            format!(
                "it has no recorded result (status {}; results are recorded for successes since \
                 provenance was kept)",
                execution.status.name()
            ),
        )
    })?;
    let init: BTreeMap<String, InputValue> = execution
        .init_inputs
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| cannot(id, "its init values were not recorded"))?;
    let revision_id = execution
        .revision_id
        .ok_or_else(|| cannot(id, "it records no revision"))?;
    let revision = revision::revision_by_id(store, revision_id)?;
    let record = item::get(store, execution.item_id)?;
    // The bytes it ran on: blobs are content-addressed, so the old ones are still there when
    // the item changed since.
    let digest: Option<String> = store.conn().query_row(
        "SELECT item_digest FROM executions WHERE id = $1",
        params![id],
        |r| r.get(0),
    )?;
    let digest = digest
        .filter(|d| !d.is_empty())
        .ok_or_else(|| cannot(id, "it records no item digest"))?;
    let data = store.read_blob(&digest)?;
    // Limits do not change what a detector returns, only whether it is allowed to finish:
    // the service's when it still exists, the defaults when it was deleted.
    // The hosts: what the service allows that revision now (none when it was deleted).
    let (limits, outbound) = match service::get(store, &execution.service) {
        Ok(s) => (s.settings.limits(), s.outbound_for(&revision)),
        Err(_) => (service::Settings::default().limits(), Default::default()),
    };
    let mut runner = LocalRunner::for_revision(runtime, store, &revision, &init, limits, outbound)?;
    let result = runner.run_item(Item {
        id: record.id.to_string(),
        name: record.name.clone(),
        mimetype: record.mimetype.clone(),
        metadata: record.metadata.to_string(),
        data,
    });
    let replayed = serde_json::to_string(&result.annotations).expect("annotations serialize");
    let count =
        |json: &str| serde_json::from_str::<Vec<serde_json::Value>>(json).map_or(0, |v| v.len());
    Ok(Replay {
        execution_id: id,
        item: record.name,
        revision: format!("{}@{}", revision.package, revision.revision),
        component_digest: revision.component_digest,
        recorded_by: execution.host_version,
        replayed_by: crate::HOST_VERSION.to_string(),
        recorded: count(&recorded),
        replayed: result.annotations.len(),
        identical: result.error.is_none() && replayed == recorded,
        error: result.error,
    })
}
