//! Label Studio's formats: a stored box as a `rectanglelabels` result (in percent of the
//! image, its confidence as `score`), a prediction's score and model version, and the tasks
//! file `annotations export --format labelstudio` writes. The ML backend's protocol, which
//! sends the same results, is in `integrations/labelstudio.rs`.

use serde_json::{Value, json};

use crate::items::item::ItemRecord;
use crate::results::annotation::{Geometry, Stored};

/// A box as a rectangle-labels result of the control and image `(from_name, to_name)`, in
/// percent of the image, with its confidence as `score`; `None` for points and other shapes.
pub fn rectangle(
    (from_name, to_name): (&str, &str),
    stored: &Stored,
    label: &str,
    width: u32,
    height: u32,
) -> Option<Value> {
    let Geometry::Box {
        left,
        top,
        right,
        bottom,
    } = stored.annotation.geometry
    else {
        return None;
    };
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let percent = |v: f32, of: f64| round(f64::from(v) / of * 100.0);
    Some(json!({
        "id": format!("prelabel-{}", stored.id),
        "from_name": from_name,
        "to_name": to_name,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": percent(left, w),
            "y": percent(top, h),
            "width": percent(right - left, w),
            "height": percent(bottom - top, h),
            "rotation": 0,
            "rectanglelabels": [label],
        },
        "score": round(f64::from(stored.annotation.model.confidence)),
    }))
}

/// Percentages and scores to 6 decimals: what a float32 box holds, without f64 noise.
fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// A service's model version as Label Studio shows it: `package@revision`.
pub fn model_version(package: &str, revision: i64) -> String {
    format!("{package}@{revision}")
}

/// A prediction's score: the mean of its boxes' confidences (none: 0), so that Label
/// Studio's "sort by prediction score" puts the least sure items first.
pub fn score(results: &[Value]) -> f64 {
    let scores: Vec<f64> = results.iter().filter_map(|r| r["score"].as_f64()).collect();
    if scores.is_empty() {
        0.0
    } else {
        round(scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

/// The tasks file Label Studio imports: per item, its image and, per service (and one for
/// boxes people drew), a prediction with the item's boxes. The image is a linked item's URL,
/// else the path Label Studio serves local files under (`/data/local-files/?d=<dataset>/<name>`:
/// start it with `LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true` and
/// `LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT` at the folder holding the dataset's folder). Boxes
/// go to control `label` on image `image`, the names of the config the README shows.
pub fn tasks(items: &[(ItemRecord, Vec<Stored>)]) -> Value {
    let tasks: Vec<Value> = items
        .iter()
        .map(|(item, stored)| {
            let image = item
                .url
                .clone()
                .unwrap_or_else(|| {
                    let path = format!("{}/{}", item.dataset, item.name);
                    let path: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                    format!("/data/local-files/?d={path}")
                });
            let (width, height) = item.size_px().unwrap_or((0, 0));
            let mut by_source: Vec<(String, Vec<Stored>)> = Vec::new();
            for s in stored {
                let version = match (&s.package, s.revision) {
                    (Some(p), Some(r)) => model_version(p, r),
                    _ => "manual".to_string(),
                };
                match by_source.iter_mut().find(|(v, _)| *v == version) {
                    Some((_, list)) => list.push(s.clone()),
                    None => by_source.push((version, vec![s.clone()])),
                }
            }
            let predictions: Vec<Value> = by_source
                .iter()
                .map(|(version, boxes)| {
                    // A tasks file brings its own labels: each box keeps its own.
                    let results: Vec<Value> = boxes
                        .iter()
                        .filter_map(|b| {
                            rectangle(("label", "image"), b, &b.annotation.label, width, height)
                        })
                        .collect();
                    json!({"model_version": version, "score": score(&results), "result": results})
                })
                .collect();
            json!({
                "data": {"image": image, "prelabel_item": item.id, "prelabel_dataset": item.dataset},
                "predictions": predictions,
            })
        })
        .collect();
    Value::Array(tasks)
}
