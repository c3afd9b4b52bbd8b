//! `annotations export`: a dataset's stored annotations as a COCO detection dataset, as the
//! seed platform's annotation JSON, as Prelabel's own JSON, or as CVAT's XML.

pub mod coco;
pub mod cvat;
pub mod labelstudio;

use serde_json::{Value, json};

use crate::results::annotation::{Annotation, Geometry, Stored, annotated_items};

use crate::error::Result;
use crate::items::item::ItemRecord;
use crate::store::Store;

/// `coco`: a COCO detection dataset (boxes); `dataloop`: the seed platform's JSON (per item,
/// annotations with type, label, coordinates, metadata.user.model); `json`: Prelabel's own,
/// with provenance (service, execution, revision, component digest); `cvat`: CVAT for images
/// 1.1 XML; `labelstudio`: a tasks file Label Studio imports, with the boxes as predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Coco,
    Dataloop,
    Json,
    Cvat,
    Labelstudio,
}

crate::named::named!(Format {
    Coco => "coco",
    Dataloop => "dataloop",
    Json => "json",
    Cvat => "cvat",
    Labelstudio => "labelstudio",
});

/// An export: JSON, or for CVAT, XML.
#[derive(Debug, Clone)]
pub enum Exported {
    Json(Value),
    Xml(String),
}

impl Exported {
    /// The file's bytes (JSON pretty-printed), ending with a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Exported::Json(value) => {
                let mut bytes = serde_json::to_vec_pretty(value).expect("serializes");
                bytes.push(b'\n');
                bytes
            }
            Exported::Xml(text) => text.clone().into_bytes(),
        }
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Exported::Json(_) => "application/json",
            Exported::Xml(_) => "application/xml; charset=utf-8",
        }
    }
}

/// A dataset's annotations; every one carries its review state, and with `kept_only` only
/// those a person accepted, edited or drew are exported.
pub fn export(store: &Store, dataset: &str, format: Format, kept_only: bool) -> Result<Exported> {
    crate::items::item::dataset_id(store, dataset)?;
    let mut items = annotated_items(store, dataset)?;
    if kept_only {
        for (_, stored) in &mut items {
            stored.retain(|s| s.review.kept());
        }
    }
    Ok(Exported::Json(match format {
        Format::Cvat => return Ok(Exported::Xml(cvat::document(&items))),
        Format::Labelstudio => labelstudio::tasks(&items),
        Format::Coco => {
            let mut builder = coco::Builder::default();
            for (item, stored) in &items {
                if let Some((w, h)) = item.size_px() {
                    let annotations: Vec<(&Annotation, Option<coco::Attributes>)> = stored
                        .iter()
                        .map(|s| (&s.annotation, Some(coco_attributes(s))))
                        .collect();
                    builder.add_reviewed(&item.name, w, h, &annotations);
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
    }))
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
                    "system": {"automated": s.service.is_some(), "service": s.service, "executionId": s.execution_id,
                               "review": s.review, "reviewedBy": s.reviewed_by},
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

/// An annotation's review and, for a service's annotation, its provenance, as COCO attributes.
fn coco_attributes(stored: &Stored) -> coco::Attributes {
    let prelabel = stored.execution_id.map(|execution| {
        json!({
            "service": stored.service,
            "execution_id": execution,
            "package": stored.package,
            "revision": stored.revision,
            "component_digest": stored.component_digest,
            "artifacts": stored.artifacts,
            "init_inputs": stored.init_inputs,
            "host_version": stored.host_version,
        })
    });
    coco::Attributes {
        review: stored.review,
        reviewed_by: stored.reviewed_by.clone(),
        prelabel,
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    /// A store written before review existed (schema 3) opens with its annotations intact,
    /// pending review, provenance kept.
    #[test]
    fn annotations_from_before_review_survive_the_table_rebuild() {
        let home = std::env::temp_dir().join(format!("prelabel-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("a temp dir");
        {
            let conn = rusqlite::Connection::open(home.join("prelabel.db")).expect("open");
            for sql in &crate::store::MIGRATIONS[..3] {
                conn.execute_batch(sql).expect("old migration");
            }
            conn.pragma_update(None, "user_version", 3)
                .expect("version");
            conn.execute_batch(
                "INSERT INTO packages (id, name) VALUES (1, 'p');
                 INSERT INTO revisions (id, package_id, revision, version, manifest, component_digest)
                      VALUES (1, 1, 1, '0.1.0', '{}', 'c0ffee');
                 INSERT INTO datasets (id, name) VALUES (1, 'd');
                 INSERT INTO items (id, dataset_id, name, digest, size, mimetype, metadata)
                      VALUES (1, 1, 'a.png', 'ab', 2, 'image/png', '{}');
                 INSERT INTO executions (id, service_id, service_name, item_id, function, status)
                      VALUES (1, 1, 's', 1, 'detect', 'success');
                 INSERT INTO annotations (item_id, service_id, service_name, execution_id, revision_id,
                                          component_digest, label, geometry, model_name, model_version, confidence)
                      VALUES (1, 1, 's', 1, 1, 'c0ffee', 'face',
                              '{\"type\":\"box\",\"left\":1,\"top\":2,\"right\":3,\"bottom\":4}', 'res10', '1', 0.9);",
            )
            .expect("old rows");
        }
        let store = Store::open(&home).expect("migrates");
        let stored = crate::results::annotation::item_annotations(&store, 1).expect("reads");
        assert_eq!(stored.len(), 1);
        let a = &stored[0];
        assert_eq!(a.review, crate::results::annotation::Review::Pending);
        assert_eq!(a.service.as_deref(), Some("s"));
        assert_eq!(a.package.as_deref(), Some("p"));
        assert_eq!(a.execution_id, Some(1));
        assert_eq!(a.annotation.label, "face");
        // From before provenance (migration 8): no init values or host version, and the
        // revision's artifacts (none here) still read.
        assert_eq!(a.init_inputs, None);
        assert_eq!(a.host_version, None);
        assert_eq!(a.artifacts, Some(Default::default()));
        let execution = crate::work::execution::get(&store, 1).expect("old execution reads");
        assert_eq!((execution.init_inputs, execution.result), (None, None));
        let _ = std::fs::remove_dir_all(&home);
    }
}
