//! `prelabel evaluate`: a service's stored boxes on a dataset scored against a COCO
//! ground-truth file with COCOeval's definitions (pycocotools' `cocoeval.py`, `iouType="bbox"`,
//! area `all`): AP at IoU 0.5 and averaged over IoU 0.50:0.05:0.95 (101-point interpolated
//! precision, at most 100 detections per image and label, `iscrowd` regions neither reward nor
//! punish), and the precision and recall at IoU 0.5 of the boxes as stored, that is at the
//! service's own confidence threshold. The test compares every number with pycocotools'.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ground_truth::{GroundTruth, Truth};
use crate::items::item::ItemRecord;
use crate::results::annotation::{self, Geometry, Stored};
use crate::store::Store;

/// COCOeval's `maxDets[-1]`: the detections per image and category it scores.
const MAX_DETECTIONS: usize = 100;
/// COCOeval's `areaRng` for `all`: ground truth outside it is ignored.
const AREA_ALL: (f64, f64) = (0.0, 1e10);
/// COCOeval's `recThrs`: 101 recall levels, `np.linspace(0, 1, 101)`.
const RECALL_LEVELS: usize = 101;
/// COCOeval's `iouThrs`: `np.linspace(0.5, 0.95, 10)`; the first is AP50's.
const IOU_THRESHOLDS: usize = 10;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct Request {
    pub dataset: String,
    /// Whose boxes; without it, the one service that annotated the dataset.
    pub service: Option<String>,
    pub ground_truth: GroundTruth,
}

/// One label's scores. The AP values are `None` when the ground truth has no box of the
/// label (COCOeval's -1), precision when the service found none.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelScore {
    pub label: String,
    /// Boxes of the label in the ground truth that count, and its `iscrowd` regions (a
    /// detection on one is neither right nor wrong).
    pub ground_truth: usize,
    pub crowd: usize,
    /// The service's boxes of the label scored (at most 100 per image, the most confident).
    pub detections: usize,
    /// AP at IoU 0.5, and averaged over IoU 0.50:0.05:0.95.
    pub ap50: Option<f64>,
    pub ap: Option<f64>,
    /// At IoU 0.5, of the boxes as stored: matched / scored boxes, matched / ground truth.
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    pub dataset: String,
    pub service: String,
    /// Ground-truth images found in the dataset (by file name), and those it lacks (left
    /// out, so that missing items do not count as missed boxes).
    pub images: usize,
    pub missing: Vec<String>,
    /// Items of the dataset the ground truth does not mention (not scored).
    pub unlabelled_items: usize,
    /// COCOeval's stats[1] and stats[0]: the mean over labels with ground truth.
    pub map50: Option<f64>,
    pub map: Option<f64>,
    pub labels: Vec<LabelScore>,
    /// Labels of the service that the ground truth has no category for, with their boxes
    /// (not scored).
    pub unscored: BTreeMap<String, usize>,
}

/// A scored box: `[x, y, width, height]` as the COCO export writes it, and its confidence.
#[derive(Debug, Clone, Copy)]
struct Detection {
    bbox: [f64; 4],
    score: f64,
}

/// Scores the service's stored boxes on the dataset against the ground truth.
pub fn evaluate(store: &Store, request: &Request) -> Result<Evaluation> {
    crate::items::item::dataset_id(store, &request.dataset)?;
    let items = annotation::annotated_items(store, &request.dataset)?;
    let service = match &request.service {
        Some(name) => crate::catalog::service::get(store, name)?.name,
        None => only_service(&request.dataset, &items)?,
    };
    let gt = &request.ground_truth;
    let Matched {
        present,
        detections,
        unscored,
        unlabelled_items,
    } = match_items(gt, &items, &service);
    if present.is_empty() {
        return Err(Error::invalid(
            "ground-truth",
            format!(
                "names none of dataset `{}`'s items (its images' file_name must be the items' names, e.g. `{}`)",
                request.dataset,
                items.first().map_or("photo.jpg", |(i, _)| i.name.as_str())
            ),
        ));
    }
    let labels: Vec<LabelScore> = gt
        .categories
        .iter()
        .map(|(&category, label)| {
            let evals: Vec<ImageEval> = present
                .iter()
                .filter_map(|&image| {
                    let truth = gt
                        .boxes
                        .get(&(image, category))
                        .map_or(&[][..], Vec::as_slice);
                    let found = detections
                        .get(&(image, category))
                        .map_or(&[][..], Vec::as_slice);
                    evaluate_image(truth, found)
                })
                .collect();
            score(label, &evals)
        })
        .collect();
    let mean = |ap: fn(&LabelScore) -> Option<f64>| {
        let scored: Vec<f64> = labels.iter().filter_map(ap).collect();
        (!scored.is_empty()).then(|| scored.iter().sum::<f64>() / scored.len() as f64)
    };
    Ok(Evaluation {
        dataset: request.dataset.clone(),
        service,
        images: present.len(),
        missing: gt
            .images
            .iter()
            .filter(|(id, _)| !present.contains(id))
            .map(|(_, name)| name.clone())
            .collect(),
        unlabelled_items,
        map50: mean(|l| l.ap50),
        map: mean(|l| l.ap),
        labels,
        unscored,
    })
}

/// The items the ground truth names, and the service's boxes on them by image and category.
struct Matched {
    present: BTreeSet<i64>,
    detections: HashMap<(i64, i64), Vec<Detection>>,
    /// Boxes whose label the ground truth has no category for, by label.
    unscored: BTreeMap<String, usize>,
    /// Items the ground truth does not name.
    unlabelled_items: usize,
}

/// Matches items to the ground truth's images by name (or base name) and the service's boxes
/// to its categories by label, as the COCO export writes them.
fn match_items(gt: &GroundTruth, items: &[(ItemRecord, Vec<Stored>)], service: &str) -> Matched {
    let ids_by_name: HashMap<&str, i64> = gt
        .images
        .iter()
        .map(|(id, name)| (name.as_str(), *id))
        .collect();
    let categories: HashMap<&str, i64> = gt
        .categories
        .iter()
        .map(|(id, name)| (name.as_str(), *id))
        .collect();
    let mut present = BTreeSet::new();
    let mut detections: HashMap<(i64, i64), Vec<Detection>> = HashMap::new();
    let mut unscored = BTreeMap::new();
    let mut unlabelled_items = 0;
    for (item, stored) in items {
        let Some(&image) = ids_by_name
            .get(item.name.as_str())
            .or_else(|| ids_by_name.get(base_name(&item.name)))
        else {
            unlabelled_items += 1;
            continue;
        };
        present.insert(image);
        for s in stored
            .iter()
            .filter(|s| s.service.as_deref() == Some(service))
        {
            let Geometry::Box {
                left,
                top,
                right,
                bottom,
            } = s.annotation.geometry
            else {
                continue;
            };
            let Some(&category) = categories.get(s.annotation.label.as_str()) else {
                *unscored.entry(s.annotation.label.clone()).or_insert(0) += 1;
                continue;
            };
            let bbox = [left, top, right - left, bottom - top].map(as_written);
            detections
                .entry((image, category))
                .or_default()
                .push(Detection {
                    bbox,
                    score: as_written(s.annotation.model.confidence),
                });
        }
    }
    Matched {
        present,
        detections,
        unscored,
        unlabelled_items,
    }
}

/// The one service whose annotations the dataset holds, or an error naming them all.
fn only_service(dataset: &str, items: &[(ItemRecord, Vec<Stored>)]) -> Result<String> {
    let services: BTreeSet<&str> = items
        .iter()
        .flat_map(|(_, stored)| stored.iter().filter_map(|s| s.service.as_deref()))
        .collect();
    let mut names = services.iter();
    match (names.next(), names.next()) {
        (Some(only), None) => Ok(only.to_string()),
        (None, _) => Err(Error::invalid(
            "service",
            format!("none given, and no service has annotated dataset `{dataset}` yet"),
        )),
        (Some(_), Some(_)) => Err(Error::invalid(
            "service",
            format!(
                "none given, and dataset `{dataset}` holds annotations of {}: name one",
                services.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// A stored f32 as the COCO export writes it (its shortest decimal) and a reader of that file
/// takes it: so that the numbers are those pycocotools computes on the export, to the last bit.
fn as_written(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The thresholds COCOeval scores at, as numpy's `linspace` makes them.
fn iou_thresholds() -> [f64; IOU_THRESHOLDS] {
    let step = (0.95 - 0.5) / (IOU_THRESHOLDS - 1) as f64;
    let mut t = std::array::from_fn(|i| 0.5 + i as f64 * step);
    t[IOU_THRESHOLDS - 1] = 0.95;
    t
}

/// pycocotools' `bbIou`: for an `iscrowd` region, the overlap over the detection's area.
fn iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[0] + d[2]).min(g[0] + g[2]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[1] + d[3]).min(g[1] + g[3]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let union = if crowd {
        d[2] * d[3]
    } else {
        d[2] * d[3] + g[2] * g[3] - i
    };
    i / union
}

/// COCOeval's `evaluateImg` for one image and category: per threshold, which detections
/// (most confident first) matched a ground-truth box, and which are ignored.
struct ImageEval {
    scores: Vec<f64>,
    matched: Vec<[bool; IOU_THRESHOLDS]>,
    ignored: Vec<[bool; IOU_THRESHOLDS]>,
    /// Ground-truth boxes that count (not crowd, within the area range), and the others.
    counted: usize,
    ignored_truth: usize,
}

fn evaluate_image(truth: &[Truth], found: &[Detection]) -> Option<ImageEval> {
    if truth.is_empty() && found.is_empty() {
        return None;
    }
    // Counted ground truth first, crowd after (a stable sort, as numpy's mergesort).
    let mut gt: Vec<(Truth, bool)> = truth
        .iter()
        .map(|t| {
            let ignore = t.crowd || t.area < AREA_ALL.0 || t.area > AREA_ALL.1;
            (*t, ignore)
        })
        .collect();
    gt.sort_by_key(|(_, ignore)| *ignore);
    let mut dt = found.to_vec();
    dt.sort_by(|a, b| b.score.total_cmp(&a.score));
    dt.truncate(MAX_DETECTIONS);
    let thresholds = iou_thresholds();
    let mut matched = vec![[false; IOU_THRESHOLDS]; dt.len()];
    let mut ignored = vec![[false; IOU_THRESHOLDS]; dt.len()];
    for (t, &threshold) in thresholds.iter().enumerate() {
        let mut taken = vec![false; gt.len()];
        for (d, det) in dt.iter().enumerate() {
            let mut best = threshold.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for (g, (truth, ignore)) in gt.iter().enumerate() {
                if taken[g] && !truth.crowd {
                    continue;
                }
                // Matched to a counted box already: the ignored ones (after it) cannot win.
                if m.is_some_and(|m| !gt[m].1) && *ignore {
                    break;
                }
                let overlap = iou(&det.bbox, &truth.bbox, truth.crowd);
                if overlap < best {
                    continue;
                }
                best = overlap;
                m = Some(g);
            }
            if let Some(m) = m {
                ignored[d][t] = gt[m].1;
                matched[d][t] = true;
                taken[m] = true;
            } else {
                let area = det.bbox[2] * det.bbox[3];
                ignored[d][t] = area < AREA_ALL.0 || area > AREA_ALL.1;
            }
        }
    }
    Some(ImageEval {
        scores: dt.iter().map(|d| d.score).collect(),
        matched,
        ignored,
        counted: gt.iter().filter(|(_, ignore)| !ignore).count(),
        ignored_truth: gt.iter().filter(|(_, ignore)| *ignore).count(),
    })
}

/// COCOeval's `accumulate` for one category over its images, and the numbers we report.
fn score(label: &str, evals: &[ImageEval]) -> LabelScore {
    let counted: usize = evals.iter().map(|e| e.counted).sum();
    let total: usize = evals.iter().map(|e| e.matched.len()).sum();
    // Every detection of every image, most confident first; ties keep image order.
    let mut order: Vec<(f64, &[bool; IOU_THRESHOLDS], &[bool; IOU_THRESHOLDS])> =
        Vec::with_capacity(total);
    for e in evals {
        for d in 0..e.scores.len() {
            order.push((e.scores[d], &e.matched[d], &e.ignored[d]));
        }
    }
    order.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut ap = [0.0; IOU_THRESHOLDS];
    let mut at_50 = (0usize, 0usize);
    for (t, ap) in ap.iter_mut().enumerate() {
        let (mut tp, mut fp) = (0usize, 0usize);
        let mut recall = Vec::with_capacity(order.len());
        let mut precision = Vec::with_capacity(order.len());
        for (_, matched, ignored) in &order {
            if !ignored[t] {
                if matched[t] {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
            recall.push(tp as f64 / counted.max(1) as f64);
            precision.push(tp as f64 / (tp as f64 + fp as f64 + f64::EPSILON));
        }
        if t == 0 {
            at_50 = (tp, fp);
        }
        // The precision envelope: at each rank, the best precision at that recall or more.
        for i in (1..precision.len()).rev() {
            if precision[i] > precision[i - 1] {
                precision[i - 1] = precision[i];
            }
        }
        let mut sum = 0.0;
        for r in 0..RECALL_LEVELS {
            let level = r as f64 * (1.0 / (RECALL_LEVELS - 1) as f64);
            let first = recall.partition_point(|&rc| rc < level);
            match precision.get(first) {
                Some(p) => sum += p,
                None => break,
            }
        }
        *ap = sum / RECALL_LEVELS as f64;
    }
    let scored = (counted > 0).then_some(());
    let (tp, fp) = at_50;
    LabelScore {
        label: label.to_string(),
        ground_truth: counted,
        crowd: evals.iter().map(|e| e.ignored_truth).sum(),
        detections: total,
        ap50: scored.map(|()| ap[0]),
        ap: scored.map(|()| ap.iter().sum::<f64>() / IOU_THRESHOLDS as f64),
        precision: (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64),
        recall: scored.map(|()| tp as f64 / counted as f64),
    }
}
