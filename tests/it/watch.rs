//! `prelabel watch`: a package folder kept live on a service. Edits rebuild, push and swap;
//! a build that changes nothing pushes nothing; a failing build, a refused component and a
//! broken manifest each leave the service on its revision and say why.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;

/// The face detector's package with its component and model inside the folder, built by
/// `sh build.sh`.
fn package(dir: &Path) {
    face_detector_package(dir, |manifest| {
        manifest.replacen("\n[", "\nbuild = [\"sh\", \"build.sh\"]\n\n[", 1)
    });
    std::fs::create_dir_all(dir.join("src")).expect("a folder");
    builds(dir, good_build());
    std::fs::write(dir.join("src/detector.rs"), "// v1\n").expect("a source");
}

fn good_build() -> String {
    let built = root().join("target/wasm32-wasip2/release/face_detector.wasm");
    format!(
        "mkdir -p out && cp '{}' out/component.wasm\n",
        built.display()
    )
}

fn builds(dir: &Path, script: impl AsRef<[u8]>) {
    std::fs::write(dir.join("build.sh"), script).expect("the build script");
}

/// The watch's next report line (build output goes to stderr in these scripts).
fn next(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(300))
        .expect("watch reports within five minutes")
}

#[test]
fn watch_rebuilds_pushes_and_swaps_and_failures_keep_the_revision_serving() {
    let home = Home::new();
    let dir = home.path().join("pkg");
    package(&dir);
    let mut child = command(home.path())
        .args([
            "watch",
            path(&dir),
            "--service",
            "faces",
            "--interval-ms",
            "100",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("watch starts");
    let (send, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    let revision = || {
        home.json(&["service", "show", "faces"])["revision"]
            .as_i64()
            .expect("a revision")
    };
    assert!(next(&lines).starts_with("watching"));

    let said = next(&lines);
    assert!(
        said.contains("built with `sh build.sh`")
            && said.ends_with("pushed face-detector revision 1; service faces created with it"),
        "{said}"
    );
    assert_eq!(revision(), 1);

    // A source edit whose build makes the same component: nothing pushed.
    std::fs::write(dir.join("src/detector.rs"), "// v2, a comment\n").expect("an edit");
    let said = next(&lines);
    assert!(
        said.ends_with("unchanged: service faces runs face-detector revision 1 already"),
        "{said}"
    );

    // A build that fails: the service keeps its revision.
    builds(&dir, "echo 'error[E0308]: mismatched types' >&2\nexit 3\n");
    let said = next(&lines);
    assert_eq!(
        said,
        "build failed: `sh build.sh`: exit status: 3; service faces keeps face-detector revision 1"
    );
    // A build that makes something that is no component: refused by the push's checks.
    builds(
        &dir,
        "mkdir -p out && printf 'not wasm' > out/component.wasm\n",
    );
    let said = next(&lines);
    assert!(
        said.starts_with("refused: ")
            && said.contains("component")
            && said.ends_with("service faces keeps face-detector revision 1"),
        "{said}"
    );
    // A manifest that does not parse.
    let manifest = std::fs::read_to_string(dir.join("prelabel.toml")).expect("manifest");
    std::fs::write(dir.join("prelabel.toml"), format!("bogus = 1\n{manifest}")).expect("edit");
    let said = next(&lines);
    assert!(
        said.starts_with("refused: ")
            && said.contains("unknown field `bogus`")
            && said.ends_with("keeps face-detector revision 1"),
        "{said}"
    );
    assert_eq!(revision(), 1);

    // Mended, as a new version: pushed and swapped in.
    builds(&dir, good_build());
    std::fs::write(
        dir.join("prelabel.toml"),
        manifest.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1),
    )
    .expect("edit");
    let said = next(&lines);
    assert!(
        said.ends_with(
            "pushed face-detector revision 2; service faces switched from face-detector revision 1 to it"
        ),
        "{said}"
    );
    assert_eq!(revision(), 2);
    let revisions = home.ok(&["package", "show", "face-detector"]);
    assert!(
        revisions.contains("face-detector revision 2 (version 0.2.0)"),
        "{revisions}"
    );
    assert_eq!(
        revisions.matches("face-detector revision").count(),
        2,
        "refused builds stored no revision: {revisions}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_cargo_crate_is_built_with_cargo() {
    let home = Home::new();
    let mut child = command(home.path())
        .args(["watch", path(&face_detector_dir()), "--service", "s"])
        .arg("--root")
        .arg(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("watch starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let said: Vec<String> = stdout.lines().map_while(Result::ok).take(2).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said[1].starts_with("built with `cargo build --release --target wasm32-wasip2` in ")
            && said[1].ends_with("pushed face-detector revision 1; service s created with it"),
        "{said:?}"
    );
}
