//! Where a pipeline's items are: per node, how many wait, run, are done or failed (`pipeline
//! show`, the UI's graph), and one item's path through every run it took part in.

use serde::Serialize;

use super::{Pipeline, get};
use crate::error::Result;
use crate::items::item;
use crate::package::pipeline::Outcome;
use crate::store::{Store, params};

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

/// A step's latest execution as `e` (a rerun is a later one), so that a function's step is as
/// that execution is: `COALESCE(e.status, s.state)`.
const LATEST_EXECUTION: &str = "LEFT JOIN executions e
    ON e.id = (SELECT MAX(l.id) FROM executions l WHERE l.pipeline_step_id = s.id)";

pub fn show(store: &Store, name: &str) -> Result<Shown> {
    let pipeline = get(store, name)?;
    let rows: Vec<(String, String, i64)> = store.conn().query_map(
        &format!(
            "SELECT s.node, COALESCE(e.status, s.state) AS state, COUNT(*) AS n
               FROM pipeline_steps s JOIN pipeline_runs r ON r.id = s.run_id {LATEST_EXECUTION}
              WHERE r.pipeline_id = $1
              GROUP BY s.node, COALESCE(e.status, s.state)"
        ),
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
                &format!(
                    "SELECT s.node, s.item_id, COALESCE(e.status, s.state) AS state, e.id AS execution,
                            COALESCE(e.error, s.error) AS error, s.task, s.outcome, s.decided_by, s.created_at
                       FROM pipeline_steps s {LATEST_EXECUTION}
                      WHERE s.run_id = $1 ORDER BY s.id"
                ),
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
