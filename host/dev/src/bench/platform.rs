//! The platform around the detector: an item through the store and queue, `detect`'s jobs, the
//! seed's own OpenCV loop beside `prelabel detect`, an idle `serve`, and memory.

use super::*;

/// Hot swap, and end-to-end throughput at concurrency 1 and 2.
pub(super) fn platform_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
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
pub(super) fn jobs_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
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
            let count = jobs.to_string();
            let flags: Vec<&str> = ["--jobs", &count]
                .into_iter()
                .chain(extra.iter().copied())
                .collect();
            let mut command = detect_command(options, &flags, &options.samples)?;
            let samples = (0..3)
                .map(|_| run_timed(&mut command))
                .collect::<Result<Vec<_>>>()?;
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
pub(super) fn seed_rows(rows: &mut Vec<Row>, options: &Options, rounds: usize) -> Result<()> {
    let skipped = |name: &str, why: String| Row {
        group: "seed",
        name: name.into(),
        median: Duration::ZERO,
        p95: Duration::ZERO,
        runs: 0,
        note: format!("skipped: {why}"),
    };
    let script = workspace_of(options)?.join("tests/seed/run-opencv-loop");
    if !script.is_file() {
        rows.push(skipped(
            "the seed's OpenCV loop",
            "run from a checkout".into(),
        ));
        return Ok(());
    }
    let photos = thirty_photos(options)?;
    let mut seed_loop = std::process::Command::new(&script);
    seed_loop.arg(&photos);
    let mut contenders = vec![(
        "the seed's loop: OpenCV DNN, its own threads".to_string(),
        seed_loop,
    )];
    let host = ["--allow-inference", "--init", "inference=host"];
    if let Err(e) = EngineChoice::Onnxruntime.available() {
        rows.push(skipped("prelabel detect, ONNX Runtime", e.to_string()));
    } else {
        let extra = [&host[..], &["--inference-engine", "onnxruntime"]].concat();
        contenders.push((
            "prelabel detect, ONNX Runtime in the worker".into(),
            detect_command(options, &extra, &photos)?,
        ));
    }
    let extra = [&host[..], &["--inference-engine", "tract"]].concat();
    contenders.push((
        "prelabel detect, tract in the worker".into(),
        detect_command(options, &extra, &photos)?,
    ));
    contenders.push((
        "prelabel detect, all in the sandbox".into(),
        detect_command(options, &[], &photos)?,
    ));
    // The first run sets the seed's virtualenv up (PyPI, once) and fills the caches.
    if let Err(e) = run_timed(&mut contenders[0].1) {
        rows.push(skipped(&contenders[0].0, format!("{e:#}")));
        return Ok(());
    }
    for (_, command) in &mut contenders[1..] {
        run_timed(command)?;
    }
    let mut samples = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        for ((_, command), samples) in contenders.iter_mut().zip(&mut samples) {
            samples.push(run_timed(command)?);
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

/// The sample photos three times over, in a folder of their own: thirty photos.
fn thirty_photos(options: &Options) -> Result<PathBuf> {
    let photos = options.scratch.join("seed-photos");
    std::fs::create_dir_all(&photos)?;
    for copy in 1..=3 {
        for entry in std::fs::read_dir(&options.samples)? {
            let entry = entry?;
            let name = format!("{copy}-{}", entry.file_name().to_string_lossy());
            std::fs::copy(entry.path(), photos.join(name))?;
        }
    }
    Ok(photos)
}

/// An idle `prelabel work` with 4 services at concurrency 4 (the no-op guest): its CPU time
/// over 5 s, then how long an upload waits until a worker has claimed its execution.
pub(super) fn idle_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
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

/// Peak memory of a `prelabel work` process, and of this one.
pub(super) fn memory_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
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
