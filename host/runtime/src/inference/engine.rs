//! Which engine runs a service's models natively: tract (built in) or ONNX Runtime, a library
//! the user installed (`pip install onnxruntime`), found once and checked in a worker process
//! before any service uses it, so that the host never loads C++ it did not build.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The ONNX Runtime releases whose C API `ort` 2.0.0-rc.10 asks for (API 22): 1.22 and later.
const MIN_MINOR: u32 = 22;
/// What to tell someone who has no ONNX Runtime.
const HOW_TO_GET: &str = "install it with `pip install onnxruntime==1.22.*` (Prelabel finds it \
     in that Python's packages), or set ORT_DYLIB_PATH to a libonnxruntime.so of 1.22 or later";

/// What a service asks for (`--inference-engine`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// ONNX Runtime where it loads, else tract.
    #[default]
    Auto,
    Onnxruntime,
    Tract,
}

impl EngineChoice {
    pub const NAMES: [&str; 3] = ["auto", "onnxruntime", "tract"];

    /// Whether this host can honour the choice: ONNX Runtime asked for by name must load here
    /// (`auto` falls back to tract instead, and tract is built in).
    pub fn available(self) -> Result<(), EngineError> {
        match self {
            EngineChoice::Onnxruntime => onnxruntime().map(|_| ()),
            EngineChoice::Auto | EngineChoice::Tract => Ok(()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Onnxruntime => "onnxruntime",
            EngineChoice::Tract => "tract",
        }
    }
}

impl std::fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EngineChoice {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "onnxruntime" => Ok(EngineChoice::Onnxruntime),
            "tract" => Ok(EngineChoice::Tract),
            _ => Err(EngineError::Unknown(s.to_string())),
        }
    }
}

/// The engine a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Tract,
    OnnxRuntime,
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EngineKind::Tract => "tract",
            EngineKind::OnnxRuntime => "onnxruntime",
        })
    }
}

impl std::str::FromStr for EngineKind {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s {
            "tract" => Ok(EngineKind::Tract),
            "onnxruntime" => Ok(EngineKind::OnnxRuntime),
            _ => Err(EngineError::Unknown(s.to_string())),
        }
    }
}

/// An ONNX Runtime library that loaded in a worker, and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Library {
    pub path: PathBuf,
    pub version: String,
}

/// An engine decided: its kind, and for ONNX Runtime the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    pub kind: EngineKind,
    pub library: Option<&'static Library>,
}

impl Engine {
    pub const TRACT: Engine = Engine {
        kind: EngineKind::Tract,
        library: None,
    };

    /// The worker's last argument: the library's path, if any.
    pub fn library(&self) -> Option<&std::path::Path> {
        self.library.map(|l| l.path.as_path())
    }
}

/// `onnxruntime 1.22.1` or `tract 0.23.9`: what provenance and `bench` record.
impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.library {
            Some(library) => write!(f, "{} {}", self.kind, library.version),
            None => write!(f, "{} {TRACT_VERSION}", self.kind),
        }
    }
}

/// The tract this binary was built with (the workspace pins it exactly).
pub const TRACT_VERSION: &str = "0.23.9";

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("unknown inference engine `{0}` (expected auto, onnxruntime or tract)")]
    Unknown(String),
    #[error("ONNX Runtime is not available on this host: {reason}; {HOW_TO_GET}")]
    Missing { reason: String },
}

/// Decides the engine for `choice`: `auto` takes ONNX Runtime when it loads, else tract
/// (saying so once per process).
pub fn resolve(choice: EngineChoice) -> Result<Engine, EngineError> {
    match choice {
        EngineChoice::Tract => Ok(Engine::TRACT),
        EngineChoice::Onnxruntime => onnxruntime().map(|library| Engine {
            kind: EngineKind::OnnxRuntime,
            library: Some(library),
        }),
        EngineChoice::Auto => match onnxruntime() {
            Ok(library) => Ok(Engine {
                kind: EngineKind::OnnxRuntime,
                library: Some(library),
            }),
            Err(e) => {
                static SAID: OnceLock<()> = OnceLock::new();
                SAID.get_or_init(|| {
                    tracing::warn!("native inference runs on tract: {e}");
                });
                Ok(Engine::TRACT)
            }
        },
    }
}

/// The ONNX Runtime library of this host, found and checked once per process.
pub fn onnxruntime() -> Result<&'static Library, EngineError> {
    static FOUND: OnceLock<Result<Library, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let candidates = candidates()?;
            let mut reasons = Vec::new();
            for path in candidates {
                match probe_in_worker(&path) {
                    Ok(version) => return Ok(Library { path, version }),
                    Err(e) => reasons.push(e),
                }
            }
            Err(reasons.join("; "))
        })
        .as_ref()
        .map_err(|reason| EngineError::Missing {
            reason: reason.clone(),
        })
}

/// Where to look, in order: `ORT_DYLIB_PATH`; the `onnxruntime` package of the `python3` on
/// the PATH (the wheel ships `capi/libonnxruntime.so.VERSION` since 1.19); the system's
/// library path (`libonnxruntime.so`, as the dynamic loader finds it).
fn candidates() -> Result<Vec<PathBuf>, String> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        // Set means chosen: no other library is tried behind the user's back.
        return Ok(vec![PathBuf::from(path)]);
    }
    let mut found = python_package().unwrap_or_default();
    found.push(PathBuf::from("libonnxruntime.so"));
    Ok(found)
}

/// The libraries in the `onnxruntime` package of the `python3` on the PATH, if it has one.
/// Python finds the package without importing it (no numpy, no C++ loaded).
fn python_package() -> Option<Vec<PathBuf>> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u; s = u.find_spec('onnxruntime'); \
             print(s.submodule_search_locations[0] if s else '')",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    let capi = PathBuf::from(dir.trim()).join("capi");
    let mut libraries: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    // The versioned file (`libonnxruntime.so.1.22.1`) is the library itself.
    libraries.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    Some(libraries)
}

/// Asks a worker whether the library at `path` loads and which version it is: a library that
/// crashes or hangs while loading costs a child process, not the host.
fn probe_in_worker(path: &std::path::Path) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env_clear()
        .arg(super::WORKER_ARG)
        .arg("probe")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot start a worker to load {}: {e}", path.display()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(if said.is_empty() {
        format!("{}: the worker loading it {}", path.display(), out.status)
    } else {
        said
    })
}

/// In the worker: loads the library at `path` and reads its version, refusing one older
/// than the C API this build asks for.
pub(super) fn probe_library(path: &str) -> Result<String, String> {
    // SAFETY: loading ONNX Runtime runs its initialisers; this is the worker, which exists to
    // contain what a native library does.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("{path}: cannot load it: {e}"))?;
    // SAFETY: `OrtGetApiBase` is ONNX Runtime's one exported entry point, with this signature
    // in every release; the version string it gives is static and NUL-terminated.
    let version = unsafe {
        let base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            library
                .get(b"OrtGetApiBase")
                .map_err(|e| format!("{path}: not ONNX Runtime (no OrtGetApiBase): {e}"))?;
        let base = base();
        if base.is_null() {
            return Err(format!("{path}: OrtGetApiBase returned nothing"));
        }
        let version = ((*base).GetVersionString)();
        if version.is_null() {
            return Err(format!("{path}: ONNX Runtime gave no version"));
        }
        std::ffi::CStr::from_ptr(version)
            .to_string_lossy()
            .into_owned()
    };
    // Left loaded: the engine loads the same path next, and loading it again after an
    // unload would run its initialisers and relocations twice (~10 ms a worker).
    std::mem::forget(library);
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(1), Some(minor)) if minor >= MIN_MINOR => Ok(version),
        _ => Err(format!(
            "{path}: ONNX Runtime {version} is too old or unknown: Prelabel needs 1.{MIN_MINOR} or later"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_read_back_as_written() {
        for name in EngineChoice::NAMES {
            let choice: EngineChoice = name.parse().expect("parses");
            assert_eq!(choice.to_string(), name);
            assert_eq!(
                serde_json::to_value(choice).expect("json"),
                serde_json::Value::from(name)
            );
        }
        let error = "cuda".parse::<EngineChoice>().expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "unknown inference engine `cuda` (expected auto, onnxruntime or tract)"
        );
    }

    #[test]
    fn a_library_that_is_not_onnxruntime_is_named_and_refused() {
        let e = probe_library("/nonexistent/libonnxruntime.so").expect_err("refused");
        assert!(
            e.starts_with("/nonexistent/libonnxruntime.so: cannot load it"),
            "{e}"
        );
        // libc loads, but is no ONNX Runtime.
        let e = probe_library("libc.so.6").expect_err("refused");
        assert!(e.contains("not ONNX Runtime (no OrtGetApiBase)"), "{e}");
    }
}
