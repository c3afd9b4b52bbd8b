//! Review tasks: where a pipeline's task node holds items for people. An item a task node
//! takes waits until a person completes or discards it; the decision is kept on the step (who,
//! when) and the item goes on along the task's edges whose `outcome` matches, in the same
//! transaction, so a decision and what follows it commit together. A task is a name in
//! pipeline files (or made by `prelabel task create`, a pipeline of its own): it exists while
//! a pipeline names it or holds items in it. Who it is assigned to and each reviewer's queue
//! are [`queue`]'s.

pub mod queue;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Kind, Result};
use crate::items::item::{self, ItemRecord};
use crate::named::Named;
use crate::package::pipeline::{Node, Outcome};
use crate::store::{NOW, NOW_MS, OptionalExtension, Store, Tx, params};
use crate::work::pipeline;

/// A task and where its items stand.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Task {
    pub name: String,
    pub waiting: u64,
    pub completed: u64,
    pub discarded: u64,
    /// The pipelines whose newest version has a node for it.
    pub pipelines: Vec<String>,
    /// The accounts it is assigned to (none: any reviewer granted the items' dataset).
    pub assignees: Vec<String>,
    /// What each reviewer decided and holds now.
    pub reviewers: Vec<Progress>,
    /// Every item it took is decided (and it took some).
    pub done: bool,
    /// The share of completions, in percent, that a second reviewer checks before they count.
    pub qa_percent: u8,
}

/// One reviewer's part of a task.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub name: String,
    pub completed: u64,
    pub discarded: u64,
    /// Waiting items handed to them whose hold has not run out.
    pub holding: u64,
    /// Their completions that went to a second reviewer (the decision is the second's).
    pub sent_to_qa: u64,
}

/// An item a task holds, or held.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Held {
    /// The pipeline step that holds it.
    pub step: i64,
    pub item: ItemRecord,
    pub pipeline: String,
    pub node: String,
    /// When the task took it.
    pub since: String,
    /// `None` while it waits.
    pub outcome: Option<Outcome>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    /// The reviewer it is handed to, while the hold lasts.
    pub held_by: Option<String>,
    /// Who completed it first, when it waits for (or had) a second reviewer's look.
    pub first_by: Option<String>,
}

/// What a decision did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decided {
    pub task: String,
    pub item: i64,
    pub outcome: Outcome,
    /// The steps decided: one per run that brought the item to the task (usually one).
    pub steps: usize,
    /// The executions the nodes after the task queued.
    pub queued: usize,
    /// The completion went to a second reviewer (the task's QA share): the item waits for
    /// their decision, which is the one that counts.
    pub sent_to_qa: bool,
}

/// Every task: those pipelines name, and those holding items.
pub fn list(store: &Store) -> Result<Vec<Task>> {
    let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
    let mut named: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pipeline::list(store)? {
        for node in &p.spec.nodes {
            if let Node::Task { task, .. } = node {
                named.entry(task.clone()).or_default().push(p.name.clone());
            }
        }
    }
    for (name, pipelines) in named {
        tasks.insert(
            name.clone(),
            Task {
                name,
                pipelines,
                ..Default::default()
            },
        );
    }
    let counts: Vec<(String, String, Option<String>, i64)> = store.conn().query_map(
        "SELECT task, state, outcome, COUNT(*) AS n FROM pipeline_steps
          WHERE task IS NOT NULL GROUP BY task, state, outcome",
        params![],
        |r| {
            Ok((
                r.get("task")?,
                r.get("state")?,
                r.get("outcome")?,
                r.get("n")?,
            ))
        },
    )?;
    for (name, state, outcome, n) in counts {
        let task = tasks.entry(name.clone()).or_insert_with(|| Task {
            name,
            ..Default::default()
        });
        let n = n as u64;
        match (state.as_str(), outcome.as_deref()) {
            ("waiting", _) => task.waiting += n,
            (_, Some("discarded")) => task.discarded += n,
            _ => task.completed += n,
        }
    }
    queue::progress(store, &mut tasks)?;
    for task in tasks.values_mut() {
        task.done = task.waiting == 0 && task.completed + task.discarded > 0;
    }
    Ok(tasks.into_values().collect())
}

/// Task `name`, refused naming the tasks there are when there is none.
pub fn get(store: &Store, name: &str) -> Result<Task> {
    let tasks = list(store)?;
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    tasks.into_iter().find(|t| t.name == name).ok_or_else(|| {
        Error::not_found(
            Kind::Task,
            name,
            format!(
                "no task named `{name}` (a pipeline's task node makes one; the tasks: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
        )
    })
}

/// The items task `name` holds, oldest first: those waiting, or (`decided`) those decided,
/// newest decision first. At most `limit`.
pub fn items(store: &Store, name: &str, decided: bool, limit: u64) -> Result<Vec<Held>> {
    get(store, name)?;
    if decided {
        held(
            store,
            name,
            "s.state <> 'waiting' ORDER BY s.decided_at DESC, s.id DESC",
            None,
            limit,
        )
    } else {
        waiting(store, name, None, limit)
    }
}

/// The waiting items of task `name` (or only `item`), oldest first.
fn waiting(store: &Store, name: &str, item: Option<i64>, limit: u64) -> Result<Vec<Held>> {
    held(
        store,
        name,
        "s.state = 'waiting' ORDER BY s.id",
        item,
        limit,
    )
}

/// The items of task `name` (or only `item`) that hold `condition` (and its order).
fn held(
    store: &Store,
    name: &str,
    condition: &str,
    item: Option<i64>,
    limit: u64,
) -> Result<Vec<Held>> {
    // The item is read after: each row's other fields, and its item's id.
    let rows: Vec<(Held, i64)> = store.conn().query_map(
        &format!(
            "SELECT s.id, s.item_id, p.name, s.node, s.created_at, s.outcome, s.decided_by, s.decided_at, s.first_by,
                    CASE WHEN s.state = 'waiting' AND s.held_until_ms >= {NOW_MS} THEN u.name END AS held_by
               FROM pipeline_steps s JOIN pipeline_runs r ON r.id = s.run_id
                    JOIN pipelines p ON p.id = r.pipeline_id LEFT JOIN users u ON u.id = s.held_by
              WHERE s.task = $1 AND ($3 < 0 OR s.item_id = $3) AND {condition} LIMIT $2"
        ),
        params![name, limit.min(i64::MAX as u64) as i64, item.unwrap_or(-1)],
        |r| {
            let held = Held {
                step: r.get("id")?,
                item: ItemRecord::default(),
                pipeline: r.get("name")?,
                node: r.get("node")?,
                since: r.get("created_at")?,
                outcome: r.get("outcome")?,
                decided_by: r.get("decided_by")?,
                decided_at: r.get("decided_at")?,
                held_by: r.get("held_by")?,
                first_by: r.get("first_by")?,
            };
            Ok((held, r.get("item_id")?))
        },
    )?;
    rows.into_iter()
        .map(|(held, item)| {
            Ok(Held {
                item: item::get(store, item)?,
                ..held
            })
        })
        .collect()
}

/// A person's `outcome` for item `item` of task `name`: every step of the task that holds the
/// item is decided, and the item goes on along the edges after each. An item the task does not
/// hold is refused, saying whether it was decided already (a second decision changes nothing).
/// An item handed to another reviewer ([`queue::next`]) is theirs while the hold lasts:
/// `account` (the deciding account's id) is refused it; the owner (`None`) is not.
pub fn decide(
    store: &mut Store,
    name: &str,
    item: i64,
    outcome: Outcome,
    by: Option<&str>,
    account: Option<i64>,
) -> Result<Decided> {
    get(store, name)?;
    let by = crate::results::review::reviewer(by);
    let tx = store.write()?;
    // Not on an item another account holds; not the second look by whoever had the first.
    let mine = format!(
        "($5 < 0 OR held_by IS NULL OR held_by = $5 OR held_until_ms < {NOW_MS})
         AND ($5 < 0 OR first_by IS NULL OR first_by <> $4)"
    );
    // An account's completion that the task's QA share picks stays waiting for another
    // reviewer, handed to no one.
    if account.is_some() && outcome == Outcome::Completed && queue::qa_due(&tx, name)? {
        let sent: Vec<i64> = tx.query_map(
            &format!(
                "UPDATE pipeline_steps SET first_by = $4, first_at = {NOW}, held_by = NULL, held_until_ms = NULL
                  WHERE task = $1 AND item_id = $2 AND state = 'waiting' AND first_by IS NULL
                    AND $3 = 'completed' AND {mine} RETURNING id"
            ),
            params![name, item, outcome.name(), by, account.unwrap_or(-1)],
            |r| r.get(0),
        )?;
        if !sent.is_empty() {
            tx.commit()?;
            return Ok(Decided {
                task: name.to_string(),
                item,
                outcome,
                steps: sent.len(),
                queued: 0,
                sent_to_qa: true,
            });
        }
    }
    // Taken in the same statement that marks them: two people deciding at once decide once.
    let steps: Vec<i64> = tx.query_map(
        &format!(
            "UPDATE pipeline_steps SET state = 'done', outcome = $3, decided_by = $4, decided_at = {NOW}
              WHERE task = $1 AND item_id = $2 AND state = 'waiting' AND {mine} RETURNING id"
        ),
        params![name, item, outcome.name(), by, account.unwrap_or(-1)],
        |r| r.get(0),
    )?;
    if steps.is_empty() {
        return Err(refusal(&tx, name, item, &by)?);
    }
    let mut queued = 0;
    for step in &steps {
        queued += pipeline::after_decision(&tx, *step, outcome)?;
    }
    tx.commit()?;
    Ok(Decided {
        task: name.to_string(),
        item,
        outcome,
        steps: steps.len(),
        queued,
        sent_to_qa: false,
    })
}

/// Why a decision on item `item` of task `name` decided nothing: another holds it, `by`
/// completed it first (QA), it was decided already, or the task does not hold it.
fn refusal(tx: &Tx<'_>, name: &str, item: i64, by: &str) -> Result<Error> {
    queue::check_not_held(tx, name, item)?;
    queue::check_not_first(tx, name, item, by)?;
    let earlier: Option<(String, String, String)> = tx
        .query_row(
            "SELECT outcome, decided_by, decided_at FROM pipeline_steps
              WHERE task = $1 AND item_id = $2 AND outcome IS NOT NULL ORDER BY decided_at DESC LIMIT 1",
            params![name, item],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(match earlier {
        Some((outcome, by, at)) => Error::Conflict {
            kind: Kind::Task,
            name: name.to_string(),
            message: format!("item {item} of task `{name}` was {outcome} by {by} at {at}"),
        },
        None => Error::not_found(
            Kind::Item,
            item,
            format!("task `{name}` holds no item {item} (see: prelabel task items {name})"),
        ),
    })
}
