//! The sandboxed detector itself: compiling and loading the component, one detect through
//! each inference path, what the host adds around a call, and the Python guest.

use super::*;

/// Component load: compile, cached load, instantiate, init. Returns the runtime with the
/// face detector compiled and cached.
pub(super) fn load_rows(
    rows: &mut Vec<Row>,
    faces: &Package,
    scratch: &Path,
    runs: usize,
) -> Result<Runtime> {
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
pub(super) fn detect_rows(
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
pub(super) fn host_rows(
    rows: &mut Vec<Row>,
    runtime: &Runtime,
    options: &Options,
    runs: usize,
) -> Result<()> {
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

/// The Python face detector (componentize-py; the host decodes, wasi-nn runs the network)
/// beside the Rust component with host inference, which does the same work in Rust.
pub(super) fn python_rows(
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
    rows.push(python_init(runtime, &python, runs)?);
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

/// The Python detector's instantiate and init (`__init__`, where wasi-nn loads the model).
fn python_init(runtime: &Runtime, python: &Package, runs: usize) -> Result<Row> {
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
    Ok(stats(
        "python",
        "instantiate + init",
        init,
        "__init__: wasi-nn loads the model on the host",
    ))
}
