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
use crate::people::Scope;
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
    /// The share of completions, in percent, that a second reviewer checks (QA).
    #[serde(default)]
    pub qa_percent: u8,
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
    set_qa_in(&tx, &create.name, create.qa_percent)?;
    pipeline::take_existing(&tx, &create.name, &existing)?;
    tx.commit()?;
    get(store, &create.name)
}

/// Sets the share of task `task`'s completions that a second reviewer checks (0 to 100).
pub fn set_qa(store: &mut Store, task: &str, percent: u8) -> Result<Task> {
    get(store, task)?;
    let tx = store.write()?;
    set_qa_in(&tx, task, percent)?;
    tx.commit()?;
    get(store, task)
}

fn set_qa_in(tx: &Tx<'_>, task: &str, percent: u8) -> Result<()> {
    if percent > 100 {
        return Err(Error::invalid(
            "qa_percent",
            format!("is a share in percent, 0 to 100, not {percent}"),
        ));
    }
    tx.execute(
        "INSERT INTO task_settings (task, qa_percent) VALUES ($1, $2)
         ON CONFLICT (task) DO UPDATE SET qa_percent = $2",
        params![task, i64::from(percent)],
    )?;
    Ok(())
}

/// Whether the next completion of task `task` goes to a second reviewer: the n-th first
/// completion does when `n * share / 100` passes a whole number, so that exactly the share
/// does over any run of completions (50%: every second).
pub(super) fn qa_due(tx: &Tx<'_>, task: &str) -> Result<bool> {
    let percent: i64 = tx
        .query_row(
            "SELECT qa_percent FROM task_settings WHERE task = $1",
            params![task],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    if percent == 0 {
        return Ok(false);
    }
    let before: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pipeline_steps
          WHERE task = $1 AND (first_by IS NOT NULL OR outcome = 'completed')",
        params![task],
        |r| r.get(0),
    )?;
    let n = before + 1;
    Ok(n * percent / 100 > before * percent / 100)
}

/// Refuses `by` the second look at an item they completed first.
pub(super) fn check_not_first(tx: &Tx<'_>, task: &str, item: i64, by: &str) -> Result<()> {
    let first: Option<i64> = tx
        .query_row(
            "SELECT id FROM pipeline_steps
              WHERE task = $1 AND item_id = $2 AND state = 'waiting' AND first_by = $3 LIMIT 1",
            params![task, item, by],
            |r| r.get(0),
        )
        .optional()?;
    match first {
        Some(_) => Err(Error::Conflict {
            kind: Kind::Task,
            name: task.to_string(),
            message: format!(
                "item {item} of task `{task}` was completed by `{by}`: another reviewer checks it (QA)"
            ),
        }),
        None => Ok(()),
    }
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
/// waiting item of a dataset they see that no one holds (or whose hold ran out) and that they
/// did not complete first (QA). `None` when nothing is left for them. A task assigned to
/// others is refused.
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
    // A reviewer or viewer takes items of the datasets granted to them only.
    let granted = match user.scope() {
        Scope::All => "",
        Scope::Only(_) => "AND d.name IN (SELECT g.dataset FROM grants g WHERE g.user_id = $2)",
    };
    loop {
        // Theirs first, then the oldest free.
        let candidates: Vec<(i64, i64)> = store.conn().query_map(
            &format!(
                "SELECT s.id, s.item_id FROM pipeline_steps s
                   JOIN items i ON i.id = s.item_id JOIN datasets d ON d.id = i.dataset_id
                  WHERE s.task = $1 AND s.state = 'waiting' {granted}
                    AND (s.held_by IS NULL OR s.held_by = $2 OR s.held_until_ms < {NOW_MS})
                    AND (s.first_by IS NULL OR s.first_by <> $3)
                  ORDER BY CASE WHEN s.held_by = $2 AND s.held_until_ms >= {NOW_MS} THEN 0 ELSE 1 END, s.id
                  LIMIT 20"
            ),
            params![task, user.id, user.name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if candidates.is_empty() {
            return Ok(None);
        }
        for (step, item) in &candidates {
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

/// Fills in each task's assignees, QA share and each reviewer's progress.
pub(super) fn progress(store: &Store, tasks: &mut BTreeMap<String, Task>) -> Result<()> {
    let shares: Vec<(String, i64)> = store.conn().query_map(
        "SELECT task, qa_percent FROM task_settings",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (task, percent) in shares {
        if let Some(task) = tasks.get_mut(&task) {
            task.qa_percent = u8::try_from(percent).unwrap_or(100);
        }
    }
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
    let firsts: Vec<(String, String, String, i64)> = store.conn().query_map(
        "SELECT task, first_by, 'qa', COUNT(*) FROM pipeline_steps
          WHERE task IS NOT NULL AND first_by IS NOT NULL GROUP BY task, first_by",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut by: BTreeMap<(String, String), Progress> = BTreeMap::new();
    for (task, name, what, n) in decided.into_iter().chain(holding).chain(firsts) {
        let p = by.entry((task, name.clone())).or_insert_with(|| Progress {
            name,
            ..Default::default()
        });
        let n = n as u64;
        match what.as_str() {
            "holding" => p.holding += n,
            "qa" => p.sent_to_qa += n,
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
