//! Command-line arguments and what each command does with the library.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use prelabel::local::{FileResult, LocalRunner};
use prelabel::package::Package;
use prelabel::runtime::{Limits, Runtime};
use prelabel::store::Store;
use prelabel::{coco, execution, export, item, package, scheduler, service, trigger};

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
        #[command(flatten)]
        root: RootArg,
    },
    /// The seed's whole flow on the sample photos: push, deploy, trigger, upload, work, export.
    Demo {
        /// Where to write the annotated photos and the exports (default: HOME/demo).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Packages: push a directory as a new revision, list, show.
    #[command(subcommand)]
    Package(PackageCommand),
    /// Services: deploy a package revision with init inputs and runtime settings.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Triggers: run a function when items are created or updated.
    #[command(subcommand)]
    Trigger(TriggerCommand),
    /// Upload files (folders recursively) as items of a dataset.
    Upload {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        dataset: String,
    },
    /// Items of a dataset.
    #[command(subcommand)]
    Items(ItemsCommand),
    /// Executions: list, logs, rerun.
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// Run a service's function on an item now, wait, and print the result.
    Execute {
        service: String,
        #[arg(long, default_value = "detect")]
        function: String,
        #[arg(long)]
        item: i64,
    },
    /// Stored annotations.
    #[command(subcommand)]
    Annotations(AnnotationsCommand),
    /// Run the scheduler until stopped (Ctrl-C finishes running executions, then exits).
    Serve,
    /// Check the store: SQLite's integrity check and that every blob is there.
    Check,
    /// Measure the detector in the sandbox vs natively, the host's overhead, component
    /// loading, hot swap and throughput; prints a table.
    Bench {
        /// Repetitions per measure.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Run queued executions; with --until-idle, exit when none are left.
    Work {
        #[arg(long)]
        until_idle: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PackageCommand {
    /// Check and store a package directory as a new revision.
    Push {
        dir: PathBuf,
        #[command(flatten)]
        root: RootArg,
    },
    List,
    /// Revisions of a package, with digests.
    Show {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Create a service, or update it (new revision, inputs, settings) without a restart.
    Deploy {
        /// The package to deploy.
        package: String,
        #[arg(long)]
        name: String,
        /// The package revision (default: the latest).
        #[arg(long)]
        revision: Option<i64>,
        #[arg(long = "init", value_name = "KEY=VALUE")]
        init: Vec<String>,
        /// Executions at once (default 1: one at a time, in order).
        #[arg(long)]
        concurrency: Option<u32>,
        /// Seconds one execution may take (default 60).
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// Attempts before an execution is failed (default 1).
        #[arg(long)]
        max_attempts: Option<u32>,
        /// The guest's memory cap in MiB (default 1024).
        #[arg(long)]
        memory_mb: Option<u32>,
        /// Seconds init may take (default 120).
        #[arg(long, value_name = "SECS")]
        init_timeout: Option<f64>,
        /// Larger items fail without running (default 256).
        #[arg(long)]
        max_item_mb: Option<u32>,
        /// A result with more annotations fails (default 10000).
        #[arg(long)]
        max_annotations: Option<u32>,
        /// Captured logs kept per call, in KiB (default 1024).
        #[arg(long)]
        log_kb: Option<u32>,
        /// Let the guest run ONNX artifacts natively (the `inference` import): code outside
        /// the wasm sandbox, in a worker process under the same memory cap and deadline.
        /// Off by default; `--allow-inference=false` takes it back.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        allow_inference: Option<bool>,
    },
    List,
    Show {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Go back to the previously deployed revision.
    Rollback {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TriggerCommand {
    Create {
        name: String,
        #[arg(long)]
        service: String,
        #[arg(long, default_value = "detect")]
        function: String,
        #[arg(long, value_enum, value_delimiter = ',', default_value = "created")]
        actions: Vec<trigger::Action>,
        /// Only items of this dataset (default: all).
        #[arg(long)]
        dataset: Option<String>,
        /// PATH=GLOB, PATH!=GLOB or PATH in A,B (repeatable, joined by AND).
        #[arg(long = "filter")]
        filters: Vec<String>,
        #[arg(long, value_enum, default_value = "once")]
        mode: trigger::Mode,
    },
    List,
    Delete {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ItemsCommand {
    List {
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ExecutionsCommand {
    List {
        #[arg(long, value_enum)]
        status: Option<execution::Status>,
        #[arg(long)]
        json: bool,
    },
    /// The captured logs of an execution (guest output, log calls, attempts).
    Logs { id: i64 },
    /// Queue again every execution with a status (default: failed and timed-out).
    Rerun {
        #[arg(long, value_enum)]
        status: Option<execution::Status>,
    },
}

#[derive(Debug, Subcommand)]
enum AnnotationsCommand {
    Export {
        #[arg(long)]
        dataset: String,
        #[arg(long, value_enum, default_value = "json")]
        format: export::Format,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Prelabel's JSON: per image, its annotations, error and captured logs.
    Json,
    /// A COCO detection dataset.
    Coco,
}

/// Where a package's files may come from, beyond its own folder.
#[derive(Debug, clap::Args)]
struct RootArg {
    /// A folder holding the package that its `component` and `artifacts` paths may reach
    /// into (for example a source checkout with `target/` and `models/`). Without it a
    /// package reads only files inside its own folder.
    #[arg(long, value_name = "DIR", env = "PRELABEL_PACKAGE_ROOT")]
    root: Option<PathBuf>,
}

impl RootArg {
    fn get(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

#[derive(Debug, clap::Args)]
struct LimitArgs {
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
}

impl LimitArgs {
    fn limits(&self) -> Result<Limits> {
        let mut limits = Limits {
            allow_inference: self.allow_inference,
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

impl Cli {
    pub fn run(self) -> Result<ExitCode> {
        match self.command {
            Command::Detect {
                ref package,
                ref images,
                ref init,
                format,
                ref limits,
                ref root,
            } => self.detect(package, root.get(), images, init, format, limits.limits()?),
            Command::Demo { ref out } => {
                let out = out.clone().unwrap_or_else(|| self.home.join("demo"));
                crate::demo::run(self.runtime()?, &out)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Package(ref c) => self.package(c),
            Command::Service(ref c) => self.service(c),
            Command::Trigger(ref c) => self.trigger(c),
            Command::Upload {
                ref paths,
                ref dataset,
            } => self.upload(paths, dataset),
            Command::Items(ItemsCommand::List { ref dataset, json }) => {
                let items = item::list(&self.store()?, dataset.as_deref())?;
                if json {
                    print_json(&items)?;
                } else {
                    println!(
                        "{:>6}  {:<16} {:<36} {:<20} {:>10}",
                        "id", "dataset", "name", "mimetype", "bytes"
                    );
                    for i in items {
                        println!(
                            "{:>6}  {:<16} {:<36} {:<20} {:>10}",
                            i.id, i.dataset, i.name, i.mimetype, i.size
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Executions(ref c) => self.executions(c),
            Command::Execute {
                ref service,
                ref function,
                item,
            } => {
                let runtime = self.runtime()?;
                let e = scheduler::execute_now(&self.home, &runtime, service, function, item)?;
                let store = self.store()?;
                let annotations: Vec<_> = export::item_annotations(&store, item)?
                    .into_iter()
                    .filter(|a| a.execution_id == e.id)
                    .collect();
                print_json(
                    &serde_json::json!({"execution": e, "logs": e.logs, "annotations": annotations}),
                )?;
                Ok(if e.status == execution::Status::Success {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            Command::Annotations(AnnotationsCommand::Export {
                ref dataset,
                format,
                ref output,
            }) => {
                let value = export::export(&self.store()?, dataset, format)?;
                let text = serde_json::to_string_pretty(&value)?;
                match output {
                    Some(path) => {
                        std::fs::write(path, text + "\n")
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!("wrote {}", path.display());
                    }
                    None => println!("{text}"),
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Serve => self.schedule(false),
            Command::Bench { runs } => {
                let workspace = prelabel::workspace::Workspace::find()?;
                eprintln!("building the face-detector and no-op components...");
                workspace.build_guest("face-detector")?;
                workspace.build_guest("hostile-guest")?;
                let options = prelabel::bench::Options {
                    face_detector: workspace.package_dir("face-detector"),
                    noop: workspace.root.join("tests/guests/hostile"),
                    image: workspace.samples_dir().join("skimage_rocket.jpg"),
                    samples: workspace.samples_dir(),
                    runs,
                    scratch: self.home.join("bench"),
                };
                eprintln!("measuring ({runs} runs each; this takes a minute)...");
                let rows = prelabel::bench::run(&options)?;
                print!("{}", prelabel::bench::render(&rows));
                Ok(ExitCode::SUCCESS)
            }
            Command::Check => {
                let problems = self.store()?.check()?;
                for p in &problems {
                    println!("{p}");
                }
                if problems.is_empty() {
                    println!("ok");
                    Ok(ExitCode::SUCCESS)
                } else {
                    Ok(ExitCode::FAILURE)
                }
            }
            Command::Work { until_idle } => self.schedule(until_idle),
        }
    }

    fn store(&self) -> Result<Store> {
        Ok(Store::open(&self.home)?)
    }

    fn package(&self, command: &PackageCommand) -> Result<ExitCode> {
        let mut store = self.store()?;
        match command {
            PackageCommand::Push { dir, root } => {
                let r = package::push(&mut store, &self.runtime()?, dir, root.get())?;
                println!(
                    "pushed {} revision {} (version {}, component sha256:{})",
                    r.package, r.revision, r.version, r.component_digest
                );
                for (name, (digest, size)) in &r.artifacts {
                    println!("  artifact {name}: sha256:{digest} ({size} bytes)");
                }
            }
            PackageCommand::List => {
                println!(
                    "{:<24} {:>8}  {:<12} created",
                    "package", "revision", "version"
                );
                for r in package::list(&store)? {
                    println!(
                        "{:<24} {:>8}  {:<12} {}",
                        r.package, r.revision, r.version, r.created_at
                    );
                }
            }
            PackageCommand::Show { name } => {
                for r in package::revisions(&store, name)? {
                    println!(
                        "{} revision {} (version {}), {}",
                        r.package, r.revision, r.version, r.created_at
                    );
                    println!("  component sha256:{}", r.component_digest);
                    for (a, (digest, size)) in &r.artifacts {
                        println!("  artifact {a}: sha256:{digest} ({size} bytes)");
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn service(&self, command: &ServiceCommand) -> Result<ExitCode> {
        let mut store = self.store()?;
        let show = |s: &service::Service| -> Result<()> { print_json(s) };
        match command {
            ServiceCommand::Deploy {
                package,
                name,
                revision,
                init,
                concurrency,
                timeout,
                max_attempts,
                memory_mb,
                init_timeout,
                max_item_mb,
                max_annotations,
                log_kb,
                allow_inference,
            } => {
                let seconds = |t: Option<f64>, flag: &str| {
                    t.map(|t| {
                        Duration::try_from_secs_f64(t)
                            .with_context(|| format!("{flag} must be a number of seconds, got {t}"))
                    })
                    .transpose()
                };
                let request = service::Deploy {
                    package: package.clone(),
                    name: name.clone(),
                    revision: *revision,
                    init: init.clone(),
                    concurrency: *concurrency,
                    timeout: seconds(*timeout, "--timeout")?,
                    init_timeout: seconds(*init_timeout, "--init-timeout")?,
                    max_attempts: *max_attempts,
                    memory_mb: *memory_mb,
                    max_item_mb: *max_item_mb,
                    max_annotations: *max_annotations,
                    log_kb: *log_kb,
                    allow_inference: *allow_inference,
                };
                let (s, created) = service::deploy(&mut store, &request)?;
                println!(
                    "{} service {} ({} revision {}, generation {})",
                    if created { "created" } else { "updated" },
                    s.name,
                    s.package,
                    s.revision,
                    s.generation
                );
            }
            ServiceCommand::List => {
                println!(
                    "{:<24} {:<24} {:>8} {:>11} {:<7}",
                    "service", "package", "revision", "concurrency", "state"
                );
                for s in service::list(&store)? {
                    let state = if s.paused { "paused" } else { "active" };
                    println!(
                        "{:<24} {:<24} {:>8} {:>11} {:<7}",
                        s.name, s.package, s.revision, s.settings.concurrency, state
                    );
                }
            }
            ServiceCommand::Show { name } => show(&service::get(&store, name)?)?,
            ServiceCommand::Pause { name } => show(&service::set_paused(&mut store, name, true)?)?,
            ServiceCommand::Resume { name } => {
                show(&service::set_paused(&mut store, name, false)?)?
            }
            ServiceCommand::Delete { name } => {
                let canceled = service::delete(&mut store, name)?;
                println!("deleted service {name} ({canceled} queued executions canceled)");
            }
            ServiceCommand::Rollback { name } => {
                let s = service::rollback(&mut store, name)?;
                println!(
                    "service {} now runs {} revision {} (generation {})",
                    s.name, s.package, s.revision, s.generation
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn trigger(&self, command: &TriggerCommand) -> Result<ExitCode> {
        let mut store = self.store()?;
        match command {
            TriggerCommand::Create {
                name,
                service,
                function,
                actions,
                dataset,
                filters,
                mode,
            } => {
                let t = trigger::create(
                    &mut store,
                    &trigger::Create {
                        name: name.clone(),
                        service: service.clone(),
                        function: function.clone(),
                        actions: actions.clone(),
                        dataset: dataset.clone(),
                        filters: filters.clone(),
                        mode: *mode,
                    },
                )?;
                println!(
                    "created trigger {} -> {}.{}",
                    t.spec.name, t.spec.service, t.spec.function
                );
            }
            TriggerCommand::List => print_json(&trigger::list(&store)?)?,
            TriggerCommand::Delete { name } => {
                trigger::delete(&mut store, name)?;
                println!("deleted trigger {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn upload(&self, paths: &[PathBuf], dataset: &str) -> Result<ExitCode> {
        let mut store = self.store()?;
        let files = collect_files(paths)?;
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let (mut counts, mut queued) = (BTreeMap::<&str, usize>::new(), 0);
        for (path, name) in &files {
            bar.set_message(name.clone());
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let (_, change, q) = item::upload(&mut store, dataset, name, &bytes)?;
            *counts
                .entry(match change {
                    item::Change::Created => "created",
                    item::Change::Updated => "updated",
                    item::Change::Unchanged => "unchanged",
                })
                .or_default() += 1;
            queued += q;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "uploaded {} files to {dataset}: {}; {queued} executions queued",
            files.len(),
            summary.join(", ")
        );
        Ok(ExitCode::SUCCESS)
    }

    fn executions(&self, command: &ExecutionsCommand) -> Result<ExitCode> {
        let mut store = self.store()?;
        match command {
            ExecutionsCommand::List { status, json } => {
                let all = execution::list(&store, *status)?;
                if *json {
                    print_json(&all)?;
                } else {
                    println!(
                        "{:>6}  {:<20} {:<28} {:<10} {:>8} {:>9}  error",
                        "id", "service", "item", "status", "attempts", "ms"
                    );
                    for e in all {
                        println!(
                            "{:>6}  {:<20} {:<28} {:<10} {:>8} {:>9}  {}",
                            e.id,
                            e.service,
                            e.item,
                            e.status.as_str(),
                            e.attempts,
                            e.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                            // Errors quote guests: no escape sequence reaches the terminal.
                            printable(&e.error.unwrap_or_default())
                        );
                    }
                }
            }
            ExecutionsCommand::Logs { id } => print!("{}", execution::get(&store, *id)?.logs),
            ExecutionsCommand::Rerun { status } => {
                let rerun = execution::rerun(&mut store, *status)?;
                println!(
                    "queued {} executions again; skipped {} (already rerun, or a later execution exists)",
                    rerun.queued.len(),
                    rerun.skipped
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn schedule(&self, until_idle: bool) -> Result<ExitCode> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // Ctrl-C: stop taking work, let running executions finish.
        ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
            .context("cannot install the Ctrl-C handler")?;
        let interrupted = scheduler::run(&self.home, Arc::new(self.runtime()?), stop, until_idle)?;
        if interrupted.requeued > 0 {
            eprintln!(
                "re-queued {} executions interrupted by a stopped host",
                interrupted.requeued
            );
        }
        if interrupted.failed > 0 {
            eprintln!(
                "failed {} executions: the host had stopped during them more often than their max_attempts \
                 (or the process running them directly is gone)",
                interrupted.failed
            );
        }
        Ok(ExitCode::SUCCESS)
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
        root: Option<&Path>,
        images: &[PathBuf],
        init: &[String],
        format: Format,
        limits: Limits,
    ) -> Result<ExitCode> {
        let files = expand(images)?;
        let package = Package::load_within(package, root)?;
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
fn run_files(runner: &mut LocalRunner<'_>, files: &[PathBuf]) -> Vec<FileResult> {
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
fn to_coco(results: &[FileResult]) -> coco::Dataset {
    let mut builder = coco::Builder::default();
    for r in results {
        if let (Some(w), Some(h)) = (r.width, r.height) {
            builder.add_image(&r.name, w, h, &r.annotations);
        }
    }
    builder.finish()
}

/// Text for a table: control characters (escape sequences) shown escaped.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect()
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// Files to upload with their item names: a file is named by its file name, files found in
/// a folder by their path inside it (`sub/a.jpg`). Folders are walked recursively, in order.
/// Inside a folder, a symbolic link is followed only to a file inside that folder: a link out
/// of it (a dataset from elsewhere with `leak.jpg -> ~/.ssh/id_ed25519`) would hand a host
/// file to every guest, and a link to a folder could loop. Either is refused, naming the link,
/// before anything is stored.
fn collect_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    fn walk(dir: &Path, base: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let meta = std::fs::symlink_metadata(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            if meta.is_symlink() {
                let target = p
                    .canonicalize()
                    .with_context(|| format!("{}: a symbolic link to nothing", p.display()))?;
                if !target.starts_with(root) || !target.is_file() {
                    bail!(
                        "{}: a symbolic link to {} is not followed (only links to files inside {} are); \
                         upload its target by name if you mean it (nothing was uploaded)",
                        p.display(),
                        target.display(),
                        base.display()
                    );
                }
            } else if meta.is_dir() {
                walk(&p, base, root, out)?;
                continue;
            } else if !meta.is_file() {
                continue;
            }
            let name =
                item_name(p.strip_prefix(base).unwrap_or(&p).as_os_str(), &p)?.replace('\\', "/");
            out.push((p, name));
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let root = path
                .canonicalize()
                .with_context(|| format!("cannot read {}", path.display()))?;
            walk(path, path, &root, &mut out)?;
        } else if path.is_file() {
            let name = item_name(path.file_name().unwrap_or(path.as_os_str()), path)?;
            out.push((path.clone(), name));
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(out)
}

/// An item's name from a file's: refused when it is not UTF-8, since a lossy conversion
/// would give two different files the same item (the second an "update" of the first).
fn item_name(name: &std::ffi::OsStr, path: &Path) -> Result<String> {
    name.to_str().map(str::to_string).with_context(|| {
        format!(
            "{}: the file name is not valid UTF-8; rename it (nothing was uploaded)",
            path.display()
        )
    })
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
