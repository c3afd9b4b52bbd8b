//! Compare before you switch: a candidate package revision runs on a dataset's items beside a
//! service's stored annotations, without storing anything, and the two sets of boxes are
//! matched per item (IoU at or above a threshold, same label): matched, added, removed,
//! confidence shifts, and time per item for both.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::catalog::revision;
use crate::catalog::service;
use crate::error::{Error, Result};
use crate::items::item::{self, ItemRecord};
use crate::items::link;
use crate::results::annotation::{self, Annotation, Geometry, Review};
use crate::runtime::Runtime;
use crate::store::{OptionalExtension, Store, params};
use crate::work::local::LocalRunner;

/// What to compare. In JSON (the API's body) the service is the URL's and `init` is an object
/// of values by name, as for a deploy.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub dataset: String,
    /// The service whose stored annotations are the current ones.
    #[serde(skip)]
    pub service: String,
    /// The candidate: a pushed package, at a revision (default: its latest).
    pub package: String,
    pub revision: Option<i64>,
    /// Init values for the candidate (`key=value`), over what the service would carry to it.
    #[serde(default, deserialize_with = "crate::catalog::service::init_object")]
    #[schema(value_type = Object)]
    pub init: Vec<String>,
    /// Boxes overlapping at least this much (and with the same label) are the same object.
    #[serde(default = "default_iou")]
    pub iou: f32,
}

/// Pascal VOC's and COCO's AP50 threshold.
pub const DEFAULT_IOU: f32 = 0.5;

fn default_iou() -> f32 {
    DEFAULT_IOU
}

/// A box, its label and confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Box4 {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
    pub confidence: f32,
}

/// A box both sets have.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Matched {
    pub label: String,
    pub current: Box4,
    pub candidate: Box4,
    pub iou: f32,
    /// The candidate's confidence minus the current one.
    pub confidence_shift: f32,
}

/// A box only one set has.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unmatched {
    pub label: String,
    #[serde(flatten)]
    pub bbox: Box4,
}

/// One item, both ways.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ItemComparison {
    pub item_id: i64,
    pub name: String,
    pub matched: Vec<Matched>,
    /// Boxes the candidate finds that the service's annotations do not have.
    pub added: Vec<Unmatched>,
    /// Boxes of the service's annotations the candidate does not find.
    pub removed: Vec<Unmatched>,
    /// The service's last successful execution on the item, if it ran.
    pub current_ms: Option<u64>,
    pub candidate_ms: u64,
    /// Why the candidate failed on this item (its boxes then count as none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Accepted truth on this item, if a person reviewed it: (matched by the candidate, total).
    #[serde(skip)]
    accepted: Option<(usize, usize)>,
}

/// Precision and recall of the candidate against a reference set of boxes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    /// The reference's boxes these are computed over.
    pub boxes: usize,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub dataset: String,
    pub service: String,
    /// The service's package and revision (`face-detector@2`).
    pub current: String,
    /// The candidate's (`centerface@1`).
    pub candidate: String,
    pub iou: f32,
    pub items: Vec<ItemComparison>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub items: usize,
    pub failed: usize,
    pub current_boxes: usize,
    pub candidate_boxes: usize,
    pub matched: usize,
    pub added: usize,
    pub removed: usize,
    /// The candidate against the service's current annotations.
    pub against_current: Score,
    /// The candidate against what people accepted, edited or drew, where they reviewed.
    pub against_accepted: Option<Score>,
    pub current_ms_mean: Option<f64>,
    pub candidate_ms_mean: f64,
}

/// Runs the comparison. Nothing is stored: the candidate runs as `prelabel detect` does.
pub fn compare(store: &Store, runtime: &Runtime, request: &Request) -> Result<Comparison> {
    if !(request.iou > 0.0 && request.iou <= 1.0) {
        return Err(Error::invalid(
            "iou",
            format!("must be within (0, 1], got {}", request.iou),
        ));
    }
    let service = service::get(store, &request.service)?;
    let candidate = revision::revision(store, &request.package, request.revision)?;
    let init = service::init_for(store, &service, &candidate, &request.init)?;
    let limits = service.settings.limits();
    let outbound = service.outbound_for(&candidate);
    let mut runner =
        LocalRunner::for_revision(runtime, store, &candidate, &init, limits, outbound)?;
    let items = item::list(store, Some(&request.dataset))?;
    let mut compared = Vec::with_capacity(items.len());
    for item in &items {
        let stored = annotation::item_annotations(store, item.id)?;
        let current: Vec<Annotation> = stored
            .iter()
            .filter(|a| a.service.as_deref() == Some(&request.service))
            .map(|a| a.annotation.clone())
            .collect();
        let accepted: Vec<Annotation> = stored
            .iter()
            .filter(|a| matches!(a.review, Review::Accepted | Review::Edited | Review::Manual))
            .map(|a| a.annotation.clone())
            .collect();
        let reviewed = stored.iter().any(|a| a.review != Review::Pending);
        let result = match link::bytes(store, item, limits.max_item_bytes, limits.timeout) {
            Ok(bytes) => runner.run(&item.name, bytes),
            Err(e) => {
                let mut failed = runner.failed(&item.name, e.to_string());
                failed.mimetype = item.mimetype.clone();
                failed
            }
        };
        let (matched, added, removed) = match_boxes(&current, &result.annotations, request.iou);
        let accepted = reviewed.then(|| {
            let (hits, _, _) = match_boxes(&accepted, &result.annotations, request.iou);
            (hits.len(), boxes(&accepted).len())
        });
        compared.push(ItemComparison {
            item_id: item.id,
            name: item.name.clone(),
            matched,
            added,
            removed,
            current_ms: current_ms(store, &request.service, item)?,
            candidate_ms: result.duration.as_millis() as u64,
            error: result.error,
            accepted,
        });
    }
    let summary = summarise(&compared);
    Ok(Comparison {
        dataset: request.dataset.clone(),
        service: service.name.clone(),
        current: format!("{}@{}", service.package, service.revision),
        candidate: format!("{}@{}", candidate.package, candidate.revision),
        iou: request.iou,
        items: compared,
        summary,
    })
}

/// The duration of the service's last successful execution on the item.
fn current_ms(store: &Store, service: &str, item: &ItemRecord) -> Result<Option<u64>> {
    let ms: Option<Option<i64>> = store
        .conn()
        .query_row(
            "SELECT e.duration_ms FROM executions e JOIN services s ON s.id = e.service_id
              WHERE s.name = $1 AND e.item_id = $2 AND e.status = 'success'
              ORDER BY e.id DESC LIMIT 1",
            params![service, item.id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(ms.flatten().map(|ms| ms.max(0) as u64))
}

/// The boxes among annotations, with their labels.
fn boxes(annotations: &[Annotation]) -> Vec<(String, Box4)> {
    annotations
        .iter()
        .filter_map(|a| match a.geometry {
            Geometry::Box {
                left,
                top,
                right,
                bottom,
            } => Some((
                a.label.clone(),
                Box4 {
                    left,
                    top,
                    right,
                    bottom,
                    confidence: a.model.confidence,
                },
            )),
            _ => None,
        })
        .collect()
}

impl Box4 {
    fn geometry(&self) -> Geometry {
        Geometry::Box {
            left: self.left,
            top: self.top,
            right: self.right,
            bottom: self.bottom,
        }
    }
}

/// Pairs boxes greedily, the most overlapping pair first, each box at most once, same label,
/// IoU at or above `threshold`; what is left over is removed (current) or added (candidate).
fn match_boxes(
    current: &[Annotation],
    candidate: &[Annotation],
    threshold: f32,
) -> (Vec<Matched>, Vec<Unmatched>, Vec<Unmatched>) {
    let (current, candidate) = (boxes(current), boxes(candidate));
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, (label_a, a)) in current.iter().enumerate() {
        for (j, (label_b, b)) in candidate.iter().enumerate() {
            let overlap = a.geometry().iou(&b.geometry()).unwrap_or(0.0);
            if label_a == label_b && overlap >= threshold {
                pairs.push((overlap, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let (mut used_current, mut used_candidate) =
        (vec![false; current.len()], vec![false; candidate.len()]);
    let mut matched = Vec::new();
    for (overlap, i, j) in pairs {
        if used_current[i] || used_candidate[j] {
            continue;
        }
        used_current[i] = true;
        used_candidate[j] = true;
        matched.push(Matched {
            label: current[i].0.clone(),
            current: current[i].1,
            candidate: candidate[j].1,
            iou: overlap,
            confidence_shift: candidate[j].1.confidence - current[i].1.confidence,
        });
    }
    let left_over = |set: &[(String, Box4)], used: &[bool]| -> Vec<Unmatched> {
        set.iter()
            .zip(used)
            .filter(|(_, used)| !**used)
            .map(|((label, bbox), _)| Unmatched {
                label: label.clone(),
                bbox: *bbox,
            })
            .collect()
    };
    let removed = left_over(&current, &used_current);
    let added = left_over(&candidate, &used_candidate);
    (matched, added, removed)
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn summarise(items: &[ItemComparison]) -> Summary {
    let count = |f: fn(&ItemComparison) -> usize| items.iter().map(f).sum::<usize>();
    let matched = count(|i| i.matched.len());
    let added = count(|i| i.added.len());
    let removed = count(|i| i.removed.len());
    let (current_boxes, candidate_boxes) = (matched + removed, matched + added);
    let reviewed: Vec<(usize, usize)> = items.iter().filter_map(|i| i.accepted).collect();
    let against_accepted = (!reviewed.is_empty()).then(|| {
        let hits: usize = reviewed.iter().map(|r| r.0).sum();
        let truth: usize = reviewed.iter().map(|r| r.1).sum();
        let found: usize = items
            .iter()
            .filter(|i| i.accepted.is_some())
            .map(|i| i.matched.len() + i.added.len())
            .sum();
        Score {
            precision: ratio(hits, found),
            recall: ratio(hits, truth),
            boxes: truth,
        }
    });
    let timed: Vec<u64> = items.iter().filter_map(|i| i.current_ms).collect();
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let candidate_ms: Vec<u64> = items.iter().map(|i| i.candidate_ms).collect();
    Summary {
        items: items.len(),
        failed: items.iter().filter(|i| i.error.is_some()).count(),
        current_boxes,
        candidate_boxes,
        matched,
        added,
        removed,
        against_current: Score {
            precision: ratio(matched, candidate_boxes),
            recall: ratio(matched, current_boxes),
            boxes: current_boxes,
        },
        against_accepted,
        current_ms_mean: (!timed.is_empty()).then(|| mean(&timed)),
        candidate_ms_mean: mean(&candidate_ms),
    }
}

/// A self-contained HTML page: each item's image with both sets of boxes drawn over it
/// (current in blue, the candidate in orange; matched boxes thin, removed and added thick and
/// dashed), its counts and times, and the summary. Images are embedded, so the page can be
/// mailed or archived as one file.
pub fn html(store: &Store, comparison: &Comparison) -> Result<String> {
    use base64::Engine as _;
    let mut page = format!(
        "<!doctype html><meta charset=utf-8><title>{title}</title>\n<style>\
         body{{font:14px system-ui,sans-serif;margin:1.5em}}figure{{display:inline-block;margin:0 1em 1.5em 0;vertical-align:top}}\
         svg{{width:600px;max-width:100%;height:auto;border:1px solid #ccc}}.cur{{stroke:#1f6feb}}.cand{{stroke:#f08c00}}\
         rect{{fill:none;stroke-width:2}}rect.diff{{stroke-width:5;stroke-dasharray:8 4}}figcaption{{max-width:600px}}</style>\n\
         <h1>{title}</h1>\n<p>{summary}</p>\n<p><span style=color:#1f6feb>current: {current}</span> · \
         <span style=color:#f08c00>candidate: {candidate}</span> · thick dashed boxes: removed (blue) or added (orange)</p>\n",
        title = escape(&format!(
            "{} on {}: {} against {}",
            comparison.service, comparison.dataset, comparison.candidate, comparison.current
        )),
        summary = escape(&summary_line(&comparison.summary)),
        current = escape(&comparison.current),
        candidate = escape(&comparison.candidate),
    );
    for entry in &comparison.items {
        let item = item::get(store, entry.item_id)?;
        let Some((width, height)) = item.size_px() else {
            continue;
        };
        // A linked item not downloaded yet has no bytes here: its boxes are drawn alone.
        let bytes = (!item.digest.is_empty())
            .then(|| store.read_blob(&item.digest).ok())
            .flatten();
        let image = match bytes {
            None => String::new(),
            Some(bytes) => format!(
                "<image href=\"data:{};base64,{}\" width=\"{width}\" height=\"{height}\"/>",
                escape(&item.mimetype),
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ),
        };
        let rect = |b: &Box4, class: &str| {
            format!(
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                b.left,
                b.top,
                (b.right - b.left).max(0.0),
                (b.bottom - b.top).max(0.0)
            )
        };
        let mut shapes = String::new();
        for m in &entry.matched {
            shapes += &rect(&m.current, "cur");
            shapes += &rect(&m.candidate, "cand");
        }
        for r in &entry.removed {
            shapes += &rect(&r.bbox, "cur diff");
        }
        for a in &entry.added {
            shapes += &rect(&a.bbox, "cand diff");
        }
        let caption = format!(
            "{}: {} matched, {} added, {} removed; {} ms now, {} ms candidate{}",
            entry.name,
            entry.matched.len(),
            entry.added.len(),
            entry.removed.len(),
            entry
                .current_ms
                .map_or_else(|| "-".to_string(), |ms| ms.to_string()),
            entry.candidate_ms,
            entry
                .error
                .as_ref()
                .map_or_else(String::new, |e| format!("; failed: {e}"))
        );
        page += &format!(
            "<figure><svg viewBox=\"0 0 {width} {height}\">{image}{shapes}</svg>\
             <figcaption>{}</figcaption></figure>\n",
            escape(&caption)
        );
    }
    Ok(page)
}

/// The summary in one line, for the page and the command's report.
pub fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "{} items ({} failed): {} boxes now, {} from the candidate; {} matched, {} added, {} removed; \
         against the current annotations: precision {:.3}, recall {:.3}",
        s.items,
        s.failed,
        s.current_boxes,
        s.candidate_boxes,
        s.matched,
        s.added,
        s.removed,
        s.against_current.precision,
        s.against_current.recall
    );
    if let Some(a) = s.against_accepted {
        line += &format!(
            "; against accepted annotations ({} boxes): precision {:.3}, recall {:.3}",
            a.boxes, a.precision, a.recall
        );
    }
    line += &format!(
        "; mean time per item: {} now, {:.0} ms candidate",
        s.current_ms_mean
            .map_or_else(|| "-".to_string(), |ms| format!("{ms:.0} ms")),
        s.candidate_ms_mean
    );
    line
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Label → (matched, added, removed), for the report.
pub fn by_label(items: &[ItemComparison]) -> BTreeMap<String, (usize, usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for i in items {
        for m in &i.matched {
            out.entry(m.label.clone()).or_default().0 += 1;
        }
        for a in &i.added {
            out.entry(a.label.clone()).or_default().1 += 1;
        }
        for r in &i.removed {
            out.entry(r.label.clone()).or_default().2 += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::annotation::ModelInfo;

    fn bbox(label: &str, l: f32, t: f32, r: f32, b: f32, confidence: f32) -> Annotation {
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
                confidence,
            },
        }
    }

    #[test]
    fn boxes_pair_by_overlap_and_label_and_the_rest_is_added_or_removed() {
        let current = [
            bbox("face", 0.0, 0.0, 10.0, 10.0, 0.9),
            bbox("face", 50.0, 50.0, 60.0, 60.0, 0.8),
            bbox("cat", 100.0, 0.0, 120.0, 20.0, 0.7),
        ];
        let candidate = [
            bbox("face", 1.0, 0.0, 11.0, 10.0, 0.95), // the first, moved 1 px
            bbox("face", 100.0, 0.0, 120.0, 20.0, 0.6), // where the cat is: another label
            bbox("face", 200.0, 0.0, 210.0, 10.0, 0.5), // new
        ];
        let (matched, added, removed) = match_boxes(&current, &candidate, 0.5);
        assert_eq!(matched.len(), 1);
        assert!((matched[0].iou - 90.0 / 110.0).abs() < 1e-6);
        assert!((matched[0].confidence_shift - 0.05).abs() < 1e-6);
        assert_eq!(added.len(), 2);
        let removed: Vec<&str> = removed.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(removed, ["face", "cat"]);
    }

    #[test]
    fn each_box_is_matched_once_the_best_pair_first() {
        let current = [bbox("face", 0.0, 0.0, 10.0, 10.0, 0.9)];
        let candidate = [
            bbox("face", 2.0, 0.0, 12.0, 10.0, 0.9),
            bbox("face", 0.0, 0.0, 10.0, 10.0, 0.9),
        ];
        let (matched, added, removed) = match_boxes(&current, &candidate, 0.5);
        assert_eq!(matched.len(), 1);
        assert_eq!(matched[0].iou, 1.0);
        assert_eq!((added.len(), removed.len()), (1, 0));
    }
}
