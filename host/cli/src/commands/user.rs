//! `prelabel user add | list | show | passwd | disable | enable | delete | grant | revoke |
//! token | tokens | untoken`: the accounts that share a home. A password is read from standard
//! input (its first line) or from the environment variable `--password-env` names, never from
//! the command line, where other users of the machine and the shell's history would see it.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::{named, print_json};
use prelabel::ops::Home;
use prelabel::people::user::Role;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add an account (its password: standard input's first line, or --password-env).
    Add {
        name: String,
        #[arg(long, value_parser = named::<Role>())]
        role: Role,
        /// Read the password from this environment variable instead of standard input.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Every account, its role, whether it is disabled and its grants (never a password).
    List,
    Show {
        name: String,
    },
    /// Set a new password (from standard input, or --password-env).
    Passwd {
        name: String,
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// No login and no token of the account works until it is enabled again.
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    /// Delete an account with its tokens and grants.
    Delete {
        name: String,
    },
    /// Grant a dataset to a reviewer or viewer.
    Grant {
        name: String,
        dataset: String,
    },
    /// Take a granted dataset back.
    Revoke {
        name: String,
        dataset: String,
    },
    /// Make an API token for the account; its secret is printed once and stored as a digest.
    Token {
        name: String,
        #[arg(long = "name", value_name = "TOKEN")]
        token: String,
    },
    /// The account's tokens: names, when made and last used (never a secret).
    Tokens {
        name: String,
    },
    /// Revoke one of the account's tokens.
    Untoken {
        name: String,
        #[arg(long = "name", value_name = "TOKEN")]
        token: String,
    },
}

/// The password from `var`, or from standard input's first line.
fn password(var: Option<&str>) -> Result<String> {
    if let Some(var) = var {
        return std::env::var(var)
            .with_context(|| format!("the environment variable {var} holds no password"));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        bail!("no password: give it on standard input (its first line) or with --password-env VAR");
    }
    Ok(line)
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        match self {
            Command::Add {
                name,
                role,
                password_env,
            } => {
                let password = password(password_env.as_deref())?;
                print_json(&home.add_user(&name, role, &password)?)?
            }
            Command::List => print_json(&home.users()?)?,
            Command::Show { name } => print_json(&home.user(&name)?)?,
            Command::Passwd { name, password_env } => {
                let password = password(password_env.as_deref())?;
                print_json(&home.set_password(&name, &password)?)?
            }
            Command::Disable { name } => print_json(&home.disable_user(&name, true)?)?,
            Command::Enable { name } => print_json(&home.disable_user(&name, false)?)?,
            Command::Delete { name } => {
                home.delete_user(&name)?;
                println!("deleted user {name}");
            }
            Command::Grant { name, dataset } => print_json(&home.grant(&name, &dataset, true)?)?,
            Command::Revoke { name, dataset } => print_json(&home.grant(&name, &dataset, false)?)?,
            Command::Token { name, token } => print_json(&home.create_token(&name, &token)?)?,
            Command::Tokens { name } => print_json(&home.tokens(&name)?)?,
            Command::Untoken { name, token } => {
                home.revoke_token(&name, &token)?;
                println!("revoked token {token} of user {name}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
