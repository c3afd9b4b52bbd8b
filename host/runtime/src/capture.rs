//! Captures what a guest prints (WASI stdout/stderr) and logs (the `log` import) into one
//! bounded buffer per instance, so a chatty guest cannot exhaust host memory.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Guest output, shared between the WASI streams and the `log` import.
#[derive(Clone, Debug)]
pub struct Capture {
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    text: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Capture {
    /// A buffer that keeps at most `limit` bytes between two [`Capture::take`]s.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Buffer {
                text: Vec::new(),
                limit,
                truncated: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding this lock cannot leave the buffer inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends bytes; past the limit they are dropped and a marker is added once.
    pub fn append(&self, bytes: &[u8]) {
        let mut buf = self.lock();
        let room = buf.limit.saturating_sub(buf.text.len());
        if bytes.len() <= room {
            buf.text.extend_from_slice(bytes);
        } else {
            buf.text.extend_from_slice(&bytes[..room]);
            if !buf.truncated {
                buf.truncated = true;
                let limit = buf.limit;
                buf.text.extend_from_slice(
                    format!("\n[prelabel: output truncated at {limit} bytes]\n").as_bytes(),
                );
            }
        }
    }

    /// A Rust guest's panic report (`panicked at FILE:LINE:COL:` and the message line after
    /// it), if the captured output has one.
    pub fn panic_message(&self) -> Option<String> {
        let buf = self.lock();
        let text = String::from_utf8_lossy(&buf.text);
        let mut lines = text.lines().skip_while(|l| !l.contains("panicked at"));
        let at = lines.next()?;
        let at = &at[at.find("panicked at")?..];
        Some(match lines.next() {
            Some(message) => format!("{} {message}", at.trim_end_matches(':')),
            None => at.to_string(),
        })
    }

    /// Returns the text captured so far and starts afresh.
    pub fn take(&self) -> String {
        let mut buf = self.lock();
        buf.truncated = false;
        let text = std::mem::take(&mut buf.text);
        String::from_utf8_lossy(&text).into_owned()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: what is over the limit is dropped, never an error the guest sees.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_once_with_a_marker_and_take_resets() {
        let c = Capture::new(10);
        c.append(b"0123456");
        c.append(b"789abcdef");
        c.append(b"more");
        let text = c.take();
        assert!(
            text.starts_with("0123456789\n[prelabel: output truncated at 10 bytes]"),
            "{text}"
        );
        assert_eq!(text.matches("truncated").count(), 1);
        c.append(b"fresh");
        assert_eq!(c.take(), "fresh");
    }

    #[test]
    fn finds_a_rust_panic_report() {
        let c = Capture::new(1000);
        c.append(b"loading\nthread '<unnamed>' panicked at src/lib.rs:70:24:\ndetect failed on purpose\nnote: run with RUST_BACKTRACE\n");
        assert_eq!(
            c.panic_message().as_deref(),
            Some("panicked at src/lib.rs:70:24 detect failed on purpose")
        );
        assert_eq!(Capture::new(10).panic_message(), None);
    }
}
