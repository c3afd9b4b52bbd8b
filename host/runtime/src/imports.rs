//! The `prelabel:detector` imports a guest calls, on its [`HostState`]: `host` (logs and
//! artifacts by name) and the older `inference`; wasi-nn's are in `nn.rs`, `image`'s in
//! `image.rs`.

use super::bindings::prelabel::detector::{host, inference, types};
use super::bindings::{ErrorKind, GuestError, Level};
use super::instance::{HostState, shorten};

impl types::Host for HostState {}

impl inference::Host for HostState {
    async fn run(
        &mut self,
        model: String,
        inputs: Vec<inference::Tensor>,
    ) -> wasmtime::Result<Result<Vec<inference::Tensor>, GuestError>> {
        let path = match self.artifact_path(&model) {
            Ok(path) => path,
            Err(e) => return Ok(Err(e)),
        };
        let inputs: Vec<_> = inputs
            .into_iter()
            .map(|t| super::inference::Tensor::from_f32(t.shape, &t.data))
            .collect();
        // Held while they are sent, like wasi-nn's tensors.
        let held: usize = inputs.iter().map(|t| t.data.len()).sum();
        self.hold(held, "native inference")?;
        let budget = self.unheld();
        let ran = self.inference.run_artifact(&path, inputs, budget).await;
        self.release(held);
        self.charge_worker()?;
        match ran {
            Ok(Ok(outputs)) => Ok(Ok(outputs
                .into_iter()
                .map(|(shape, data)| inference::Tensor { shape, data })
                .collect())),
            Ok(Err(message)) => Ok(Err(GuestError {
                kind: ErrorKind::Artifact,
                message: format!("artifact `{}`: {message}", shorten(&model)),
            })),
            // The worker died or went over its memory: trap, so that the item fails with
            // the host's own words rather than whatever the guest makes of an error.
            Err(failure) => Err(wasmtime::Error::new(failure)),
        }
    }
}

impl HostState {
    pub(super) fn artifact_path(&self, name: &str) -> Result<std::path::PathBuf, GuestError> {
        self.artifacts.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.artifacts.keys().map(String::as_str).collect();
            GuestError {
                kind: ErrorKind::Artifact,
                message: format!(
                    "no artifact named `{}` (the package has: {})",
                    shorten(name),
                    known.join(", ")
                ),
            }
        })
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        tracing::debug!(target: "prelabel::guest", "[{level}] {}", shorten(&message));
        // In pieces, not formatted into a copy first: the capture keeps what fits.
        for piece in [&format!("[{level}] ")[..], &message, "\n"] {
            self.capture.append(piece.as_bytes());
        }
    }

    fn artifact(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, GuestError>> {
        let path = match self.artifact_path(&name) {
            Ok(path) => path,
            Err(e) => return Ok(Err(e)),
        };
        let failed = |e: std::io::Error| GuestError {
            kind: ErrorKind::Artifact,
            message: format!("artifact `{}`: {e}", shorten(&name)),
        };
        // The host reads the whole file before it is copied into the guest: charged while
        // it does, so that a guest asking for a large artifact again and again holds no
        // more than its cap leaves.
        let size = match std::fs::metadata(&path) {
            Ok(meta) => usize::try_from(meta.len()).unwrap_or(usize::MAX),
            Err(e) => return Ok(Err(failed(e))),
        };
        self.hold(size, "an artifact's bytes")?;
        let read = std::fs::read(&path).map_err(failed);
        self.release(size);
        Ok(read)
    }
}
