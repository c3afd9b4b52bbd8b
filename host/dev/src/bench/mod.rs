//! `prelabel bench`: how fast the sandboxed detector and the platform around it are, on this
//! machine, as a table of medians and 95th percentiles (never a timed assertion in a test).

mod clients;
mod guest;
mod platform;
mod scale;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};

use prelabel::ops::Home;
use prelabel::package::manifest::InputValue;
use prelabel::package::{Package, build};
use prelabel::runtime::{self, EngineChoice, Grants, Limits, Runtime};
use prelabel::store::{BlobsAt, Database, Location};
use prelabel::work::local::{FileResult, LocalRunner};
use prelabel::{catalog::service, work::execution, work::trigger, work::worker};

use crate::scratch;
use clients::clients_rows;
use guest::{detect_rows, host_rows, load_rows, python_rows};
use platform::{idle_rows, jobs_rows, memory_rows, platform_rows, seed_rows};
use scale::scale_rows;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: &'static str,
    pub name: String,
    pub median: Duration,
    pub p95: Duration,
    pub runs: usize,
    pub note: String,
}

pub struct Options {
    /// The face-detector package directory.
    pub face_detector: PathBuf,
    /// The Python face detector's package directory (built here with its `build`).
    pub python_face_detector: PathBuf,
    /// The no-op guest (the hostile test guest, whose `ok` items return at once).
    pub noop: PathBuf,
    /// The image for latency (640x427, the size of the reference figures).
    pub image: PathBuf,
    /// The sample photos for end-to-end throughput.
    pub samples: PathBuf,
    pub runs: usize,
    /// Scratch space (stores, caches); emptied first.
    pub scratch: PathBuf,
    /// Only this group of rows.
    pub only: Option<String>,
    /// How long the `clients` group's clients run, on each store.
    pub seconds: Duration,
}

fn stats(
    group: &'static str,
    name: &str,
    mut samples: Vec<Duration>,
    note: impl Into<String>,
) -> Row {
    samples.sort();
    Row {
        group,
        name: name.to_string(),
        median: quantile(&samples, 0.5),
        p95: quantile(&samples, 0.95),
        runs: samples.len(),
        note: note.into(),
    }
}

/// The `q` quantile of sorted `samples` (nearest rank); zero for none.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// A row saying why a measure did not run.
fn skipped(group: &'static str, name: &str) -> Row {
    Row {
        group,
        name: name.into(),
        median: Duration::ZERO,
        p95: Duration::ZERO,
        runs: 0,
        note: "skipped: no PostgreSQL (apt-get install postgresql)".into(),
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// The bench's packages are the checkout's own: their files may come from its `target/`
/// and `models/`.
fn checkout() -> Option<PathBuf> {
    prelabel::package::workspace::Workspace::find()
        .ok()
        .map(|w| w.root)
}

fn load(dir: &Path) -> Result<Package> {
    Ok(Package::load_within(dir, checkout().as_deref())?)
}

/// A package run on files through the per-item pipeline that `prelabel detect` and the
/// scheduler use (`attempt::run`: size check, instance, detect, logs, the result's checks).
/// Our own package: native inference is granted, as a deployer would for it.
fn runner<'r>(
    runtime: &'r Runtime,
    package: &Package,
    given: &[(&str, InputValue)],
) -> Result<LocalRunner<'r>> {
    engine_runner(runtime, package, given, EngineChoice::Auto, 1)
}

/// [`runner`] with native inference on `engine` and `threads` a call.
fn engine_runner<'r>(
    runtime: &'r Runtime,
    package: &Package,
    given: &[(&str, InputValue)],
    engine: EngineChoice,
    threads: u32,
) -> Result<LocalRunner<'r>> {
    let limits = Limits {
        allow_inference: true,
        inference_engine: engine,
        inference_threads: threads,
        ..Limits::default()
    };
    let given = given
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    Ok(LocalRunner::new(runtime, package, &given, limits)?)
}

/// One file through the runner, timed; a file that fails stops the bench.
fn run_file(
    runner: &mut LocalRunner<'_>,
    name: &str,
    bytes: &[u8],
) -> Result<(FileResult, Duration)> {
    let (result, t) = time(|| runner.run(name, bytes.to_vec()));
    match &result.error {
        Some(error) => Err(anyhow!("{name}: {error}")),
        None => Ok((result, t)),
    }
}

/// Stage times the face-detector component logs (`stage_us decode=.. preprocess=.. ...`).
fn logged_stages(logs: &str) -> Vec<(String, Duration)> {
    logs.split("stage_us ")
        .nth(1)
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), Duration::from_micros(v.parse().ok()?)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The checkout the face detector's package is in.
fn workspace_of(options: &Options) -> Result<&Path> {
    options
        .face_detector
        .parent()
        .and_then(Path::parent)
        .context("the workspace of the face detector")
}

/// `prelabel detect` of the face detector on `input`, as a whole process of this binary,
/// with the bench's home and compile cache and `extra` flags.
fn detect_command(
    options: &Options,
    extra: &[&str],
    input: &Path,
) -> Result<std::process::Command> {
    let mut command = std::process::Command::new(std::env::current_exe().context("this binary")?);
    command
        .args(["detect", "--home"])
        .arg(options.scratch.join("detect-home"))
        .arg("--cache-dir")
        .arg(options.scratch.join("cache"))
        .arg("--root")
        .arg(workspace_of(options)?)
        .args(extra)
        .arg(&options.face_detector)
        .arg(input);
    Ok(command)
}

/// How long `command` took, which must succeed.
fn run_timed(command: &mut std::process::Command) -> Result<Duration> {
    let started = Instant::now();
    let out = command.output()?;
    anyhow::ensure!(
        out.status.success(),
        "{:?} failed: {}",
        command.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(started.elapsed())
}

/// Every measure, in the table's order.
pub fn run(options: &Options) -> Result<Vec<Row>> {
    let _ = std::fs::remove_dir_all(&options.scratch);
    std::fs::create_dir_all(&options.scratch)
        .with_context(|| options.scratch.display().to_string())?;
    let runs = options.runs.max(3);
    let faces = load(&options.face_detector)?;
    let mut rows = Vec::new();
    let want = |group: &str| options.only.as_deref().is_none_or(|only| only == group);
    let runtime = load_rows(&mut rows, &faces, &options.scratch, runs)?;
    if !want("load") {
        rows.clear();
    }
    if want("detect") {
        detect_rows(&mut rows, &runtime, &faces, &options.image, runs)?;
    }
    if want("host") {
        host_rows(&mut rows, &runtime, options, runs)?;
    }
    if want("platform") {
        platform_rows(&mut rows, options)?;
    }
    if want("jobs") {
        jobs_rows(&mut rows, options)?;
    }
    if want("seed") {
        // Five rounds at the default 20 runs; one at the tests' 3 (each round is four
        // processes on thirty photos).
        seed_rows(&mut rows, options, (runs / 4).clamp(1, 5))?;
    }
    if want("idle") {
        idle_rows(&mut rows, options)?;
    }
    if want("memory") {
        memory_rows(&mut rows, options)?;
    }
    if want("python") {
        python_rows(&mut rows, &runtime, options, runs)?;
    }
    if want("scale") {
        scale_rows(&mut rows, options, runs)?;
    }
    if want("clients") {
        clients_rows(&mut rows, options)?;
    }
    Ok(rows)
}

/// Times of whole detect calls, and of each stage inside them.
#[derive(Default)]
struct Samples {
    total: Vec<Duration>,
    stages: BTreeMap<String, Vec<Duration>>,
}

impl Samples {
    fn add(&mut self, total: Duration, stages: impl IntoIterator<Item = (String, Duration)>) {
        self.total.push(total);
        for (stage, d) in stages {
            self.stages.entry(stage).or_default().push(d);
        }
    }

    fn stage(&mut self, stage: &str) -> Vec<Duration> {
        self.stages.remove(stage).unwrap_or_default()
    }
}

/// The user and system CPU ticks a process has used (Linux).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces, in parentheses): utime and
    // stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("/proc/{pid}/stat has no field {i}"))
    };
    Ok(field(11)? + field(12)?)
}

fn runtime_arc(scratch: &Path) -> Result<Arc<Runtime>> {
    Ok(Arc::new(Runtime::new(Some(scratch.join("cache")))?))
}

/// A fresh home with `package` pushed, deployed as `svc` and triggered on every item.
fn platform(
    dir: &Path,
    runtime: &Arc<Runtime>,
    package_dir: &Path,
    concurrency: u32,
) -> Result<Home> {
    platform_at(Location::home(dir), runtime, package_dir, concurrency)
}

/// [`platform`] with its store at `location`.
fn platform_at(
    location: Location,
    runtime: &Arc<Runtime>,
    package_dir: &Path,
    concurrency: u32,
) -> Result<Home> {
    let home = Home::at(location, None).using_runtime(runtime.clone());
    let revision = home.push(package_dir, checkout().as_deref())?;
    home.deploy(&service::Deploy {
        package: revision.package.clone(),
        name: "svc".into(),
        concurrency: Some(concurrency),
        // Our own packages: native inference granted, as a deployer would (the Python
        // detector needs it; the Rust one runs its network inside unless asked).
        allow_inference: Some(true),
        ..Default::default()
    })?;
    home.create_trigger(&trigger::Create {
        name: "all".into(),
        service: "svc".into(),
        function: "detect".into(),
        actions: vec![trigger::Action::Created],
        dataset: None,
        filters: Vec::new(),
        mode: trigger::Mode::Always,
    })?;
    Ok(home)
}

fn work(home: &Home) -> Result<()> {
    home.serve(Arc::new(AtomicBool::new(false)), true)?;
    Ok(())
}

fn platform_overhead(
    dir: &Path,
    runtime: &Arc<Runtime>,
    noop: &Path,
    n: usize,
) -> Result<Duration> {
    let home = platform(dir, runtime, noop, 1)?;
    for i in 0..n {
        home.upload("d", &format!("ok-{i}.png"), format!("ok {i}").as_bytes())?;
    }
    // Queued to done: claim, instance (initialised once), call, checks, commit.
    let (result, elapsed) = time(|| work(&home));
    result?;
    Ok(elapsed / n as u32)
}

fn photos(samples: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples)
        .with_context(|| samples.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files.iter().map(|p| named_file(p)).collect()
}

/// A file's name and bytes.
fn named_file(path: &Path) -> Result<(String, Vec<u8>)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    Ok((name, bytes))
}

/// A fresh platform with the photos uploaded (and queued).
fn loaded_platform(
    dir: &Path,
    runtime: &Arc<Runtime>,
    package_dir: &Path,
    samples: &Path,
) -> Result<Home> {
    let home = platform(dir, runtime, package_dir, 1)?;
    for (name, bytes) in photos(samples)? {
        home.upload("d", &name, &bytes)?;
    }
    Ok(home)
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        l.strip_prefix("VmHWM:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// VmHWM of this process (Linux).
fn peak_rss_kib() -> Option<u64> {
    vm_hwm_kib(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn end_to_end(
    dir: &Path,
    runtime: &Arc<Runtime>,
    package_dir: &Path,
    samples: &Path,
    concurrency: u32,
) -> Result<(usize, Duration)> {
    let home = platform(dir, runtime, package_dir, concurrency)?;
    let photos = photos(samples)?;
    let (result, elapsed) = time(|| -> Result<()> {
        for (name, bytes) in &photos {
            home.upload("d", name, bytes)?;
        }
        work(&home)
    });
    result?;
    Ok((photos.len(), elapsed))
}

/// Deploys a new revision once the first execution is done, then measures until an
/// execution has started on it.
fn hot_swap(
    dir: &Path,
    runtime: &Arc<Runtime>,
    package_dir: &Path,
    samples: &Path,
) -> Result<Duration> {
    let home = Arc::new(loaded_platform(dir, runtime, package_dir, samples)?);
    let worker = {
        let home = home.clone();
        std::thread::spawn(move || work(&home))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while home
        .executions(Some(execution::Status::Success))?
        .is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let revision = home.push(package_dir, checkout().as_deref())?;
    let deployed = Instant::now();
    home.deploy(&service::Deploy {
        package: revision.package.clone(),
        name: "svc".into(),
        ..Default::default()
    })?;
    let mut swapped = None;
    while Instant::now() < deadline {
        let on_new = home
            .executions(None)?
            .iter()
            .any(|e| e.revision_id == Some(revision.id) && e.started_at.is_some());
        if on_new {
            swapped = Some(deployed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = worker.join();
    swapped.ok_or_else(|| anyhow!("no execution ran on the new revision"))
}

/// Runs the photos through one service in a child `prelabel work --until-idle` and returns
/// its peak RSS.
fn serve_rss_kib(
    home: &Path,
    runtime: &Arc<Runtime>,
    package_dir: &Path,
    samples: &Path,
) -> Result<Option<u64>> {
    loaded_platform(home, runtime, package_dir, samples)?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["work", "--until-idle"])
        .env("PRELABEL_HOME", home)
        .env(
            "PRELABEL_CACHE_DIR",
            home.parent().unwrap_or(home).join("cache"),
        )
        .spawn()?;
    // The child's own high-water mark, read until it exits (it only grows). getrusage of
    // children would count this process's memory too: a forked child starts as its copy.
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = None;
    loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .as_deref()
            .and_then(vm_hwm_kib)
        {
            peak = Some(kib);
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                return Err(anyhow!(format!("prelabel work exited with {status}")));
            }
            return Ok(peak);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The table, for people.
pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<9} {:<55} {:>10} {:>10} {:>5}  {}\n",
        "group", "measure", "median", "p95", "runs", "note"
    );
    for r in rows {
        let ms = |d: Duration| {
            if r.group == "memory" {
                "-".to_string()
            } else {
                format!("{:.3} ms", d.as_secs_f64() * 1000.0)
            }
        };
        out.push_str(&format!(
            "{:<9} {:<55} {:>10} {:>10} {:>5}  {}\n",
            r.group,
            r.name,
            ms(r.median),
            ms(r.p95),
            r.runs,
            r.note
        ));
    }
    out
}
