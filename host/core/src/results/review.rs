//! Review: people accept, reject, relabel, move or draw annotations. Each annotation keeps its
//! review state with who set it and when; a later run of the service replaces only pending
//! annotations, and leaves out new boxes that a reviewed one already covers, so that neither a
//! rejected box comes back nor an accepted one doubles.

use crate::store::{NOW, OptionalExtension, Store, Tx, params};
use serde::Deserialize;

use crate::error::{Error, Kind, Result};
use crate::items::item;
use crate::named::Named;
use crate::results::annotation::{self, Annotation, Geometry, Review, Stored};

/// A new box that overlaps a reviewed one at least this much is the same box: the reviewer
/// has decided about it already (accepted, rejected, or relabelled it: the label is not
/// compared, since a relabelled box no longer has the service's label).
pub const SAME_BOX_IOU: f32 = 0.5;

/// What a person changes on an annotation. A new label or geometry makes it `edited`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// `accepted`, `rejected` or `pending` (back to unreviewed).
    pub state: Option<Review>,
    pub label: Option<String>,
    pub geometry: Option<Geometry>,
    /// Who reviews (default `anonymous`).
    pub by: Option<String>,
}

/// An annotation a person draws.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manual {
    pub label: String,
    pub geometry: Geometry,
    pub by: Option<String>,
}

/// Applies a person's change to annotation `id`; returns it as stored.
pub fn review(store: &mut Store, id: i64, change: &Change) -> Result<Stored> {
    let item_id = item_of(store, id)?;
    let edited = change.label.is_some() || change.geometry.is_some();
    let state = match (change.state, edited) {
        (Some(Review::Edited | Review::Manual), _) => {
            return Err(Error::invalid(
                "state",
                "must be accepted, rejected or pending (an edit or a drawing sets the others)",
            ));
        }
        (Some(Review::Rejected), true) => {
            return Err(Error::invalid(
                "state",
                "rejected with a new label or geometry: reject it, or edit it",
            ));
        }
        (_, true) => Review::Edited,
        (Some(state), false) => state,
        (None, false) => {
            return Err(Error::invalid(
                "state",
                "nothing to change: give a state, a label or a geometry",
            ));
        }
    };
    if let Some(label) = &change.label {
        annotation::check_label(label).map_err(|e| Error::invalid("label", e))?;
    }
    if let Some(geometry) = &change.geometry {
        geometry
            .check()
            .map_err(|e| Error::invalid("geometry", e))?;
    }
    let geometry = change
        .geometry
        .as_ref()
        .map(|g| serde_json::to_string(g).expect("a geometry serializes"));
    store.conn().execute(
        &format!(
            "UPDATE annotations SET label = COALESCE($2, label), geometry = COALESCE($3, geometry),
                    review = CASE WHEN review = 'manual' AND $4 IN ('edited', 'accepted') THEN 'manual' ELSE $4 END,
                    reviewed_by = $5, reviewed_at = {NOW}
              WHERE id = $1"
        ),
        params![id, change.label, geometry, state.name(), reviewer(change.by.as_deref())],
    )?;
    stored(store, item_id, id)
}

/// Stores an annotation a person drew on item `item_id`.
pub fn add(store: &mut Store, item_id: i64, manual: &Manual) -> Result<Stored> {
    item::get(store, item_id)?;
    annotation::check_label(&manual.label).map_err(|e| Error::invalid("label", e))?;
    manual
        .geometry
        .check()
        .map_err(|e| Error::invalid("geometry", e))?;
    let id: i64 = store.conn().query_row(&format!(
            "INSERT INTO annotations (item_id, label, geometry, model_name, model_version, confidence,
                                      review, reviewed_by, reviewed_at)
             VALUES ($1, $2, $3, '', '', 1.0, 'manual', $4, {NOW}) RETURNING id"
        ), params![
            item_id,
            manual.label,
            serde_json::to_string(&manual.geometry).expect("a geometry serializes"),
            reviewer(manual.by.as_deref())
        ], |r| r.get(0))?;
    stored(store, item_id, id)
}

/// Of a run's new annotations, those no reviewed annotation of the item already covers.
pub fn unreviewed(tx: &Tx<'_>, item_id: i64, new: &[Annotation]) -> Result<Vec<Annotation>> {
    let reviewed: Vec<Geometry> = tx.query_map(
        "SELECT geometry FROM annotations WHERE item_id = $1 AND review != 'pending'",
        params![item_id],
        |r| r.json(0),
    )?;
    Ok(new
        .iter()
        .filter(|a| {
            !reviewed.iter().any(|geometry| {
                geometry
                    .iou(&a.geometry)
                    .is_some_and(|iou| iou >= SAME_BOX_IOU)
            })
        })
        .cloned()
        .collect())
}

/// Who made a decision, as recorded: what they said, trimmed and cut at 128 characters, or
/// `anonymous`.
pub(crate) fn reviewer(by: Option<&str>) -> String {
    by.map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| b.chars().take(128).collect())
        .unwrap_or_else(|| "anonymous".into())
}

/// The item annotation `id` is on.
pub fn item_of(store: &Store, id: i64) -> Result<i64> {
    store
        .conn()
        .query_row(
            "SELECT item_id FROM annotations WHERE id = $1",
            params![id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| no_annotation(id))
}

fn stored(store: &Store, item_id: i64, id: i64) -> Result<Stored> {
    annotation::item_annotations(store, item_id)?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| no_annotation(id))
}

fn no_annotation(id: i64) -> Error {
    Error::not_found(Kind::Annotation, id, format!("no annotation with id {id}"))
}
