//! Items through pipelines: a run per item event the source takes, a step per node entered,
//! and what moves the item on (an execution's success, a person's decision).

use crate::error::{Error, Result};
use crate::items::item::{self, ItemRecord};
use crate::package::pipeline::{Condition, Event, Node, Outcome, Spec};
use crate::results::annotation::{self, Annotation, Review};
use crate::store::{OptionalExtension, Store, Tx, params};
use crate::work::execution;
use crate::work::trigger::Filter;

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
    let pipelines = newest(tx, None)?;
    let mut queued = 0;
    for pipeline in &pipelines {
        queued += start(tx, pipeline, item, event, false)?;
    }
    Ok(queued)
}

/// The items already in pipeline `name`'s source dataset start runs of it, as if each had just
/// been created (what `prelabel task create` does for the items a new task is over). Items with
/// a run of it already are left alone. Returns how many executions were queued.
pub fn take_existing(tx: &Tx<'_>, name: &str, items: &[ItemRecord]) -> Result<usize> {
    let mut started = 0;
    for pipeline in newest(tx, Some(name))? {
        for item in items {
            started += start(tx, &pipeline, item, Event::Created, true)?;
        }
    }
    Ok(started)
}

/// A pipeline, not paused, on its newest version.
struct Newest {
    id: i64,
    version_id: i64,
    name: String,
    spec: Spec,
}

/// The pipelines not paused (or only `name`), each on its newest version.
fn newest(tx: &Tx<'_>, name: Option<&str>) -> Result<Vec<Newest>> {
    let rows: Vec<(i64, i64, String, String)> = tx.query_map(
        "SELECT p.id, v.id AS version_id, p.name, v.spec
           FROM pipelines p JOIN pipeline_versions v ON v.pipeline_id = p.id
          WHERE p.paused = 0 AND (CAST($1 AS TEXT) IS NULL OR p.name = $1)
            AND v.version = (SELECT MAX(version) FROM pipeline_versions WHERE pipeline_id = p.id)
          ORDER BY p.id",
        params![name],
        |r| {
            Ok((
                r.get("id")?,
                r.get("version_id")?,
                r.get("name")?,
                r.get("spec")?,
            ))
        },
    )?;
    rows.into_iter()
        .map(|(id, version_id, name, spec)| {
            Ok(Newest {
                spec: stored_spec(&name, &spec)?,
                id,
                version_id,
                name,
            })
        })
        .collect()
}

/// Starts a run of `pipeline` for `item` if its source takes the item (dataset, event,
/// filters) and the pipeline did not put it; with `once`, not if the item has a run of it.
/// Returns how many executions were queued.
fn start(
    tx: &Tx<'_>,
    pipeline: &Newest,
    item: &ItemRecord,
    event: Event,
    once: bool,
) -> Result<usize> {
    let Some(Node::Source {
        id: source,
        dataset,
        on,
        filters,
    }) = pipeline
        .spec
        .nodes
        .iter()
        .find(|n| matches!(n, Node::Source { .. }))
    else {
        return Ok(0);
    };
    let put_by_it = item.metadata["system"]["source"]["pipeline"] == pipeline.name.as_str();
    let filters = filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>>>()?;
    let document = item.document();
    if put_by_it
        || !on.contains(&event)
        || dataset.as_ref().is_some_and(|d| *d != item.dataset)
        || !filters.iter().all(|f| f.matches(&document))
    {
        return Ok(0);
    }
    if once {
        let runs: i64 = tx.query_row(
            "SELECT COUNT(*) FROM pipeline_runs WHERE pipeline_id = $1 AND item_id = $2",
            params![pipeline.id, item.id],
            |r| r.get(0),
        )?;
        if runs > 0 {
            return Ok(0);
        }
    }
    let run: i64 = tx.query_row(
        "INSERT INTO pipeline_runs (pipeline_id, version_id, item_id) VALUES ($1, $2, $3) RETURNING id",
        params![pipeline.id, pipeline.version_id, item.id],
        |r| r.get(0),
    )?;
    let at = Step {
        run,
        spec: &pipeline.spec,
        pipeline: &pipeline.name,
    };
    at.advance(tx, source, item.id, Produced::default())
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
