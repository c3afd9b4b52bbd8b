//! A throwaway PostgreSQL server, for the tests and `prelabel bench`: Debian's `postgresql`
//! programs, a cluster made with initdb in a folder of the caller's, listening on a free
//! loopback port (with durability off for the tests, on for the bench, whose commits should
//! cost what a real server's do). It stops and its folder goes when this process ends,
//! however it ends: a shell holds the server and waits on a pipe from this process, whose
//! closing (at exit, or a kill) stops it.

use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error(
        "no PostgreSQL server programs under /usr/lib/postgresql (Debian's `postgresql` package)"
    )]
    NotInstalled,
    #[error("{what}: {detail}")]
    Failed { what: &'static str, detail: String },
}

/// A running throwaway server.
pub struct Server {
    pub port: u16,
    _stop: Mutex<ChildStdin>,
}

/// Where Debian keeps PostgreSQL's programs: the newest version there.
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `sh -c script` as the user the server runs as: `postgres` when this process is root
/// (initdb refuses root), else this process's own user.
fn as_server_user(script: &str) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }
}

fn failed(what: &'static str) -> impl Fn(String) -> ScratchError {
    move |detail| ScratchError::Failed { what, detail }
}

fn run(what: &'static str, mut command: Command) -> Result<(), ScratchError> {
    let out = command.output().map_err(|e| failed(what)(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(what)(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl Server {
    /// Starts a server whose cluster lives in `dir` (made afresh; removed when it stops);
    /// `durable`: commits wait for the disk (fsync), as a real server's do.
    pub fn start(dir: &Path, durable: bool) -> Result<Self, ScratchError> {
        Self::start_with(dir, durable, None)
    }

    /// A server that also offers TLS with the certificate and key in PEM files `tls`
    /// (copied into its folder, readable by the server alone, as it demands).
    pub fn start_tls(dir: &Path, tls: (&Path, &Path)) -> Result<Self, ScratchError> {
        Self::start_with(dir, false, Some(tls))
    }

    fn start_with(
        dir: &Path,
        durable: bool,
        tls: Option<(&Path, &Path)>,
    ) -> Result<Self, ScratchError> {
        let bin = bin_dir().ok_or(ScratchError::NotInstalled)?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| failed("the server's folder")(e.to_string()))?;
        let dir_text = dir
            .to_str()
            .ok_or_else(|| failed("the server's folder")("not UTF-8".into()))?;
        let tls_options = match tls {
            Some(files) => tls_options(dir, dir_text, files)?,
            None => String::new(),
        };
        // The folder and what is in it (the TLS files) belong to the server's user.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(dir);
            run("chown", chown)?;
        }
        let bin = bin.display();
        run(
            "initdb",
            as_server_user(&format!(
                "{bin}/initdb -D {dir_text}/data -U prelabel -A trust -E UTF8 --no-sync"
            )),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| failed("a free port")(e.to_string()))?
            .port();
        // Many connections: every worker thread of every `prelabel` process has its own.
        let durability = if durable {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let script = format!(
            "{bin}/postgres -D {dir_text}/data -p {port} -k {dir_text} -c listen_addresses=127.0.0.1 \
               {durability} {tls_options} -c max_connections=500 \
               > {dir_text}/server.log 2>&1 &
             server=$!
             cat > /dev/null
             kill -INT $server; wait $server; rm -rf {dir_text}"
        );
        let mut shell = as_server_user(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed("starting the server")(e.to_string()))?;
        let stop = shell
            .stdin
            .take()
            .ok_or_else(|| failed("starting the server")("no pipe to its shell".into()))?;
        // The shell is not waited for: it lives until this process ends.
        std::thread::spawn(move || shell.wait());
        let server = Server {
            port,
            _stop: Mutex::new(stop),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = postgres::Client::connect(&server.url("postgres"), postgres::NoTls) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(failed("the server did not start")(format!("{e}\n{log}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// A URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://prelabel@127.0.0.1:{}/{name}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn create_database(&self, name: &str) -> Result<String, ScratchError> {
        let what = "creating a database";
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .and_then(|mut admin| admin.batch_execute(&format!("CREATE DATABASE {name}")))
            .map_err(|e| failed(what)(prelabel::store::DbError::from(e).to_string()))?;
        Ok(self.url(name))
    }
}

/// The server's TLS files copied into its folder, the key readable by it alone (it refuses
/// one that others can read), and the options that name them.
fn tls_options(
    dir: &Path,
    dir_text: &str,
    (cert, key): (&Path, &Path),
) -> Result<String, ScratchError> {
    let what = "the server's certificate";
    for (from, to) in [(cert, "tls-cert.pem"), (key, "tls-key.pem")] {
        std::fs::copy(from, dir.join(to)).map_err(|e| failed(what)(e.to_string()))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("tls-key.pem"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| failed(what)(e.to_string()))?;
    Ok(format!(
        "-c ssl=on -c ssl_cert_file={dir_text}/tls-cert.pem -c ssl_key_file={dir_text}/tls-key.pem"
    ))
}
