//! `prelabel audit [--actor NAME] [--limit N]`: who did what, newest first — every change made
//! through the API (review decisions, deploys, accounts) with the account that made it and
//! the answer's status, and the accounts and decisions the CLI made (as `owner`).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args as ClapArgs;

use super::print_json;
use prelabel::ops::Home;
use prelabel::people::audit::Query;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Only this account's entries (`owner`: the CLI's and the bootstrap token's).
    #[arg(long)]
    actor: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u64,
}

impl Args {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let query = Query {
            actor: self.actor,
            limit: self.limit,
        };
        print_json(&home.audit_log(&query)?)?;
        Ok(ExitCode::SUCCESS)
    }
}
