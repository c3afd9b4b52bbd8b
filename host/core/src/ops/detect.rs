//! A package run on files directly, storing nothing: `prelabel detect` (on several jobs) and
//! the detector behind `prelabel serve-detector`.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::runtime::Limits;
use crate::work::local::{FileResult, LocalRunner};

/// What `detect` runs: a package folder (within `root`), its init values as `key=value`
/// (secrets by name), the files (a folder stands for its files, by name), the limits of each
/// instance, and how many jobs (instances) share the files (default: one per core).
pub struct Detect<'a> {
    pub package: &'a Path,
    pub root: Option<&'a Path>,
    pub init: &'a [String],
    pub limits: Limits,
    pub jobs: Option<usize>,
    pub inputs: &'a [PathBuf],
}

impl Home {
    /// Runs the package on every file, in input order; a file that cannot be read or
    /// detected is a failed result like any other.
    pub fn detect(&self, request: &Detect<'_>) -> Result<Vec<FileResult>> {
        let files = expand(request.inputs)?;
        let (package, given) =
            self.detector_package(request.package, request.root, request.init)?;
        let runtime = self.runtime()?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = match request.jobs {
            Some(0) => return Err(Error::invalid("jobs", "must be at least 1")),
            Some(n) => n,
            None => cores,
        }
        .min(files.len().max(1));
        // Compiled (or read from the cache) once, however many jobs run it.
        let loaded = package.compile(&runtime)?;
        let new_runner =
            || LocalRunner::with_loaded(&runtime, &package, loaded.clone(), &given, request.limits);
        run_files(new_runner, jobs, &files)
    }

    /// Calls `serve` with one instance of the package, initialised: what serve-detector answers
    /// with.
    pub fn with_detector<T>(
        &self,
        package: &Path,
        root: Option<&Path>,
        init: &[String],
        serve: impl FnOnce(&Package, &mut LocalRunner<'_>) -> T,
    ) -> Result<T> {
        let (package, given) = self.detector_package(package, root, init)?;
        let runtime = self.runtime()?;
        let mut runner = LocalRunner::new(&runtime, &package, &given, Limits::default())?;
        Ok(serve(&package, &mut runner))
    }

    /// The package and its init values: `key=value` pairs over its defaults, secrets revealed.
    fn detector_package(
        &self,
        dir: &Path,
        root: Option<&Path>,
        init: &[String],
    ) -> Result<(Package, BTreeMap<String, InputValue>)> {
        let package = Package::load_within(dir, root)?;
        let given = package.manifest.parse_init_args(init)?;
        let given = self.reveal(&package.manifest, given)?;
        Ok((package, given))
    }
}

/// Files as given; folders become their files, sorted by name.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(Error::io(path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Runs every file on `jobs` threads, each with a runner of its own taking the next file.
/// Results in input order.
fn run_files<'r>(
    new_runner: impl Fn() -> Result<LocalRunner<'r>> + Sync,
    jobs: usize,
    files: &[PathBuf],
) -> Result<Vec<FileResult>> {
    let next = AtomicUsize::new(0);
    let ran: Vec<Result<Vec<(usize, FileResult)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                scope.spawn(|| {
                    let mut runner = new_runner()?;
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(i) else {
                            return Ok(done);
                        };
                        done.push((i, run_file(&mut runner, path)));
                    }
                })
            })
            .collect();
        // A job that panicked is a bug of the host's: it goes on as the same panic.
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut results: Vec<Option<FileResult>> = (0..files.len()).map(|_| None).collect();
    for job in ran {
        for (i, result) in job? {
            results[i] = Some(result);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// One file through the runner, named by its file name.
fn run_file(runner: &mut LocalRunner<'_>, path: &Path) -> FileResult {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    match std::fs::read(path) {
        Ok(bytes) => runner.run(&name, bytes),
        Err(e) => runner.failed(&name, format!("cannot read {}: {e}", path.display())),
    }
}
