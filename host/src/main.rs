//! The `prelabel` command line: parse, set up logging, hand over to the library.

mod cli;
mod demo;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The sandbox runs native inference in a child process of this same binary.
    let mut args = std::env::args();
    if args.nth(1).as_deref() == Some(prelabel::runtime::WORKER_ARG) {
        return prelabel::runtime::worker_main(&args.next().unwrap_or_default());
    }
    let cli = cli::Cli::parse();
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
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
