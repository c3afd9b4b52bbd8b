//! Batch execution: a service's function on every item of a dataset that matches the filters,
//! queued in one transaction (all or nothing), and its progress from its executions.

use std::collections::BTreeMap;

use crate::store::{OptionalExtension, Store, params};
use serde::{Deserialize, Serialize};

use crate::catalog::revision;
use crate::catalog::service;
use crate::error::{Error, Kind, Result};
use crate::items::item;
use crate::work::execution::Status;
use crate::work::trigger::Filter;

/// What `execute SERVICE --dataset D` asks for.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub service: String,
    /// Default `detect`.
    #[serde(default = "default_function")]
    pub function: String,
    pub dataset: String,
    /// `PATH=GLOB`, `PATH!=GLOB` or `PATH in A,B`, joined by AND, as for triggers.
    #[serde(default)]
    pub filters: Vec<String>,
}

fn default_function() -> String {
    "detect".into()
}

/// A batch and how far it got.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Batch {
    pub id: i64,
    pub service: String,
    pub function: String,
    pub dataset: String,
    pub filters: Vec<String>,
    pub created_at: String,
    /// Executions queued by the batch.
    pub total: u64,
    /// How many are in each status now (`queued`, `running`, `success`, ...).
    pub statuses: BTreeMap<String, u64>,
    /// None left queued or running.
    pub done: bool,
}

/// Queues the function on every matching item, in one transaction. A bad filter, an unknown
/// service, function or dataset stores nothing.
pub fn queue(store: &mut Store, request: &Request) -> Result<Batch> {
    let filters = request
        .filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let service = service::get(store, &request.service)?;
    let current = revision::revision_by_id(store, service.revision_id)?;
    current.check_function(&service.name, &request.function)?;
    let items: Vec<i64> = item::list(store, Some(&request.dataset))?
        .into_iter()
        .filter(|i| filters.iter().all(|f| f.matches(&i.document())))
        .map(|i| i.id)
        .collect();
    let tx = store.write()?;
    let batch: i64 = tx.query_row(
        "INSERT INTO batches (service, function, dataset, filters) VALUES ($1, $2, $3, $4)
         RETURNING id",
        params![
            service.name,
            request.function,
            request.dataset,
            serde_json::to_string(&request.filters).expect("serializes")
        ],
        |r| r.get(0),
    )?;
    for item in &items {
        tx.execute(
            "INSERT INTO executions (service_id, service_name, item_id, function, status, batch_id)
             VALUES ($1, $2, $3, $4, 'queued', $5)",
            params![service.id, service.name, item, request.function, batch],
        )?;
    }
    tx.commit()?;
    get(store, batch)
}

/// A batch with its progress.
pub fn get(store: &Store, id: i64) -> Result<Batch> {
    let row = store
        .conn()
        .query_row(
            "SELECT service, function, dataset, filters, created_at FROM batches WHERE id = $1",
            params![id],
            |r| {
                Ok((
                    r.get::<String>("service")?,
                    r.get::<String>("function")?,
                    r.get::<String>("dataset")?,
                    r.json::<Vec<String>>("filters")?,
                    r.get::<String>("created_at")?,
                ))
            },
        )
        .optional()?;
    let (service, function, dataset, filters, created_at) =
        row.ok_or_else(|| Error::not_found(Kind::Batch, id, format!("no batch with id {id}")))?;
    let counts: Vec<(Status, u64)> = store.conn().query_map(
        "SELECT status, COUNT(*) FROM executions WHERE batch_id = $1 GROUP BY status",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let total = counts.iter().map(|(_, n)| n).sum();
    let done = !counts
        .iter()
        .any(|(s, n)| *n > 0 && matches!(s, Status::Queued | Status::Running));
    Ok(Batch {
        id,
        service,
        function,
        dataset,
        filters,
        created_at,
        total,
        statuses: counts
            .into_iter()
            .map(|(s, n)| (crate::named::Named::name(s).to_string(), n))
            .collect(),
        done,
    })
}
