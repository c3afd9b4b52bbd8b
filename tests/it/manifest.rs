//! Manifest fixtures as files: every `tests/fixtures/manifests/*.toml` parses, and every
//! `bad/*.toml` is refused with the message its first line (`# error: ...`) names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use prelabel::package::manifest::{InitError, InputType, InputValue, Manifest};

fn dir() -> PathBuf {
    crate::support::fixtures().join("manifests")
}

#[test]
fn good_manifests_parse() {
    let files = crate::support::toml_files(&dir());
    assert!(files.len() >= 2);
    for path in files {
        Manifest::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn the_shipped_face_detector_manifest_parses() {
    let m = Manifest::from_file(&dir().join("../../../guest/face-detector/prelabel.toml"))
        .expect("parses");
    assert_eq!(m.name, "face-detector");
    assert_eq!(
        m.defaults().get("min_confidence"),
        Some(&InputValue::Float(0.5))
    );
}

#[test]
fn bad_manifests_are_refused_naming_the_problem() {
    crate::support::refused_as_their_first_lines_say(&dir().join("bad"), 10, Manifest::from_file);
}

#[test]
fn init_values_are_resolved_against_declarations() {
    let m = Manifest::from_file(&dir().join("maximal.toml")).expect("parses");
    assert_eq!(m.module.labels, ["face"]);
    // api_label has no default.
    assert_eq!(
        m.resolve_init(&BTreeMap::new()),
        Err(InitError::Missing {
            name: "api_label".into(),
            ty: InputType::String
        })
    );
    let given = m
        .parse_init_args(&[
            "api_label=face".into(),
            "min_confidence=0.25".into(),
            "debug=true".into(),
            "api_key=remote-key".into(),
        ])
        .expect("parses");
    let values = m.resolve_init(&given).expect("resolves");
    // A secret input's value is the name of a stored secret, read only for `init`.
    let secrets: Vec<&str> = m.secrets().map(|i| i.name.as_str()).collect();
    assert_eq!(secrets, ["api_key"]);
    assert_eq!(values["api_key"], InputValue::String("remote-key".into()));
    assert_eq!(values["min_confidence"], InputValue::Float(0.25));
    assert_eq!(values["max_faces"], InputValue::Integer(50));
    assert_eq!(values["debug"], InputValue::Boolean(true));
    assert_eq!(
        values["model_filename"],
        InputValue::String("res10_300x300_ssd.onnx".into())
    );

    let err = m.parse_init_args(&["max_faces=many".into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "init input `max_faces`: expected an integer, got `many`"
    );
    let err = m
        .resolve_init(&BTreeMap::from([(
            "nope".to_string(),
            InputValue::Boolean(true),
        )]))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("unknown init input `nope` (the module declares: "),
        "{err}"
    );
    let err = m
        .resolve_init(&BTreeMap::from([(
            "debug".to_string(),
            InputValue::Integer(1),
        )]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "init input `debug`: expected a boolean, got 1"
    );
}
