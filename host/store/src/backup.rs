//! `prelabel backup DIR` and `restore DIR`: a store copied, while it serves, into a folder
//! that is a home of its own (its SQLite database and its blobs folder), and back into an
//! empty store. The rows are read from one snapshot of the source ([`copy`]), whatever its
//! database; the database file is written beside the last backup's and put in its place
//! only when whole, so that a backup stopped halfway leaves the last one as it was; blobs are
//! stored by digest, so a second backup into the folder copies only the blobs it lacks.

use std::path::{Path, PathBuf};

use super::copy::{self, Copied};
use super::{BlobsAt, Location, SQLITE_FILE, Store, StoreError};

/// Where a backup in progress writes its database, inside the backup's folder.
const IN_PROGRESS: &str = ".backup-in-progress";

/// Copies `from` into `dir` (made if missing), replacing the backup there, if any.
pub fn backup(from: &Store, dir: &Path) -> Result<Copied, StoreError> {
    let io =
        |what: &'static str, path: PathBuf| move |source| StoreError::Io { what, path, source };
    refuse_itself(from.location(), dir)?;
    let fresh = dir.join(IN_PROGRESS);
    // What a stopped backup left.
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(io(
            "cannot remove a stopped backup's leftovers",
            fresh.clone(),
        ))?;
    }
    let mut to = Location {
        blobs: Some(BlobsAt::Folder(dir.join("blobs"))),
        ..Location::home(&fresh)
    }
    .open()?;
    let copied = copy::copy(from, &mut to)?;
    // One file, whole: out of WAL mode (which checkpoints the log into it), then closed.
    to.conn()
        .execute_batch("PRAGMA journal_mode = DELETE")
        .map_err(|e| to.err(e))?;
    drop(to);
    let file = dir.join(SQLITE_FILE);
    // A log left beside the last backup's database (a home opened on the backup and
    // killed) belongs to it, not to the new one.
    for log in ["-wal", "-shm"] {
        let path = dir.join(format!("{SQLITE_FILE}{log}"));
        if path.exists() {
            std::fs::remove_file(&path).map_err(io("cannot remove", path.clone()))?;
        }
    }
    std::fs::rename(fresh.join(SQLITE_FILE), &file)
        .map_err(io("cannot put the backup's database in place at", file))?;
    std::fs::remove_dir_all(&fresh).map_err(io("cannot remove", fresh))?;
    Ok(copied)
}

/// A backup into the home itself would put the copy in place of the live database (on
/// SQLite), and one into the blob folder would mix its files with the blobs.
fn refuse_itself(source: &Location, dir: &Path) -> Result<(), StoreError> {
    let real = |p: &Path| std::fs::canonicalize(p).ok();
    let Some(dir_real) = real(dir) else {
        return Ok(()); // Not there yet: neither of them.
    };
    let blobs = match source.blobs_at() {
        BlobsAt::Folder(folder) => real(&folder),
        _ => None,
    };
    if [real(&source.home), blobs].contains(&Some(dir_real)) {
        return Err(StoreError::BackupIntoItself {
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Copies the backup in `dir` into `to`, which must be empty.
pub fn restore(dir: &Path, to: &mut Store) -> Result<Copied, StoreError> {
    // Opening a folder without a database would make an empty one, and restore nothing.
    if !dir.join(SQLITE_FILE).is_file() {
        return Err(StoreError::NoBackup {
            dir: dir.to_path_buf(),
        });
    }
    let from = Location::home(dir).open()?;
    copy::copy(&from, to)
}
