//! Provenance: every annotation names what made it (component and artifact digests, init
//! values, host version) in Prelabel's JSON and in COCO, and `prelabel replay` runs an
//! execution again, storing nothing, to the byte.

use crate::support::*;
use serde_json::Value;

fn is_sha256(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn exports_name_what_made_each_annotation() {
    let home = Home::new();
    home.seed_flow(&[]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "face-detector",
        "--init",
        "min_confidence=0.6",
    ]);
    home.ok(&[
        "upload",
        path(&fixtures().join("images/mosaic_2x2.png")),
        "--dataset",
        "d",
    ]);
    home.ok(&["work", "--until-idle"]);

    let export = home.export("d");
    let annotations = export[0]["annotations"].as_array().expect("annotations");
    assert_eq!(annotations.len(), 3);
    for a in annotations {
        assert_eq!(a["package"], "face-detector");
        assert!(is_sha256(&a["component_digest"]), "{a}");
        assert!(is_sha256(&a["artifacts"]["res10_300x300_ssd.onnx"]), "{a}");
        assert_eq!(a["init_inputs"]["min_confidence"], 0.6, "{a}");
        assert_eq!(a["init_inputs"]["model_filename"], "res10_300x300_ssd.onnx");
        assert_eq!(a["host_version"], env!("CARGO_PKG_VERSION"));
    }
    let coco = home.json(&[
        "annotations",
        "export",
        "--dataset",
        "d",
        "--format",
        "coco",
    ]);
    for a in coco["annotations"].as_array().expect("annotations") {
        let p = &a["attributes"]["prelabel"];
        assert_eq!(p["package"], "face-detector", "{a}");
        assert!(is_sha256(&p["component_digest"]), "{a}");
        assert!(is_sha256(&p["artifacts"]["res10_300x300_ssd.onnx"]), "{a}");
        assert_eq!(p["init_inputs"]["min_confidence"], 0.6, "{a}");
        assert_eq!(a["attributes"]["review"], "pending");
    }
    // A box a person drew has no provenance to carry.
    let item = export[0]["item"]["id"]
        .as_i64()
        .expect("item id")
        .to_string();
    home.ok(&[
        "annotations",
        "add",
        "--item",
        &item,
        "--label",
        "face",
        "--box",
        "1,1,20,20",
    ]);
    let drawn = home.export("d")[0]["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .find(|a| a["review"] == "manual")
        .cloned()
        .expect("the drawn box");
    assert!(
        drawn.get("artifacts").is_none() && drawn.get("init_inputs").is_none(),
        "{drawn}"
    );
}

#[test]
fn replay_runs_an_execution_again_to_the_byte_for_both_detectors() {
    let home = Home::new();
    centerface();
    home.seed_flow(&[]);
    home.ok(&["package", "push", path(&centerface_dir())]);
    home.ok(&[
        "service",
        "deploy",
        "centerface",
        "--name",
        "cf",
        "--init",
        "landmarks=true",
    ]);
    home.ok(&["trigger", "create", "cf", "--service", "cf"]);
    let images = fixtures().join("images");
    for name in ["deface_city.jpg", "mosaic_row.png"] {
        home.ok(&["upload", path(&images.join(name)), "--dataset", "d"]);
    }
    home.ok(&["work", "--until-idle"]);
    let executions = home.executions();
    assert_eq!(status_count(&executions, "success"), 4, "{executions:#?}");
    for e in &executions {
        let id = e["id"].as_i64().expect("id").to_string();
        let replay = home.json(&["replay", &id]);
        assert_eq!(replay["identical"], true, "{replay}");
        assert_eq!(replay["recorded"], replay["replayed"]);
        assert_eq!(replay["recorded_by"], env!("CARGO_PKG_VERSION"));
    }
    // Replays store nothing.
    assert_eq!(home.executions().len(), 4);

    // A person's review changes the stored annotations, not what the execution returned.
    let export = home.export("d");
    let box_id = export[0]["annotations"][0]["id"]
        .as_i64()
        .expect("id")
        .to_string();
    home.ok(&["annotations", "review", &box_id, "--box", "1,1,30,30"]);
    let id = executions[0]["id"].as_i64().expect("id").to_string();
    assert_eq!(home.json(&["replay", &id])["identical"], true);
}

#[test]
fn what_cannot_be_replayed_is_named() {
    let home = Home::new();
    home.seed_flow(&[]);
    // A file that is no image: the execution fails, so there is no result to compare.
    let text = home.path().join("notes.txt");
    std::fs::write(&text, "not an image").expect("write");
    home.ok(&["upload", path(&text), "--dataset", "d"]);
    let out = home.run(&["execute", "face-detector", "--item", "1"]);
    assert!(!out.status.success(), "a text file fails");
    let err = home.fails(&["replay", "1"]);
    assert!(
        err.contains("execution 1 cannot be replayed: it has no recorded result"),
        "{err}"
    );
    let err = home.fails(&["replay", "99"]);
    assert!(err.contains("no execution with id 99"), "{err}");
}
