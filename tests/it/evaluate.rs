//! `prelabel evaluate` held to pycocotools: the same ground truth and the COCO export, every
//! number compared; the export loads as a COCO dataset; bad ground truth refused by name.

use serde_json::{Value, json};

use crate::support::*;

const GROUND_TRUTH: &str = "ground_truth/faces.json";

/// The face detector at a low threshold on the ten photos: hundreds of boxes with scores
/// all the way down, past COCOeval's 100 per image, so that the precision-recall curve, the
/// envelope and the cap all matter.
fn low_threshold_home() -> Home {
    let home = Home::new();
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "low",
        "--init",
        "min_confidence=0.05",
    ]);
    home.ok(&["trigger", "create", "all", "--service", "low"]);
    home.ok(&["upload", path(&fixtures().join("images")), "--dataset", "d"]);
    home.ok(&["work", "--until-idle"]);
    home
}

fn close(ours: &Value, theirs: &Value, what: &str) {
    match (ours.as_f64(), theirs.as_f64()) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what}: ours {a}, pycocotools {b}"),
        _ => assert!(
            ours.is_null() && theirs.is_null(),
            "{what}: ours {ours}, pycocotools {theirs}"
        ),
    }
}

#[test]
fn evaluate_gives_pycocotools_numbers_on_the_coco_export() {
    let home = low_threshold_home();
    let truth = fixtures().join(GROUND_TRUTH);
    let ours = home.json(&[
        "evaluate",
        "--dataset",
        "d",
        "--ground-truth",
        path(&truth),
        "--json",
    ]);
    let export = home.path().join("export.json");
    home.ok(&[
        "annotations",
        "export",
        "--dataset",
        "d",
        "--format",
        "coco",
        "--output",
        path(&export),
    ]);
    let venv = venv("pycocotools-venv", &["numpy==2.4.6", "pycocotools==2.0.10"]);
    let out = std::process::Command::new(venv.join("bin/python"))
        .arg(root().join("tests/it/python/cocoeval.py"))
        .arg(&truth)
        .arg(&export)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "pycocotools: {}", stderr(&out));
    let theirs: Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");

    // The export is a COCO dataset pycocotools indexes: every image, box and label.
    let boxes: usize = home
        .export("d")
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["annotations"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(boxes > 1000, "a low threshold finds many boxes: {boxes}");
    assert_eq!(
        theirs["export"],
        json!({"images": 10, "annotations": boxes, "categories": 1})
    );

    assert_eq!(ours["service"], "low");
    assert_eq!(ours["images"], 10);
    assert_eq!(ours["missing"], json!(["not_in_the_dataset.jpg"]));
    close(&ours["map"], &theirs["map"], "mAP@[.5:.95]");
    close(&ours["map50"], &theirs["map50"], "mAP@0.5");
    let labels = ours["labels"].as_array().expect("labels");
    assert_eq!(labels.len(), 2, "{ours:#}");
    for label in labels {
        let name = label["label"].as_str().expect("a label");
        for key in ["ap50", "ap", "precision", "recall"] {
            close(
                &label[key],
                &theirs["labels"][name][key],
                &format!("{name} {key}"),
            );
        }
    }
    // What the numbers are made of: the cat is never found; the face scored on at most 100
    // boxes per photo, its ignore region (the cat's face) counted apart.
    let face = &labels[1];
    assert_eq!(
        (&face["label"], &face["ground_truth"], &face["crowd"]),
        (&json!("face"), &json!(26), &json!(1))
    );
    let scored = face["detections"].as_u64().expect("a count") as usize;
    assert!(scored < boxes && scored <= 1000, "{scored} of {boxes}");
    let map50 = ours["map50"].as_f64().expect("mAP@0.5");
    assert!(map50 > 0.1 && map50 < 0.9, "{map50}");
    assert_eq!(labels[0]["ap50"], 0.0);

    // The table says the same.
    let table = home.ok(&["evaluate", "--dataset", "d", "--ground-truth", path(&truth)]);
    assert!(table.contains(&format!("mAP@0.5 {map50:.3}")), "{table}");
    assert!(
        table.contains("left out: not_in_the_dataset.jpg"),
        "{table}"
    );
}

#[test]
fn evaluate_refuses_ground_truth_it_cannot_score_naming_what_is_wrong() {
    let home = low_threshold_home();
    let good: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join(GROUND_TRUTH)).expect("fixture"))
            .expect("JSON");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        change(&mut v);
        serde_json::to_vec(&v).expect("JSON")
    };
    let file = home.path().join("truth.json");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not a COCO detection file"),
        (
            with(&|v| drop(v.as_object_mut().map(|o| o.remove("images")))),
            "missing field `images`",
        ),
        (
            with(&|v| v["annotations"][0]["image_id"] = json!(5)),
            "annotation 0 is on image 5, which `images` lacks",
        ),
        (
            with(&|v| v["annotations"][3]["category_id"] = json!(9)),
            "annotation 3 has category 9",
        ),
        (
            with(&|v| v["annotations"][1]["bbox"] = json!([1, 2, -3, 4])),
            "annotation 1 has bbox [1.0, 2.0, -3.0, 4.0]",
        ),
        (
            with(&|v| v["annotations"][1]["bbox"] = json!([1, 2, 3])),
            "not a COCO detection file",
        ),
        (
            with(&|v| v["images"][1]["id"] = json!(100)),
            "image id 100 appears twice",
        ),
        (
            with(&|v| v["images"][1]["file_name"] = v["images"][0]["file_name"].clone()),
            "are both named `deface_city.jpg`",
        ),
        (
            with(&|v| v["categories"][1]["name"] = json!("face")),
            "categories 7 and 3 are both named `face`",
        ),
        (
            with(&|v| {
                for image in v["images"].as_array_mut().into_iter().flatten() {
                    image["file_name"] = json!(format!("elsewhere-{}", image["id"]));
                }
            }),
            "--ground-truth names none of dataset `d`'s items",
        ),
    ];
    for (bytes, says) in cases {
        std::fs::write(&file, bytes).expect("written");
        let error = home.fails(&["evaluate", "--dataset", "d", "--ground-truth", path(&file)]);
        assert!(error.contains(says), "{says}: {error}");
    }
    let truth = fixtures().join(GROUND_TRUTH);
    let error = home.fails(&[
        "evaluate",
        "--dataset",
        "nope",
        "--ground-truth",
        path(&truth),
    ]);
    assert!(error.contains("nope"), "{error}");
    let error = home.fails(&[
        "evaluate",
        "--dataset",
        "d",
        "--ground-truth",
        path(&truth),
        "--service",
        "ghost",
    ]);
    assert!(error.contains("ghost"), "{error}");
    // Two services' boxes on the dataset: which one is for the user to say.
    home.ok(&["service", "deploy", "face-detector", "--name", "other"]);
    let items = home.json(&["items", "list", "--dataset", "d", "--json"]);
    let item = items
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["name"] == "skimage_astronaut.png")
        .map(|i| i["id"].to_string())
        .next()
        .expect("the astronaut");
    home.ok(&["execute", "other", "--item", &item]);
    let error = home.fails(&["evaluate", "--dataset", "d", "--ground-truth", path(&truth)]);
    assert!(
        error.contains("holds annotations of low, other: name one"),
        "{error}"
    );
    home.ok(&[
        "evaluate",
        "--dataset",
        "d",
        "--ground-truth",
        path(&truth),
        "--service",
        "other",
    ]);
}
