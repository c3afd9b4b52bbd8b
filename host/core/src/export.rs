//! `annotations export`: a dataset's stored annotations as a COCO detection dataset, as the
//! seed platform's annotation JSON, as Prelabel's own JSON, or as CVAT's XML.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::annotation::{Annotation, Geometry, ModelInfo, Review};
use crate::coco;
use crate::error::Result;
use crate::item::{self, ItemRecord};
use crate::store::{Store, params};

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

/// An annotation with where it came from and its review.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stored {
    pub id: i64,
    #[serde(flatten)]
    pub annotation: Annotation,
    /// The service, execution, package revision and component that made it; all `None` for
    /// one a person drew.
    pub service: Option<String>,
    pub execution_id: Option<i64>,
    pub package: Option<String>,
    pub revision: Option<i64>,
    pub component_digest: Option<String>,
    /// The revision's artifacts (name → sha256), the init values and the host version its
    /// execution ran with: with the component digest, what `prelabel replay` runs again. The
    /// last two are absent for executions recorded before provenance was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub artifacts: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub init_inputs: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_version: Option<String>,
    pub review: Review,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
}

impl Stored {
    /// Its review and, for a service's annotation, its provenance, as COCO attributes.
    fn coco_attributes(&self) -> coco::Attributes {
        let prelabel = self.execution_id.map(|execution| {
            json!({
                "service": self.service,
                "execution_id": execution,
                "package": self.package,
                "revision": self.revision,
                "component_digest": self.component_digest,
                "artifacts": self.artifacts,
                "init_inputs": self.init_inputs,
                "host_version": self.host_version,
            })
        });
        coco::Attributes {
            review: self.review,
            prelabel,
        }
    }
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
    // Prepared once per connection (statements are cached by their text), not once per item.
    let artifacts = store.dialect().json_object_agg("ra.name", "ra.digest");
    let sql = format!(
        "SELECT a.label, a.geometry, a.model_name, a.model_version, a.confidence, a.service_name, a.execution_id,
                p.name, r.revision, a.component_digest, a.id, a.review, a.reviewed_by, a.reviewed_at,
                CASE WHEN a.revision_id IS NOT NULL THEN
                    (SELECT {artifacts} FROM revision_artifacts ra WHERE ra.revision_id = a.revision_id) END,
                e.init_inputs, e.host_version
           FROM annotations a LEFT JOIN revisions r ON r.id = a.revision_id LEFT JOIN packages p ON p.id = r.package_id
                LEFT JOIN executions e ON e.id = a.execution_id
          WHERE a.item_id = $1 ORDER BY a.service_name IS NULL, a.service_name, a.id"
    );
    let annotations = store.conn().query_map(&sql, params![item_id], |r| {
        Ok(Stored {
            annotation: Annotation {
                label: r.get(0)?,
                geometry: r.json(1)?,
                model: ModelInfo {
                    name: r.get(2)?,
                    version: r.get(3)?,
                    confidence: r.get::<f64>(4)? as f32,
                },
            },
            service: r.get(5)?,
            execution_id: r.get(6)?,
            package: r.get(7)?,
            revision: r.get(8)?,
            component_digest: r.get(9)?,
            id: r.get(10)?,
            review: r.get(11)?,
            reviewed_by: r.get(12)?,
            reviewed_at: r.get(13)?,
            artifacts: r
                .get::<Option<String>>(14)?
                .and_then(|json| serde_json::from_str(&json).ok()),
            init_inputs: r
                .get::<Option<String>>(15)?
                .and_then(|json| serde_json::from_str(&json).ok()),
            host_version: r.get(16)?,
        })
    })?;
    Ok(annotations)
}

/// A dataset's annotations; every one carries its review state, and with `kept_only` only
/// those a person accepted, edited or drew are exported.
pub fn export(store: &Store, dataset: &str, format: Format, kept_only: bool) -> Result<Exported> {
    crate::item::dataset_id(store, dataset)?;
    let mut items = annotated_items(store, dataset)?;
    if kept_only {
        for (_, stored) in &mut items {
            stored.retain(|s| s.review.kept());
        }
    }
    Ok(Exported::Json(match format {
        Format::Cvat => return Ok(Exported::Xml(crate::cvat::document(&items))),
        Format::Labelstudio => crate::labelstudio::tasks(&items),
        Format::Coco => {
            let mut builder = coco::Builder::default();
            for (item, stored) in &items {
                if let Some((w, h)) = item.size_px() {
                    let annotations: Vec<(&Annotation, Option<coco::Attributes>)> = stored
                        .iter()
                        .map(|s| (&s.annotation, Some(s.coco_attributes())))
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
        let stored = super::item_annotations(&store, 1).expect("reads");
        assert_eq!(stored.len(), 1);
        let a = &stored[0];
        assert_eq!(a.review, crate::annotation::Review::Pending);
        assert_eq!(a.service.as_deref(), Some("s"));
        assert_eq!(a.package.as_deref(), Some("p"));
        assert_eq!(a.execution_id, Some(1));
        assert_eq!(a.annotation.label, "face");
        // From before provenance (migration 8): no init values or host version, and the
        // revision's artifacts (none here) still read.
        assert_eq!(a.init_inputs, None);
        assert_eq!(a.host_version, None);
        assert_eq!(a.artifacts, Some(Default::default()));
        let execution = crate::execution::get(&store, 1).expect("old execution reads");
        assert_eq!((execution.init_inputs, execution.result), (None, None));
        let _ = std::fs::remove_dir_all(&home);
    }
}
