//! Triggers: run a service's function when an item is created or updated and matches.
//!
//! Filters are field-path conditions on the item document, joined by AND:
//!
//! ```text
//! metadata.system.mimetype=image/*      equals, with glob wildcards (* ? [abc])
//! name!=*.tmp                           not equals (glob)
//! metadata.system.mimetype in image/png,image/jpeg     one of a comma-separated list
//! ```
//! The item document is `{id, name, dataset, metadata: {system: {mimetype, size, sha256,
//! originalname, width, height}, user: {...}}}`; a missing field matches nothing but `!=`.

use crate::store::{OptionalExtension, Row, Store, Tx, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::revision;
use crate::catalog::service;
use crate::error::{Error, Kind, Result};
use crate::items::item::{Change, ItemRecord};

/// When a trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
}

crate::named::named!(Action { Created => "created", Updated => "updated" });

/// `once`: at most one execution per item for this trigger; `always`: one per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Once,
    Always,
}

crate::named::named!(Mode { Once => "once", Always => "always" });

/// One parsed filter condition.
#[derive(Debug, Clone)]
pub struct Filter {
    path: Vec<String>,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Matches(glob::Pattern),
    NotMatches(glob::Pattern),
    In(Vec<String>),
}

impl Filter {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |message: &str| Error::Filter {
            filter: text.to_string(),
            message: message.to_string(),
        };
        let trimmed = text.trim();
        let end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
            .ok_or_else(|| bad("expected PATH=GLOB, PATH!=GLOB or PATH in A,B"))?;
        let (path, rest) = trimmed.split_at(end);
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(bad(
                "the field path must be dot-separated names, like metadata.system.mimetype",
            ));
        }
        let pattern =
            |p: &str| glob::Pattern::new(p.trim()).map_err(|e| bad(&format!("bad glob: {e}")));
        let op = if let Some(v) = rest.strip_prefix("!=") {
            Op::NotMatches(pattern(v)?)
        } else if let Some(v) = rest.strip_prefix('=') {
            Op::Matches(pattern(v)?)
        } else if let Some(v) = rest.trim_start().strip_prefix("in ") {
            let values: Vec<String> = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if values.is_empty() {
                return Err(bad("`in` needs at least one value"));
            }
            Op::In(values)
        } else {
            return Err(bad("expected `=`, `!=` or ` in ` after the field path"));
        };
        Ok(Self {
            path: path.split('.').map(String::from).collect(),
            op,
        })
    }

    pub fn matches(&self, doc: &Value) -> bool {
        let value = self
            .path
            .iter()
            .try_fold(doc, |v, key| v.get(key))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null | Value::Object(_) | Value::Array(_) => None,
                other => Some(other.to_string()),
            });
        match (&self.op, value) {
            (Op::Matches(p), Some(v)) => p.matches(&v),
            (Op::NotMatches(p), Some(v)) => !p.matches(&v),
            (Op::NotMatches(_), None) => true,
            (Op::In(values), Some(v)) => values.contains(&v),
            (_, None) => false,
        }
    }
}

/// A stored trigger: what was asked for at creation, and its state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Trigger {
    pub id: i64,
    #[serde(flatten)]
    pub spec: Create,
    pub active: bool,
}

/// What `trigger create` asks for.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Create {
    pub name: String,
    pub service: String,
    /// Default `detect`.
    #[serde(default = "default_function")]
    pub function: String,
    /// Default `[created]`.
    #[serde(default = "default_actions")]
    pub actions: Vec<Action>,
    /// Only items of this dataset (default: all).
    #[serde(default)]
    pub dataset: Option<String>,
    /// `PATH=GLOB`, `PATH!=GLOB` or `PATH in A,B`, joined by AND.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Default `once`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
}

fn default_function() -> String {
    "detect".into()
}

fn default_actions() -> Vec<Action> {
    vec![Action::Created]
}

fn default_mode() -> Mode {
    Mode::Once
}

pub fn create(store: &mut Store, request: &Create) -> Result<Trigger> {
    if request.name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    let service = service::get(store, &request.service)?;
    let revision = revision::revision_by_id(store, service.revision_id)?;
    revision.check_function(&service.name, &request.function)?;
    if request.actions.is_empty() {
        return Err(Error::invalid(
            "actions",
            "needs at least one of created, updated",
        ));
    }
    for f in &request.filters {
        Filter::parse(f)?;
    }
    let exists: Option<i64> = store
        .conn()
        .query_row(
            "SELECT id FROM triggers WHERE name = $1",
            params![&request.name],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_some() {
        return Err(Error::Conflict {
            kind: Kind::Trigger,
            name: request.name.clone(),
            message: format!("a trigger named `{}` exists already", request.name),
        });
    }
    store.conn().execute(
        "INSERT INTO triggers (name, service_id, function, actions, dataset, filters, mode) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        params![
            request.name,
            service.id,
            request.function,
            serde_json::to_string(&request.actions).expect("serializes"),
            request.dataset,
            serde_json::to_string(&request.filters).expect("serializes"),
            request.mode,
        ],
    )?;
    get(store, &request.name)
}

const SELECT: &str =
    "SELECT t.id, t.name, s.name AS service, t.function, t.actions, t.dataset, t.filters, t.mode, t.active
   FROM triggers t JOIN services s ON s.id = t.service_id";

fn from_row(r: &Row) -> crate::store::db::Result<Trigger> {
    Ok(Trigger {
        id: r.get("id")?,
        spec: Create {
            name: r.get("name")?,
            service: r.get("service")?,
            function: r.get("function")?,
            actions: r.json("actions")?,
            dataset: r.get("dataset")?,
            filters: r.json("filters")?,
            mode: r.get("mode")?,
        },
        active: r.get("active")?,
    })
}

pub fn get(store: &Store, name: &str) -> Result<Trigger> {
    store
        .conn()
        .query_row(
            &format!("{SELECT} WHERE t.name = $1"),
            params![name],
            from_row,
        )
        .optional()?
        .ok_or_else(|| {
            Error::not_found(
                Kind::Trigger,
                name,
                format!("no trigger named `{name}` (see: prelabel trigger list)"),
            )
        })
}

pub fn list(store: &Store) -> Result<Vec<Trigger>> {
    let triggers =
        store
            .conn()
            .query_map(&format!("{SELECT} ORDER BY t.name"), params![], from_row)?;
    Ok(triggers)
}

pub fn delete(store: &mut Store, name: &str) -> Result<()> {
    let trigger = get(store, name)?;
    store
        .conn()
        .execute("DELETE FROM triggers WHERE id = $1", params![trigger.id])?;
    Ok(())
}

/// An item written: enqueues an execution for every active trigger that matches, inside the
/// transaction that wrote the item (through `work::on_item_change`).
/// Returns how many were queued; an unchanged item fires nothing.
pub fn on_item_change(tx: &Tx<'_>, item: &ItemRecord, change: Change) -> Result<usize> {
    let action = match change {
        Change::Created => Action::Created,
        Change::Updated => Action::Updated,
        Change::Unchanged => return Ok(0),
    };
    let (item_id, dataset, doc) = (item.id, item.dataset.as_str(), &item.document());
    let triggers: Vec<Trigger> = tx.query_map(
        &format!("{SELECT} WHERE t.active = 1 ORDER BY t.id"),
        params![],
        from_row,
    )?;
    let mut queued = 0;
    for Trigger {
        id: trigger_id,
        spec,
        ..
    } in triggers
    {
        // A stored filter that does not parse is an error, never dropped: dropped, the
        // trigger would match more than its owner asked for.
        let filters = spec
            .filters
            .iter()
            .map(|f| Filter::parse(f))
            .collect::<Result<Vec<_>>>()?;
        if !spec.actions.contains(&action)
            || spec.dataset.as_deref().is_some_and(|d| d != dataset)
            || !filters.iter().all(|f| f.matches(doc))
        {
            continue;
        }
        if spec.mode == Mode::Once
            && tx.execute(
                "INSERT INTO trigger_runs (trigger_id, item_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                params![trigger_id, item_id],
            )? == 0
        {
            continue;
        }
        tx.execute(
            "INSERT INTO executions (service_id, service_name, trigger_id, item_id, function, status)
             SELECT s.id, s.name, $1, $2, $3, 'queued' FROM services s WHERE s.name = $4",
            params![trigger_id, item_id, spec.function, spec.service],
        )?;
        queued += 1;
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"name": "a/photo.jpg", "dataset": "d", "metadata": {"system": {"mimetype": "image/jpeg", "size": 1234}}})
    }

    #[test]
    fn glob_equals_not_equals_and_in() {
        let yes = [
            "metadata.system.mimetype=image/*",
            "name!=*.png",
            "metadata.system.mimetype in image/png, image/jpeg",
            "metadata.system.size=12*",
            "metadata.user.x!=1",
        ];
        for f in yes {
            assert!(
                Filter::parse(f).expect(f).matches(&doc()),
                "{f} should match"
            );
        }
        let no = [
            "metadata.system.mimetype=text/*",
            "name!=*.jpg",
            "metadata.system.mimetype in image/png",
            "metadata.user.camera=*",
        ];
        for f in no {
            assert!(
                !Filter::parse(f).expect(f).matches(&doc()),
                "{f} should not match"
            );
        }
    }

    #[test]
    fn bad_filters_name_the_problem() {
        for (f, expected) in [
            ("mimetype", "expected PATH=GLOB"),
            ("=image/*", "field path"),
            ("a..b=1", "field path"),
            ("a ~ b", "expected `=`, `!=` or ` in `"),
            ("a in ,", "at least one value"),
            ("a=[", "bad glob"),
        ] {
            let err = Filter::parse(f).unwrap_err().to_string();
            assert!(err.contains(expected) && err.contains(f), "{f}: {err}");
        }
    }
}
