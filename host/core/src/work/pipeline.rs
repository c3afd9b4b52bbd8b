//! Pipelines: functions chained before the review task, as the seed's platform puts them
//! "before annotation tasks". A pipeline is a graph written in a file
//! (`package/pipeline.rs`): a source of item events, service functions, review tasks and
//! datasets, joined by edges that carry conditions on what the node before produced. Applying
//! a changed file stores a new version; the newest is what new items take.

use serde::Serialize;

use crate::catalog::{revision, service};
use crate::error::{Error, Kind, Result};
use crate::items::item::{self, ItemRecord};
use crate::package::pipeline::{Condition, Event, Node, Outcome, Spec};
use crate::results::annotation::{self, Annotation, Review};
use crate::store::{NOW, OptionalExtension, Row, Store, Tx, params};
use crate::work::execution;
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

/// Where a pipeline's items are, per node: what `pipeline show` prints beside the graph.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct NodeCounts {
    pub node: String,
    /// Queued for a function, or held by a task for people.
    pub waiting: u64,
    pub running: u64,
    pub done: u64,
    /// A function that failed (its execution's error says why; `rerun` resumes the path), or
    /// a service gone.
    pub failed: u64,
}

/// A pipeline with its per-node counts, over every version's runs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Shown {
    #[serde(flatten)]
    pub pipeline: Pipeline,
    pub nodes: Vec<NodeCounts>,
}

pub fn show(store: &Store, name: &str) -> Result<Shown> {
    let pipeline = get(store, name)?;
    // A function's step is as its latest execution is (a rerun is a later one).
    let rows: Vec<(String, String, i64)> = store.conn().query_map(
        "SELECT s.node, COALESCE(e.status, s.state) AS state, COUNT(*) AS n
           FROM pipeline_steps s JOIN pipeline_runs r ON r.id = s.run_id
                LEFT JOIN executions e
                       ON e.id = (SELECT MAX(l.id) FROM executions l WHERE l.pipeline_step_id = s.id)
          WHERE r.pipeline_id = $1
          GROUP BY s.node, COALESCE(e.status, s.state)",
        params![pipeline.id],
        |r| Ok((r.get("node")?, r.get("state")?, r.get("n")?)),
    )?;
    let nodes = pipeline
        .spec
        .nodes
        .iter()
        .map(|node| {
            let mut counts = NodeCounts {
                node: node.id().to_string(),
                ..Default::default()
            };
            for (_, state, n) in rows.iter().filter(|(id, _, _)| id == node.id()) {
                let n = *n as u64;
                match state.as_str() {
                    "queued" | "waiting" => counts.waiting += n,
                    "running" => counts.running += n,
                    "success" | "done" => counts.done += n,
                    _ => counts.failed += n,
                }
            }
            counts
        })
        .collect();
    Ok(Shown { pipeline, nodes })
}

/// One run of a pipeline that an item took part in: the nodes its path entered, in order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunPath {
    pub pipeline: String,
    pub version: i64,
    pub run: i64,
    /// The item whose event started the run.
    pub item: i64,
    pub started_at: String,
    pub steps: Vec<PathStep>,
}

/// A node an item's path entered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PathStep {
    pub node: String,
    /// The item at this node (a dataset node's copy, or what a function made, goes on).
    pub item: i64,
    /// As `show` counts it: a function's latest execution's status, else the step's state
    /// (`waiting` at a task, `done`, `failed`).
    pub state: String,
    pub execution: Option<i64>,
    pub error: Option<String>,
    /// The review task holding the item, at a task node.
    pub task: Option<String>,
    /// A task's decision.
    pub outcome: Option<Outcome>,
    pub decided_by: Option<String>,
    pub entered_at: String,
}

/// The runs item `item` took part in: those it started, and those that reached it (a copy a
/// dataset node put, an item a function made), oldest first.
pub fn paths(store: &Store, item: i64) -> Result<Vec<RunPath>> {
    item::get(store, item)?;
    let runs: Vec<RunPath> = store.conn().query_map(
        "SELECT r.id, p.name, v.version, r.item_id, r.created_at
           FROM pipeline_runs r JOIN pipelines p ON p.id = r.pipeline_id
                JOIN pipeline_versions v ON v.id = r.version_id
          WHERE r.item_id = $1 OR r.id IN (SELECT run_id FROM pipeline_steps WHERE item_id = $1)
          ORDER BY r.id",
        params![item],
        |r| {
            Ok(RunPath {
                run: r.get("id")?,
                pipeline: r.get("name")?,
                version: r.get("version")?,
                item: r.get("item_id")?,
                started_at: r.get("created_at")?,
                steps: Vec::new(),
            })
        },
    )?;
    runs.into_iter()
        .map(|mut run| {
            run.steps = store.conn().query_map(
                "SELECT s.node, s.item_id, COALESCE(e.status, s.state) AS state, e.id AS execution,
                        COALESCE(e.error, s.error) AS error, s.task, s.outcome, s.decided_by, s.created_at
                   FROM pipeline_steps s
                        LEFT JOIN executions e
                               ON e.id = (SELECT MAX(l.id) FROM executions l WHERE l.pipeline_step_id = s.id)
                  WHERE s.run_id = $1 ORDER BY s.id",
                params![run.run],
                |r| {
                    Ok(PathStep {
                        node: r.get("node")?,
                        item: r.get("item_id")?,
                        state: r.get("state")?,
                        execution: r.get("execution")?,
                        error: r.get("error")?,
                        task: r.get("task")?,
                        outcome: r.get("outcome")?,
                        decided_by: r.get("decided_by")?,
                        entered_at: r.get("created_at")?,
                    })
                },
            )?;
            Ok(run)
        })
        .collect()
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

// Items through pipelines. Every step happens inside the transaction of what caused it (the
// item's write, the execution's end), and a node is entered through the unique key
// (run, node): a crash before the commit leaves nothing, a retry after it enters nothing twice.

/// An item written: starts a run of every pipeline, not paused, whose source takes the item
/// (its dataset, its event, its filters), on the pipeline's newest version, and enters the
/// nodes after the source. An item a pipeline put into a dataset does not start that pipeline
/// again. Returns how many executions were queued.
pub fn on_item_change(tx: &Tx<'_>, item: &ItemRecord, change: item::Change) -> Result<usize> {
    let event = match change {
        item::Change::Created => Event::Created,
        item::Change::Updated => Event::Updated,
        item::Change::Unchanged => return Ok(0),
    };
    let pipelines: Vec<(i64, i64, String, String)> = tx.query_map(
        "SELECT p.id, v.id AS version_id, p.name, v.spec
           FROM pipelines p JOIN pipeline_versions v ON v.pipeline_id = p.id
          WHERE p.paused = 0
            AND v.version = (SELECT MAX(version) FROM pipeline_versions WHERE pipeline_id = p.id)
          ORDER BY p.id",
        params![],
        |r| {
            Ok((
                r.get("id")?,
                r.get("version_id")?,
                r.get("name")?,
                r.get("spec")?,
            ))
        },
    )?;
    let document = item.document();
    let mut queued = 0;
    for (pipeline_id, version_id, name, spec) in pipelines {
        let spec = stored_spec(&name, &spec)?;
        let Some(Node::Source {
            id: source,
            dataset,
            on,
            filters,
        }) = spec.nodes.iter().find(|n| matches!(n, Node::Source { .. }))
        else {
            continue;
        };
        let put_by_it = item.metadata["system"]["source"]["pipeline"] == name.as_str();
        let filters = filters
            .iter()
            .map(|f| Filter::parse(f))
            .collect::<Result<Vec<_>>>()?;
        if put_by_it
            || !on.contains(&event)
            || dataset.as_ref().is_some_and(|d| *d != item.dataset)
            || !filters.iter().all(|f| f.matches(&document))
        {
            continue;
        }
        let run: i64 = tx.query_row(
            "INSERT INTO pipeline_runs (pipeline_id, version_id, item_id) VALUES ($1, $2, $3) RETURNING id",
            params![pipeline_id, version_id, item.id],
            |r| r.get(0),
        )?;
        let at = Step {
            run,
            spec: &spec,
            pipeline: &name,
        };
        queued += at.advance(tx, source, item.id, Produced::default())?;
    }
    Ok(queued)
}

/// An execution a pipeline queued has succeeded with `found` (label, confidence): its step is
/// done and the item goes on along the edges whose conditions hold; a dataset node right after
/// it takes the items the function made, if it made any. Nothing for executions no pipeline
/// queued. Returns how many executions were queued.
pub fn after_success(tx: &Tx<'_>, execution: i64, found: &[(&str, f64)]) -> Result<usize> {
    let step: Option<Option<i64>> = tx
        .query_row(
            "SELECT pipeline_step_id FROM executions WHERE id = $1",
            params![execution],
            |r| r.get(0),
        )
        .optional()?;
    let Some(step) = step.flatten() else {
        return Ok(0);
    };
    tx.execute(
        "UPDATE pipeline_steps SET state = 'done', error = NULL WHERE id = $1",
        params![step],
    )?;
    let produced = Produced {
        annotations: found,
        outcome: None,
        execution: Some(execution),
    };
    go_on(tx, step, produced)
}

/// A person decided on the item a task node held (step `step`, already marked): the item goes
/// on along the task's edges whose `outcome` matches. Returns how many executions were queued.
pub(crate) fn after_decision(tx: &Tx<'_>, step: i64, outcome: Outcome) -> Result<usize> {
    let produced = Produced {
        outcome: Some(outcome),
        ..Default::default()
    };
    go_on(tx, step, produced)
}

/// Advances the item of step `step` (on its run's version) from the step's node.
fn go_on(tx: &Tx<'_>, step: i64, produced: Produced<'_>) -> Result<usize> {
    let (run, node, item, name, spec): (i64, String, i64, String, String) = tx.query_row(
        "SELECT s.run_id, s.node, s.item_id, p.name, v.spec
           FROM pipeline_steps s JOIN pipeline_runs r ON r.id = s.run_id
                JOIN pipelines p ON p.id = r.pipeline_id JOIN pipeline_versions v ON v.id = r.version_id
          WHERE s.id = $1",
        params![step],
        |r| {
            Ok((
                r.get("run_id")?,
                r.get("node")?,
                r.get("item_id")?,
                r.get("name")?,
                r.get("spec")?,
            ))
        },
    )?;
    let spec = stored_spec(&name, &spec)?;
    let at = Step {
        run,
        spec: &spec,
        pipeline: &name,
    };
    at.advance(tx, &node, item, produced)
}

/// What a node produced, which the conditions on its edges look at.
#[derive(Debug, Default, Clone, Copy)]
struct Produced<'a> {
    /// A function's annotations on the item: (label, confidence).
    annotations: &'a [(&'a str, f64)],
    /// A review task's decision.
    outcome: Option<Outcome>,
    /// A function's execution: the items it made are what a dataset node after it puts.
    execution: Option<i64>,
}

impl Produced<'_> {
    fn pass(&self, when: &Condition) -> bool {
        match self.outcome {
            Some(outcome) => when.holds_outcome(outcome),
            None => when.holds(self.annotations),
        }
    }
}

/// The annotations a transformer's execution is given with its item: in a pipeline, those the
/// earlier nodes of the item's path stored (the executions of its run that succeeded); else
/// every one the item has. Rejected ones are left out either way.
pub fn given_annotations(store: &Store, execution: i64, item: i64) -> Result<Vec<Annotation>> {
    let step: Option<i64> = store
        .conn()
        .query_row(
            "SELECT pipeline_step_id FROM executions WHERE id = $1",
            params![execution],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let earlier: Option<Vec<i64>> = match step {
        Some(step) => Some(store.conn().query_map(
            "SELECT e.id FROM executions e JOIN pipeline_steps s ON s.id = e.pipeline_step_id
              WHERE e.status = 'success'
                AND s.run_id = (SELECT run_id FROM pipeline_steps WHERE id = $1)",
            params![step],
            |r| r.get(0),
        )?),
        None => None,
    };
    Ok(annotation::item_annotations(store, item)?
        .into_iter()
        .filter(|a| a.review != Review::Rejected)
        .filter(|a| match (&earlier, a.execution_id) {
            (None, _) => true,
            (Some(earlier), Some(id)) => earlier.contains(&id),
            (Some(_), None) => false,
        })
        .map(|a| a.annotation)
        .collect())
}

/// A version as stored: it was checked when applied, so one that does not read is damage.
fn stored_spec(name: &str, json: &str) -> Result<Spec> {
    serde_json::from_str(json).map_err(|e| Error::Invalid {
        field: "pipeline",
        reason: format!("the stored version of pipeline `{name}` does not read: {e}"),
    })
}

/// One item's run through one version of a pipeline.
struct Step<'a> {
    run: i64,
    spec: &'a Spec,
    pipeline: &'a str,
}

impl Step<'_> {
    /// Enters every node after `from` whose edge's condition what the node `produced` meets.
    fn advance(&self, tx: &Tx<'_>, from: &str, item: i64, produced: Produced<'_>) -> Result<usize> {
        let mut queued = 0;
        for edge in self.spec.edges.iter().filter(|e| e.from == from) {
            if produced.pass(&edge.when) {
                queued += self.enter(tx, &edge.to, item, produced.execution)?;
            }
        }
        Ok(queued)
    }

    /// Enters node `id` with `item`, once per run: a function's execution is queued, a task
    /// holds the item for people, a dataset takes it (or the items `made` by the function
    /// before it) and the item goes on.
    fn enter(&self, tx: &Tx<'_>, id: &str, item: i64, made: Option<i64>) -> Result<usize> {
        let Some(node) = self.spec.node(id) else {
            return Ok(0);
        };
        let (state, task) = match node {
            Node::Task { task, .. } => ("waiting", Some(task)),
            Node::Dataset { .. } => ("done", None),
            _ => ("queued", None),
        };
        let step: Option<i64> = tx
            .query_row(
                "INSERT INTO pipeline_steps (run_id, node, item_id, state, task) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (run_id, node) DO NOTHING RETURNING id",
                params![self.run, id, item, state, task],
                |r| r.get(0),
            )
            .optional()?;
        let Some(step) = step else {
            return Ok(0);
        };
        match node {
            Node::Function {
                service, function, ..
            } => self.queue(tx, step, service, function, item),
            Node::Dataset { dataset, .. } => {
                let source =
                    serde_json::json!({"pipeline": self.pipeline, "run": self.run, "node": id});
                let on_change = &crate::work::on_item_change;
                let outputs = match made {
                    Some(execution) => execution::outputs(tx, execution)?,
                    None => Vec::new(),
                };
                let (first, mut queued) = match outputs.split_first() {
                    // The items the function made; the path goes on with the first.
                    Some((first, rest)) => {
                        let mut queued = 0;
                        for made in rest {
                            let source = source.clone();
                            queued +=
                                item::put_from(tx, dataset, made.clone(), source, on_change)?.2;
                        }
                        let first = first.clone();
                        let (put, _, n) = item::put_from(tx, dataset, first, source, on_change)?;
                        (put.id, queued + n)
                    }
                    None => {
                        let (copy, _, n) = item::copy_into(tx, item, dataset, source, on_change)?;
                        (copy.id, n)
                    }
                };
                queued += self.advance(tx, id, first, Produced::default())?;
                Ok(queued)
            }
            Node::Source { .. } | Node::Task { .. } => Ok(0),
        }
    }

    /// Queues the service's function on the item for step `step`; a service deleted since the
    /// pipeline was applied fails the step, naming it.
    fn queue(
        &self,
        tx: &Tx<'_>,
        step: i64,
        service: &str,
        function: &str,
        item: i64,
    ) -> Result<usize> {
        let found: Option<i64> = tx
            .query_row(
                "SELECT id FROM services WHERE name = $1",
                params![service],
                |r| r.get(0),
            )
            .optional()?;
        let Some(service_id) = found else {
            tx.execute(
                "UPDATE pipeline_steps SET state = 'failed', error = $2 WHERE id = $1",
                params![step, format!("service `{service}` does not exist (deleted since the pipeline was applied)")],
            )?;
            return Ok(0);
        };
        tx.execute(
            "INSERT INTO executions (service_id, service_name, item_id, function, status, pipeline_step_id)
             VALUES ($1, $2, $3, $4, 'queued', $5)",
            params![service_id, service, item, function, step],
        )?;
        Ok(1)
    }
}
