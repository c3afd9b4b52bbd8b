//! `prelabel bench`: how fast the sandboxed detector and the platform around it are, on this
//! machine, as a table of medians and 95th percentiles (never a timed assertion in a test).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};

use prelabel::local::{FileResult, LocalRunner};
use prelabel::manifest::InputValue;
use prelabel::ops::Home;
use prelabel::package::{Package, build};
use prelabel::runtime::{self, EngineChoice, Grants, Limits, Runtime};
use prelabel::store::{BlobsAt, Database, Location, scratch};
use prelabel::{execution, service, trigger, worker};

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
}

fn stats(
    group: &'static str,
    name: &str,
    mut samples: Vec<Duration>,
    note: impl Into<String>,
) -> Row {
    samples.sort();
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Row {
        group,
        name: name.to_string(),
        median: pick(0.5),
        p95: pick(0.95),
        runs: samples.len(),
        note: note.into(),
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
    prelabel::workspace::Workspace::find().ok().map(|w| w.root)
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
    Ok(rows)
}

/// Component load: compile, cached load, instantiate, init. Returns the runtime with the
/// face detector compiled and cached.
fn load_rows(rows: &mut Vec<Row>, faces: &Package, scratch: &Path, runs: usize) -> Result<Runtime> {
    let uncached = Runtime::new(None)?;
    let (_, compile) = time(|| uncached.load(&faces.component));
    rows.push(stats(
        "load",
        "compile the component (Cranelift, no cache)",
        vec![compile],
        format!("{:.1} MB of wasm", faces.component.len() as f64 / 1e6),
    ));
    drop(uncached);
    let runtime = Runtime::new(Some(scratch.join("cache")))?;
    let loaded = runtime.load(&faces.component)?;
    let cached: Vec<Duration> = (0..runs)
        .map(|_| time(|| runtime.load_with_digest(&faces.component, &loaded.digest)).1)
        .collect();
    rows.push(stats(
        "load",
        "load the cached compiled component",
        cached,
        "mmap the cached file, world check",
    ));
    let mut instantiate = Vec::new();
    let mut init = Vec::new();
    for _ in 0..runs.min(10) {
        let (i, t) = time(|| {
            runtime.instantiate(
                &loaded,
                Grants::artifacts(faces.artifacts.clone()),
                Limits::default(),
            )
        });
        instantiate.push(t);
        let mut i = i?;
        let inputs = runtime::init_inputs(&faces.manifest.resolve_init(&BTreeMap::new())?);
        init.push(time(|| i.init(&inputs)).1);
    }
    rows.push(stats(
        "load",
        "instantiate",
        instantiate,
        "from InstancePre",
    ));
    rows.push(stats(
        "load",
        "init (model load in the guest)",
        init,
        "artifact read + tract optimise",
    ));
    Ok(runtime)
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

/// Detect calls (after one to warm up), with the stages the guest logs.
fn in_guest(
    runner: &mut LocalRunner<'_>,
    name: &str,
    image: &[u8],
    runs: usize,
) -> Result<Samples> {
    run_file(runner, name, image)?;
    let mut samples = Samples::default();
    for _ in 0..runs {
        let (result, t) = run_file(runner, name, image)?;
        samples.add(t, logged_stages(&result.logs));
    }
    Ok(samples)
}

/// The same library natively, with its own stage timings.
fn native(faces: &Package, image: &[u8], runs: usize) -> Result<Samples> {
    let model = faces
        .artifacts
        .values()
        .next()
        .ok_or_else(|| anyhow!("face-detector has no artifact"))?;
    let native = res10::Model::from_onnx(&std::fs::read(model)?)?;
    let mut samples = Samples::default();
    for _ in 0..runs {
        let (r, t) = time(|| res10::detect_timed(&native, image, res10::DEFAULT_MAX_PIXELS, 0.5));
        let (_, timings) = r?;
        let stages = [
            ("decode", timings.decode),
            ("preprocess", timings.preprocess),
            ("infer", timings.infer),
            ("postprocess", timings.postprocess),
        ];
        samples.add(t, stages.map(|(stage, d)| (stage.to_string(), d)));
    }
    Ok(samples)
}

/// Detect latency, wasm vs native (and wasm with host inference), and their stages.
fn detect_rows(
    rows: &mut Vec<Row>,
    runtime: &Runtime,
    faces: &Package,
    image_path: &Path,
    runs: usize,
) -> Result<()> {
    let (name, image) = named_file(image_path)?;
    let mut wasm = in_guest(&mut runner(runtime, faces, &[])?, &name, &image, runs)?;
    let mut native = native(faces, &image, runs)?;
    // The opt-in path: the same component, with the network run by the host.
    let host = [("inference", InputValue::String("host".into()))];
    let mut hosted = in_guest(&mut runner(runtime, faces, &host)?, &name, &image, runs)?;
    let wasm_row = stats(
        "detect",
        &format!("detect {name} in the sandbox (wasm)"),
        std::mem::take(&mut wasm.total),
        "decode to boxes, one thread",
    );
    let native_row = stats(
        "detect",
        &format!("detect {name} natively (same library)"),
        std::mem::take(&mut native.total),
        "",
    );
    let ratio = wasm_row.median.as_secs_f64() / native_row.median.as_secs_f64().max(1e-9);
    rows.push(wasm_row);
    rows.push(stats(
        "detect",
        &format!("detect {name}, wasm + host inference"),
        std::mem::take(&mut hosted.total),
        "opt-in: init input inference = host",
    ));
    rows.push(Row {
        note: format!("sandbox cost: wasm / native = {ratio:.2}x"),
        ..native_row
    });
    engine_rows(rows, runtime, faces, (&name, &image), runs)?;
    for stage in ["decode", "preprocess", "infer", "postprocess"] {
        let note = match stage {
            "preprocess" => "resize 300x300 (INTER_LINEAR) + blob",
            "postprocess" => "DetectionOutput NMS + scaling",
            _ => "",
        };
        rows.push(stats(
            "stages",
            &format!("{stage} (wasm)"),
            wasm.stage(stage),
            note,
        ));
        rows.push(stats(
            "stages",
            &format!("{stage} (native)"),
            native.stage(stage),
            "",
        ));
        // The guest's own stages too: native code on the call path must not slow them
        // (see `runtime::vector_state`).
        rows.push(stats(
            "stages",
            &format!("{stage} (wasm, host inference)"),
            hosted.stage(stage),
            if stage == "infer" {
                "the inference import"
            } else {
                ""
            },
        ));
    }
    Ok(())
}

/// The network through the inference worker on each engine, one thread and all cores, side
/// by side: whole detect calls and the guest's `infer` stage (which includes the crossing to
/// the worker and back).
fn engine_rows(
    rows: &mut Vec<Row>,
    runtime: &Runtime,
    faces: &Package,
    (name, image): (&str, &[u8]),
    runs: usize,
) -> Result<()> {
    let host = [("inference", InputValue::String("host".into()))];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let mut engines = vec![EngineChoice::Tract];
    match prelabel::runtime::engine::onnxruntime() {
        Ok(_) => engines.push(EngineChoice::Onnxruntime),
        Err(e) => rows.push(Row {
            group: "engines",
            name: "ONNX Runtime".into(),
            median: Duration::ZERO,
            p95: Duration::ZERO,
            runs: 0,
            note: format!("not measured: {e}"),
        }),
    }
    for engine in engines {
        for threads in [1, cores]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            let mut runner = engine_runner(runtime, faces, &host, engine, threads)?;
            let mut samples = in_guest(&mut runner, name, image, runs)?;
            let ran = runner
                .inference_engine()
                .unwrap_or_else(|| engine.to_string());
            rows.push(stats(
                "engines",
                &format!("detect {name}, host inference on {ran}, {threads} thread(s)"),
                std::mem::take(&mut samples.total),
                "",
            ));
            rows.push(stats(
                "engines",
                &format!("  infer stage on {ran}, {threads} thread(s)"),
                samples.stage("infer"),
                "the guest's wasi-nn call: tensor to the worker, run, outputs back",
            ));
        }
    }
    Ok(())
}

/// Host overhead: a no-op guest, through the instance and through the whole queue.
fn host_rows(rows: &mut Vec<Row>, runtime: &Runtime, options: &Options, runs: usize) -> Result<()> {
    let noop = load(&options.noop)?;
    let mut noop = runner(runtime, &noop, &[])?;
    let calls = (0..runs * 20)
        .map(|_| Ok(run_file(&mut noop, "ok.png", b"ok")?.1))
        .collect::<Result<Vec<Duration>>>()?;
    rows.push(stats(
        "host",
        "call a no-op guest (lower, call, lift, check)",
        calls,
        "per call",
    ));
    let n = 200;
    let per_execution = platform_overhead(
        &options.scratch.join("noop-home"),
        &runtime_arc(&options.scratch)?,
        &options.noop,
        n,
    )?;
    rows.push(stats(
        "host",
        "queue to done, no-op guest (serve path)",
        vec![per_execution],
        format!("mean of {n}: claim, call, check, durable commit"),
    ));
    Ok(())
}

/// Hot swap, and end-to-end throughput at concurrency 1 and 2.
fn platform_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
    let shared = runtime_arc(&options.scratch)?;
    rows.push(stats(
        "platform",
        "hot swap: deploy while busy -> first execution on it",
        vec![hot_swap(
            &options.scratch.join("swap-home"),
            &shared,
            &options.face_detector,
            &options.samples,
        )?],
        "includes finishing the running one",
    ));
    for concurrency in [1u32, 2] {
        let (items, elapsed) = end_to_end(
            &options.scratch.join(format!("e2e-{concurrency}")),
            &shared,
            &options.face_detector,
            &options.samples,
            concurrency,
        )?;
        let per_item = elapsed / items.max(1) as u32;
        rows.push(stats(
            "platform",
            &format!("end to end, concurrency {concurrency}"),
            vec![per_item],
            format!(
                "{:.1} items/s over {items} photos",
                items as f64 / elapsed.as_secs_f64()
            ),
        ));
    }
    Ok(())
}

/// `prelabel detect` on the sample photos as a whole process (start, load, init, every
/// photo), at 1..=cores jobs, in the sandbox and with host inference: what a user waits for.
fn jobs_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
    let exe = std::env::current_exe().context("this binary")?;
    let root = options
        .face_detector
        .parent()
        .and_then(Path::parent)
        .context("the workspace of the face detector")?;
    let photos = std::fs::read_dir(&options.samples)?.count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (what, extra) in [
        ("in the sandbox", &[][..]),
        (
            "host inference",
            &["--allow-inference", "--init", "inference=host"][..],
        ),
    ] {
        for jobs in 1..=cores {
            let run = || -> Result<Duration> {
                let started = Instant::now();
                let out = std::process::Command::new(&exe)
                    .args(["detect", "--home"])
                    .arg(options.scratch.join("detect-home"))
                    .arg("--cache-dir")
                    .arg(options.scratch.join("cache"))
                    .arg("--root")
                    .arg(root)
                    .arg("--jobs")
                    .arg(jobs.to_string())
                    .args(extra)
                    .arg(&options.face_detector)
                    .arg(&options.samples)
                    .output()?;
                anyhow::ensure!(
                    out.status.success(),
                    "prelabel detect failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Ok(started.elapsed())
            };
            let samples = (0..3).map(|_| run()).collect::<Result<Vec<_>>>()?;
            let name = format!("prelabel detect, {what}, {jobs} job(s), whole process");
            let mut row = stats("jobs", &name, samples, "");
            row.note = format!(
                "{:.1} items/s over {photos} photos",
                photos as f64 / row.median.as_secs_f64()
            );
            rows.push(row);
        }
    }
    Ok(())
}

/// The seed's own loop against `prelabel detect`, in one sitting: `tests/seed/run-opencv-loop`
/// (the seed tutorial's steps, OpenCV at its own thread count) and `prelabel detect` with
/// ONNX Runtime in the worker, tract in the worker and all in the sandbox, whole processes
/// on the same thirty photos (the samples three times), in turn (`rounds` times), each run
/// once first to warm caches. A row says the seed's loop or ONNX Runtime is not there, where not.
fn seed_rows(rows: &mut Vec<Row>, options: &Options, rounds: usize) -> Result<()> {
    let root = options
        .face_detector
        .parent()
        .and_then(Path::parent)
        .context("the workspace of the face detector")?;
    let skipped = |name: &str, why: String| Row {
        group: "seed",
        name: name.into(),
        median: Duration::ZERO,
        p95: Duration::ZERO,
        runs: 0,
        note: format!("skipped: {why}"),
    };
    let script = root.join("tests/seed/run-opencv-loop");
    if !script.is_file() {
        rows.push(skipped(
            "the seed's OpenCV loop",
            "run from a checkout".into(),
        ));
        return Ok(());
    }
    let photos = options.scratch.join("seed-photos");
    std::fs::create_dir_all(&photos)?;
    for copy in 1..=3 {
        for entry in std::fs::read_dir(&options.samples)? {
            let entry = entry?;
            let name = format!("{copy}-{}", entry.file_name().to_string_lossy());
            std::fs::copy(entry.path(), photos.join(name))?;
        }
    }
    let exe = std::env::current_exe().context("this binary")?;
    let detect = |extra: &[&str]| {
        let mut command = std::process::Command::new(&exe);
        command
            .args(["detect", "--home"])
            .arg(options.scratch.join("detect-home"))
            .arg("--cache-dir")
            .arg(options.scratch.join("cache"))
            .arg("--root")
            .arg(root)
            .args(extra)
            .arg(&options.face_detector)
            .arg(&photos);
        command
    };
    let mut contenders = vec![(
        "the seed's loop: OpenCV DNN, its own threads".to_string(),
        {
            let mut command = std::process::Command::new(&script);
            command.arg(&photos);
            command
        },
    )];
    let host = ["--allow-inference", "--init", "inference=host"];
    if let Err(e) = EngineChoice::Onnxruntime.available() {
        rows.push(skipped("prelabel detect, ONNX Runtime", e.to_string()));
    } else {
        contenders.push((
            "prelabel detect, ONNX Runtime in the worker".into(),
            detect(&[&host[..], &["--inference-engine", "onnxruntime"]].concat()),
        ));
    }
    contenders.push((
        "prelabel detect, tract in the worker".into(),
        detect(&[&host[..], &["--inference-engine", "tract"]].concat()),
    ));
    contenders.push(("prelabel detect, all in the sandbox".into(), detect(&[])));
    let run = |command: &mut std::process::Command| -> Result<Duration> {
        let started = Instant::now();
        let out = command.output()?;
        anyhow::ensure!(
            out.status.success(),
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(started.elapsed())
    };
    // The first run sets the seed's virtualenv up (PyPI, once) and fills the caches.
    if let Err(e) = run(&mut contenders[0].1) {
        rows.push(skipped(&contenders[0].0, format!("{e:#}")));
        return Ok(());
    }
    for (_, command) in &mut contenders[1..] {
        run(command)?;
    }
    let mut samples = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        for ((_, command), samples) in contenders.iter_mut().zip(&mut samples) {
            samples.push(run(command)?);
        }
    }
    let seed = stats("seed", "", samples[0].clone(), "").median;
    for ((name, _), samples) in contenders.iter().zip(samples) {
        let mut row = stats("seed", &format!("{name}, 30 photos"), samples, "");
        row.note = format!(
            "{:.2}x the seed's loop's time",
            row.median.as_secs_f64() / seed.as_secs_f64().max(1e-9)
        );
        rows.push(row);
    }
    Ok(())
}

/// An idle `prelabel work` with 4 services at concurrency 4 (the no-op guest): its CPU time
/// over 5 s, then how long an upload waits until a worker has claimed its execution.
fn idle_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
    let dir = options.scratch.join("idle-home");
    let home = platform(&dir, &runtime_arc(&options.scratch)?, &options.noop, 4)?;
    let package = home.service("svc")?.package;
    for i in 1..4 {
        home.deploy(&service::Deploy {
            package: package.clone(),
            name: format!("svc{i}"),
            concurrency: Some(4),
            ..Default::default()
        })?;
    }
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("work")
        .env("PRELABEL_HOME", &dir)
        .env("PRELABEL_CACHE_DIR", options.scratch.join("cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let measured = (|| -> Result<(Duration, Vec<Duration>)> {
        std::thread::sleep(Duration::from_secs(2));
        let window = Duration::from_secs(5);
        let before = cpu_ticks(child.id())?;
        std::thread::sleep(window);
        let ticks = cpu_ticks(child.id())? - before;
        // SAFETY: sysconf reads a constant.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let cpu = Duration::from_secs_f64(ticks as f64 / per_second);
        let mut waits = Vec::new();
        for k in 0..10 {
            let started = Instant::now();
            home.upload(
                "d",
                &format!("wake-{k}.png"),
                format!("wake {k}").as_bytes(),
            )?;
            while !home.executions(Some(execution::Status::Queued))?.is_empty() {
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(anyhow!("an execution was not claimed within 30 s"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            waits.push(started.elapsed());
        }
        Ok((cpu, waits))
    })();
    // SAFETY: kill sends SIGINT to the child we started; Ctrl-C stops it cleanly.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let _ = child.wait();
    let (cpu, waits) = measured?;
    rows.push(stats(
        "idle",
        "CPU of an idle `prelabel work`, 4 services x 4",
        vec![cpu],
        format!(
            "over 5 s: {:.2}% of a core",
            cpu.as_secs_f64() / 5.0 * 100.0
        ),
    ));
    rows.push(stats(
        "idle",
        "upload -> execution claimed, idle workers",
        waits,
        "another process's commit wakes them",
    ));
    Ok(())
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

/// Peak memory of a `prelabel work` process, and of this one.
fn memory_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
    if let Some(rss) = serve_rss_kib(
        &options.scratch.join("rss-home"),
        &runtime_arc(&options.scratch)?,
        &options.face_detector,
        &options.samples,
    )? {
        rows.push(Row {
            group: "memory",
            name: "peak RSS of `prelabel work`, one service, the photos".into(),
            median: Duration::ZERO,
            p95: Duration::ZERO,
            runs: 1,
            note: format!(
                "{:.0} MiB (a separate process: what a host costs)",
                rss as f64 / 1024.0
            ),
        });
    }
    if let Some(rss) = peak_rss_kib() {
        rows.push(Row {
            group: "memory",
            name: "peak RSS of this process".into(),
            median: Duration::ZERO,
            p95: Duration::ZERO,
            runs: 1,
            note: format!(
                "{:.0} MiB (native model + wasm instances + stores)",
                rss as f64 / 1024.0
            ),
        });
    }
    Ok(())
}

/// The Python face detector (componentize-py; the host decodes, wasi-nn runs the network)
/// beside the Rust component with host inference, which does the same work in Rust.
fn python_rows(
    rows: &mut Vec<Row>,
    runtime: &Runtime,
    options: &Options,
    runs: usize,
) -> Result<()> {
    let dir = &options.python_face_detector;
    let (built, secs) = time(|| build::run(dir, build::Fallback::Nothing));
    let command = built?.map(|b| b.command).unwrap_or_default();
    rows.push(stats(
        "python",
        "build (componentize-py)",
        vec![secs],
        command,
    ));
    let python = load(dir)?;
    let (_, compile) = time(|| Runtime::new(None).map(|r| r.load(&python.component)));
    rows.push(stats(
        "python",
        "compile the component (Cranelift, no cache)",
        vec![compile],
        format!(
            "{:.1} MB of wasm (CPython + the standard library)",
            python.component.len() as f64 / 1e6
        ),
    ));
    let loaded = runtime.load(&python.component)?;
    let limits = Limits {
        allow_inference: true,
        ..Limits::default()
    };
    let inputs = python.manifest.resolve_init(&BTreeMap::new())?;
    let mut init = Vec::new();
    for _ in 0..runs.min(10) {
        let grants = Grants::artifacts(python.artifacts.clone());
        let (started, t) = time(|| runtime.start(&loaded, grants, limits, &inputs).0);
        started?;
        init.push(t);
    }
    rows.push(stats(
        "python",
        "instantiate + init",
        init,
        "__init__: wasi-nn loads the model on the host",
    ));
    let (name, image) = named_file(&options.image)?;
    let mut samples = in_guest(&mut runner(runtime, &python, &[])?, &name, &image, runs)?;
    let rust = rows
        .iter()
        .find(|r| r.name.ends_with("wasm + host inference"))
        .map(|r| r.median);
    let row = stats(
        "python",
        &format!("detect {name}, Python"),
        std::mem::take(&mut samples.total),
        "",
    );
    let note = match rust {
        Some(rust) => format!(
            "host blob + wasi-nn + NMS in Python; / Rust with host inference = {:.2}x",
            row.median.as_secs_f64() / rust.as_secs_f64().max(1e-9)
        ),
        None => String::new(),
    };
    rows.push(Row { note, ..row });
    if let Some(rss) = serve_rss_kib(
        &options.scratch.join("rss-python"),
        &runtime_arc(&options.scratch)?,
        dir,
        &options.samples,
    )? {
        rows.push(Row {
            group: "memory",
            name: "peak RSS of `prelabel work`, the Python detector".into(),
            median: Duration::ZERO,
            p95: Duration::ZERO,
            runs: 1,
            note: format!(
                "{:.0} MiB (the network runs in the inference worker, a process of its own)",
                rss as f64 / 1024.0
            ),
        });
    }
    Ok(())
}

fn runtime_arc(scratch: &Path) -> Result<Arc<Runtime>> {
    Ok(Arc::new(Runtime::new(Some(scratch.join("cache")))?))
}

/// The queue on PostgreSQL beside the embedded SQLite: items/s of the no-op guest through
/// `prelabel work` processes (one on SQLite, whose home has one scheduler; 1, 2 and 4 sharing
/// a throwaway PostgreSQL on this machine), then what the PostgreSQL path costs per
/// execution: the claim, the outcome's commit, and a heartbeat (one per worker every third
/// of its lease, not per execution). Skipped, saying why, without Debian's postgresql.
fn scale_rows(rows: &mut Vec<Row>, options: &Options, runs: usize) -> Result<()> {
    if scratch::bin_dir().is_none() {
        rows.push(Row {
            group: "scale",
            name: "PostgreSQL rows".into(),
            median: Duration::ZERO,
            p95: Duration::ZERO,
            runs: 0,
            note: "skipped: no PostgreSQL (apt-get install postgresql)".into(),
        });
        return Ok(());
    }
    let server = scratch::Server::start(&options.scratch.join("postgres"), true)?;
    let shared = runtime_arc(&options.scratch)?;
    let exe = std::env::current_exe().context("this binary")?;
    // 400 items at the default 20 runs.
    let items = runs * 20;
    let cases: [(&str, usize); 4] = [
        ("SQLite", 1),
        ("PostgreSQL", 1),
        ("PostgreSQL", 2),
        ("PostgreSQL", 4),
    ];
    // A home with `items` no-op items queued, on SQLite or a database of its own.
    let queued = |store: &str, name: String, items: usize| -> Result<Home> {
        let dir = options.scratch.join(&name);
        let location = match store {
            "SQLite" => Location::home(&dir),
            _ => Location {
                database: Database::Postgres(server.create_database(&name.replace('-', "_"))?),
                blobs: Some(BlobsAt::Folder(dir.join("blobs"))),
                ..Location::home(dir)
            },
        };
        let home = platform_at(location, &shared, &options.noop, 4)?;
        for i in 0..items {
            home.upload("d", &format!("ok-{i}.png"), format!("ok {i}").as_bytes())?;
        }
        Ok(home)
    };
    for (n, (store, workers)) in cases.into_iter().enumerate() {
        let home = queued(store, format!("scale-{n}"), items)?;
        let (dir, location) = (home.dir().to_path_buf(), home.location().clone());
        let database = match &location.database {
            Database::Sqlite => "sqlite".to_string(),
            Database::Postgres(url) => url.clone(),
        };
        let started = Instant::now();
        let children = (0..workers)
            .map(|w| {
                std::process::Command::new(&exe)
                    .args(["work", "--until-idle"])
                    // The embedded store is its home's; shared, each worker has its own.
                    .env(
                        "PRELABEL_HOME",
                        match location.database {
                            Database::Sqlite => dir.clone(),
                            Database::Postgres(_) => dir.join(format!("worker-{w}")),
                        },
                    )
                    .env("PRELABEL_STORE", &database)
                    .env("PRELABEL_BLOBS", location.blobs_at().describe())
                    .env("PRELABEL_CACHE_DIR", options.scratch.join("cache"))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .context("a worker starts")
            })
            .collect::<Result<Vec<_>>>()?;
        for mut child in children {
            anyhow::ensure!(child.wait()?.success(), "a `prelabel work` failed");
        }
        let elapsed = started.elapsed();
        let done = home.executions(Some(execution::Status::Success))?.len();
        anyhow::ensure!(done == items, "{done} of {items} executions succeeded");
        rows.push(stats(
            "scale",
            &format!("queue, no-op guest, {store}, {workers} worker process(es)"),
            vec![elapsed / items as u32],
            format!(
                "{:.0} items/s over {items} items, concurrency 4 (starts included)",
                items as f64 / elapsed.as_secs_f64()
            ),
        ));
    }
    // Each path's steps in-process: claim (lost-worker check, count, row), commit, heartbeat.
    for (n, backend) in ["SQLite", "PostgreSQL"].into_iter().enumerate() {
        let home = queued(backend, format!("cost-{n}"), runs)?;
        let dir = home.dir().to_path_buf();
        let service = home.service("svc")?;
        let mut store = home.store()?;
        let me = worker::register(&mut store, &dir, worker::DEFAULT_LEASE)?;
        let (mut claims, mut commits, mut beats) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (claimed, took) = time(|| {
                execution::claim_next(
                    &mut store,
                    service.id,
                    4,
                    service.revision_id,
                    &me,
                    me.next_claim(),
                )
            });
            let claimed = claimed?.context("a queued execution")?;
            claims.push(took);
            let ran = execution::Ran {
                component_digest: "",
                init_inputs: None,
                inference_engine: None,
            };
            let outcome = execution::Outcome::Success(Vec::new());
            let (finished, took) =
                time(|| execution::finish(&mut store, &claimed, &outcome, "", 0, ran));
            finished?;
            commits.push(took);
            let (beat, took) = time(|| worker::beat(&store, me.id));
            beat?;
            beats.push(took);
        }
        rows.push(stats(
            "scale",
            &format!("{backend}: claim"),
            claims,
            "per execution",
        ));
        rows.push(stats(
            "scale",
            &format!("{backend}: commit the outcome"),
            commits,
            "per execution (durable)",
        ));
        rows.push(stats(
            "scale",
            &format!("{backend}: heartbeat"),
            beats,
            "per worker every lease/3 (5 s)",
        ));
    }
    Ok(())
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
