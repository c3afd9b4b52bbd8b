//! Shared by the integration tests: the real `prelabel` binary, the built face-detector
//! package, and the seed's reference detections.

#![allow(dead_code)]

pub mod attacks;
pub mod graphs;
pub mod postgres;
pub mod s3;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// The `.toml` files of a fixture folder, sorted.
pub fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Every file of `dir` (at least `at_least` of them) is refused by `read` with an error that
/// names the file and contains what its first line (`# error: ...`) says.
pub fn refused_as_their_first_lines_say<T, E: std::fmt::Display>(
    dir: &Path,
    at_least: usize,
    read: impl Fn(&Path) -> Result<T, E>,
) {
    let files = toml_files(dir);
    assert!(
        files.len() >= at_least,
        "{} has {} files",
        dir.display(),
        files.len()
    );
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .expect("first line names the error");
        let Err(err) = read(&path) else {
            panic!("{} was accepted", path.display());
        };
        let err = err.to_string();
        assert!(
            err.contains(expected),
            "{}: expected `{expected}` in `{err}`",
            path.display()
        );
        assert!(
            err.contains(path.file_name().and_then(|n| n.to_str()).expect("name")),
            "{err} names the file"
        );
    }
}

pub fn face_detector_dir() -> PathBuf {
    root().join("guest/face-detector")
}

/// Compiled components are shared by all tests so that each is compiled once.
fn cache_dir() -> PathBuf {
    root().join("target/test-cache/components")
}

/// Builds the face-detector component (once per test binary) and warms the compile cache.
pub fn face_detector() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| build_and_warm("face-detector", &face_detector_dir()));
    face_detector_dir()
}

pub fn anonymizer_dir() -> PathBuf {
    root().join("guest/anonymizer")
}

/// Builds the anonymizer component (once per test binary) and warms the compile cache.
pub fn anonymizer() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| build_and_warm("anonymizer", &anonymizer_dir()));
    anonymizer_dir()
}

pub fn centerface_dir() -> PathBuf {
    root().join("guest/centerface")
}

/// Builds the CenterFace component (once per test binary) and warms the compile cache.
pub fn centerface() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| build_and_warm("centerface", &centerface_dir()));
    centerface_dir()
}

/// Builds a guest package's component and runs it once, so that its compiled form is in the
/// shared cache before tests run it side by side.
fn build_and_warm(package: &str, dir: &Path) {
    prelabel::package::workspace::Workspace::find()
        .expect("source checkout")
        .build_guest(package)
        .unwrap_or_else(|e| panic!("{package} builds: {e}"));
    let home = tempdir();
    let out = prelabel(
        home.path(),
        &[
            "detect",
            path(dir),
            path(&fixtures().join("images/skimage_camera.png")),
        ],
    );
    assert!(
        out.status.success(),
        "warm-up detect of {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory under cargo's target tmp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The password [`Home::account`] gives every account.
pub const PASSWORD: &str = "long enough password";

pub fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("prelabel-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    TempDir(dir)
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The real binary with a home of its own and the shared compile cache. The checkout is
/// the package root: the repository's packages name files in its `target/` and `models/`.
pub fn command(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prelabel"));
    command
        .env("PRELABEL_HOME", home)
        .env("PRELABEL_CACHE_DIR", cache_dir())
        .env("PRELABEL_PACKAGE_ROOT", root())
        // `prelabel serve` listens on a free port: many run at once.
        .env("PRELABEL_ADDR", "127.0.0.1:0")
        // Python packages' builds share one componentize-py.
        .env("PRELABEL_PYTHON_VENV", python_tool_venv())
        // ONNX Runtime from PyPI, as a user gets it: `auto` takes it, `--inference-engine`
        // chooses (tests that need it absent say so).
        .env("ORT_DYLIB_PATH", onnxruntime_library());
    if postgres::enabled() {
        command.env("PRELABEL_STORE", postgres::database_for(home));
    } else {
        command.env_remove("PRELABEL_STORE");
    }
    command
}

/// Runs the real binary (see [`command`]).
pub fn prelabel(home: &Path, args: &[&str]) -> Output {
    command(home).args(args).output().expect("prelabel runs")
}

/// Installs Debian packages with apt, for a test that needs them where they are missing (CI
/// and a fresh machine run the README's test command as root; elsewhere the failure says what
/// to install).
pub fn apt_install(packages: &[&str], needed_for: &str) {
    let install = format!(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends {}",
        packages.join(" ")
    );
    let out = Command::new("sh").args(["-c", &install]).output();
    let ok = out.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{needed_for} needs Debian's {}; installing it failed (run as root, or install it \
         yourself): {:?}",
        packages.join(", "),
        out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
}

/// What the host process tree may hold over an instance's memory cap (docs/guarantees.md):
/// the host's own code and state, the inference worker's headroom, and one crossing of data
/// from the guest in flight.
pub const MARGIN: u64 = 256 << 20;

/// Runs a command to its end and returns its output and the peak resident memory, in bytes,
/// of its whole process tree (it and every descendant, its inference workers): sampled every
/// few milliseconds, and never less than the peak the kernel kept for the process itself.
pub fn run_measured(mut command: Command) -> (Output, u64) {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let (mut out, mut err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = err.read_to_end(&mut bytes);
        bytes
    });
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let sampled = std::sync::Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, sampled, pid) = (done.clone(), sampled.clone(), child.id());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                sampled.fetch_max(tree_rss(pid), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let mut stdout = Vec::new();
    let _ = out.read_to_end(&mut stdout);
    let stderr = reader.join().expect("stderr reader");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, once (std's handle is not waited on afterwards).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4");
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler");
    std::mem::forget(child);
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    // ru_maxrss is in KiB on Linux.
    let own = usage.ru_maxrss as u64 * 1024;
    (
        Output {
            status,
            stdout,
            stderr,
        },
        own.max(sampled.load(Ordering::Relaxed)),
    )
}

/// The resident memory of process `pid` and all its descendants now, in bytes.
fn tree_rss(pid: u32) -> u64 {
    let page = 4096;
    let mut total = 0;
    let mut pending = vec![pid];
    while let Some(pid) = pending.pop() {
        let resident = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        total += resident * page;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            pending.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    total
}

/// Fails when a process tree's peak resident memory passed an instance's cap of `cap_mb`
/// MiB plus [`MARGIN`].
pub fn assert_under_cap(what: &str, peak: u64, cap_mb: u64) {
    assert_within(what, peak, cap_mb, MARGIN);
}

/// [`assert_under_cap`] with a margin of its own, for the attacks that held a tighter one.
pub fn assert_within(what: &str, peak: u64, cap_mb: u64, margin: u64) {
    eprintln!(
        "{what}: peak RSS of the host and its workers {} MiB",
        peak >> 20
    );
    assert!(
        peak <= (cap_mb << 20) + margin,
        "{what}: the host and its workers held {} MiB, over the cap ({cap_mb} MiB) plus the margin ({} MiB)",
        peak >> 20,
        margin >> 20
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A reference detection, clipped to the image like Prelabel's box policy.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    pub bbox: [f32; 4],
    pub confidence: f32,
}

/// The seed's OpenCV detections for an image, after Prelabel's clip-and-drop policy.
pub fn reference(image: &str) -> Vec<Reference> {
    reference_in("res10_opencv", image)
}

/// A reference pipeline's detections (`tests/fixtures/reference/FOLDER`) for an image, after
/// Prelabel's clip-and-drop policy.
pub fn reference_in(folder: &str, image: &str) -> Vec<Reference> {
    let stem = image.rsplit_once('.').map_or(image, |(s, _)| s);
    let path = fixtures().join(format!("reference/{folder}/{stem}.json"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("reference")).expect("json");
    let (w, h) = (
        json["width"].as_f64().expect("width") as f32,
        json["height"].as_f64().expect("height") as f32,
    );
    json["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .filter_map(|d| {
            let b: Vec<f32> = d["box"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_f64())
                .map(|v| v as f32)
                .collect();
            let bbox = [
                b[0].clamp(0.0, w),
                b[1].clamp(0.0, h),
                b[2].clamp(0.0, w),
                b[3].clamp(0.0, h),
            ];
            ((bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) >= 1.0).then_some(Reference {
                bbox,
                confidence: d["confidence"].as_f64()? as f32,
            })
        })
        .collect()
}

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

/// Asserts that detections match the seed: same count, each IoU >= 0.95 with its
/// reference (matched greedily by IoU) and confidence within 0.02.
pub fn assert_matches_seed(image: &str, got: &[([f32; 4], f32)]) {
    assert_matches(image, got, &reference(image), 0.95);
}

/// Asserts that detections match `want`: same count, each IoU >= `min_iou` with its reference
/// (matched greedily by IoU) and confidence within 0.02.
pub fn assert_matches(image: &str, got: &[([f32; 4], f32)], want: &[Reference], min_iou: f32) {
    assert_eq!(got.len(), want.len(), "{image}: got {got:?}, want {want:?}");
    let mut used = vec![false; got.len()];
    for r in want {
        let (best, score) = got
            .iter()
            .enumerate()
            .filter(|(i, _)| !used[*i])
            .map(|(i, g)| (i, iou(&g.0, &r.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("a detection left to match");
        used[best] = true;
        assert!(
            score >= min_iou,
            "{image}: best IoU {score} for reference {r:?} (got {got:?})"
        );
        let confidence = got[best].1;
        assert!(
            (confidence - r.confidence).abs() <= 0.02,
            "{image}: confidence {confidence} vs reference {}",
            r.confidence
        );
    }
}

/// A Prelabel home for one test, driven through the real binary.
pub struct Home {
    dir: TempDir,
}

impl Home {
    pub fn new() -> Self {
        face_detector();
        Self { dir: tempdir() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        prelabel(self.path(), args)
    }

    /// Runs SQL on the home's database behind the binary's back (to damage it, say): `sqlite`
    /// on the embedded store, `postgres` when the tests run on PostgreSQL.
    pub fn sql(&self, sqlite: &str, postgres: &str) {
        if postgres::enabled() {
            postgres::execute(self.path(), postgres);
        } else {
            rusqlite::Connection::open(self.path().join("prelabel.db"))
                .and_then(|db| db.execute_batch(sqlite))
                .expect("the statements run");
        }
    }

    /// `prelabel work --until-idle`, asserted to succeed, its whole process tree held under
    /// the caps of every instance the scheduler may run at once plus [`MARGIN`].
    pub fn work_measured(&self, what: &str) {
        let mut work = command(self.path());
        work.args(["work", "--until-idle"]);
        let (out, peak) = run_measured(work);
        assert!(out.status.success(), "work: {}", stderr(&out));
        let caps = self.count(
            "SELECT CAST(COALESCE(SUM(memory_mb * concurrency), 0) AS BIGINT) FROM services",
        );
        assert_under_cap(what, peak, caps as u64);
    }

    /// A number that `sql` selects from the home's database, behind the binary's back.
    pub fn count(&self, sql: &str) -> i64 {
        if postgres::enabled() {
            postgres::count(self.path(), sql)
        } else {
            rusqlite::Connection::open(self.path().join("prelabel.db"))
                .and_then(|db| db.query_row(sql, [], |r| r.get(0)))
                .expect("the query runs")
        }
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "prelabel {args:?} failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Runs, asserts failure, and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "prelabel {args:?} succeeded:\n{}",
            stdout(&out)
        );
        stderr(&out)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    /// A `prelabel` process left running (serve), with the shared compile cache.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        command(self.path())
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("prelabel starts")
    }

    /// Account `name` with `role` and the password [`PASSWORD`], and an API token of it (its
    /// secret returned).
    pub fn account(&self, name: &str, role: &str) -> String {
        let out = command(self.path())
            .args(["user", "add", name, "--role", role, "--password-env", "PW"])
            .env("PW", PASSWORD)
            .output()
            .expect("prelabel runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let made = self.json(&["user", "token", name, "--name", "t"]);
        made["secret"].as_str().expect("a secret").to_string()
    }

    /// Reviewers `names` (accounts granted `photos`, their token secrets returned) and task
    /// `faces` over `photos`, assigned to them.
    pub fn reviewers_on_faces(&self, names: &[&str]) -> Vec<String> {
        let secrets = names
            .iter()
            .map(|name| {
                let secret = self.account(name, "reviewer");
                self.ok(&["user", "grant", name, "photos"]);
                secret
            })
            .collect();
        let mut args = vec!["task", "create", "faces", "--dataset", "photos"];
        for name in names {
            args.extend(["--assign", name]);
        }
        self.ok(&args);
        secrets
    }

    /// The face detector pushed and deployed as service `face-detector`, with its defaults
    /// (what the pipeline fixtures' function nodes name).
    pub fn deploy_face_detector(&self) {
        self.ok(&["package", "push", path(&face_detector_dir())]);
        self.ok(&[
            "service",
            "deploy",
            "face-detector",
            "--name",
            "face-detector",
        ]);
    }

    /// Prelabel's JSON export of a dataset: one `{item, annotations}` per item.
    pub fn export(&self, dataset: &str) -> serde_json::Value {
        self.json(&[
            "annotations",
            "export",
            "--dataset",
            dataset,
            "--format",
            "json",
        ])
    }

    pub fn executions(&self) -> Vec<serde_json::Value> {
        self.json(&["executions", "list", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (bounded) until `done` holds for the executions; panics after `secs`.
    pub fn wait_for(
        &self,
        secs: u64,
        what: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let all = self.executions();
            if done(&all) {
                return all;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {all:#?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Pushes face-detector, deploys it as `face-detector` and creates an image trigger.
    pub fn seed_flow(&self, trigger_args: &[&str]) {
        self.ok(&["package", "push", path(&face_detector_dir())]);
        self.ok(&[
            "service",
            "deploy",
            "face-detector",
            "--name",
            "face-detector",
        ]);
        let mut args = vec![
            "trigger",
            "create",
            "faces",
            "--service",
            "face-detector",
            "--filter",
            "metadata.system.mimetype=image/*",
        ];
        args.extend_from_slice(trigger_args);
        self.ok(&args);
    }
}

/// Waits (bounded) for a child to exit; panics naming `what` after `secs`.
pub fn wait_exit(
    child: &mut std::process::Child,
    secs: u64,
    what: &str,
) -> std::process::ExitStatus {
    exited_within(child, secs).unwrap_or_else(|| panic!("{what} did not exit within {secs} s"))
}

/// Waits for a child to exit for at most `secs`: its status, or `None` if it still runs.
pub fn exited_within(
    child: &mut std::process::Child,
    secs: u64,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Sends SIGINT (Ctrl-C) to a child and waits for it to exit, bounded.
pub fn interrupt(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    // SAFETY: signals our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    wait_exit(child, secs, "a process sent Ctrl-C")
}

/// Asserts that executions (in queue order) switched revision once, from the first, and that
/// every item ran exactly once: what a deploy while busy must leave.
pub fn assert_switched_once(all: &[serde_json::Value], items: usize) {
    let revisions: Vec<i64> = all
        .iter()
        .map(|e| e["revision_id"].as_i64().expect("revision"))
        .collect();
    let switch = revisions
        .iter()
        .position(|&r| r != revisions[0])
        .unwrap_or_else(|| panic!("later executions ran on the new revision: {revisions:?}"));
    assert!(
        revisions[switch..].iter().all(|&r| r != revisions[0]),
        "once switched, nothing ran on the old revision: {revisions:?}"
    );
    let ran: std::collections::BTreeSet<i64> = all
        .iter()
        .map(|e| e["item_id"].as_i64().expect("item"))
        .collect();
    assert_eq!(ran.len(), items, "every item ran exactly once");
    assert_eq!(all.len(), items, "every item ran exactly once");
}

pub fn status_count(executions: &[serde_json::Value], status: &str) -> usize {
    executions.iter().filter(|e| e["status"] == status).count()
}

/// `../` as many times as `dir` (a temporary folder) is deep inside the checkout.
pub fn up_to_root(dir: &Path) -> String {
    let root = root().canonicalize().expect("root");
    let depth = dir
        .canonicalize()
        .expect("temp dir")
        .strip_prefix(&root)
        .expect("temp dirs are inside the checkout")
        .components()
        .count();
    "../".repeat(depth)
}

/// A copy of the face-detector package whose manifest is changed by `edit`, in a temporary
/// folder of the checkout (its paths still lead to the checkout's `target/` and `models/`).
pub fn package_variant(edit: impl Fn(String) -> String) -> TempDir {
    let dir = tempdir();
    let up = up_to_root(dir.path());
    let manifest = std::fs::read_to_string(face_detector_dir().join("prelabel.toml"))
        .expect("manifest")
        .replace("../../target", &format!("{up}target"))
        .replace("../../models", &format!("{up}models"));
    std::fs::write(dir.path().join("prelabel.toml"), edit(manifest)).expect("write manifest");
    dir
}

/// Builds the hostile test guest (once per test binary) and returns its package directory.
pub fn hostile_guest() -> PathBuf {
    static BUILD: Once = Once::new();
    build_once(&BUILD, "hostile-guest");
    root().join("tests/guests/hostile")
}

/// Builds the hostile transformer (once per test binary) and returns its package directory.
pub fn hostile_maker() -> PathBuf {
    static BUILD: Once = Once::new();
    build_once(&BUILD, "hostile-maker");
    root().join("tests/guests/hostile-maker")
}

/// Builds guest crate `name` for wasm, once per test binary.
fn build_once(once: &Once, name: &str) {
    once.call_once(|| {
        prelabel::package::workspace::Workspace::find()
            .expect("source checkout")
            .build_guest(name)
            .unwrap_or_else(|e| panic!("{name} builds: {e}"));
    });
}

/// Where Python packages' builds install componentize-py (once for all tests).
pub fn python_tool_venv() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("componentize-py")
}

/// Runs a Python package's `build` (componentize-py) as `prelabel package push` would, in
/// the tests' own componentize-py virtualenv (made here, with Debian's python3-venv
/// installed first if `venv` is missing).
pub fn build_python(dir: &Path) {
    let made = venv("componentize-py", &["componentize-py==0.25.1"]);
    assert_eq!(made, python_tool_venv());
    let mut build =
        prelabel::package::build::command(dir, prelabel::package::build::Fallback::Nothing)
            .expect("the manifest reads")
            .expect("a Python package has a build");
    let out = build
        .env("PRELABEL_PYTHON_VENV", python_tool_venv())
        .output()
        .expect("the build starts");
    assert!(
        out.status.success(),
        "building {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python face detector (`guest/python-face-detector`), built once per test binary and
/// run once so that its compiled form is in the shared cache.
pub fn python_face_detector() -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = root().join("guest/python-face-detector");
    BUILD.call_once(|| {
        build_python(&dir);
        let home = tempdir();
        let out = prelabel(
            home.path(),
            &[
                "detect",
                path(&dir),
                path(&fixtures().join("images/skimage_camera.png")),
                "--allow-inference",
                "--no-build",
            ],
        );
        assert!(
            out.status.success(),
            "warm-up detect of the Python face detector failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    dir
}

/// The hostile Python guest (`tests/guests/hostile-python`), built once per test binary.
pub fn hostile_python() -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = root().join("tests/guests/hostile-python");
    BUILD.call_once(|| build_python(&dir));
    dir
}

/// Builds the remote-detector component (once per test binary); its package folder.
pub fn remote_detector() -> PathBuf {
    static BUILD: Once = Once::new();
    build_once(&BUILD, "remote-detector");
    root().join("guest/remote-detector")
}

/// The remote-detector package in `dir`, allowed to call `origin` only.
pub fn remote_detector_package(dir: &Path, origin: &str) {
    remote_detector();
    std::fs::create_dir_all(dir).expect("a folder");
    std::fs::copy(
        root().join("target/wasm32-wasip2/release/remote_detector.wasm"),
        dir.join("component.wasm"),
    )
    .expect("the component");
    let manifest = std::fs::read_to_string(root().join("guest/remote-detector/prelabel.toml"))
        .expect("the manifest")
        .replace(
            "../../target/wasm32-wasip2/release/remote_detector.wasm",
            "component.wasm",
        )
        .replace("\"http://127.0.0.1:9000\"", &format!("{origin:?}"))
        .replace(
            "\"http://127.0.0.1:9000/detect\"",
            &format!("\"{origin}/detect\""),
        );
    std::fs::write(dir.join("prelabel.toml"), manifest).expect("the manifest");
}

/// Pushes the hostile package in `package` and deploys it as `service` with a 2 s timeout,
/// 256 MiB and `extra` flags.
pub fn deploy_hostile_package(home: &Home, package: &Path, service: &str, extra: &[&str]) {
    home.ok(&["package", "push", path(package), "--no-build"]);
    let mut args = vec![
        "service",
        "deploy",
        "hostile",
        "--name",
        service,
        "--timeout",
        "2",
        "--memory-mb",
        "256",
    ];
    args.extend_from_slice(extra);
    home.ok(&args);
}

/// `prelabel detect ... --format json` in a home of its own, asserted to succeed: one result
/// per image.
pub fn detect_results(args: &[&str]) -> Vec<serde_json::Value> {
    let home = tempdir();
    let out = prelabel(home.path(), args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    json.as_array().expect("one result per image").clone()
}

/// Uploads one 10x10 PNG per name to dataset `d` and runs the queue; returns the executions
/// by item name (a hostile guest does what the name says).
pub fn run_items(
    home: &Home,
    names: &[&str],
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let dir = tempdir();
    for name in names {
        std::fs::write(dir.path().join(name), png(10, 10)).expect("write item");
    }
    home.ok(&["upload", path(dir.path()), "--dataset", "d"]);
    home.work_measured(&format!("{names:?}"));
    home.executions()
        .into_iter()
        .map(|e| (e["item"].as_str().expect("item").to_string(), e))
        .collect()
}

/// The execution of item `name` ended `status`, its error containing `error`.
pub fn assert_outcome(
    by_item: &std::collections::BTreeMap<String, serde_json::Value>,
    name: &str,
    status: &str,
    error: &str,
) {
    let e = &by_item[name];
    assert_eq!(e["status"], status, "{name}: {e:#}");
    let text = e["error"].as_str().unwrap_or_default();
    assert!(
        text.contains(error),
        "{name}: expected `{error}` in `{text}`"
    );
}

/// A small PNG, so that items have a known size.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_rgb8(width, height)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// (box, confidence) of each annotation of a result or an exported item (all boxes).
pub fn boxes(entry: &serde_json::Value) -> Vec<([f32; 4], f32)> {
    entry["annotations"]
        .as_array()
        .expect("annotations")
        .iter()
        .map(|a| {
            let g = &a["geometry"];
            assert_eq!(g["type"], "box");
            let f = |k: &str| g[k].as_f64().expect("coordinate") as f32;
            (
                [f("left"), f("top"), f("right"), f("bottom")],
                a["model"]["confidence"].as_f64().expect("confidence") as f32,
            )
        })
        .collect()
}

/// The ONNX Runtime version the tests install (the C API `ort` 2.0.0-rc.10 speaks).
pub const ONNXRUNTIME: &str = "1.22.1";

/// ONNX Runtime's library from the PyPI wheel, in a virtualenv of the tests' own (the library
/// alone: its Python dependencies are not needed to load it).
pub fn onnxruntime_library() -> PathBuf {
    static LIBRARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let requirement = format!("onnxruntime=={ONNXRUNTIME}");
            let venv = venv("onnxruntime-venv", &["--no-deps", &requirement]);
            let pattern = venv.join(format!(
                "lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME}"
            ));
            glob::glob(path(&pattern))
                .expect("a pattern")
                .flatten()
                .next()
                .unwrap_or_else(|| panic!("no {} after pip install", pattern.display()))
        })
        .clone()
}

/// A Python virtualenv under the target directory with `requirements` installed from PyPI,
/// made once (a stamp names what it holds); Debian's `python3-venv` is installed first when
/// `venv` is missing, so that a clean machine needs no step by hand.
pub fn venv(name: &str, requirements: &[&str]) -> PathBuf {
    // Tests run in parallel: one makes a venv while the others wait for it.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let stamp = venv.join(format!("installed-{}", requirements.join(" ")));
    if stamp.exists() {
        return venv;
    }
    let run = |what: &str, command: &mut Command| {
        let out = command.output();
        let ok = out.as_ref().is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "{what} failed: {}",
            out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_else(|e| e.to_string())
        );
    };
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .is_ok_and(|o| o.status.success());
    if !made {
        apt_install(&["python3-venv"], "making a Python virtualenv");
        let _ = std::fs::remove_dir_all(&venv);
        run(
            "python3 -m venv",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        );
    }
    run(
        &format!("pip install {}", requirements.join(" ")),
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(requirements),
    );
    std::fs::write(&stamp, "").expect("the stamp");
    venv
}

/// NudeNet 3.4.2's bundled detector (a YOLOv8n export, dynamic sizes, 18 classes named in its
/// metadata), from its wheel on PyPI as a user gets it.
pub fn nudenet_model() -> PathBuf {
    let venv = venv("nudenet-venv", &["--no-deps", "nudenet==3.4.2"]);
    let pattern = venv.join("lib/python3*/site-packages/nudenet/320n.onnx");
    glob::glob(path(&pattern))
        .expect("a pattern")
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("no {} after pip install", pattern.display()))
}

/// `prelabel new onnx nudenet` in `dir` as NudeNet's own pipeline runs its model (read from
/// its code): padded right and below to a square with black, resized, values over 255, BGR
/// (its RGBA2BGR on a 3-channel image swaps to RGB, then blobFromImage swaps back), one NMS
/// over all classes at 0.45, scores from 0.25. What `new` said, and the package.
pub fn nudenet_package(dir: &Path) -> (String, PathBuf) {
    let package = dir.join("nudenet");
    let home = tempdir();
    let model = nudenet_model();
    let out = prelabel(
        home.path(),
        &[
            "new",
            "onnx",
            "nudenet",
            "--dir",
            path(&package),
            "--model",
            path(&model),
            "--resize",
            "letterbox-corner",
            "--pad-value",
            "0",
            "--channels",
            "bgr",
            "--agnostic-nms",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    (stdout(&out), package)
}

/// The face detector's package as a self-contained folder at `dir` (its component at
/// `out/component.wasm` and its model beside the manifest), the manifest passed through `edit`.
pub fn face_detector_package(dir: &Path, edit: impl Fn(String) -> String) {
    face_detector();
    std::fs::create_dir_all(dir.join("out")).expect("a folder");
    std::fs::copy(
        root().join("target/wasm32-wasip2/release/face_detector.wasm"),
        dir.join("out/component.wasm"),
    )
    .expect("the component");
    std::fs::copy(
        root().join("models/res10_300x300_ssd.onnx"),
        dir.join("model.onnx"),
    )
    .expect("the model");
    let manifest = std::fs::read_to_string(face_detector_dir().join("prelabel.toml"))
        .expect("the manifest")
        .replace(
            "../../target/wasm32-wasip2/release/face_detector.wasm",
            "out/component.wasm",
        )
        .replace("../../models/res10_300x300_ssd.onnx", "model.onnx");
    std::fs::write(dir.join("prelabel.toml"), edit(manifest)).expect("the manifest");
}
