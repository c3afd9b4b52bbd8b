//! The top-level parser and a short dispatch. Each command group lives in a file of its own
//! (`detect`, `package`, `service`, ...) as a clap `Args` or `Subcommand` with a `run` that
//! calls the library's operations (`prelabel::ops::Home`) and formats what they return, in
//! the manner of cargo's `commands/*.rs`.

mod annotations;
mod audit;
mod backup;
mod bench;
mod check;
mod compare;
mod demo;
mod detect;
mod evaluate;
mod executions;
mod items;
mod migrate;
mod new;
mod package;
mod pipeline;
mod schedule;
mod secret;
mod serve_detector;
mod service;
mod status;
mod task;
mod trigger;
mod user;
mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

use prelabel::ops::Home;
use prelabel::store::{BlobsAt, Database, Location};

/// `--lease`: a number of seconds, at least 0.3 (the heartbeat is a third of it).
fn lease_seconds(given: &str) -> Result<f64, String> {
    match given.parse::<f64>() {
        Ok(s) if (0.3..=86400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "`{given}` is not a number of seconds from 0.3 to 86400"
        )),
    }
}

/// A store URL given with `flag`, checked before anything runs (its password never shown).
fn store_database(given: &str, flag: &str) -> Result<Database> {
    Database::parse(given).with_context(|| flag.to_string())
}

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
    /// The database: `sqlite` (HOME/prelabel.db, the default) or a PostgreSQL URL,
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, that many workers share.
    // Read as text and parsed in `run`: clap's own error would print a password in the URL.
    #[arg(
        long,
        global = true,
        env = "PRELABEL_STORE",
        default_value = "sqlite",
        hide_env_values = true
    )]
    store: String,
    /// Where blobs (items, components, artifacts) are kept (default: HOME/blobs); with a
    /// shared database, a folder every worker mounts or an S3-compatible bucket,
    /// s3://BUCKET[/PREFIX]?endpoint=URL[&region=R] (keys from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY).
    #[arg(long, global = true, env = "PRELABEL_BLOBS")]
    blobs: Option<String>,
    /// Seconds a worker's lease lasts without a heartbeat (renewed every third of it): after
    /// it, a worker that stopped or was cut off loses its running executions to the others.
    #[arg(long, global = true, env = "PRELABEL_LEASE", default_value_t = 15.0, value_parser = lease_seconds)]
    lease: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a package's detector on image files and print the annotations.
    Detect(detect::Args),
    /// The seed's whole flow on the sample photos: push, deploy, trigger, upload, work, export.
    Demo(demo::Args),
    /// Packages: push a directory as a new revision, list, show.
    #[command(subcommand)]
    Package(package::Command),
    /// Services: deploy a package revision with init inputs and runtime settings.
    #[command(subcommand)]
    Service(service::Command),
    /// Triggers: run a function when items are created or updated.
    #[command(subcommand)]
    Trigger(trigger::Command),
    /// Pipelines: functions, review tasks and datasets chained after a source of item events.
    #[command(subcommand)]
    Pipeline(pipeline::Command),
    /// Review tasks: the items pipelines' task nodes hold for people, completed or discarded.
    #[command(subcommand)]
    Task(task::Command),
    /// Accounts: users with a role, the datasets granted to them, their API tokens.
    #[command(subcommand)]
    User(user::Command),
    /// Who did what: review decisions and changes made through the API, accounts and
    /// decisions made here.
    Audit(audit::Args),
    /// Upload files (folders recursively) as items of a dataset.
    Upload(items::Upload),
    /// Link items to http(s) URLs; the host downloads them when an execution needs them.
    Link(items::Link),
    /// Items of a dataset.
    #[command(subcommand)]
    Items(items::Command),
    /// Secrets: named values (API tokens) that a dataset's downloads send as headers, and
    /// that secret init inputs name.
    #[command(subcommand)]
    Secret(secret::Command),
    /// Executions: list, logs, rerun.
    #[command(subcommand)]
    Executions(executions::Command),
    /// Run a service's function on an item now, wait, and print the result.
    Execute(executions::Execute),
    /// Run what an execution ran again, storing nothing: are the annotations byte-identical?
    Replay(executions::Replay),
    /// Stored annotations.
    #[command(subcommand)]
    Annotations(annotations::Command),
    /// Run the scheduler and the HTTP API until stopped (Ctrl-C finishes running
    /// executions, then exits).
    Serve(schedule::Serve),
    /// Check the store: SQLite's integrity check and that every blob is there.
    Check,
    /// The store, the workers sharing it (leases, heartbeats, what each runs) and every
    /// service's queue depth.
    Status(status::Args),
    /// Copy a store (rows with their ids, blobs) into an empty one, e.g. a home's SQLite
    /// into PostgreSQL, then check the target.
    Migrate(migrate::Args),
    /// Copy the store, while it serves, into a folder that is a home of its own: every row
    /// committed before the backup began and its blobs (again: only the new blobs).
    Backup(backup::Backup),
    /// Copy a backup into this home's store, which must be empty, then check it.
    Restore(backup::Restore),
    /// Run a candidate package on a dataset beside a service's annotations, storing nothing.
    Compare(compare::Args),
    /// Score a service's annotations on a dataset against COCO ground truth (mAP, P/R).
    Evaluate(evaluate::Args),
    /// Measure the detector in the sandbox vs natively, the host's overhead, component
    /// loading, hot swap and throughput; prints a table.
    Bench(bench::Args),
    /// Answer `POST /detect` with a package's boxes: the detection API remote-detector calls.
    ServeDetector(serve_detector::Args),
    /// Run queued executions; with --until-idle, exit when none are left.
    Work(schedule::Work),
    /// Rebuild, push and deploy a package folder to a service whenever its files change.
    Watch(watch::Args),
    /// Start a package: a detector in Python or Rust that builds and runs as it is.
    New(new::Args),
}

impl Cli {
    pub fn run(self) -> Result<ExitCode> {
        let location = Location {
            database: store_database(&self.store, "--store")?,
            blobs: self
                .blobs
                .as_deref()
                .map(BlobsAt::parse)
                .transpose()
                .context("--blobs")?,
            lease: Duration::from_secs_f64(self.lease),
            ..Location::home(self.home)
        };
        let home = Home::at(location, self.cache_dir);
        let audited = self.command.audited();
        let code = match self.command {
            Command::Detect(args) => args.run(&home),
            Command::Demo(args) => args.run(&home),
            Command::Package(command) => command.run(&home),
            Command::Service(command) => command.run(&home),
            Command::Trigger(command) => command.run(&home),
            Command::Pipeline(command) => command.run(&home),
            Command::Task(command) => command.run(&home),
            Command::User(command) => command.run(&home),
            Command::Audit(args) => args.run(&home),
            Command::Upload(args) => args.run(&home),
            Command::Link(args) => args.run(&home),
            Command::Items(command) => command.run(&home),
            Command::Secret(command) => command.run(&home),
            Command::Executions(command) => command.run(&home),
            Command::Execute(args) => args.run(&home),
            Command::Replay(args) => args.run(&home),
            Command::Annotations(command) => command.run(&home),
            Command::Serve(args) => return args.run(home),
            Command::Check => check::run(&home),
            Command::Status(args) => args.run(&home),
            Command::Migrate(args) => return args.run(home),
            Command::Backup(args) => args.run(&home),
            Command::Restore(args) => args.run(&home),
            Command::ServeDetector(args) => args.run(&home),
            Command::Compare(args) => args.run(&home),
            Command::Evaluate(args) => args.run(&home),
            Command::Bench(args) => args.run(&home),
            Command::Work(args) => return args.run(home),
            Command::Watch(args) => args.run(&home),
            Command::New(args) => args.run(),
        }?;
        // What changed is recorded as the owner's (the CLI runs as whoever owns the home).
        if let Some((action, target)) = audited {
            home.audit("owner", &action, &target, None)?;
        }
        Ok(code)
    }
}

impl Command {
    /// What the audit log records of this command: `GROUP VERB` and its arguments (cut at 200
    /// characters), for the groups that change the catalog, accounts, tasks and reviews, and
    /// not for their reading verbs. Read from the command line as typed: passwords and
    /// secrets' values are never on it.
    fn audited(&self) -> Option<(String, String)> {
        let group = match self {
            Command::Package(_) => "package",
            Command::Service(_) => "service",
            Command::Trigger(_) => "trigger",
            Command::Pipeline(_) => "pipeline",
            Command::Task(_) => "task",
            Command::User(_) => "user",
            Command::Secret(_) => "secret",
            Command::Annotations(_) => "annotations",
            _ => return None,
        };
        const READS: &[&str] = &[
            "list",
            "show",
            "items",
            "tokens",
            "revisions",
            "export",
            "path",
            "pack",
        ];
        let args: Vec<String> = std::env::args().collect();
        let at = args.iter().position(|a| a == group)?;
        let verb = args.get(at + 1)?;
        if READS.contains(&verb.as_str()) {
            return None;
        }
        let target: String = args[at + 2..].join(" ").chars().take(200).collect();
        Some((format!("{group} {verb}"), target))
    }
}

/// A value parser from a library enum's table of names: the names are the possible values.
fn named<T: prelabel::named::Named + Send + Sync + Clone>()
-> impl clap::builder::TypedValueParser<Value = T> {
    let names: Vec<&'static str> = T::NAMES.iter().map(|(_, name)| *name).collect();
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names)
        .try_map(|s: String| prelabel::named::parse::<T>(&s))
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
