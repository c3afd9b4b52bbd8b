//! `annotations export`: a dataset's stored annotations as a COCO detection dataset, as the
//! seed platform's annotation JSON, or as Prelabel's own JSON.

use serde::Serialize;
use serde_json::{Value, json};

use crate::annotation::{Annotation, Geometry, ModelInfo};
use crate::coco;
use crate::error::Result;
use crate::item::{self, ItemRecord};
use crate::store::Store;

/// `coco`: a COCO detection dataset (boxes); `dataloop`: the seed platform's JSON (per item,
/// annotations with type, label, coordinates, metadata.user.model); `json`: Prelabel's own,
/// with provenance (service, execution, revision, component digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Coco,
    Dataloop,
    Json,
}

crate::named::named!(Format { Coco => "coco", Dataloop => "dataloop", Json => "json" });

/// An annotation with where it came from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stored {
    #[serde(flatten)]
    pub annotation: Annotation,
    pub service: String,
    pub execution_id: i64,
    pub package: String,
    pub revision: i64,
    pub component_digest: String,
}

/// Every item of the dataset with its stored annotations, by item name.
pub fn annotated_items(store: &Store, dataset: &str) -> Result<Vec<(ItemRecord, Vec<Stored>)>> {
    item::list(store, Some(dataset))?
        .into_iter()
        .map(|item| {
            let annotations = item_annotations(store, item.id)?;
            Ok((item, annotations))
        })
        .collect()
}

/// The stored annotations of one item, by service.
pub fn item_annotations(store: &Store, item_id: i64) -> Result<Vec<Stored>> {
    // Cached by SQLite: preparing it once per item costs nothing after the first.
    let mut stmt = store.conn().prepare_cached(
        "SELECT a.label, a.geometry, a.model_name, a.model_version, a.confidence, a.service_name, a.execution_id,
                p.name, r.revision, a.component_digest
           FROM annotations a JOIN revisions r ON r.id = a.revision_id JOIN packages p ON p.id = r.package_id
          WHERE a.item_id = ?1 ORDER BY a.service_name, a.id",
    )?;
    let annotations = stmt
        .query_map([item_id], |r| {
            Ok(Stored {
                annotation: Annotation {
                    label: r.get(0)?,
                    geometry: crate::store::json_column(r, 1)?,
                    model: ModelInfo {
                        name: r.get(2)?,
                        version: r.get(3)?,
                        confidence: r.get::<_, f64>(4)? as f32,
                    },
                },
                service: r.get(5)?,
                execution_id: r.get(6)?,
                package: r.get(7)?,
                revision: r.get(8)?,
                component_digest: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(annotations)
}

pub fn export(store: &Store, dataset: &str, format: Format) -> Result<Value> {
    crate::item::dataset_id(store, dataset)?;
    let items = annotated_items(store, dataset)?;
    Ok(match format {
        Format::Coco => {
            let mut builder = coco::Builder::default();
            for (item, stored) in &items {
                if let Some((w, h)) = item.size_px() {
                    let annotations: Vec<Annotation> =
                        stored.iter().map(|s| s.annotation.clone()).collect();
                    builder.add_image(&item.name, w, h, &annotations);
                }
            }
            serde_json::to_value(builder.finish()).expect("serializes")
        }
        Format::Dataloop => Value::Array(
            items
                .iter()
                .map(|(item, stored)| dataloop_item(item, stored))
                .collect(),
        ),
        Format::Json => Value::Array(
            items
                .iter()
                .map(|(item, stored)| json!({"item": item, "annotations": stored}))
                .collect(),
        ),
    })
}

/// One item in the seed platform's annotation format.
fn dataloop_item(item: &ItemRecord, stored: &[Stored]) -> Value {
    let annotations: Vec<Value> = stored
        .iter()
        .map(|s| {
            let a = &s.annotation;
            let (kind, coordinates) = match &a.geometry {
                Geometry::Box { left, top, right, bottom } => {
                    ("box", json!([{"x": left, "y": top, "z": 0}, {"x": right, "y": bottom, "z": 0}]))
                }
                Geometry::Point { x, y } => ("point", json!({"x": x, "y": y, "z": 0})),
                Geometry::Polygon { points } => (
                    "segment",
                    json!([points.iter().map(|[x, y]| json!({"x": x, "y": y, "z": 0})).collect::<Vec<_>>()]),
                ),
                Geometry::Classification => ("class", json!([])),
            };
            json!({
                "type": kind,
                "label": a.label,
                "coordinates": coordinates,
                "metadata": {
                    "system": {"automated": true, "service": s.service, "executionId": s.execution_id},
                    "user": {"model": {"name": a.model.name, "version": a.model.version, "confidence": a.model.confidence}},
                },
            })
        })
        .collect();
    json!({
        "id": item.id,
        "filename": format!("/{}", item.name),
        "dataset": item.dataset,
        "annotations": annotations,
    })
}
