//! Content digests and files written so that they are whole or absent: the store's blobs and
//! the runtime's compiled-component cache both go through here.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The hex sha256 of `bytes`: how blobs and components are named.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` aside, flushes them, then renames them into place: a reader (or a process
/// killed mid-write) sees the old file, the whole new one, or none.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
