//! An S3-compatible server for the blob-store tests: moto's (`moto[server]` from PyPI, in a
//! virtualenv the tests make under the target dir), one per test process on a free loopback
//! port, stopped when the test process ends (a shell waits on a pipe from it, as the
//! PostgreSQL server's does).

use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

pub const KEY: &str = "prelabel-test-key";
pub const SECRET: &str = "prelabel-test-secret";

pub struct Server {
    pub endpoint: String,
    _stop: Mutex<ChildStdin>,
}

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(start)
}

fn start() -> Server {
    let venv = super::venv("moto", &["moto[server]==5.2.5"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let script = format!(
        "{} -H 127.0.0.1 -p {port} > /dev/null 2>&1 & server=$!; cat > /dev/null; kill $server",
        venv.join("bin/moto_server").display()
    );
    let mut shell = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .expect("moto's shell starts");
    let stop = shell.stdin.take().expect("its stdin");
    std::thread::spawn(move || shell.wait());
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        endpoint,
        _stop: Mutex::new(stop),
    }
}

impl Server {
    fn bucket(&self, name: &str) -> Bucket {
        Bucket::new(
            self.endpoint.parse().expect("a URL"),
            UrlStyle::Path,
            name.to_string(),
            "us-east-1",
        )
        .expect("a bucket")
    }

    /// Sends a signed request (with `body`, for a PUT) and asserts it succeeded.
    fn send<'a, A: S3Action<'a>>(&self, action: A, body: &[u8], what: &str) {
        let method = A::METHOD.to_str().parse().expect("an HTTP method");
        let status = super::server::client_builder()
            .build()
            .expect("a client")
            .request(method, action.sign(Duration::from_secs(60)))
            .body(body.to_vec())
            .send()
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .status();
        assert!(status.is_success(), "{what}: {status}");
    }

    /// A new bucket; its `--blobs` URL (keys: [`KEY`], [`SECRET`]).
    pub fn create_bucket(&self, name: &str) -> String {
        let credentials = Credentials::new(KEY, SECRET);
        // An empty body: moto wants a length even for a bucket.
        self.send(
            self.bucket(name).create_bucket(&credentials),
            b"",
            "create bucket",
        );
        format!("s3://{name}/blobs?endpoint={}", self.endpoint)
    }

    /// Writes `bytes` at `key` in the bucket (to damage a blob, say).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let credentials = Credentials::new(KEY, SECRET);
        let bucket = self.bucket(bucket);
        self.send(bucket.put_object(Some(&credentials), key), bytes, key);
    }

    pub fn delete(&self, bucket: &str, key: &str) {
        let credentials = Credentials::new(KEY, SECRET);
        let bucket = self.bucket(bucket);
        self.send(bucket.delete_object(Some(&credentials), key), b"", key);
    }
}
