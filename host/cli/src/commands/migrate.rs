//! `prelabel migrate --from HOME --to postgres://...`: moves a store (its rows with their
//! ids, its blobs) into an empty one, then checks the target as `prelabel check` does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use prelabel::ops::{Home, Migrated};
use prelabel::store::copy::Copied;
use prelabel::store::{BlobsAt, Location};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The home to copy from (its blobs, and its SQLite database unless --from-store).
    #[arg(long)]
    from: PathBuf,
    /// The database to copy from, when it is not the home's SQLite one.
    #[arg(long, default_value = "sqlite")]
    from_store: String,
    /// The database to copy into: a postgres:// URL (or `sqlite` for --home's own). Its
    /// blobs go to --blobs, or HOME/blobs.
    #[arg(long)]
    to: String,
    /// Where the source's blobs are, when not in its home (a folder or an `s3://` URL).
    #[arg(long)]
    from_blobs: Option<String>,
}

impl Args {
    pub fn run(self, home: Home) -> Result<ExitCode> {
        let from = Location {
            database: super::store_database(&self.from_store, "--from-store")?,
            blobs: self.from_blobs.as_deref().map(BlobsAt::parse).transpose()?,
            ..Location::home(self.from)
        };
        let target = Location {
            database: super::store_database(&self.to, "--to")?,
            ..home.location().clone()
        };
        let migrated = Home::at(target, Some(home.cache_dir().to_path_buf())).migrate(&from)?;
        report(&migrated)
    }
}

/// What a copy into a store did, and what `check` found there after (migrate, restore).
pub fn report(migrated: &Migrated) -> Result<ExitCode> {
    print_copied(&migrated.from, &migrated.to, &migrated.copied);
    if migrated.problems.is_empty() {
        println!("check: ok");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &migrated.problems {
            println!("check: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Rows per table and blobs copied.
pub fn print_copied(from: &str, to: &str, copied: &Copied) {
    println!("copied {from} into {to}");
    for (table, rows) in &copied.rows {
        println!("  {table:<20} {rows:>8} rows");
    }
    println!(
        "  {:<20} {:>8} files, {} bytes",
        "blobs", copied.blobs, copied.blob_bytes
    );
}
