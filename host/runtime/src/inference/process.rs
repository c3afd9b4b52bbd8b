//! The host's end of one inference worker: the process spawned with its limits, the model
//! streamed to it, each request written and its answer read under the memory cap, and the
//! worker dropped (so killed) when it breaks or overruns.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::engine::Engine;
use super::protocol::{Request, Response, codec};
use super::{GraphId, InferenceFailure, STDERR_TAIL, Source, WORKER_ARG, WORKER_HEADROOM};

pub(super) struct Worker {
    pub(super) child: Child,
    pub(super) requests: FramedWrite<ChildStdin, LengthDelimitedCodec>,
    pub(super) replies: FramedRead<ChildStdout, LengthDelimitedCodec>,
    pub(super) loaded: HashSet<GraphId>,
    /// Its hard `RLIMIT_DATA`: the cap plus [`WORKER_HEADROOM`].
    pub(super) hard: usize,
    /// Left mid-request: to be dropped (and so killed), not used again.
    pub(super) spent: bool,
}

/// The buffer of each pipe to a worker.
const PIPE_BYTES: libc::c_int = 1 << 20;

/// The smallest answer always let through (a signature, an error, small outputs).
const MIN_REPLY: usize = 1 << 20;

pub(super) enum Exchange {
    /// The reply is larger than the memory cap.
    TooLarge,
    /// The pipe broke: the worker died.
    Broken,
    /// The model's file could not be read (or changed) while it was sent.
    Unreadable(String),
}

impl From<std::io::Error> for Exchange {
    fn from(_: std::io::Error) -> Self {
        Exchange::Broken
    }
}

impl Worker {
    pub(super) fn spawn(
        memory_bytes: usize,
        engine: &Engine,
        threads: usize,
    ) -> Result<Self, InferenceFailure> {
        let exe = std::env::current_exe().map_err(|e| InferenceFailure::Spawn(e.to_string()))?;
        // Nothing of the host's environment is the worker's business.
        let mut child = Command::new(exe)
            .env_clear()
            .arg(WORKER_ARG)
            .arg(memory_bytes.to_string())
            .arg(engine.kind.to_string())
            .arg(threads.to_string())
            .args(engine.library())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| InferenceFailure::Spawn(e.to_string()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(InferenceFailure::Spawn("no pipes to the worker".into()));
        };
        // A tensor crosses in a few writes rather than sixteen 64 KiB wake-ups (1 MiB is what
        // an unprivileged process may ask for; where refused, the default stays).
        for pipe in [
            std::os::fd::AsRawFd::as_raw_fd(&stdin),
            std::os::fd::AsRawFd::as_raw_fd(&stdout),
        ] {
            // SAFETY: F_SETPIPE_SZ on a pipe this process holds; it changes only its buffer.
            unsafe { libc::fcntl(pipe, libc::F_SETPIPE_SZ, PIPE_BYTES) };
        }
        Ok(Self {
            child,
            requests: FramedWrite::new(stdin, codec(usize::MAX)),
            // Bounded by what the instance has left, request by request.
            replies: FramedRead::new(stdout, codec(memory_bytes)),
            loaded: HashSet::new(),
            hard: memory_bytes.saturating_add(WORKER_HEADROOM),
            spent: false,
        })
    }

    /// The worker's data size now (`/proc/PID/statm`), if it can be read.
    pub(super) fn data_size(&self) -> Option<usize> {
        let pid = self.child.id()?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let pages: usize = statm.split_whitespace().nth(5)?.parse().ok()?;
        // SAFETY: sysconf reads a constant of the system.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        Some(pages.saturating_mul(page))
    }

    /// Lets the worker grow by half of `budget` from what it holds now (never below its
    /// headroom), and no further: its soft `RLIMIT_DATA`, set from here (its hard limit, the
    /// cap plus the headroom, it set itself at start).
    pub(super) fn limit(&self, budget: usize) -> Result<(), InferenceFailure> {
        let Some(pid) = self.child.id() else {
            return Ok(());
        };
        let now = self.data_size().unwrap_or(0).max(WORKER_HEADROOM);
        let soft = now.saturating_add(budget / 2).min(self.hard);
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: self.hard as libc::rlim_t,
        };
        // SAFETY: prlimit on our own child reads the struct we pass and writes nothing back.
        let set = unsafe {
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_DATA,
                &limit,
                std::ptr::null_mut(),
            )
        };
        if set != 0 {
            return Err(InferenceFailure::Spawn(format!(
                "cannot limit the worker's memory: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// One request and its answer; a dead or lying worker is the failure it is.
    pub(super) async fn exchange(
        &mut self,
        request: &Request,
        model: Option<&Source>,
        budget: usize,
    ) -> Result<Response, InferenceFailure> {
        let request = postcard::to_allocvec(request)
            .map_err(|e| InferenceFailure::Protocol(e.to_string()))?;
        // A copy of what the guest gave (already charged): it must fit in what is left.
        if request.len() > budget / 2 {
            return Err(InferenceFailure::MemoryLimit);
        }
        self.replies
            .decoder_mut()
            .set_max_frame_length((budget / 4).max(MIN_REPLY));
        let reply = match self.call(request.into(), model).await {
            Ok(reply) => reply,
            Err(Exchange::TooLarge) => return Err(InferenceFailure::MemoryLimit),
            Err(Exchange::Broken) => return Err(self.post_mortem().await),
            Err(Exchange::Unreadable(e)) => {
                // Mid-frame: this worker cannot be spoken to again.
                self.spent = true;
                return Ok(Err(e));
            }
        };
        postcard::from_bytes(&reply).map_err(|e| InferenceFailure::Protocol(e.to_string()))
    }

    pub(super) async fn call(
        &mut self,
        request: Bytes,
        model: Option<&Source>,
    ) -> Result<bytes::BytesMut, Exchange> {
        self.requests
            .send(request)
            .await
            .map_err(|_| Exchange::Broken)?;
        if let Some(model) = model {
            self.send_model(model).await?;
        }
        match self.replies.next().await {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => Err(Exchange::TooLarge),
            _ => Err(Exchange::Broken),
        }
    }

    /// A model's bytes as one frame, written to the pipe as they are (a file in 1 MiB reads,
    /// one buffer reused). A file that changed size while it was sent leaves the worker
    /// mid-frame: that worker is done for (the caller drops it) and the load fails by name.
    pub(super) async fn send_model(&mut self, model: &Source) -> Result<(), Exchange> {
        use tokio::io::AsyncWriteExt;
        let pipe = self.requests.get_mut();
        match model {
            Source::Bytes(bytes) => {
                let size = bytes.len() as u64;
                pipe.write_all(&size.to_be_bytes()).await?;
                pipe.write_all(bytes).await?;
            }
            Source::Artifact(path) => {
                let unreadable =
                    |e: std::io::Error| Exchange::Unreadable(format!("{}: {e}", path.display()));
                // Plain reads: from the page cache, as the rest of the host reads artifacts.
                let mut file = std::fs::File::open(path).map_err(unreadable)?;
                let size = file.metadata().map_err(unreadable)?.len();
                pipe.write_all(&size.to_be_bytes()).await?;
                let mut buffer = vec![0u8; 1 << 20];
                let mut left = size;
                while left > 0 {
                    let want = buffer
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let read =
                        std::io::Read::read(&mut file, &mut buffer[..want]).map_err(unreadable)?;
                    if read == 0 {
                        return Err(unreadable(std::io::Error::other(
                            "it became shorter while it was read",
                        )));
                    }
                    pipe.write_all(&buffer[..read]).await?;
                    left -= read as u64;
                }
            }
        }
        pipe.flush().await?;
        Ok(())
    }

    /// Why the worker died: an allocation over its cap, or a crash with what it printed.
    pub(super) async fn post_mortem(&mut self) -> InferenceFailure {
        let status = match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => "did not exit".to_string(),
        };
        let mut stderr = Vec::new();
        if let Some(pipe) = self.child.stderr.take() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                pipe.take(1 << 20).read_to_end(&mut stderr),
            )
            .await;
        }
        let stderr = String::from_utf8_lossy(&stderr);
        if stderr.contains("memory allocation of") {
            return InferenceFailure::MemoryLimit;
        }
        let tail = stderr.trim();
        let tail = &tail[tail
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| tail.len() - i <= STDERR_TAIL)
            .unwrap_or(tail.len())..];
        InferenceFailure::Died {
            status,
            stderr: tail.to_string(),
        }
    }
}
