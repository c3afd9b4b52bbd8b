//! `prelabel detect`: a package run directly on files, without a store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

use prelabel::coco;
use prelabel::local::{FileResult, LocalRunner};
use prelabel::package::Package;
use prelabel::runtime::Limits;

use super::package::{BuildArg, RootArg};
use prelabel::ops::Home;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package directory (holding prelabel.toml).
    package: PathBuf,
    /// Image files, or directories of them.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Init input values, as declared in prelabel.toml (repeatable).
    #[arg(long = "init", value_name = "KEY=VALUE")]
    init: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Files run at once, each job with an instance of its own (initialised once, about
    /// 85 MB for the face detector). Default: every core. Results stay in input order.
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    root: RootArg,
    #[command(flatten)]
    build: BuildArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Prelabel's JSON: per image, its annotations, error and captured logs.
    Json,
    /// A COCO detection dataset.
    Coco,
}

#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Seconds one detect call may take.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Seconds instantiation and init may take.
    #[arg(long, value_name = "SECS")]
    init_timeout: Option<f64>,
    /// The guest's memory cap (all its memories and tables), in MiB.
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<usize>,
    /// Let the guest run ONNX artifacts natively (the `inference` import).
    #[arg(long)]
    allow_inference: bool,
    /// Which engine runs them: `auto` (ONNX Runtime where it is installed, else tract),
    /// `onnxruntime` or `tract`.
    #[arg(long, value_name = "ENGINE", default_value = "auto")]
    inference_engine: prelabel::runtime::EngineChoice,
    /// Threads one inference call may use (each of `--jobs` instances uses this many).
    #[arg(long, value_name = "N", default_value_t = 1)]
    inference_threads: u32,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits> {
        if self.inference_threads == 0 {
            bail!("--inference-threads must be at least 1");
        }
        self.inference_engine.available()?;
        let mut limits = Limits {
            allow_inference: self.allow_inference,
            inference_engine: self.inference_engine,
            inference_threads: self.inference_threads,
            ..Limits::default()
        };
        let seconds = |secs: f64, flag: &str| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| format!("{flag} must be a positive number of seconds, got {secs}"))
        };
        if let Some(secs) = self.timeout {
            limits.timeout = seconds(secs, "--timeout")?;
        }
        if let Some(secs) = self.init_timeout {
            limits.init_timeout = seconds(secs, "--init-timeout")?;
        }
        if let Some(mib) = self.memory_mb {
            if mib == 0 {
                bail!("--memory-mb must be positive");
            }
            limits.memory_bytes = mib.saturating_mul(1 << 20);
        }
        Ok(limits)
    }
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let limits = self.limits.limits()?;
        let files = expand(&self.images)?;
        self.build.run(&self.package)?;
        let package = Package::load_within(&self.package, self.root.get())?;
        let given = package.manifest.parse_init_args(&self.init)?;
        let given = home.reveal(&package.manifest, given)?;
        let runtime = home.runtime()?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = match self.jobs {
            Some(0) => bail!("--jobs must be at least 1"),
            Some(n) => n,
            None => cores,
        }
        .min(files.len().max(1));
        // Compiled (or read from the cache) once, however many jobs run it.
        let loaded = package.compile(&runtime)?;
        let new_runner =
            || LocalRunner::with_loaded(&runtime, &package, loaded.clone(), &given, limits);
        let results = run_files(new_runner, jobs, &files)?;
        let mut stdout = std::io::stdout().lock();
        match self.format {
            Format::Json => serde_json::to_writer_pretty(&mut stdout, &results)?,
            Format::Coco => serde_json::to_writer_pretty(&mut stdout, &to_coco(&results))?,
        }
        writeln!(stdout)?;
        let failed: Vec<&FileResult> = results.iter().filter(|r| r.error.is_some()).collect();
        for r in &failed {
            eprintln!(
                "error: {}: {}",
                r.name,
                r.error.as_deref().unwrap_or_default()
            );
        }
        if failed.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("{} of {} files failed", failed.len(), results.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Runs every file on `jobs` threads, each with a runner of its own taking the next file;
/// a file that cannot be read is a failed result like any other. Results in input order.
fn run_files<'r>(
    new_runner: impl Fn() -> prelabel::Result<LocalRunner<'r>> + Sync,
    jobs: usize,
    files: &[PathBuf],
) -> Result<Vec<FileResult>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let ran = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| -> prelabel::Result<Vec<(usize, FileResult)>> {
                    let mut runner = new_runner()?;
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(path) = files.get(i) else {
                            return Ok(done);
                        };
                        done.push((i, run_file(&mut runner, path)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a detect job panicked"))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut results: Vec<Option<FileResult>> = (0..files.len()).map(|_| None).collect();
    for job in ran {
        for (i, result) in job? {
            results[i] = Some(result);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

fn run_file(runner: &mut LocalRunner<'_>, path: &std::path::Path) -> FileResult {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match std::fs::read(path) {
        Ok(bytes) => runner.run(&name, bytes),
        Err(e) => runner.failed(&name, format!("cannot read {}: {e}", path.display())),
    }
}

/// The COCO dataset of the files that are images.
fn to_coco(results: &[FileResult]) -> coco::Dataset {
    let mut builder = coco::Builder::default();
    for r in results {
        if let (Some(w), Some(h)) = (r.width, r.height) {
            builder.add_image(&r.name, w, h, &r.annotations);
        }
    }
    builder.finish()
}

/// Files as given; directories become their files, sorted by name.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}
