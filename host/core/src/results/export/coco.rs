//! COCO detection datasets: what `detect --format coco` prints and `annotations export`
//! writes. Boxes become `bbox: [x, y, width, height]` with a `score`; one category per label.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::results::annotation::{Annotation, Geometry, Review};

#[derive(Debug, Default, Serialize)]
pub struct Dataset {
    pub info: Info,
    pub images: Vec<Image>,
    pub categories: Vec<Category>,
    pub annotations: Vec<CocoAnnotation>,
}

#[derive(Debug, Serialize)]
pub struct Info {
    pub description: String,
    pub version: String,
}

impl Default for Info {
    fn default() -> Self {
        Self {
            description: "Pre-annotations by Prelabel".into(),
            version: crate::HOST_VERSION.into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Image {
    pub id: u64,
    pub file_name: String,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Serialize)]
pub struct Category {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct CocoAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    pub bbox: [f32; 4],
    pub area: f32,
    pub iscrowd: u8,
    pub score: f32,
    /// Stored annotations carry their review state (`{"review": "accepted"}`), as CVAT
    /// carries attributes; `detect` output has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attributes {
    pub review: Review,
    /// Who reviewed it (the account), once someone has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    /// What made the annotation (package, revision, component and artifact digests, init
    /// values, host version), as Prelabel's JSON export has it; none for a person's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prelabel: Option<serde_json::Value>,
}

/// Builds a dataset image by image. Only boxes are exported: COCO detection has no
/// place for points or whole-image labels.
#[derive(Debug, Default)]
pub struct Builder {
    dataset: Dataset,
    categories: BTreeMap<String, u64>,
}

impl Builder {
    pub fn add_image(
        &mut self,
        file_name: &str,
        width: u32,
        height: u32,
        annotations: &[Annotation],
    ) {
        let unreviewed: Vec<(&Annotation, Option<Attributes>)> =
            annotations.iter().map(|a| (a, None)).collect();
        self.add_reviewed(file_name, width, height, &unreviewed);
    }

    /// [`Builder::add_image`] for stored annotations, each with its review state and provenance.
    pub fn add_reviewed(
        &mut self,
        file_name: &str,
        width: u32,
        height: u32,
        annotations: &[(&Annotation, Option<Attributes>)],
    ) {
        let image_id = self.dataset.images.len() as u64 + 1;
        self.dataset.images.push(Image {
            id: image_id,
            file_name: file_name.to_string(),
            width,
            height,
        });
        for (a, attributes) in annotations {
            let Geometry::Box {
                left,
                top,
                right,
                bottom,
            } = a.geometry
            else {
                continue;
            };
            let next_id = self.categories.len() as u64 + 1;
            let category_id = *self.categories.entry(a.label.clone()).or_insert(next_id);
            if category_id == next_id {
                self.dataset.categories.push(Category {
                    id: category_id,
                    name: a.label.clone(),
                });
            }
            let (w, h) = (right - left, bottom - top);
            self.dataset.annotations.push(CocoAnnotation {
                id: self.dataset.annotations.len() as u64 + 1,
                image_id,
                category_id,
                bbox: [left, top, w, h],
                area: w * h,
                iscrowd: 0,
                score: a.model.confidence,
                attributes: attributes.clone(),
            });
        }
    }

    pub fn finish(self) -> Dataset {
        self.dataset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::annotation::ModelInfo;

    fn boxed(label: &str, l: f32, t: f32, r: f32, b: f32) -> Annotation {
        Annotation {
            label: label.into(),
            geometry: Geometry::Box {
                left: l,
                top: t,
                right: r,
                bottom: b,
            },
            model: ModelInfo {
                name: "m".into(),
                version: "1".into(),
                confidence: 0.75,
            },
        }
    }

    #[test]
    fn boxes_become_xywh_with_one_category_per_label() {
        let mut b = Builder::default();
        b.add_image(
            "a.png",
            100,
            50,
            &[
                boxed("face", 10.0, 5.0, 30.0, 25.0),
                boxed("cat", 0.0, 0.0, 1.0, 2.0),
            ],
        );
        b.add_image("b.png", 10, 10, &[boxed("face", 1.0, 1.0, 2.0, 2.0)]);
        let d = b.finish();
        let json = serde_json::to_value(&d).expect("serializes");
        assert_eq!(json["images"][1]["id"], 2);
        assert_eq!(json["categories"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            json["annotations"][0]["bbox"],
            serde_json::json!([10.0, 5.0, 20.0, 20.0])
        );
        assert_eq!(json["annotations"][0]["area"], 400.0);
        assert_eq!(json["annotations"][2]["category_id"], 1);
        assert_eq!(json["annotations"][2]["image_id"], 2);
        assert_eq!(json["annotations"][1]["score"], 0.75);
    }
}
