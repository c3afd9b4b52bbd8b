//! The ground truth `prelabel evaluate` scores against: a COCO detection file, read and
//! checked as COCOeval would read it (ids unique, every box on a known image and category).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// A ground-truth file that is not one COCOeval could read, or that contradicts itself.
#[derive(Debug, thiserror::Error)]
pub enum GroundTruthError {
    #[error("ground truth: not a COCO detection file: {0}")]
    Json(#[source] serde_json::Error),
    #[error("ground truth: image id {id} appears twice")]
    DuplicateImage { id: i64 },
    #[error("ground truth: images {first} and {second} are both named `{file_name}`")]
    DuplicateFileName {
        file_name: String,
        first: i64,
        second: i64,
    },
    #[error("ground truth: category id {id} appears twice")]
    DuplicateCategory { id: i64 },
    #[error("ground truth: categories {first} and {second} are both named `{name}`")]
    DuplicateCategoryName {
        name: String,
        first: i64,
        second: i64,
    },
    #[error("ground truth: annotation {index} is on image {image_id}, which `images` lacks")]
    UnknownImage { index: usize, image_id: i64 },
    #[error(
        "ground truth: annotation {index} has category {category_id}, which `categories` lacks"
    )]
    UnknownCategory { index: usize, category_id: i64 },
    #[error(
        "ground truth: annotation {index} has bbox {bbox:?}: [x, y, width, height] must be finite, with width and height >= 0"
    )]
    BadBox { index: usize, bbox: [f64; 4] },
}

#[derive(Debug, Deserialize)]
struct File {
    images: Vec<FileImage>,
    categories: Vec<FileCategory>,
    annotations: Vec<FileAnnotation>,
}

#[derive(Debug, Deserialize)]
struct FileImage {
    id: i64,
    file_name: String,
}

#[derive(Debug, Deserialize)]
struct FileCategory {
    id: i64,
    name: String,
}

#[derive(Debug, Deserialize)]
struct FileAnnotation {
    image_id: i64,
    category_id: i64,
    bbox: [f64; 4],
    /// COCOeval filters ground truth by it; files without it get the box's area.
    area: Option<f64>,
    #[serde(default)]
    iscrowd: u8,
}

/// A ground-truth file, checked: images by id, categories by id, boxes per image and category.
#[derive(Debug, Clone)]
pub struct GroundTruth {
    pub(crate) images: BTreeMap<i64, String>,
    pub(crate) categories: BTreeMap<i64, String>,
    pub(crate) boxes: HashMap<(i64, i64), Vec<Truth>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Truth {
    pub(crate) bbox: [f64; 4],
    pub(crate) area: f64,
    pub(crate) crowd: bool,
}

impl GroundTruth {
    /// Reads a COCO file (`images`, `categories`, `annotations` with `bbox`; other fields
    /// such as `info`, `licenses` and `segmentation` are allowed and unused).
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, GroundTruthError> {
        let file: File = serde_json::from_slice(bytes).map_err(GroundTruthError::Json)?;
        let mut images = BTreeMap::new();
        let mut names: HashMap<&str, i64> = HashMap::new();
        for image in &file.images {
            if images.insert(image.id, image.file_name.clone()).is_some() {
                return Err(GroundTruthError::DuplicateImage { id: image.id });
            }
            if let Some(first) = names.insert(&image.file_name, image.id) {
                return Err(GroundTruthError::DuplicateFileName {
                    file_name: image.file_name.clone(),
                    first,
                    second: image.id,
                });
            }
        }
        let mut categories = BTreeMap::new();
        let mut labels: HashMap<&str, i64> = HashMap::new();
        for category in &file.categories {
            if categories
                .insert(category.id, category.name.clone())
                .is_some()
            {
                return Err(GroundTruthError::DuplicateCategory { id: category.id });
            }
            if let Some(first) = labels.insert(&category.name, category.id) {
                return Err(GroundTruthError::DuplicateCategoryName {
                    name: category.name.clone(),
                    first,
                    second: category.id,
                });
            }
        }
        let mut boxes: HashMap<(i64, i64), Vec<Truth>> = HashMap::new();
        for (index, a) in file.annotations.iter().enumerate() {
            if !images.contains_key(&a.image_id) {
                return Err(GroundTruthError::UnknownImage {
                    index,
                    image_id: a.image_id,
                });
            }
            if !categories.contains_key(&a.category_id) {
                return Err(GroundTruthError::UnknownCategory {
                    index,
                    category_id: a.category_id,
                });
            }
            let [_, _, w, h] = a.bbox;
            if a.bbox.iter().any(|v| !v.is_finite()) || w < 0.0 || h < 0.0 {
                return Err(GroundTruthError::BadBox {
                    index,
                    bbox: a.bbox,
                });
            }
            boxes
                .entry((a.image_id, a.category_id))
                .or_default()
                .push(Truth {
                    bbox: a.bbox,
                    area: a.area.unwrap_or(w * h),
                    crowd: a.iscrowd != 0,
                });
        }
        Ok(Self {
            images,
            categories,
            boxes,
        })
    }
}
