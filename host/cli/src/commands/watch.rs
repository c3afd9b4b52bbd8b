//! `prelabel watch`: keeps a package folder live on a service, rebuilding, pushing and
//! deploying it when its files change (see `prelabel::catalog::watch`). Runs until interrupted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use prelabel::catalog::watch::{INTERVAL, Pass, Watch};
use prelabel::ops::Home;
use prelabel::package::build::Built;

use super::package::RootArg;

/// Rebuild, push and deploy a package folder to a service whenever its files change.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package folder (its `prelabel.toml`; a `build` command, or a Cargo crate).
    dir: PathBuf,
    /// The service to keep on the newest revision (created on the first push if missing).
    #[arg(long)]
    service: String,
    #[command(flatten)]
    root: RootArg,
    /// Also watch this file or folder (a path dependency's sources, say); repeatable.
    #[arg(long, value_name = "PATH")]
    also: Vec<PathBuf>,
    /// How often to look for changes, in milliseconds.
    #[arg(long, default_value_t = INTERVAL.as_millis() as u64)]
    interval_ms: u64,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let interval = Duration::from_millis(self.interval_ms.max(10));
        let mut watch = Watch::new(
            self.dir.clone(),
            self.root.get().map(PathBuf::from),
            self.service,
            self.also,
        );
        println!(
            "watching {} for service {} (Ctrl-C to stop)",
            self.dir.display(),
            watch.service
        );
        loop {
            if watch.changed() {
                // Wait until the files stay still for one interval: saves come in bursts.
                loop {
                    std::thread::sleep(interval);
                    if !watch.changed() {
                        break;
                    }
                }
                report(&watch.service, &home.watch_pass(&watch)?);
                watch.settle();
            }
            std::thread::sleep(interval);
        }
    }
}

fn report(service: &str, pass: &Pass) {
    let built = |built: &Option<Built>| {
        built.as_ref().map_or_else(String::new, |b| {
            format!("built with `{}` in {:.1} s; ", b.command, b.secs)
        })
    };
    let keeps = |serving: &Option<String>| match serving {
        Some(serving) => format!("service {service} keeps {serving}"),
        None => format!("service {service} is not created"),
    };
    match pass {
        Pass::Deployed {
            revision,
            was,
            built: b,
        } => println!(
            "{}pushed {}; service {service} {} it",
            built(b),
            revision.label(),
            match was {
                Some(was) => format!("switched from {was} to"),
                None => "created with".to_string(),
            }
        ),
        Pass::Unchanged { serving, built: b } => println!(
            "{}unchanged: service {service} runs {serving} already",
            built(b)
        ),
        Pass::BuildFailed {
            command,
            status,
            serving,
        } => println!("build failed: `{command}`: {status}; {}", keeps(serving)),
        // One line per pass: a parser's message may span several.
        Pass::Refused { error, serving } => println!(
            "refused: {}; {}",
            error.split_whitespace().collect::<Vec<_>>().join(" "),
            keeps(serving)
        ),
    }
}
