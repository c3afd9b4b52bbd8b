//! A package as one file, for pushing it to a `prelabel serve` elsewhere: `pack` writes a
//! self-contained `.tar.gz` (the manifest rewritten to name `component.wasm` and
//! `artifacts/...` inside it), `unpack` reads one into a fresh folder and refuses any entry
//! that could reach outside it. An uploaded archive is input like any other.

use std::cell::Cell;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::Package;
use crate::package::manifest;

/// At most this many entries in an archive (a package is a manifest, a component and a few
/// artifacts).
pub const MAX_ENTRIES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the package archive is not a readable tar or tar.gz: {source}")]
    Unreadable {
        #[source]
        source: std::io::Error,
    },
    #[error(
        "package archive entry `{entry}` {reason}; an archive holds only files and folders inside itself"
    )]
    Entry { entry: String, reason: &'static str },
    #[error("the package archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the package archive has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `package` as a `.tar.gz` whose manifest names only files inside the archive.
/// (The manifest is re-serialised: its comments are not kept.)
pub fn pack(package: &Package, out: impl Write) -> Result<(), ArchiveError> {
    let manifest_path = package.dir.join(manifest::FILE_NAME);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { path, source }
    };
    let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| ArchiveError::Io {
        path: manifest_path.clone(),
        source: std::io::Error::other(e),
    })?;
    table.insert("component".into(), "component.wasm".into());
    let mut files = Vec::new();
    if let Some(toml::Value::Array(artifacts)) = table.get_mut("artifacts") {
        for (i, artifact) in artifacts.iter_mut().enumerate() {
            let Some(name) = artifact.get("name").and_then(|n| n.as_str()) else {
                continue;
            };
            let Some(source) = package.artifacts.get(name) else {
                continue;
            };
            let file = source
                .file_name()
                .map_or("artifact".into(), |f| f.to_string_lossy());
            let inside = format!("artifacts/{i}-{file}");
            if let Some(table) = artifact.as_table_mut() {
                table.insert("path".into(), inside.clone().into());
            }
            files.push((inside, source.clone()));
        }
    }
    let manifest = toml::to_string(&table).map_err(|e| ArchiveError::Io {
        path: manifest_path.clone(),
        source: std::io::Error::other(e),
    })?;

    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
    let mut add = |name: &str, bytes: &mut dyn Read, size: u64| {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, bytes)
            .map_err(io(Path::new(name)))
    };
    add(
        manifest::FILE_NAME,
        &mut manifest.as_bytes(),
        manifest.len() as u64,
    )?;
    add(
        "component.wasm",
        &mut package.component.as_slice(),
        package.component.len() as u64,
    )?;
    for (inside, source) in files {
        let mut file = std::fs::File::open(&source).map_err(io(&source))?;
        let size = file.metadata().map_err(io(&source))?.len();
        add(&inside, &mut file, size)?;
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .map_err(io(Path::new("the archive")))?;
    Ok(())
}

/// Unpacks a tar or tar.gz (told apart by gzip's magic bytes) into the empty folder `into`
/// and returns the package folder: `into` itself, or the archive's one top-level folder.
/// Refused: links, devices and other special entries, absolute paths and `..`, an entry
/// that appears twice, more than `limit` bytes once decompressed, more than [`MAX_ENTRIES`].
pub fn unpack(bytes: &[u8], into: &Path, limit: u64) -> Result<PathBuf, ArchiveError> {
    // Counts what the decompressor hands to tar, headers and padding included: a small
    // gzip that inflates without end stops at the limit instead of filling the memory.
    let read = Rc::new(Cell::new(0u64));
    let counted = Counted {
        inner: if bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(GzDecoder::new(bytes)) as Box<dyn Read>
        } else {
            Box::new(bytes)
        },
        read: read.clone(),
        limit,
    };
    let too_large = || read.get() > limit;
    let unreadable = |source| {
        if too_large() {
            ArchiveError::TooLarge { limit }
        } else {
            ArchiveError::Unreadable { source }
        }
    };
    let mut archive = tar::Archive::new(counted);
    for (n, entry) in archive.entries().map_err(unreadable)?.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(ArchiveError::TooManyEntries);
        }
        let mut entry = entry.map_err(unreadable)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason| ArchiveError::Entry {
            entry: name.clone(),
            reason,
        };
        let relative = inside(&name).ok_or_else(|| refuse("leads outside the archive"))?;
        let target = into.join(&relative);
        let io = |source| ArchiveError::Io {
            path: target.clone(),
            source,
        };
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(io)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if relative.as_os_str().is_empty() {
                    return Err(refuse("is a file without a name"));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let mut file = std::fs::File::create_new(&target).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        refuse("appears twice")
                    } else {
                        io(e)
                    }
                })?;
                std::io::copy(&mut entry, &mut file).map_err(|e| {
                    if too_large() {
                        ArchiveError::TooLarge { limit }
                    } else {
                        io(e)
                    }
                })?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => return Err(refuse("is a link")),
            _ => return Err(refuse("is not a regular file or folder")),
        }
    }
    Ok(package_dir(into))
}

/// `name` as a relative path of plain components (a leading `./` allowed), or `None`.
fn inside(name: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(path)
}

/// `into` when the manifest is at the top, else the one folder holding everything (what
/// `tar czf face.tgz face-detector/` makes).
fn package_dir(into: &Path) -> PathBuf {
    if into.join(manifest::FILE_NAME).is_file() {
        return into.to_path_buf();
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(into)
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    match entries.as_slice() {
        [only] if only.is_dir() => only.clone(),
        _ => into.to_path_buf(),
    }
}

/// A reader that counts its bytes and fails once past `limit`.
struct Counted<R> {
    inner: R,
    read: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        if self.read.get() > self.limit {
            return Err(std::io::Error::other("past the size limit"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar whose one entry has a raw name and type, written past tar::Builder's own checks
    /// (it refuses `..`, as an attacker's tool would not).
    fn raw_tar(name: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        header.as_gnu_mut().expect("gnu").name[..bytes.len()].copy_from_slice(bytes);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(kind);
        if kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").expect("a link name");
        }
        header.set_cksum();
        let mut tar = tar::Builder::new(Vec::new());
        tar.append(&header, data).expect("append");
        tar.into_inner().expect("a tar")
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("prelabel-archive-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir
    }

    #[test]
    fn entries_that_reach_outside_or_are_not_plain_files_are_refused() {
        for (name, kind, why) in [
            ("../evil", tar::EntryType::Regular, "leads outside"),
            ("a/../../evil", tar::EntryType::Regular, "leads outside"),
            ("/tmp/evil", tar::EntryType::Regular, "leads outside"),
            ("link", tar::EntryType::Symlink, "is a link"),
            ("hard", tar::EntryType::Link, "is a link"),
            ("fifo", tar::EntryType::Fifo, "not a regular file"),
            ("dev", tar::EntryType::Char, "not a regular file"),
        ] {
            let dir = scratch("hostile");
            let error = unpack(&raw_tar(name, kind, b"x"), &dir, 1 << 20).expect_err(name);
            assert!(error.to_string().contains(why), "{name}: {error}");
            assert!(error.to_string().contains(name), "{name}: {error}");
            assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0, "{name}");
            assert!(!dir.parent().expect("parent").join("evil").exists());
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit_and_a_duplicate_is_refused() {
        let zeros = vec![0u8; 8 << 20];
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&raw_tar("big", tar::EntryType::Regular, &zeros))
            .expect("gzip");
        let bomb = gz.finish().expect("gzip");
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        let error = unpack(&bomb, &scratch("bomb"), 1 << 20).expect_err("too large");
        assert!(
            matches!(error, ArchiveError::TooLarge { limit } if limit == 1 << 20),
            "{error}"
        );

        let mut twice = raw_tar("a.txt", tar::EntryType::Regular, b"one");
        twice.truncate(twice.len() - 1024); // drop the end-of-archive blocks
        twice.extend(raw_tar("./a.txt", tar::EntryType::Regular, b"two"));
        let error = unpack(&twice, &scratch("twice"), 1 << 20).expect_err("twice");
        assert!(error.to_string().contains("appears twice"), "{error}");

        let error = unpack(
            b"not a tar at all, just some text",
            &scratch("junk"),
            1 << 20,
        )
        .expect_err("junk");
        assert!(matches!(error, ArchiveError::Unreadable { .. }), "{error}");
    }

    #[test]
    fn one_top_level_folder_is_the_package() {
        let dir = scratch("nested");
        let tar = raw_tar(
            "pkg/prelabel.toml",
            tar::EntryType::Regular,
            b"name = 'x'\n",
        );
        assert_eq!(
            unpack(&tar, &dir, 1 << 20).expect("unpacks"),
            dir.join("pkg")
        );
        let dir = scratch("flat");
        let tar = raw_tar("./prelabel.toml", tar::EntryType::Regular, b"name = 'x'\n");
        assert_eq!(unpack(&tar, &dir, 1 << 20).expect("unpacks"), dir);
    }
}
