//! Pipelines: functions chained before the review task, as the seed's platform puts them
//! "before annotation tasks". A pipeline is a graph written in a file
//! (`package/pipeline.rs`): a source of item events, service functions, review tasks and
//! datasets, joined by edges that carry conditions on what the node before produced. Applying
//! a changed file stores a new version; the newest is what new items take. Items run through
//! it ([`run`]); where they are is [`shown`].

mod run;
mod shown;
pub use run::*;
pub use shown::*;

use serde::Serialize;

use crate::catalog::{revision, service};
use crate::error::{Error, Kind, Result};
use crate::items::item;
use crate::package::pipeline::{Node, Spec};
use crate::store::{NOW, OptionalExtension, Row, Store, params};
use crate::work::trigger::Filter;

/// A stored pipeline: its newest version and whether it takes new items.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Pipeline {
    pub id: i64,
    pub name: String,
    pub version: i64,
    pub paused: bool,
    pub created_at: String,
    pub updated_at: String,
    pub spec: Spec,
}

/// What `apply` did, and the pipeline as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Applied {
    /// Created, updated (a new version) or unchanged, as for an uploaded item.
    pub change: item::Change,
    pub pipeline: Pipeline,
}

/// Stores `spec` as pipeline `spec.name`: new, a new version when it differs from the
/// newest, or nothing. Refused, naming what is wrong, when a function node names a service
/// that does not exist or a function its revision does not declare, or a filter does not parse.
pub fn apply(store: &mut Store, spec: &Spec) -> Result<Applied> {
    spec.validate(std::path::Path::new(&spec.name))?;
    for node in &spec.nodes {
        if let Node::Source { filters, .. } = node {
            for filter in filters {
                Filter::parse(filter)?;
            }
        }
        if let Node::Function {
            id,
            service,
            function,
        } = node
        {
            let found = service::get(store, service).map_err(|e| match e {
                Error::NotFound { message, .. } => Error::not_found(
                    Kind::Service,
                    service,
                    format!("node `{id}` of pipeline `{}`: {message}", spec.name),
                ),
                e => e,
            })?;
            revision::revision_by_id(store, found.revision_id)?
                .check_function(&found.name, function)?;
        }
    }
    let json = serde_json::to_string(spec).expect("a spec serializes");
    let tx = store.write()?;
    let existing: Option<(i64, String)> = tx
        .query_row(
            "SELECT p.id, v.spec FROM pipelines p JOIN pipeline_versions v ON v.pipeline_id = p.id
              WHERE p.name = $1 ORDER BY v.version DESC LIMIT 1",
            params![spec.name],
            |r| Ok((r.get("id")?, r.get("spec")?)),
        )
        .optional()?;
    let change = match existing {
        Some((_, newest)) if serde_json::from_str::<Spec>(&newest).ok().as_ref() == Some(spec) => {
            item::Change::Unchanged
        }
        Some((id, _)) => {
            tx.execute(
                "INSERT INTO pipeline_versions (pipeline_id, version, spec)
                 SELECT $1, MAX(version) + 1, $2 FROM pipeline_versions WHERE pipeline_id = $1",
                params![id, json],
            )?;
            tx.execute(
                &format!("UPDATE pipelines SET updated_at = {NOW} WHERE id = $1"),
                params![id],
            )?;
            item::Change::Updated
        }
        None => {
            let id: i64 = tx.query_row(
                "INSERT INTO pipelines (name) VALUES ($1) RETURNING id",
                params![spec.name],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO pipeline_versions (pipeline_id, version, spec) VALUES ($1, 1, $2)",
                params![id, json],
            )?;
            item::Change::Created
        }
    };
    tx.commit()?;
    Ok(Applied {
        change,
        pipeline: get(store, &spec.name)?,
    })
}

const SELECT: &str = "SELECT p.id, p.name, v.version, p.paused, p.created_at, p.updated_at, v.spec
   FROM pipelines p JOIN pipeline_versions v ON v.pipeline_id = p.id
  WHERE v.version = (SELECT MAX(version) FROM pipeline_versions WHERE pipeline_id = p.id)";

fn from_row(r: &Row) -> crate::store::db::Result<Pipeline> {
    Ok(Pipeline {
        id: r.get("id")?,
        name: r.get("name")?,
        version: r.get("version")?,
        paused: r.get("paused")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        spec: r.json("spec")?,
    })
}

pub fn get(store: &Store, name: &str) -> Result<Pipeline> {
    store
        .conn()
        .query_row(
            &format!("{SELECT} AND p.name = $1"),
            params![name],
            from_row,
        )
        .optional()?
        .ok_or_else(|| {
            Error::not_found(
                Kind::Pipeline,
                name,
                format!("no pipeline named `{name}` (see: prelabel pipeline list)"),
            )
        })
}

pub fn list(store: &Store) -> Result<Vec<Pipeline>> {
    Ok(store
        .conn()
        .query_map(&format!("{SELECT} ORDER BY p.name"), params![], from_row)?)
}

/// Pauses (no new items enter it) or resumes a pipeline.
pub fn set_paused(store: &mut Store, name: &str, paused: bool) -> Result<Pipeline> {
    let pipeline = get(store, name)?;
    store.conn().execute(
        &format!("UPDATE pipelines SET paused = $2, updated_at = {NOW} WHERE id = $1"),
        params![pipeline.id, paused],
    )?;
    get(store, name)
}

/// Deletes a pipeline, its versions and its items' runs; the executions it queued stay, as
/// history, no longer part of a path (one still queued runs, and moves nothing on).
pub fn delete(store: &mut Store, name: &str) -> Result<()> {
    let pipeline = get(store, name)?;
    let tx = store.write()?;
    tx.execute(
        "UPDATE executions SET pipeline_step_id = NULL
          WHERE pipeline_step_id IN (SELECT s.id FROM pipeline_steps s
                                       JOIN pipeline_runs r ON r.id = s.run_id WHERE r.pipeline_id = $1)",
        params![pipeline.id],
    )?;
    tx.execute(
        "DELETE FROM pipeline_steps
          WHERE run_id IN (SELECT id FROM pipeline_runs WHERE pipeline_id = $1)",
        params![pipeline.id],
    )?;
    tx.execute(
        "DELETE FROM pipeline_runs WHERE pipeline_id = $1",
        params![pipeline.id],
    )?;
    tx.execute(
        "DELETE FROM pipeline_versions WHERE pipeline_id = $1",
        params![pipeline.id],
    )?;
    tx.execute("DELETE FROM pipelines WHERE id = $1", params![pipeline.id])?;
    tx.commit()?;
    Ok(())
}
