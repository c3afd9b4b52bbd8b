//! `prelabel service deploy | list | show | pause | resume | delete | rollback | types`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use prelabel::catalog::service;
use prelabel::ops::Deployed;

use super::print_json;
use prelabel::ops::Home;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a service, or update it (new revision, inputs, settings) without a restart.
    Deploy(Box<Deploy>),
    /// Every service with its revision, state and settings.
    List,
    /// One service: revision, init inputs, runtime settings.
    Show { name: String },
    /// Stop starting executions (they stay queued; running ones finish).
    Pause { name: String },
    /// Start executions again.
    Resume { name: String },
    /// Delete a service and its triggers (its queued executions are canceled; finished ones
    /// and their annotations stay).
    Delete { name: String },
    /// Go back to the previously deployed revision.
    Rollback { name: String },
    /// The instance types `deploy --instance-type` may name: built in, and the home's
    /// (HOME/instance-types.toml).
    Types,
}

/// `service deploy`'s arguments: the package, the service's name, and its settings.
#[derive(Debug, clap::Args)]
pub struct Deploy {
    /// The package to deploy.
    package: String,
    #[arg(long)]
    name: String,
    /// The package revision (default: the latest).
    #[arg(long)]
    revision: Option<i64>,
    #[arg(long = "init", value_name = "KEY=VALUE")]
    init: Vec<String>,
    /// Executions at once (default 1: one at a time, in order), each on an instance of its
    /// own: the most instances the service has (`--max-instances` says the same).
    #[arg(long, visible_alias = "max-instances")]
    concurrency: Option<u32>,
    /// Instances kept however idle once made (default 0: every one is given back after
    /// `--idle`).
    #[arg(long, value_name = "N")]
    min_instances: Option<u32>,
    /// Seconds an instance above `--min-instances` may sit idle before its memory is given
    /// back (default 300).
    #[arg(long, value_name = "SECS")]
    idle: Option<f64>,
    /// Seconds one execution may take (default 60).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Attempts before an execution is failed (default 1).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// A class of instance: its memory cap and inference threads (`small`, `regular`,
    /// `large`, `xlarge`, `highmem`, the seed's `regular-s` and so on, or the home's own:
    /// `prelabel service types`). A flag given beside it wins.
    #[arg(long, value_name = "TYPE")]
    instance_type: Option<String>,
    /// The instance's memory cap in MiB (default 1024): the guest's memory and what the
    /// host holds for it; the host's budget promises each instance this much.
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
    /// Which engine runs those models: `auto` (default: ONNX Runtime where it is
    /// installed, else tract), `onnxruntime` (refused here when it is not) or `tract`.
    #[arg(long, value_name = "ENGINE")]
    inference_engine: Option<prelabel::runtime::EngineChoice>,
    /// Threads one inference call may use (default 1: a service at concurrency N uses N
    /// cores); more for a service that runs alone.
    #[arg(long, value_name = "N")]
    inference_threads: Option<u32>,
    /// Let the guest call only these of the package's `allowed_outbound_hosts`
    /// (`https://api.example.com`; repeatable): a deploy narrows the list, never widens
    /// it. Without it the service keeps its list (a new one: the package's).
    #[arg(long = "allow-host", value_name = "ORIGIN")]
    allow_host: Vec<String>,
}

impl Deploy {
    /// The operation's request.
    fn request(&self) -> service::Deploy {
        service::Deploy {
            package: self.package.clone(),
            name: self.name.clone(),
            revision: self.revision,
            init: self.init.clone(),
            concurrency: self.concurrency,
            min_instances: self.min_instances,
            idle: self.idle,
            timeout: self.timeout,
            init_timeout: self.init_timeout,
            max_attempts: self.max_attempts,
            memory_mb: self.memory_mb,
            max_item_mb: self.max_item_mb,
            max_annotations: self.max_annotations,
            log_kb: self.log_kb,
            allow_inference: self.allow_inference,
            inference_engine: self.inference_engine,
            inference_threads: self.inference_threads,
            instance_type: self.instance_type.clone(),
            allow_host: (!self.allow_host.is_empty()).then(|| self.allow_host.clone()),
        }
    }
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let show = |s: &service::Service| -> Result<()> { print_json(s) };
        match &self {
            Command::Deploy(deploy) => {
                let request = deploy.request();
                let Deployed {
                    service: s,
                    created,
                } = home.deploy(&request)?;
                println!(
                    "{} service {} ({} revision {}, generation {})",
                    if created { "created" } else { "updated" },
                    s.name,
                    s.package,
                    s.revision,
                    s.generation
                );
            }
            Command::List => {
                println!(
                    "{:<24} {:<24} {:>8} {:>11} {:<7}",
                    "service", "package", "revision", "concurrency", "state"
                );
                for s in home.services()? {
                    let state = if s.paused { "paused" } else { "active" };
                    println!(
                        "{:<24} {:<24} {:>8} {:>11} {:<7}",
                        s.name, s.package, s.revision, s.settings.concurrency, state
                    );
                }
            }
            Command::Show { name } => show(&home.service(name)?)?,
            Command::Pause { name } => show(&home.set_paused(name, true)?)?,
            Command::Resume { name } => show(&home.set_paused(name, false)?)?,
            Command::Delete { name } => {
                let deleted = home.delete_service(name)?;
                println!(
                    "deleted service {name} ({} queued executions canceled)",
                    deleted.canceled
                );
            }
            Command::Types => {
                println!("{:<16} {:>10} {:>8}  about", "type", "memory", "threads");
                for (name, kind) in home.instance_types()?.list() {
                    let memory = format!("{} MiB", kind.memory_mb);
                    let threads = kind.inference_threads;
                    println!("{name:<16} {memory:>10} {threads:>8}  {}", kind.about);
                }
            }
            Command::Rollback { name } => {
                let s = home.rollback(name)?;
                println!(
                    "service {} now runs {} revision {} (generation {})",
                    s.name, s.package, s.revision, s.generation
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
