//! `prelabel upload`, `prelabel link` and `prelabel items list`: files and URLs in, items out.

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
        println!(
            "uploaded {} files to {dataset}: {}",
            files.len(),
            summary(&uploads)
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// `3 created, 1 unchanged; 3 executions queued`.
fn summary(uploads: &Uploads) -> String {
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
    format!(
        "{}; {} executions queued",
        summary.join(", "),
        uploads.queued
    )
}

#[derive(Debug, clap::Args)]
pub struct Link {
    /// http(s) URLs; each item is named after its URL's last path segment.
    #[arg(required_unless_present = "from")]
    urls: Vec<String>,
    /// A file of links: one URL per line, or a JSON list of `{url, name?, metadata?, sha256?}`.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    #[arg(long)]
    dataset: String,
    /// Download every linked item now (with a progress bar), not when an execution needs it.
    #[arg(long)]
    fetch: bool,
    /// Let this dataset's downloads reach loopback, private and link-local addresses (a
    /// server on this machine or the local network). Off by default: a link must not reach
    /// the machine's own services.
    #[arg(long)]
    allow_private: bool,
    /// HEADER=SECRET: send this header, with the named secret's value (`prelabel secret
    /// set`), with the dataset's downloads, to each item's own host only (repeatable).
    #[arg(long = "header", value_name = "HEADER=SECRET")]
    headers: Vec<String>,
}

impl Link {
    pub fn run(self, home: &Home) -> Result<ExitCode> {
        let mut links: Vec<prelabel::items::link::Link> = self
            .urls
            .iter()
            .map(|u| prelabel::items::link::Link::new(u))
            .collect();
        if let Some(file) = &self.from {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            links.extend(prelabel::items::link::parse_list(&text)?);
        }
        let headers = self
            .headers
            .iter()
            .map(|pair| {
                pair.split_once('=')
                    .map(|(h, s)| (h.trim().to_string(), s.trim().to_string()))
                    .with_context(|| format!("--header `{pair}` is not HEADER=SECRET"))
            })
            .collect::<Result<_>>()?;
        let access = prelabel::items::link::Access {
            allow_private: self.allow_private,
            headers,
        };
        let linked = home.link(&self.dataset, &links, &access)?;
        let mut uploads = Uploads::default();
        for item in &linked {
            uploads.add(item);
        }
        println!(
            "linked {} URLs to {}: {}",
            linked.len(),
            self.dataset,
            summary(&uploads)
        );
        if self.fetch {
            let bar = indicatif::ProgressBar::new(linked.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let mut failed = 0;
            for item in &linked {
                bar.set_message(item.item.name.clone());
                if let Err(e) = home.fetch(item.item.id) {
                    bar.println(format!("{}: {e}", item.item.name));
                    failed += 1;
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            println!("fetched {} of {}", linked.len() - failed, linked.len());
            if failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
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
