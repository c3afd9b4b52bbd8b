//! Each reviewer's queue: who a task is assigned to, and "the next item", handed to one
//! reviewer at a time. Handing out is one conditional update (the item is taken only if no
//! one holds it, or their hold ran out), so two reviewers asking at once never get the same
//! item; an item not decided within [`HOLD_MS`] goes back to the queue. Also a new task over
//! a dataset (`prelabel task create`): a pipeline of a source and a task node, which takes the
//! items already there too.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Held, Progress, Task, get, waiting};
use crate::error::{Error, Kind, Result};
use crate::items::item;
use crate::package::pipeline::{Edge, Event, Node, Spec};
use crate::people::user::{self, Role, User};
use crate::store::{NOW_MS, OptionalExtension, Store, Tx, params};
use crate::work::pipeline;

/// How long an item handed to a reviewer stays theirs.
pub const HOLD_MS: i64 = 15 * 60 * 1000;

/// What `prelabel task create` and `POST /api/tasks` take.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Create {
    pub name: String,
    /// The dataset whose items (now and to come) the task takes.
    pub dataset: String,
    /// Trigger filters the items must match (`metadata.system.mimetype ~ image/*`).
    #[serde(default)]
    pub filters: Vec<String>,
    /// The accounts it is assigned to.
    #[serde(default)]
    pub assign: Vec<String>,
}

/// Makes task `create.name` over a dataset: a pipeline of that name whose source is the
/// dataset (filtered) and whose one node is the task, assigned to `create.assign`; the items
/// already in the dataset enter it now.
pub fn create(store: &mut Store, create: &Create) -> Result<Task> {
    let taken = if get(store, &create.name).is_ok() {
        Some("a task")
    } else if pipeline::get(store, &create.name).is_ok() {
        Some("a pipeline")
    } else {
        None
    };
    if let Some(what) = taken {
        return Err(Error::Conflict {
            kind: Kind::Task,
            name: create.name.clone(),
            message: format!("{what} named `{}` exists already", create.name),
        });
    }
    let accounts = create
        .assign
        .iter()
        .map(|name| user::get(store, name))
        .collect::<Result<Vec<User>>>()?;
    let spec = Spec {
        name: create.name.clone(),
        description: format!(
            "review task `{}` over dataset `{}` (prelabel task create)",
            create.name, create.dataset
        ),
        nodes: vec![
            Node::Source {
                id: "items".into(),
                dataset: Some(create.dataset.clone()),
                on: vec![Event::Created, Event::Updated],
                filters: create.filters.clone(),
            },
            Node::Task {
                id: "review".into(),
                task: create.name.clone(),
            },
        ],
        edges: vec![Edge {
            from: "items".into(),
            to: "review".into(),
            when: Default::default(),
        }],
    };
    // Applied first: an item uploaded meanwhile starts its run by itself, and is not taken
    // twice below. A dataset with no item yet is fine: its items enter as they come.
    pipeline::apply(store, &spec)?;
    let existing = match item::list(store, Some(&create.dataset)) {
        Err(Error::NotFound { .. }) => Vec::new(),
        listed => listed?,
    };
    let tx = store.write()?;
    for account in &accounts {
        assign_in(&tx, &create.name, account.id)?;
    }
    pipeline::take_existing(&tx, &create.name, &existing)?;
    tx.commit()?;
    get(store, &create.name)
}

fn assign_in(tx: &Tx<'_>, task: &str, user: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO task_assignees (task, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        params![task, user],
    )?;
    Ok(())
}

/// Assigns task `task` to account `name` (`assigned` false: takes it back).
pub fn assign(store: &mut Store, task: &str, name: &str, assigned: bool) -> Result<Task> {
    get(store, task)?;
    let account = user::get(store, name)?;
    let tx = store.write()?;
    if assigned {
        assign_in(&tx, task, account.id)?;
    } else {
        tx.execute(
            "DELETE FROM task_assignees WHERE task = $1 AND user_id = $2",
            params![task, account.id],
        )?;
    }
    tx.commit()?;
    get(store, task)
}

/// Hands `user` the next item of task `task`: the one they hold already, else the oldest
/// waiting item of a dataset they see that no one holds (or whose hold ran out). `None` when
/// nothing is left for them. A task assigned to others is refused.
pub fn next(store: &mut Store, task: &str, user: &User) -> Result<Option<Held>> {
    let found = get(store, task)?;
    let may = matches!(user.role, Role::Admin | Role::Maintainer)
        || found.assignees.is_empty()
        || found.assignees.contains(&user.name);
    if !may {
        return Err(Error::Forbidden {
            message: format!(
                "task `{task}` is assigned to {}, not to `{}`",
                found.assignees.join(", "),
                user.name
            ),
        });
    }
    let scope = user.scope();
    loop {
        // Theirs first, then the oldest free; a batch, as some may be of datasets they
        // do not see.
        let candidates: Vec<(i64, i64, String)> = store.conn().query_map(
            &format!(
                "SELECT s.id, s.item_id, d.name FROM pipeline_steps s
                   JOIN items i ON i.id = s.item_id JOIN datasets d ON d.id = i.dataset_id
                  WHERE s.task = $1 AND s.state = 'waiting'
                    AND (s.held_by IS NULL OR s.held_by = $2 OR s.held_until_ms < {NOW_MS})
                  ORDER BY CASE WHEN s.held_by = $2 AND s.held_until_ms >= {NOW_MS} THEN 0 ELSE 1 END, s.id
                  LIMIT 100"
            ),
            params![task, user.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let seen: Vec<_> = candidates
            .iter()
            .filter(|(_, _, dataset)| scope.sees(dataset))
            .collect();
        if seen.is_empty() {
            return Ok(None);
        }
        for (step, item, _) in seen {
            // Taken only if still free (or theirs): of two asking at once, one gets it.
            let taken = store.conn().execute(
                &format!(
                    "UPDATE pipeline_steps SET held_by = $2, held_until_ms = {NOW_MS} + $3
                      WHERE id = $1 AND state = 'waiting'
                        AND (held_by IS NULL OR held_by = $2 OR held_until_ms < {NOW_MS})"
                ),
                params![*step, user.id, HOLD_MS],
            )?;
            if taken == 1 {
                return Ok(waiting(store, task, Some(*item), 1)?.pop());
            }
        }
        // Every one was taken by someone else meanwhile: look again.
    }
}

/// Refuses a decision on an item another reviewer holds, naming them and until when.
pub(super) fn check_not_held(tx: &Tx<'_>, task: &str, item: i64) -> Result<()> {
    let holder: Option<String> = tx
        .query_row(
            &format!(
                "SELECT u.name FROM pipeline_steps s JOIN users u ON u.id = s.held_by
                  WHERE s.task = $1 AND s.item_id = $2 AND s.state = 'waiting'
                    AND s.held_until_ms >= {NOW_MS} LIMIT 1"
            ),
            params![task, item],
            |r| r.get(0),
        )
        .optional()?;
    match holder {
        Some(holder) => Err(Error::Conflict {
            kind: Kind::Task,
            name: task.to_string(),
            message: format!(
                "item {item} of task `{task}` is handed to `{holder}` (it goes back to the queue \
                 if they do not decide within {} minutes)",
                HOLD_MS / 60_000
            ),
        }),
        None => Ok(()),
    }
}

/// Fills in each task's assignees and each reviewer's progress.
pub(super) fn progress(store: &Store, tasks: &mut BTreeMap<String, Task>) -> Result<()> {
    let assignees: Vec<(String, String)> = store.conn().query_map(
        "SELECT a.task, u.name FROM task_assignees a JOIN users u ON u.id = a.user_id ORDER BY u.name",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (task, name) in assignees {
        if let Some(task) = tasks.get_mut(&task) {
            task.assignees.push(name);
        }
    }
    let decided: Vec<(String, String, String, i64)> = store.conn().query_map(
        "SELECT task, decided_by, outcome, COUNT(*) FROM pipeline_steps
          WHERE task IS NOT NULL AND decided_by IS NOT NULL GROUP BY task, decided_by, outcome",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let holding: Vec<(String, String, String, i64)> = store.conn().query_map(
        &format!(
            "SELECT s.task, u.name, 'holding', COUNT(*) FROM pipeline_steps s JOIN users u ON u.id = s.held_by
              WHERE s.task IS NOT NULL AND s.state = 'waiting' AND s.held_until_ms >= {NOW_MS}
              GROUP BY s.task, u.name"
        ),
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut by: BTreeMap<(String, String), Progress> = BTreeMap::new();
    for (task, name, what, n) in decided.into_iter().chain(holding) {
        let p = by.entry((task, name.clone())).or_insert_with(|| Progress {
            name,
            ..Default::default()
        });
        let n = n as u64;
        match what.as_str() {
            "holding" => p.holding += n,
            "discarded" => p.discarded += n,
            _ => p.completed += n,
        }
    }
    for ((task, _), p) in by {
        if let Some(task) = tasks.get_mut(&task) {
            task.reviewers.push(p);
        }
    }
    Ok(())
}
