//! `prelabel migrate --from HOME --to postgres://...`: moves a store (its rows with their
//! ids, its blobs) into an empty one, then checks the target as `prelabel check` does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use prelabel::ops::Home;
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
        println!("copied {} into {}", migrated.from, migrated.to);
        for (table, rows) in &migrated.copied.rows {
            println!("  {table:<20} {rows:>8} rows");
        }
        println!(
            "  {:<20} {:>8} files, {} bytes",
            "blobs", migrated.copied.blobs, migrated.copied.blob_bytes
        );
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
}
