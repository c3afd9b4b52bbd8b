//! Command-line arguments and what each command does with the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use prelabel::coco;
use prelabel::local::{FileResult, LocalRunner};
use prelabel::package::Package;
use prelabel::runtime::{Limits, Runtime};

#[derive(Debug, Parser)]
#[command(
    name = "prelabel",
    version,
    about = "Pre-annotate images with detectors compiled to WebAssembly components"
)]
pub struct Cli {
    /// Where Prelabel keeps its state (store, caches, demo output).
    #[arg(
        long,
        global = true,
        env = "PRELABEL_HOME",
        default_value = ".prelabel"
    )]
    home: PathBuf,
    /// Where compiled components are cached (default: HOME/cache/components).
    #[arg(long, global = true, env = "PRELABEL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a package's detector on image files and print the annotations.
    Detect {
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
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Build the face detector and run it on the sample photos; writes the photos with boxes.
    Demo {
        /// Where to write the annotated photos and the COCO file (default: HOME/demo).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Prelabel's JSON: per image, its annotations, error and captured logs.
    Json,
    /// A COCO detection dataset.
    Coco,
}

#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Seconds one detect call may take.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// The guest's linear-memory cap, in MiB.
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<usize>,
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits> {
        let mut limits = Limits::default();
        if let Some(secs) = self.timeout {
            limits.timeout = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .with_context(|| {
                    format!("--timeout must be a positive number of seconds, got {secs}")
                })?;
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

impl Cli {
    pub fn run(self) -> Result<ExitCode> {
        match self.command {
            Command::Detect {
                ref package,
                ref images,
                ref init,
                format,
                ref limits,
            } => self.detect(package, images, init, format, limits.limits()?),
            Command::Demo { ref out } => {
                let out = out.clone().unwrap_or_else(|| self.home.join("demo"));
                crate::demo::run(&self.runtime()?, &out)?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }

    /// One engine per process, with compiled components cached under HOME.
    fn runtime(&self) -> Result<Runtime> {
        let cache = self
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.home.join("cache/components"));
        Ok(Runtime::new(Some(cache))?)
    }

    fn detect(
        &self,
        package: &Path,
        images: &[PathBuf],
        init: &[String],
        format: Format,
        limits: Limits,
    ) -> Result<ExitCode> {
        let files = expand(images)?;
        let package = Package::load(package)?;
        let given = package.manifest.parse_init_args(init)?;
        let runtime = self.runtime()?;
        let mut runner = LocalRunner::new(&runtime, &package, &given, limits)?;
        let results = run_files(&mut runner, &files);
        let mut stdout = std::io::stdout().lock();
        match format {
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

/// Runs every file; a file that cannot be read is a failed result like any other.
pub fn run_files(runner: &mut LocalRunner<'_>, files: &[PathBuf]) -> Vec<FileResult> {
    files
        .iter()
        .map(|path| {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            match std::fs::read(path) {
                Ok(bytes) => runner.run(&name, bytes),
                Err(e) => FileResult {
                    name,
                    mimetype: String::new(),
                    width: None,
                    height: None,
                    annotations: Vec::new(),
                    error: Some(format!("cannot read {}: {e}", path.display())),
                    logs: String::new(),
                    duration: Duration::ZERO,
                },
            }
        })
        .collect()
}

/// The COCO dataset of the files that are images.
pub fn to_coco(results: &[FileResult]) -> coco::Dataset {
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
