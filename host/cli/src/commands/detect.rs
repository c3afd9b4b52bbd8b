//! `prelabel detect`: a package run directly on files, without a store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

use prelabel::ops::Detect;
use prelabel::results::export::coco;
use prelabel::runtime::Limits;
use prelabel::work::local::FileResult;

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
        self.build.run(&self.package)?;
        let results = home.detect(&Detect {
            package: &self.package,
            root: self.root.get(),
            init: &self.init,
            limits,
            jobs: self.jobs,
            inputs: &self.images,
        })?;
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
