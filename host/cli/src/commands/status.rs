//! `prelabel status`: the store, the workers sharing it (their leases and heartbeats, what
//! each runs) and every service's queue.

use std::process::ExitCode;

use anyhow::Result;

use super::print_json;
use prelabel::ops::Home;

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
            "{:<24} {:>8} {:>8} {:>12}",
            "SERVICE", "QUEUED", "RUNNING", "CONCURRENCY"
        );
        for q in &status.queues {
            let paused = if q.paused { "  (paused)" } else { "" };
            println!(
                "{:<24} {:>8} {:>8} {:>12}{paused}",
                q.service, q.queued, q.running, q.concurrency
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
