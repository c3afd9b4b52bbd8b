//! `prelabel upload` and `prelabel items list`: files in, items out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use prelabel::ops::Uploads;

use super::print_json;
use prelabel::ops::Home;

#[derive(Debug, clap::Args)]
pub struct Upload {
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long)]
    dataset: String,
}

impl Upload {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let (paths, dataset) = (self.paths, self.dataset);
        let files = collect_files(&paths)?;
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut uploads = Uploads::default();
        for (path, name) in &files {
            bar.set_message(name.clone());
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            uploads.add(&home.upload(&dataset, name, &bytes)?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        let counts = [
            (uploads.created, "created"),
            (uploads.unchanged, "unchanged"),
            (uploads.updated, "updated"),
        ];
        let summary: Vec<String> = counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        println!(
            "uploaded {} files to {dataset}: {}; {} executions queued",
            files.len(),
            summary.join(", "),
            uploads.queued
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    List {
        #[arg(long)]
        dataset: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let Command::List { dataset, json } = self;
        let items = home.items(dataset.as_deref())?;
        if json {
            print_json(&items)?;
        } else {
            println!(
                "{:>6}  {:<16} {:<36} {:<20} {:>10}",
                "id", "dataset", "name", "mimetype", "bytes"
            );
            for i in items {
                println!(
                    "{:>6}  {:<16} {:<36} {:<20} {:>10}",
                    i.id, i.dataset, i.name, i.mimetype, i.size
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Files to upload with their item names: a file is named by its file name, files found in
/// a folder by their path inside it (`sub/a.jpg`). Folders are walked recursively, in order.
/// Inside a folder, a symbolic link is followed only to a file inside that folder: a link out
/// of it (a dataset from elsewhere with `leak.jpg -> ~/.ssh/id_ed25519`) would hand a host
/// file to every guest, and a link to a folder could loop. Either is refused, naming the link,
/// before anything is stored.
fn collect_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    fn walk(dir: &Path, base: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let meta = std::fs::symlink_metadata(&p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            if meta.is_symlink() {
                let target = p
                    .canonicalize()
                    .with_context(|| format!("{}: a symbolic link to nothing", p.display()))?;
                if !target.starts_with(root) || !target.is_file() {
                    bail!(
                        "{}: a symbolic link to {} is not followed (only links to files inside {} are); \
                         upload its target by name if you mean it (nothing was uploaded)",
                        p.display(),
                        target.display(),
                        base.display()
                    );
                }
            } else if meta.is_dir() {
                walk(&p, base, root, out)?;
                continue;
            } else if !meta.is_file() {
                continue;
            }
            let name =
                item_name(p.strip_prefix(base).unwrap_or(&p).as_os_str(), &p)?.replace('\\', "/");
            out.push((p, name));
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let root = path
                .canonicalize()
                .with_context(|| format!("cannot read {}", path.display()))?;
            walk(path, path, &root, &mut out)?;
        } else if path.is_file() {
            let name = item_name(path.file_name().unwrap_or(path.as_os_str()), path)?;
            out.push((path.clone(), name));
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    Ok(out)
}

/// An item's name from a file's: refused when it is not UTF-8, since a lossy conversion
/// would give two different files the same item (the second an "update" of the first).
fn item_name(name: &std::ffi::OsStr, path: &Path) -> Result<String> {
    name.to_str().map(str::to_string).with_context(|| {
        format!(
            "{}: the file name is not valid UTF-8; rename it (nothing was uploaded)",
            path.display()
        )
    })
}
