//! The `prelabel` command: parse, set up logging, hand over to a command (`commands/`), each
//! a thin door onto the library's operations (`prelabel::ops`).

mod commands;
mod overlay;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The sandbox runs native inference in a child process of this same binary.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(prelabel::runtime::WORKER_ARG) {
        return prelabel::runtime::worker_main(&args[2..]);
    }
    let cli = commands::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PRELABEL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by `: `. A library error names its cause in its own
/// message and also keeps it as its `source` (for callers that inspect it): a cause whose
/// text is already there is not repeated.
fn report(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}
