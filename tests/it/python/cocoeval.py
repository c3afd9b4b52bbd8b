"""pycocotools' COCOeval on Prelabel's COCO export: the oracle `prelabel evaluate` is held to.

Usage: cocoeval.py GROUND_TRUTH EXPORT  -> prints JSON: the export loaded as a COCO dataset
(its counts), then COCOeval's stats and per-category AP50, AP, precision, recall.

The export is loaded with COCO() as any COCO dataset is (the test that it is one); its
annotations become COCOeval results by mapping images by file_name and categories by name,
and the evaluation is restricted to the ground-truth images the export has, as Prelabel does.
"""

import contextlib
import io
import json
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def quiet(f, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return f(*args)


gt = quiet(COCO, sys.argv[1])
export = quiet(COCO, sys.argv[2])
image_ids = {img["file_name"]: img["id"] for img in gt.dataset["images"]}
category_ids = {cat["name"]: cat["id"] for cat in gt.dataset["categories"]}
exported_names = {img["id"]: img["file_name"] for img in export.dataset["images"]}
exported_labels = {cat["id"]: cat["name"] for cat in export.dataset["categories"]}

results = []
for a in export.dataset["annotations"]:
    label = exported_labels[a["category_id"]]
    name = exported_names[a["image_id"]]
    if label not in category_ids or name not in image_ids:
        continue
    results.append({"image_id": image_ids[name], "category_id": category_ids[label],
                    "bbox": a["bbox"], "score": a["score"]})

dt = quiet(gt.loadRes, results)
ev = COCOeval(gt, dt, "bbox")
ev.params.imgIds = sorted(image_ids[n] for n in exported_names.values() if n in image_ids)
quiet(ev.evaluate)
quiet(ev.accumulate)
quiet(ev.summarize)

all_area = ev.params.areaRngLbl.index("all")
max_dets = len(ev.params.maxDets) - 1
labels = {}
for k, cat_id in enumerate(ev.params.catIds):
    p = ev.eval["precision"][:, :, k, all_area, max_dets]
    scored = p[0] > -1
    # Precision at IoU 0.5 of the boxes as stored: matched / not ignored, over evalImgs.
    tp = fp = 0
    for e in ev.evalImgs:
        if e is None or e["category_id"] != cat_id or e["aRng"] != ev.params.areaRng[all_area] \
                or e["maxDet"] != ev.params.maxDets[max_dets]:
            continue
        matched = np.asarray(e["dtMatches"][0]) > 0
        ignored = np.asarray(e["dtIgnore"][0]).astype(bool)
        tp += int(np.sum(matched & ~ignored))
        fp += int(np.sum(~matched & ~ignored))
    labels[gt.cats[cat_id]["name"]] = {
        "ap50": float(np.mean(p[0])) if scored.all() else None,
        "ap": float(np.mean(p)) if (p > -1).all() else None,
        "recall": float(ev.eval["recall"][0, k, all_area, max_dets]) if scored.all() else None,
        "precision": tp / (tp + fp) if tp + fp else None,
    }

print(json.dumps({
    "export": {"images": len(export.dataset["images"]), "annotations": len(export.dataset["annotations"]),
               "categories": len(export.dataset["categories"])},
    "map": None if ev.stats[0] == -1 else float(ev.stats[0]),
    "map50": None if ev.stats[1] == -1 else float(ev.stats[1]),
    "labels": labels,
}))
