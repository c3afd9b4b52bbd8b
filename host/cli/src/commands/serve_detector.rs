//! `prelabel serve-detector`: a package behind the detection API `guest/remote-detector`
//! calls (`prelabel_api::remote`): its reference server, and a detector over HTTP for any tool.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use prelabel::ops::Home;
use prelabel_api::remote;

use super::package::RootArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The package directory (holding prelabel.toml).
    package: PathBuf,
    /// Where to listen (port 0: a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: SocketAddr,
    /// Require `Authorization: Bearer KEY`, KEY read from this environment variable (so
    /// that it is not on a command line).
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Init input values, as declared in prelabel.toml (repeatable).
    #[arg(long = "init", value_name = "KEY=VALUE")]
    init: Vec<String>,
    #[command(flatten)]
    root: RootArg,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let api_key = match &self.api_key_env {
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|k| !k.is_empty())
                    .with_context(|| format!("--api-key-env: ${var} is not set"))?,
            ),
            None => None,
        };
        eprintln!(
            "starting {} (its first start compiles the component)",
            self.package.display()
        );
        let stop = super::schedule::stop_on_ctrl_c()?;
        let (addr, init) = (self.addr, &self.init);
        home.with_detector(&self.package, self.root.get(), init, |package, runner| {
            let name = package.manifest.name.clone();
            remote::serve_blocking(runner, addr, api_key, stop, |addr| {
                eprintln!("listening on http://{addr}/detect ({name} answers)");
            })
        })?
        .with_context(|| format!("serving on {addr}"))?;
        Ok(ExitCode::SUCCESS)
    }
}
