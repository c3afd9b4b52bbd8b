//! `prelabel serve` (the scheduler and the HTTP API, until Ctrl-C) and `prelabel work` (the
//! scheduler alone, until Ctrl-C or until idle).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};

use prelabel::ops::Home;
use prelabel::work::execution::Interrupted;
use prelabel::work::scheduler::budget::Host;
use prelabel_api as api;

#[derive(Debug, clap::Args)]
pub struct Work {
    #[arg(long)]
    pub until_idle: bool,
    #[command(flatten)]
    host: HostArgs,
}

/// What this host offers its instances: each is made only when its service's cap fits.
#[derive(Debug, clap::Args)]
struct HostArgs {
    /// MiB of memory the instances may be promised in all (their caps summed); default: the
    /// machine's memory, or its container's limit where lower.
    #[arg(long, env = "PRELABEL_HOST_MEMORY", value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    host_memory: Option<u64>,
    /// Cores the instances may be promised (one each, or their inference threads); default:
    /// no limit (CPU time is shared, where memory is not).
    #[arg(long, env = "PRELABEL_HOST_CORES", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    host_cores: Option<u32>,
}

impl HostArgs {
    fn host(&self) -> Host {
        Host {
            memory_mb: self.host_memory,
            cores: self.host_cores,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Serve {
    /// Where the HTTP API listens. Anything but loopback needs --token.
    #[arg(long, env = "PRELABEL_ADDR", default_value = "127.0.0.1:8700")]
    addr: SocketAddr,
    /// A token every request must carry (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "PRELABEL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The largest request (an upload) the API accepts, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    max_upload_mb: usize,
    /// How long a request body may stall between pieces; past it, it must also average a
    /// byte a second. A slower one is refused (408) and nothing of it is stored.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    body_timeout: f64,
    /// Print the review UI's address (with the token, if any) and open it in a browser.
    #[arg(long)]
    open: bool,
    /// The Label Studio that tasks sent to `/label-studio/<service>` come from: its
    /// `/data/upload/...` images are fetched from it, with --label-studio-api-key.
    #[arg(long, env = "LABEL_STUDIO_URL", value_name = "URL")]
    label_studio_url: Option<String>,
    /// Label Studio's API token (its legacy token: Account & Settings), sent to it alone.
    #[arg(long, env = "LABEL_STUDIO_API_KEY", hide_env_values = true)]
    label_studio_api_key: Option<String>,
    #[command(flatten)]
    host: HostArgs,
}

impl Work {
    pub fn run(self, home: Home) -> Result<ExitCode> {
        let stop = stop_on_ctrl_c()?;
        let home = home.on_host(self.host.host());
        report(home.serve(stop, self.until_idle)?);
        Ok(ExitCode::SUCCESS)
    }
}

impl Serve {
    pub fn run(self, home: Home) -> Result<ExitCode> {
        let home = home.on_host(self.host.host());
        let label_studio = self
            .label_studio_url
            .filter(|url| !url.is_empty())
            .map(|url| {
                prelabel::integrations::labelstudio::Server::new(&url, self.label_studio_api_key)
            })
            .transpose()?;
        let options = api::Options {
            addr: self.addr,
            token: self.token,
            max_body: self.max_upload_mb.saturating_mul(1 << 20),
            body_timeout: Duration::try_from_secs_f64(self.body_timeout)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--body-timeout: a positive number of seconds")?,
            label_studio,
        };
        // Refuse before anything starts: the token rule, then one scheduler per home.
        options.check()?;
        let lock = home.lock()?;
        let stop = stop_on_ctrl_c()?;
        let home = Arc::new(home);
        let scheduler = {
            let (home, stop) = (home.clone(), stop.clone());
            std::thread::spawn(move || home.schedule(lock, stop, false))
        };
        let (open, token) = (self.open, options.token.clone());
        let accounts = home.has_accounts()?;
        // This thread keeps a reference to the home until the API's runtime is gone: were a
        // request's task the last to drop it, the store's PostgreSQL sessions would be closed
        // on a runtime thread, where the synchronous client's own `block_on` panics (seen as
        // an abort at shutdown, after the sessions had been cut).
        let served = api::serve_blocking(home.clone(), options, stop.clone(), |addr| {
            eprintln!("listening on http://{addr}/ (the API is under /api)");
            eprintln!(
                "{}",
                match (&token, accounts) {
                    (None, false) =>
                        "open local mode: no token and no account, so anyone on this machine may use it \
                                      (add an account with `prelabel user add` to require logins)",
                    (None, true) =>
                        "logins required: accounts exist (log in on the page, or send an account's token)",
                    (Some(_), _) =>
                        "logins required: the --token (an admin's) or an account's login or token",
                }
            );
            if open {
                open_ui(addr, token.as_deref());
            }
        });
        // The server stops on Ctrl-C, or failed to start: either way the scheduler drains.
        stop.store(true, Ordering::Relaxed);
        let interrupted = scheduler
            .join()
            .map_err(|_| anyhow::anyhow!("the scheduler panicked"))??;
        served?;
        report(interrupted);
        Ok(ExitCode::SUCCESS)
    }
}

/// Prints the UI's address and asks the desktop to open it (where there is one).
fn open_ui(addr: SocketAddr, token: Option<&str>) {
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let url = match token {
        Some(token) => format!("http://{host}/?token={token}"),
        None => format!("http://{host}/"),
    };
    println!("the review UI: {url}");
    for opener in ["xdg-open", "open"] {
        let spawned = std::process::Command::new(opener)
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            break;
        }
    }
}

/// A flag set by Ctrl-C or SIGTERM (what a service manager sends): stop taking work, let
/// running executions finish, leave the queue as it is. A second one exits at once: what was
/// running stays in the store as running, and the next start re-queues it (nothing is lost).
pub(super) fn stop_on_ctrl_c() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            eprintln!(
                "stopped again: exiting now; what was running is re-queued at the next start"
            );
            std::process::exit(130);
        }
        eprintln!("stopping: running executions finish, queued ones stay queued (again: exit now)");
    })
    .context("cannot install the Ctrl-C and SIGTERM handler")?;
    Ok(stop)
}

fn report(interrupted: Interrupted) {
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
}
