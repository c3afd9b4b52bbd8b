//! Content digests and files written so that they are whole or absent: the store's blobs and
//! the runtime's compiled-component cache both go through here.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

/// The hex sha256 of `bytes`: how blobs and components are named.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` aside, flushes them, renames them into place, then flushes the folder so
/// that the rename itself survives a power cut: a reader (or a process killed mid-write)
/// sees the old file, the whole new one, or none, and a row committed after this never
/// points at a blob that is lost.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Unique per write, not per process: two threads writing the same blob (or compiling
    // the same component) must not share a temporary file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = dir {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A fresh folder, removed with everything in it when dropped: where an uploaded package is
/// unpacked before it is read.
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    /// Creates `parent/PREFIX-PID-N`, which did not exist before.
    pub fn new(parent: &Path, prefix: &str) -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(parent)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("{prefix}-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_file_never_share_a_temporary() {
        let dir = std::env::temp_dir().join(format!("prelabel-files-{}", std::process::id()));
        let path = dir.join("blob");
        let threads: Vec<_> = (0..8u8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        write_atomically(&path, &vec![i; 64 << 10]).expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer");
        }
        // Whole: one writer's bytes, never a mix or a short file.
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 64 << 10);
        assert!(bytes.iter().all(|&b| b == bytes[0]));
        let leftovers = std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(leftovers, 1, "temporary files left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
