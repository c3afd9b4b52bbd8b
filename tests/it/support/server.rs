//! A running `prelabel serve` on a free loopback port and a blocking client for it: the API
//! tests and the browser test both drive the real server through it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response, multipart};
use serde_json::Value;

use super::*;

/// A running `prelabel serve` and a client for it; stopped with Ctrl-C when dropped.
pub struct Server {
    child: Child,
    stderr: Option<Stderr>,
    pub base: String,
    pub token: Option<String>,
    pub client: Client,
}

/// A figure in kB of `/proc/PID/status`, in MiB; 0 where there is none.
fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

impl Server {
    pub fn start(home: &Home, args: &[&str]) -> Server {
        let mut child = command(home.path())
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prelabel serve starts");
        let (base, stderr) = listening(&mut child, "prelabel serve");
        let token = args
            .iter()
            .position(|a| *a == "--token")
            .map(|i| args[i + 1].to_string());
        let client = client_builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Server {
            child,
            stderr: Some(stderr),
            base,
            token,
            client,
        }
    }

    /// The server's resident memory now, in MiB (Linux's `VmRSS`), its inference workers
    /// (child processes) included.
    pub fn rss_mb(&self) -> f64 {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        status_mb(pid, "VmRSS:")
            + children
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .map(|c| status_mb(c, "VmRSS:"))
                .sum::<f64>()
    }

    /// The most the server process was resident since it started, in MiB (Linux's `VmHWM`).
    pub fn peak_rss_mb(&self) -> f64 {
        status_mb(self.child.id(), "VmHWM:")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn with_token(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub fn get(&self, path: &str) -> Response {
        self.with_token(self.client.get(self.url(path)))
            .send()
            .expect("GET")
    }

    pub fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
        let request = self.client.request(method, self.url(path));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        self.with_token(request).send().expect("request")
    }

    /// A JSON answer with the expected status.
    pub fn json(&self, response: Response, status: StatusCode) -> Value {
        let got = response.status();
        let text = response.text().expect("body");
        assert_eq!(got, status, "{text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    pub fn ok(&self, path: &str) -> Value {
        self.json(self.get(path), StatusCode::OK)
    }

    pub fn upload(&self, dataset: &str, files: &[(&str, Vec<u8>)]) -> Response {
        let mut form = multipart::Form::new();
        for (name, bytes) in files {
            form = form.part(
                "file",
                multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        self.with_token(
            self.client
                .post(self.url(&format!("/api/datasets/{dataset}/items")))
                .multipart(form),
        )
        .send()
        .expect("upload")
    }

    /// Polls until `done` holds for the execution list, bounded.
    pub fn wait_executions(&self, query: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let page = self.ok(&format!("/api/executions{query}"));
            let all = page["executions"].as_array().expect("a list").clone();
            if done(&all) {
                return all;
            }
            assert!(Instant::now() < deadline, "timed out: {page:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Waits for `child` to say where it listens (`listening on URL`), and returns the URL
/// without its trailing `/`; keeps reading its stderr after, so that it never blocks, and
/// keeps what a panic of the process printed.
pub fn listening(child: &mut Child, what: &str) -> (String, Stderr) {
    let mut reader = BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    let base = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read stderr") == 0 {
            panic!("{what} exited before listening:\n{seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.strip_prefix("listening on ") {
            let url = rest.split_whitespace().next().expect("an address");
            break url.trim_end_matches('/').to_string();
        }
    };
    let what = what.to_string();
    let panics = std::thread::spawn(move || {
        let mut panics = Vec::new();
        let mut lines = reader.lines().map_while(Result::ok);
        while let Some(line) = lines.next() {
            // Rust's own panic report, printed by the process itself (a guest's panic is an
            // execution's log, and the inference worker reports its own otherwise): with the
            // line after, its message.
            if line.starts_with("thread '") && line.contains("' panicked at ") {
                let message = lines.next().unwrap_or_default();
                panics.push(format!("{line} {message}"));
            }
        }
        panics
    });
    (base, Stderr { what, panics })
}

/// The rest of a server's stderr, read until it exits.
pub struct Stderr {
    what: String,
    panics: std::thread::JoinHandle<Vec<String>>,
}

impl Stderr {
    /// Once the process has exited: fails the test if any thread of it panicked, even one
    /// whose panic was caught (the host never panics, on any input) or came as it stopped.
    pub fn assert_no_panic(self) {
        let panics = self.panics.join().unwrap_or_default();
        assert!(panics.is_empty(), "{} panicked: {panics:#?}", self.what);
    }
}

/// `prelabel serve-detector PACKAGE` on a free loopback port: a detection API for
/// remote-detector. Stopped with Ctrl-C when dropped.
pub struct DetectorApi {
    child: Child,
    stderr: Option<Stderr>,
    /// `http://127.0.0.1:PORT/detect`.
    pub url: String,
}

impl DetectorApi {
    pub fn start(home: &Home, package: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut child = command(home.path())
            .args(["serve-detector", path(package), "--addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prelabel serve-detector starts");
        let (url, stderr) = listening(&mut child, "prelabel serve-detector");
        DetectorApi {
            child,
            stderr: Some(stderr),
            url,
        }
    }

    /// `http://127.0.0.1:PORT`, as an allowed host.
    pub fn origin(&self) -> String {
        self.url.trim_end_matches("/detect").to_string()
    }
}

impl Drop for DetectorApi {
    fn drop(&mut self) {
        stop(&mut self.child, &mut self.stderr);
    }
}

/// Stops a server with Ctrl-C and, unless the test already fails, checks that it never
/// panicked.
fn stop(child: &mut Child, stderr: &mut Option<Stderr>) {
    interrupt(child, 60);
    if let Some(stderr) = stderr.take()
        && !std::thread::panicking()
    {
        stderr.assert_no_panic();
    }
}

/// Serves `app` on a free loopback port, in a thread of its own, until the test ends: a
/// stand-in for a remote server.
pub fn serve_app(app: axum::Router) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("an address");
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
            axum::serve(listener, app).await.expect("serves");
        });
    });
    addr
}

/// A client builder. reqwest is built with rustls and no default crypto provider (the host's
/// downloads install ring), so the tests install it too before their first client.
pub fn client_builder() -> reqwest::blocking::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child, &mut self.stderr);
    }
}

pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("images").join(name)).expect("a sample photo")
}

pub fn error_of(response: Response, status: StatusCode) -> String {
    let got = response.status();
    let text = response.text().expect("body");
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).expect("a JSON error");
    body["error"]
        .as_str()
        .expect("an error message")
        .to_string()
}
