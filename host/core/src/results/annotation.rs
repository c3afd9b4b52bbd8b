//! Annotations as Prelabel stores and exports them, and the checks every guest result
//! passes at the host boundary: numbers must be finite, confidences within 0..1, boxes
//! not inverted; shapes are clipped to the image and boxes left under 1 px² are dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::items::item::{self, ItemRecord};
use crate::runtime::bindings::Annotation as WitAnnotation;
use crate::runtime::bindings::{Geometry as WitGeometry, Point as WitPoint};
use crate::store::{Store, params};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Annotation {
    pub label: String,
    pub geometry: Geometry,
    pub model: ModelInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Geometry {
    Box {
        left: f32,
        top: f32,
        right: f32,
        bottom: f32,
    },
    Point {
        x: f32,
        y: f32,
    },
    Polygon {
        points: Vec<[f32; 2]>,
    },
    Classification,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub name: String,
    pub version: String,
    pub confidence: f32,
}

/// Where a person's review of an annotation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Review {
    /// Not looked at yet: what a service's run stores.
    Pending,
    Accepted,
    Rejected,
    /// Relabelled, moved or resized by a person.
    Edited,
    /// Drawn by a person.
    Manual,
}

crate::named::named!(Review {
    Pending => "pending",
    Accepted => "accepted",
    Rejected => "rejected",
    Edited => "edited",
    Manual => "manual",
});

impl Review {
    /// What a person kept: accepted, edited or drawn (what `--accepted-only` exports).
    pub fn kept(self) -> bool {
        matches!(self, Review::Accepted | Review::Edited | Review::Manual)
    }
}

impl Geometry {
    /// Intersection over union of two boxes; `None` unless both are boxes.
    pub fn iou(&self, other: &Geometry) -> Option<f32> {
        let (
            Geometry::Box {
                left: l1,
                top: t1,
                right: r1,
                bottom: b1,
            },
            Geometry::Box {
                left: l2,
                top: t2,
                right: r2,
                bottom: b2,
            },
        ) = (self, other)
        else {
            return None;
        };
        let w = (r1.min(*r2) - l1.max(*l2)).max(0.0);
        let h = (b1.min(*b2) - t1.max(*t2)).max(0.0);
        let inter = w * h;
        let union = (r1 - l1) * (b1 - t1) + (r2 - l2) * (b2 - t2) - inter;
        Some(if union > 0.0 { inter / union } else { 0.0 })
    }

    /// A geometry a person gave: finite, not inverted, a polygon of 3 to 10,000 points.
    pub fn check(&self) -> Result<(), String> {
        let finite = |v: f32, what: &str| finite(v, what).map(|_| ());
        match self {
            Geometry::Box {
                left,
                top,
                right,
                bottom,
            } => {
                for (v, what) in [
                    (left, "left"),
                    (top, "top"),
                    (right, "right"),
                    (bottom, "bottom"),
                ] {
                    finite(*v, what)?;
                }
                if right < left || bottom < top {
                    return Err(format!(
                        "box is inverted: left {left}, top {top}, right {right}, bottom {bottom}"
                    ));
                }
                Ok(())
            }
            Geometry::Point { x, y } => finite(*x, "x").and(finite(*y, "y")),
            Geometry::Polygon { points } => {
                if points.len() < 3 || points.len() > MAX_POLYGON_POINTS {
                    return Err(format!(
                        "a polygon needs 3 to {MAX_POLYGON_POINTS} points, got {}",
                        points.len()
                    ));
                }
                points
                    .iter()
                    .try_for_each(|[x, y]| finite(*x, "x").and(finite(*y, "y")))
            }
            Geometry::Classification => Ok(()),
        }
    }
}

/// A label a person gave: 1 to 256 bytes, not blank.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.trim().is_empty() || label.len() > MAX_LABEL_LEN {
        Err(format!(
            "label must be 1 to {MAX_LABEL_LEN} bytes, got {} bytes",
            label.len()
        ))
    } else {
        Ok(())
    }
}

/// The longest label accepted from a guest; model names and versions likewise.
pub const MAX_LABEL_LEN: usize = 256;
/// The most points a polygon may have.
pub const MAX_POLYGON_POINTS: usize = 10_000;
/// The most a whole result may weigh (labels, names, versions, coordinates), in bytes:
/// what the store and every export will carry for one item.
pub const MAX_RESULT_BYTES: usize = 16 << 20;

/// A guest result that breaks the contract. The index is the annotation's position.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("annotation {index}: {problem}")]
pub struct InvalidAnnotation {
    pub index: usize,
    pub problem: String,
}

impl Annotation {
    /// Checks one guest annotation and clips it to a `width` x `height` image (when known).
    /// `Ok(None)`: a box with under 1 px² left after clipping, dropped by policy.
    pub fn from_guest(
        index: usize,
        a: WitAnnotation,
        size: Option<(u32, u32)>,
    ) -> Result<Option<Self>, InvalidAnnotation> {
        let bad = |problem: String| InvalidAnnotation { index, problem };
        check_texts(&a).map_err(bad)?;
        let confidence = a.model.confidence;
        if !(0.0..=1.0).contains(&confidence) {
            return Err(bad(format!("confidence {confidence} is not within 0..1")));
        }
        let Some(geometry) = Geometry::from_guest(&a.geometry, size).map_err(bad)? else {
            return Ok(None);
        };
        Ok(Some(Annotation {
            label: a.label,
            geometry,
            model: ModelInfo {
                name: a.model.name,
                version: a.model.version,
                confidence,
            },
        }))
    }
}

impl Annotation {
    /// As a guest is given it (a transformer receives the annotations stored on its item).
    pub fn to_guest(&self) -> WitAnnotation {
        let point = |[x, y]: [f32; 2]| WitPoint { x, y };
        WitAnnotation {
            geometry: match &self.geometry {
                Geometry::Box {
                    left,
                    top,
                    right,
                    bottom,
                } => WitGeometry::Bbox(crate::runtime::bindings::Bbox {
                    left: *left,
                    top: *top,
                    right: *right,
                    bottom: *bottom,
                }),
                Geometry::Point { x, y } => WitGeometry::Point(point([*x, *y])),
                Geometry::Polygon { points } => {
                    WitGeometry::Polygon(points.iter().copied().map(point).collect())
                }
                Geometry::Classification => WitGeometry::Classification,
            },
            label: self.label.clone(),
            model: crate::runtime::bindings::ModelInfo {
                name: self.model.name.clone(),
                version: self.model.version.clone(),
                confidence: self.model.confidence,
            },
        }
    }
}

/// The label is 1 to 256 bytes, the model's name and version at most 256.
fn check_texts(a: &WitAnnotation) -> Result<(), String> {
    if a.label.trim().is_empty() || a.label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label must be 1 to {MAX_LABEL_LEN} bytes, got {} bytes",
            a.label.len()
        ));
    }
    for (what, text) in [
        ("model name", &a.model.name),
        ("model version", &a.model.version),
    ] {
        if text.len() > MAX_LABEL_LEN {
            return Err(format!(
                "{what} must be at most {MAX_LABEL_LEN} bytes, got {} bytes",
                text.len()
            ));
        }
    }
    Ok(())
}

fn finite(v: f32, what: &str) -> Result<f32, String> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{what} is {v}"))
    }
}

impl Geometry {
    /// A guest's geometry, checked (finite, not inverted, polygon size) and clipped to the
    /// image; `None` for a box with under 1 px² left.
    fn from_guest(g: &WitGeometry, size: Option<(u32, u32)>) -> Result<Option<Self>, String> {
        let (w, h) = size.map_or((f32::INFINITY, f32::INFINITY), |(w, h)| {
            (w as f32, h as f32)
        });
        let point = |p: &WitPoint| -> Result<[f32; 2], String> {
            Ok([
                finite(p.x, "x")?.clamp(0.0, w),
                finite(p.y, "y")?.clamp(0.0, h),
            ])
        };
        Ok(Some(match g {
            WitGeometry::Bbox(b) => {
                let (l, t, r, bo) = (
                    finite(b.left, "left")?,
                    finite(b.top, "top")?,
                    finite(b.right, "right")?,
                    finite(b.bottom, "bottom")?,
                );
                if r < l || bo < t {
                    return Err(format!(
                        "box is inverted: left {l}, top {t}, right {r}, bottom {bo}"
                    ));
                }
                let (l, t, r, bo) = (
                    l.clamp(0.0, w),
                    t.clamp(0.0, h),
                    r.clamp(0.0, w),
                    bo.clamp(0.0, h),
                );
                if (r - l) * (bo - t) < 1.0 {
                    return Ok(None);
                }
                Geometry::Box {
                    left: l,
                    top: t,
                    right: r,
                    bottom: bo,
                }
            }
            WitGeometry::Point(p) => {
                let [x, y] = point(p)?;
                Geometry::Point { x, y }
            }
            WitGeometry::Polygon(points) => {
                if points.len() < 3 || points.len() > MAX_POLYGON_POINTS {
                    return Err(format!(
                        "a polygon needs 3 to {MAX_POLYGON_POINTS} points, got {}",
                        points.len()
                    ));
                }
                Geometry::Polygon {
                    points: points.iter().map(point).collect::<Result<_, _>>()?,
                }
            }
            WitGeometry::Classification => Geometry::Classification,
        }))
    }
}

/// A guest result that breaks the contract or a limit.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidResult {
    #[error("the guest returned {count} annotations, over the limit of {limit}")]
    TooMany { count: usize, limit: usize },
    #[error("the result is over {limit} bytes (labels, model names and coordinates)")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Annotation(#[from] InvalidAnnotation),
}

/// Checks a whole guest result: at most `max` annotations, and the first invalid one
/// rejects it.
pub fn from_guest(
    result: Vec<WitAnnotation>,
    size: Option<(u32, u32)>,
    max: usize,
) -> Result<Vec<Annotation>, InvalidResult> {
    if result.len() > max {
        return Err(InvalidResult::TooMany {
            count: result.len(),
            limit: max,
        });
    }
    // Each annotation is bounded on its own first (so that the error names the field), then
    // the whole: many annotations each within bounds can still add up.
    let mut out = Vec::with_capacity(result.len());
    let mut weight = 0usize;
    for (index, a) in result.into_iter().enumerate() {
        let points = match &a.geometry {
            WitGeometry::Polygon(points) => points.len(),
            _ => 2,
        };
        weight += a.label.len() + a.model.name.len() + a.model.version.len() + points * 8 + 8;
        let checked = Annotation::from_guest(index, a, size).map_err(InvalidResult::from)?;
        if weight > MAX_RESULT_BYTES {
            return Err(InvalidResult::TooLarge {
                limit: MAX_RESULT_BYTES,
            });
        }
        out.extend(checked);
    }
    Ok(out)
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
                p.name AS package, r.revision, a.component_digest, a.id, a.review, a.reviewed_by, a.reviewed_at,
                CASE WHEN a.revision_id IS NOT NULL THEN
                    (SELECT {artifacts} FROM revision_artifacts ra WHERE ra.revision_id = a.revision_id) END
                    AS artifacts,
                e.init_inputs, e.host_version
           FROM annotations a LEFT JOIN revisions r ON r.id = a.revision_id LEFT JOIN packages p ON p.id = r.package_id
                LEFT JOIN executions e ON e.id = a.execution_id
          WHERE a.item_id = $1 ORDER BY a.service_name IS NULL, a.service_name, a.id"
    );
    let annotations = store.conn().query_map(&sql, params![item_id], |r| {
        Ok(Stored {
            annotation: Annotation {
                label: r.get("label")?,
                geometry: r.json("geometry")?,
                model: ModelInfo {
                    name: r.get("model_name")?,
                    version: r.get("model_version")?,
                    confidence: r.get::<f64>("confidence")? as f32,
                },
            },
            service: r.get("service_name")?,
            execution_id: r.get("execution_id")?,
            package: r.get("package")?,
            revision: r.get("revision")?,
            component_digest: r.get("component_digest")?,
            id: r.get("id")?,
            review: r.get("review")?,
            reviewed_by: r.get("reviewed_by")?,
            reviewed_at: r.get("reviewed_at")?,
            artifacts: r
                .get::<Option<String>>("artifacts")?
                .and_then(|json| serde_json::from_str(&json).ok()),
            init_inputs: r
                .get::<Option<String>>("init_inputs")?
                .and_then(|json| serde_json::from_str(&json).ok()),
            host_version: r.get("host_version")?,
        })
    })?;
    Ok(annotations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::{Bbox, ModelInfo as WitModelInfo};

    fn wit_box(l: f32, t: f32, r: f32, b: f32, confidence: f32) -> WitAnnotation {
        WitAnnotation {
            geometry: WitGeometry::Bbox(Bbox {
                left: l,
                top: t,
                right: r,
                bottom: b,
            }),
            label: "face".into(),
            model: WitModelInfo {
                name: "m".into(),
                version: "1".into(),
                confidence,
            },
        }
    }

    #[test]
    fn boxes_are_clipped_and_empty_ones_dropped() {
        let got = from_guest(
            vec![
                wit_box(-10.0, -5.0, 50.0, 40.0, 0.9),
                wit_box(120.0, 10.0, 130.0, 20.0, 0.8),
                wit_box(99.5, 10.0, 150.0, 10.5, 0.7),
            ],
            Some((100, 80)),
            10,
        )
        .expect("valid");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].geometry,
            Geometry::Box {
                left: 0.0,
                top: 0.0,
                right: 50.0,
                bottom: 40.0
            }
        );
    }

    #[test]
    fn non_finite_inverted_and_out_of_range_are_rejected() {
        let cases = [
            (wit_box(f32::NAN, 0.0, 1.0, 1.0, 0.5), "left is NaN"),
            (wit_box(0.0, 0.0, f32::INFINITY, 1.0, 0.5), "right is inf"),
            (wit_box(10.0, 0.0, 5.0, 10.0, 0.5), "inverted"),
            (wit_box(0.0, 0.0, 5.0, 5.0, 1.5), "confidence 1.5"),
            (wit_box(0.0, 0.0, 5.0, 5.0, -0.1), "confidence -0.1"),
            (wit_box(0.0, 0.0, 5.0, 5.0, f32::NAN), "confidence NaN"),
        ];
        for (annotation, expected) in cases {
            let err = from_guest(
                vec![wit_box(0.0, 0.0, 5.0, 5.0, 0.5), annotation],
                Some((10, 10)),
                10,
            )
            .unwrap_err();
            let InvalidResult::Annotation(err) = err else {
                panic!("{err}")
            };
            assert_eq!(err.index, 1);
            assert!(
                err.problem.contains(expected),
                "{} does not mention {expected}",
                err.problem
            );
        }
    }

    #[test]
    fn labels_must_be_present_and_short() {
        let mut a = wit_box(0.0, 0.0, 5.0, 5.0, 0.5);
        a.label = "x".repeat(MAX_LABEL_LEN + 1);
        assert!(from_guest(vec![a], None, 10).is_err());
        let mut a = wit_box(0.0, 0.0, 5.0, 5.0, 0.5);
        a.label = " ".into();
        assert!(from_guest(vec![a], None, 10).is_err());
    }

    #[test]
    fn model_names_polygons_and_whole_results_are_bounded() {
        let mut a = wit_box(0.0, 0.0, 5.0, 5.0, 0.5);
        a.model.name = "m".repeat(MAX_LABEL_LEN + 1);
        let err = from_guest(vec![a], None, 10).unwrap_err().to_string();
        assert!(
            err.contains("model name must be at most 256 bytes"),
            "{err}"
        );
        let mut a = wit_box(0.0, 0.0, 5.0, 5.0, 0.5);
        a.model.version = "v".repeat(MAX_LABEL_LEN + 1);
        let err = from_guest(vec![a], None, 10).unwrap_err().to_string();
        assert!(err.contains("model version must be at most"), "{err}");
        let polygon = |n: usize| {
            let mut a = wit_box(0.0, 0.0, 5.0, 5.0, 0.5);
            a.geometry = WitGeometry::Polygon(vec![WitPoint { x: 1.0, y: 1.0 }; n]);
            a
        };
        assert!(from_guest(vec![polygon(MAX_POLYGON_POINTS)], None, 10).is_ok());
        let err = from_guest(vec![polygon(MAX_POLYGON_POINTS + 1)], None, 10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a polygon needs 3 to 10000 points, got 10001"),
            "{err}"
        );
        // Each annotation within its own bounds, the whole over the result's.
        let many = vec![polygon(MAX_POLYGON_POINTS); 300];
        assert_eq!(
            from_guest(many, None, 1000),
            Err(InvalidResult::TooLarge {
                limit: MAX_RESULT_BYTES
            })
        );
    }

    #[test]
    fn too_many_annotations_are_refused_before_checking_them() {
        let many = vec![wit_box(0.0, 0.0, 5.0, 5.0, 0.5); 3];
        assert_eq!(from_guest(many.clone(), None, 3).map(|v| v.len()), Ok(3));
        assert_eq!(
            from_guest(many, None, 2),
            Err(InvalidResult::TooMany { count: 3, limit: 2 })
        );
    }
}
