//! `prelabel secret set | list | delete`: named values (API tokens) that downloads send as
//! headers. A value is read from stdin or an environment variable, never from the command
//! line (where `ps` and shell history would show it), and is never printed.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;

use super::print_json;
use prelabel::ops::Home;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set a secret's value, read from stdin (one line; the newline is dropped) or --from-env.
    Set {
        name: String,
        /// Read the value from this environment variable instead of stdin.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
    },
    /// Every secret's name, when it was set and which datasets send it (never the value).
    List,
    /// Delete a secret no dataset uses.
    Delete { name: String },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match self {
            Command::Set { name, from_env } => {
                let value = match from_env {
                    Some(var) => std::env::var(&var)
                        .with_context(|| format!("environment variable {var}"))?,
                    None => {
                        let mut text = String::new();
                        std::io::stdin()
                            .read_to_string(&mut text)
                            .context("reading the value from stdin")?;
                        text
                    }
                };
                let value = value.trim_end_matches(['\r', '\n']);
                let secret = home.set_secret(&name, value)?;
                println!("set secret {}", secret.name);
            }
            Command::List => print_json(&home.secrets()?)?,
            Command::Delete { name } => {
                home.delete_secret(&name)?;
                println!("deleted secret {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
