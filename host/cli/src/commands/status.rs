//! `prelabel status`: the store, the workers sharing it (their leases and heartbeats, what
//! each runs), every service's queue with its recent queue waits and run times, and the
//! executions by status: what `/metrics` reports of the store.

use std::process::ExitCode;

use anyhow::Result;

use super::print_json;
use prelabel::ops::Home;
use prelabel::work::execution::RECENT;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print it as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let status = home.status()?;
        if self.json {
            print_json(&status)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("store: {}", status.store);
        println!("blobs: {}", status.blobs);
        println!();
        println!(
            "{:<8} {:<28} {:<8} {:>10} {:>8}  RUNNING",
            "WORKER", "NAME", "STATE", "HEARTBEAT", "LEASE"
        );
        if status.workers.is_empty() {
            println!("(none)");
        }
        for w in &status.workers {
            let running: Vec<String> = w.running.iter().map(|id| format!("#{id}")).collect();
            println!(
                "{:<8} {:<28} {:<8} {:>8.1} s {:>6.1} s  {}",
                w.id,
                w.name,
                w.state,
                w.heartbeat_age_ms as f64 / 1000.0,
                w.lease_ms as f64 / 1000.0,
                running.join(" ")
            );
        }
        println!();
        println!(
            "{:<24} {:>8} {:>8} {:>10} {:>12}  {:>16}  {:>16}",
            "SERVICE",
            "QUEUED",
            "RUNNING",
            "INSTANCES",
            "CONCURRENCY",
            "WAIT p50/p95",
            "RUN p50/p95"
        );
        for q in &status.queues {
            let paused = if q.paused { "  (paused)" } else { "" };
            let r = &q.recent;
            println!(
                "{:<24} {:>8} {:>8} {:>10} {:>12}  {:>16}  {:>16}{paused}",
                q.service,
                q.queued,
                q.running,
                q.instances,
                q.concurrency,
                format!("{}/{} ms", r.wait_p50_ms, r.wait_p95_ms),
                format!("{}/{} ms", r.run_p50_ms, r.run_p95_ms),
            );
        }
        println!("(times: the last {} finished executions of each)", RECENT);
        println!();
        let executions: Vec<String> = status
            .executions
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        println!("executions: {}", executions.join(", "));
        Ok(ExitCode::SUCCESS)
    }
}
