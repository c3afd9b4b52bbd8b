//! The PostgreSQL store: the platform and sandbox tests again with every home's rows on a
//! PostgreSQL server, and what is particular to it (a URL that is wrong, a server that is not
//! there, two processes creating the schema at once, a schema from a newer prelabel).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Home, postgres, stderr, stdout, tempdir};

/// This test binary again, with `PRELABEL_TEST_STORE=postgres`: the same tests, the same
/// commands, on the other backend.
#[test]
fn the_platform_and_sandbox_tests_pass_on_postgres() {
    if postgres::enabled() {
        return; // Already the run on PostgreSQL.
    }
    let this = std::env::current_exe().expect("this test binary");
    let filters = ["platform::", "sandbox::"];
    let listed = Command::new(&this)
        .args(filters)
        .arg("--list")
        .output()
        .expect("the test binary lists its tests");
    let expected = stdout(&listed)
        .lines()
        .filter(|l| l.ends_with(": test"))
        .count();
    assert!(expected > 30, "{}", stdout(&listed));
    let out = Command::new(&this)
        .env("PRELABEL_TEST_STORE", "postgres")
        .args(filters)
        .args(["--test-threads", "2"])
        .output()
        .expect("the test binary runs");
    let (out_text, err_text) = (stdout(&out), stderr(&out));
    assert!(
        out.status.success(),
        "the platform and sandbox tests failed on PostgreSQL:\n{out_text}\n{err_text}"
    );
    // Every one of them ran (none skipped or filtered away).
    let passed = out_text
        .lines()
        .find_map(|l| l.strip_prefix("test result: ok. "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    assert_eq!(passed, expected, "tests passed on PostgreSQL:\n{out_text}");
}

/// How many PostgreSQL migrations the repository has.
fn postgres_migrations() -> usize {
    std::fs::read_dir(crate::support::root().join("host/store/src/postgres"))
        .expect("the migrations folder")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count()
}

/// `prelabel` on a home with some variables over the tests' own (the store, the blobs, ...).
struct On {
    home: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl On {
    fn new(home: &Path, env: &[(&'static str, &str)]) -> Self {
        Self {
            home: home.to_path_buf(),
            env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    /// The same variables on another home.
    fn at(&self, home: &Path) -> Self {
        Self {
            home: home.to_path_buf(),
            env: self.env.clone(),
        }
    }

    fn command(&self) -> Command {
        let mut command = crate::support::command(&self.home);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("prelabel runs")
    }

    /// Runs, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }
}

fn with_store(home: &Home, store: &str, args: &[&str]) -> Output {
    On::new(home.path(), &[("PRELABEL_STORE", store)]).run(args)
}

/// The face detector as service `faces` on every item, and the sample photos uploaded to
/// dataset `photos`.
fn faces_on_the_photos(on: &On) {
    crate::support::face_detector();
    let package = crate::support::face_detector_dir();
    on.ok(&["package", "push", crate::support::path(&package)]);
    on.ok(&["service", "deploy", "face-detector", "--name", "faces"]);
    on.ok(&["trigger", "create", "faces", "--service", "faces"]);
    let photos = crate::support::fixtures().join("images");
    on.ok(&[
        "upload",
        crate::support::path(&photos),
        "--dataset",
        "photos",
    ]);
}

#[test]
fn a_store_that_is_not_a_database_url_is_named_before_anything_runs() {
    let home = Home::new();
    for (store, says) in [
        (
            "mysql://root@localhost/x",
            "expected `sqlite` or a postgres://",
        ),
        ("postgres://u@h:notaport/db", "invalid"),
    ] {
        let out = with_store(&home, store, &["service", "list"]);
        assert!(!out.status.success(), "{store}");
        let err = stderr(&out);
        assert!(
            err.contains("--store") && err.contains(says),
            "{store}: {err}"
        );
    }
    // The password is never printed.
    let out = with_store(
        &home,
        "postgres://u:hunter2@h:notaport/db",
        &["service", "list"],
    );
    assert!(!stderr(&out).contains("hunter2"), "{}", stderr(&out));
}

#[test]
fn a_server_that_is_not_there_is_an_error_naming_it_without_its_password() {
    let home = Home::new();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://prelabel:hunter2@127.0.0.1:{port}/prelabel?connect_timeout=5");
    let out = with_store(&home, &url, &["service", "list"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// A test CA and a server certificate it signs for `127.0.0.1` alone, made with `openssl`
/// (installed with apt where it is missing); the paths of `ca.pem`, `server.pem`, `server.key`.
fn test_certificates(dir: &Path, ca: &str) -> [PathBuf; 3] {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        crate::support::apt_install(&["openssl"], "the TLS test's certificates");
    }
    let at = |name: &str| dir.join(name);
    std::fs::write(
        at("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("written");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: [Vec<&str>; 3] = [
        [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj"],
            &[ca],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=prelabel test server",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    ];
    for args in steps {
        let out = std::process::Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    }
    [at("ca.pem"), at("server.pem"), at("server.key")]
}

/// A store URL's `sslmode` and `sslrootcert` work as libpq's. On a server that offers TLS,
/// the default encrypts every session of a worker, which runs every item; `verify-full` with
/// the CA that signed the server's certificate connects; a CA that did not, a host name the
/// certificate does not name and `require` on a server without TLS are errors naming the
/// cause (never the password), and `verify-ca` is refused before anything runs.
#[test]
fn tls_to_postgres_encrypts_and_verifies_as_libpq_does() {
    let plain = postgres::server();
    let certs = tempdir();
    let [ca, cert, key] = test_certificates(certs.path(), "/CN=prelabel test CA");
    let other = tempdir();
    let [other_ca, ..] = test_certificates(other.path(), "/CN=someone else's CA");
    let server = prelabel_dev::scratch::Server::start_tls(
        &Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("postgres-tls-{}", std::process::id())),
        (&cert, &key),
    )
    .expect("the TLS server starts");
    let url = server.create_database("tls").expect("a database");
    let with_password = url.replace("prelabel@", "prelabel:hunter2@");
    let home = tempdir();
    let status = |store: &str| -> Output {
        On::new(home.path(), &[("PRELABEL_STORE", store)]).run(&["status"])
    };
    // verify-full with the CA that signed it: connects.
    let verified = format!(
        "{with_password}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    let out = status(&verified);
    assert!(out.status.success(), "{}", stderr(&out));
    // Refused, each for its cause, none printing the password.
    let refused = [
        (
            format!(
                "{with_password}?sslmode=verify-full&sslrootcert={}",
                other_ca.display()
            ),
            "UnknownIssuer",
        ),
        (
            format!(
                "{}?sslmode=verify-full&sslrootcert={}",
                with_password.replace("127.0.0.1", "localhost"),
                ca.display()
            ),
            "not valid for name \"localhost\"",
        ),
        (
            format!(
                "{with_password}?sslmode=require&sslrootcert={}",
                other_ca.display()
            ),
            "UnknownIssuer",
        ),
        (
            format!("{with_password}?sslmode=verify-ca"),
            "use verify-full",
        ),
        (
            format!("{with_password}?sslmode=verify-full&sslrootcert=/nowhere/ca.pem"),
            "/nowhere/ca.pem",
        ),
        (
            format!(
                "{}?sslmode=require",
                plain
                    .create_database()
                    .replace("prelabel@", "prelabel:hunter2@")
            ),
            "TLS",
        ),
    ];
    for (store, says) in &refused {
        let out = status(store);
        let err = stderr(&out);
        assert!(!out.status.success(), "{store}: connected");
        assert!(err.contains(says), "{store}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    // The default (libpq's `prefer`): every session of a worker encrypted, and it works.
    let on = On::new(
        home.path(),
        &[("PRELABEL_STORE", &url), ("PRELABEL_LEASE", "1.5")],
    );
    naps_on_items(&on, 20, 2, &[]);
    let mut worker = on
        .command()
        .args(["work"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a worker starts");
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let name = format!("prelabel {}", worker.id());
    let sessions = |db: &mut ::postgres::Client| -> (i64, i64) {
        let row = db
            .query_one(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE s.ssl)
                   FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
                  WHERE a.application_name = $1",
                &[&name],
            )
            .expect("a count");
        (row.get(0), row.get(1))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // The scheduler, its heartbeat and the service's worker thread.
    while sessions(&mut db).0 < 3 || successes(&mut db) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker over TLS: {:?} sessions, {} done",
            sessions(&mut db),
            successes(&mut db)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (all, encrypted) = sessions(&mut db);
    assert_eq!(all, encrypted, "every session of the worker is encrypted");
    signal(&worker, libc::SIGINT);
    let ended = crate::support::wait_exit(&mut worker, 60, "the worker");
    assert!(ended.success(), "the worker ended {ended}");
}

#[test]
fn workers_starting_at_once_create_the_schema_once() {
    let server = postgres::server();
    let url = server.create_database();
    let homes: Vec<_> = (0..4).map(|_| tempdir()).collect();
    let children: Vec<_> = homes
        .iter()
        .map(|h| {
            On::new(h.path(), &[("PRELABEL_STORE", &url)])
                .command()
                .args(["secret", "list"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("starts")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("ends");
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "[]");
    }
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let version: i64 = client
        .query_one("SELECT version FROM prelabel_schema", &[])
        .expect("one row")
        .get(0);
    assert_eq!(
        version as usize,
        postgres_migrations(),
        "every migration ran"
    );
    let rows = client
        .query("SELECT version FROM prelabel_schema", &[])
        .expect("rows");
    assert_eq!(rows.len(), 1, "one version row");
}

#[test]
fn a_schema_from_a_newer_prelabel_is_refused_and_left_alone() {
    let server = postgres::server();
    let url = server.create_database();
    let home = tempdir();
    let on = On::new(home.path(), &[("PRELABEL_STORE", &url)]);
    on.ok(&["service", "list"]);
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    client
        .batch_execute("UPDATE prelabel_schema SET version = 99")
        .expect("update");
    let out = on.run(&["service", "list"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("schema version 99")
            && err.contains(&format!("knows up to {}", postgres_migrations())),
        "{err}"
    );
}

/// Milliseconds since the epoch of a stored time (`2026-12-01T10:00:00.123Z`).
fn millis(time: &str) -> i64 {
    let (date, clock) = time
        .trim_end_matches('Z')
        .split_once('T')
        .expect("a stored time");
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().expect("a date"))
        .collect();
    let (hms, ms) = clock.split_once('.').unwrap_or((clock, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().expect("a time")).collect();
    // Days from the civil date (Howard Hinnant's algorithm), enough for intervals.
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms.parse::<i64>().expect("ms")
}

/// The most intervals `[start, end)` that overlap at any moment.
fn most_at_once(mut intervals: Vec<(i64, i64)>) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (start, end) in intervals.drain(..) {
        edges.push((start, 1));
        edges.push((end, -1));
    }
    // An end before a start at the same millisecond: one slot handed on, not two at once.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: kill on a child this test started and has not waited for.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0, "signal {signal} to {}", child.id());
}

/// The hostile guest as service `naps` (deployed with `options` too) on every item, and
/// `items` PNGs `width` pixels wide uploaded to dataset `d`: the guest naps 10 ms per pixel.
fn naps_on_items(on: &On, items: usize, width: u32, options: &[&str]) {
    let hostile = crate::support::hostile_guest();
    on.ok(&[
        "package",
        "push",
        crate::support::path(&hostile),
        "--no-build",
    ]);
    on.ok(&[
        &["service", "deploy", "hostile", "--name", "naps"][..],
        options,
    ]
    .concat());
    on.ok(&["trigger", "create", "naps", "--service", "naps"]);
    let dir = tempdir();
    for i in 0..items {
        std::fs::write(
            dir.path().join(format!("nap-{i:03}.png")),
            crate::support::png(width, width),
        )
        .expect("an item");
    }
    on.ok(&["upload", crate::support::path(dir.path()), "--dataset", "d"]);
}

/// `prelabel work` with `on`'s variables on `home`, its log in the file `log`.
fn work(on: &On, home: &Path, log: &Path) -> std::process::Child {
    let log = std::fs::File::create(log).expect("a log file");
    on.at(home)
        .command()
        .args(["work"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("a worker starts")
}

/// A count that `sql` selects.
fn count(
    db: &mut ::postgres::Client,
    sql: &str,
    args: &[&(dyn ::postgres::types::ToSql + Sync)],
) -> i64 {
    db.query_one(sql, args).expect("a count").get(0)
}

/// How many executions succeeded.
fn successes(db: &mut ::postgres::Client) -> i64 {
    count(
        db,
        "SELECT COUNT(*) FROM executions WHERE status = 'success'",
        &[],
    )
}

/// Every one of `items` items annotated exactly once, by one execution that succeeded.
fn each_item_annotated_once(db: &mut ::postgres::Client, items: usize) {
    let per_item = db
        .query(
            "SELECT i.name,
                    (SELECT COUNT(*) FROM executions e WHERE e.item_id = i.id AND e.status = 'success'),
                    (SELECT COUNT(*) FROM executions e WHERE e.item_id = i.id),
                    (SELECT COUNT(*) FROM annotations a WHERE a.item_id = i.id),
                    (SELECT COUNT(*) FROM annotations a JOIN executions e ON e.id = a.execution_id
                      WHERE a.item_id = i.id AND e.status = 'success')
               FROM items i ORDER BY i.name",
            &[],
        )
        .expect("rows");
    assert_eq!(per_item.len(), items);
    for row in &per_item {
        let name: String = row.get(0);
        let counts: (i64, i64, i64, i64) = (row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(
            counts,
            (1, 1, 1, 1),
            "{name}: success, executions, annotations, by the success"
        );
    }
}

/// Three workers on one PostgreSQL and a shared blob folder, a few hundred items: one worker
/// killed mid-run, another stopped past its lease and let go again. Every item ends annotated
/// exactly once, the service's concurrency holds across the workers (the recorded start and
/// end times say so), and the stopped worker's late result is not stored over the re-run's.
#[test]
fn three_workers_share_one_queue_through_a_kill_and_a_stop() {
    const ITEMS: usize = 240;
    const CONCURRENCY: usize = 3;
    let url = postgres::server().create_database();
    let blobs = tempdir();
    let homes: Vec<_> = (0..3).map(|_| tempdir()).collect();
    let on = On::new(
        homes[0].path(),
        &[
            ("PRELABEL_STORE", &url),
            ("PRELABEL_BLOBS", crate::support::path(blobs.path())),
            ("PRELABEL_LEASE", "1.5"),
        ],
    );
    // Each item sleeps 10 ms per pixel of width in the guest: 100 ms here.
    naps_on_items(
        &on,
        ITEMS,
        10,
        &[
            "--timeout",
            "5",
            "--memory-mb",
            "256",
            "--concurrency",
            "3",
            "--max-attempts",
            "3",
        ],
    );
    let logs = tempdir();
    let mut workers: Vec<std::process::Child> = homes
        .iter()
        .enumerate()
        .map(|(i, home)| {
            work(
                &on,
                home.path(),
                &logs.path().join(format!("worker-{i}.log")),
            )
        })
        .collect();
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let wait_until = |db: &mut ::postgres::Client, what: &str, sql: &str, at_least: i64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        while count(db, sql, &[]) < at_least {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // All three at work, then one killed while it runs something.
    let success = "SELECT COUNT(*) FROM executions WHERE status = 'success'";
    wait_until(&mut db, "a first share of the work", success, 30);
    let worker_running = |db: &mut ::postgres::Client, pid: u32| -> i64 {
        db.query_one(
            "SELECT COUNT(*) FROM executions e JOIN workers w ON w.id = e.worker_id
              WHERE e.status = 'running' AND w.name LIKE '%:' || $1",
            &[&pid.to_string()],
        )
        .expect("a count")
        .get(0)
    };
    let killed = workers[0].id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while worker_running(&mut db, killed) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker 0 never ran anything"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    signal(&workers[0], libc::SIGKILL);
    // Another stopped in the middle of an execution, for three leases.
    let stopped = workers[1].id();
    while worker_running(&mut db, stopped) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker 1 never ran anything"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    signal(&workers[1], libc::SIGSTOP);
    let held: Vec<i64> = db
        .query(
            "SELECT e.id FROM executions e JOIN workers w ON w.id = e.worker_id
              WHERE e.status = 'running' AND w.name LIKE '%:' || $1",
            &[&stopped.to_string()],
        )
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(4500));
    signal(&workers[1], libc::SIGCONT);
    wait_until(&mut db, "every item", success, ITEMS as i64);
    // Let the stopped worker's late results arrive (it ran on when let go), then stop all.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status: serde_json::Value =
        serde_json::from_str(&on.ok(&["status", "--json"])).expect("status is JSON");
    for w in workers.iter_mut().skip(1) {
        signal(w, libc::SIGINT);
    }
    for (i, w) in workers.iter_mut().enumerate() {
        crate::support::wait_exit(w, 60, &format!("worker {i}"));
    }

    each_item_annotated_once(&mut db, ITEMS);
    // The killed worker's execution was taken back and counted as interrupted.
    let interrupted = count(
        &mut db,
        "SELECT COUNT(*) FROM executions WHERE interrupted > 0",
        &[],
    );
    assert!(
        interrupted >= 2,
        "the killed and the stopped worker's executions: {interrupted}"
    );
    // Never more than the service's concurrency at once, across the workers.
    let intervals: Vec<(i64, i64)> = db
        .query(
            "SELECT started_at, finished_at FROM executions WHERE status = 'success'",
            &[],
        )
        .expect("rows")
        .iter()
        .map(|r| (millis(r.get(0)), millis(r.get(1))))
        .collect();
    let most = most_at_once(intervals);
    assert!(
        most <= CONCURRENCY,
        "{most} executions of the service ran at once; its concurrency is {CONCURRENCY}"
    );
    assert!(
        most >= 2,
        "the workers shared the work: at most {most} at once"
    );
    // The stopped worker came back with its result; it was not stored, the re-run's was.
    let log = std::fs::read_to_string(logs.path().join("worker-1.log")).expect("its log");
    assert!(!held.is_empty());
    for id in &held {
        let row = db
            .query_one(
                "SELECT status, worker_id, interrupted, logs, started_at, finished_at FROM executions WHERE id = $1",
                &[id],
            )
            .expect("the execution");
        let shown: (
            String,
            Option<i64>,
            i64,
            String,
            Option<String>,
            Option<String>,
        ) = (
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        );
        // Lapsed when it finished; or, stopped inside the transaction that records it, the
        // server ended that session after a lease and the outcome could not be recorded.
        let named = |why: &str| log.contains(&format!("execution #{id}: {why}"));
        assert!(
            named("this worker's claim on it lapsed") || named("could not record the outcome"),
            "execution #{id} {shown:?}; the stopped worker's log:\n{log}"
        );
        let owner: String = db
            .query_one(
                "SELECT w.name FROM executions e JOIN workers w ON w.id = e.worker_id WHERE e.id = $1",
                &[id],
            )
            .expect("its worker")
            .get(0);
        assert!(
            !owner.ends_with(&format!(":{stopped}")),
            "execution #{id} kept the stopped worker's result ({owner})"
        );
    }
    // `status` saw the killed worker lost and the others at work, nothing left queued.
    let workers_seen = status["workers"].as_array().expect("workers");
    let state = |pid: u32| {
        workers_seen
            .iter()
            .find(|w| {
                w["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(&format!(":{pid}")))
            })
            .map(|w| w["state"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(state(killed).as_deref(), Some("lost"), "{status:#}");
    assert_eq!(state(stopped).as_deref(), Some("running"), "{status:#}");
    assert_eq!(status["queues"][0]["queued"], 0, "{status:#}");
}

/// An embedded home moved into PostgreSQL: every row and blob, checked, and the moved store
/// carries on (new ids after the copied ones).
/// A worker stopped while it holds a lock inside a transaction (a claim's, or the store's
/// write lock) holds the other workers up no longer than its lease: the server ends that
/// session, another worker does all the work meanwhile, and the stopped one, let go, finds
/// its session gone, opens another and stops cleanly. Every item ends annotated once.
#[test]
fn a_worker_stopped_holding_a_lock_holds_the_others_up_no_longer_than_its_lease() {
    const ITEMS: usize = 400;
    let url = postgres::server().create_database();
    let blobs = tempdir();
    let homes = [tempdir(), tempdir()];
    let on = On::new(
        homes[0].path(),
        &[
            ("PRELABEL_STORE", &url),
            ("PRELABEL_BLOBS", crate::support::path(blobs.path())),
            ("PRELABEL_LEASE", "1.5"),
        ],
    );
    // 20 ms naps: claims and commits come often enough to stop the worker inside one.
    naps_on_items(&on, ITEMS, 2, &["--concurrency", "6"]);
    let logs = tempdir();
    let start = |i: usize| {
        work(
            &on,
            homes[i].path(),
            &logs.path().join(format!("worker-{i}.log")),
        )
    };
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    // Sessions of worker 0 that sit in a transaction holding a lock: what a stop caught.
    let holding = "SELECT COUNT(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
                    WHERE a.application_name = $1 AND a.state = 'idle in transaction'
                      AND l.locktype = 'advisory' AND l.granted";
    let mut workers = vec![start(0)];
    let name = format!("prelabel {}", workers[0].id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // At work first: stopped in a claim or a commit, not in its start.
    while successes(&mut db) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker 0 never got to work"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut tries = 0;
    loop {
        assert!(
            std::time::Instant::now() < deadline && successes(&mut db) < ITEMS as i64 - 50,
            "worker 0 was never stopped holding a lock ({tries} tries)"
        );
        std::thread::sleep(std::time::Duration::from_millis(tries % 7));
        signal(&workers[0], libc::SIGSTOP);
        // A statement under way when the signal came ends on the server; then it waits.
        std::thread::sleep(std::time::Duration::from_millis(20));
        if count(&mut db, holding, &[&name]) > 0 {
            eprintln!("worker 0 stopped holding a lock after {tries} tries");
            break;
        }
        signal(&workers[0], libc::SIGCONT);
        tries += 1;
    }
    // Worker 0 stays stopped; worker 1 does the rest.
    workers.push(start(1));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while successes(&mut db) < ITEMS as i64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the other worker was held up: {} of {ITEMS} done",
            successes(&mut db)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'",
            &[&name]
        ),
        0,
        "the stopped worker's transaction outlived its lease"
    );
    signal(&workers[0], libc::SIGCONT);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for w in &workers {
        signal(w, libc::SIGINT);
    }
    for (i, w) in workers.iter_mut().enumerate() {
        let status = crate::support::wait_exit(w, 60, &format!("worker {i}"));
        let log =
            std::fs::read_to_string(logs.path().join(format!("worker-{i}.log"))).expect("its log");
        assert!(status.success(), "worker {i} ended {status}:\n{log}");
    }
    each_item_annotated_once(&mut db, ITEMS);
}

/// The database ends every session of a running `prelabel serve`, twice (as a restart, a
/// failover or an operator's `pg_terminate_backend` would): its scheduler, worker threads,
/// heartbeat and API each open a new session and go on. Every item ends annotated once, the
/// worker is still `running` (its heartbeat came back), and it stops cleanly.
#[test]
fn a_server_whose_sessions_are_cut_reconnects_and_loses_nothing() {
    const ITEMS: usize = 300;
    let url = postgres::server().create_database();
    let home = tempdir();
    let on = On::new(
        home.path(),
        &[("PRELABEL_STORE", &url), ("PRELABEL_LEASE", "1.5")],
    );
    naps_on_items(&on, ITEMS, 2, &["--concurrency", "4"]);
    let mut serve = on
        .command()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prelabel serve starts");
    let (base, stderr) = crate::support::server::listening(&mut serve, "prelabel serve");
    let client = crate::support::server::client_builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("a client");
    let status = || {
        client
            .get(format!("{base}/api/status"))
            .send()
            .expect("GET")
    };
    assert!(status().status().is_success(), "the API answers");
    let mut db = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while successes(&mut db) < 30 {
        assert!(std::time::Instant::now() < deadline, "never at work");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let name = format!("prelabel {}", serve.id());
    // Sessions of the server, but for those already ended (they linger in the view a moment).
    let mut ended: Vec<i32> = Vec::new();
    let sessions = |db: &mut ::postgres::Client, ended: &Vec<i32>| {
        count(
            db,
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1 AND pid <> ALL($2)",
            &[&name, ended],
        )
    };
    for cut in 0..2 {
        // The scheduler, its heartbeat and four worker threads (and the API's, once asked):
        // all of them there again before the second cut.
        while sessions(&mut db, &ended) < 6 {
            assert!(
                std::time::Instant::now() < deadline,
                "cut {cut}: the server has {} sessions",
                sessions(&mut db, &ended)
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // In the select list: a WHERE clause may call it before it filters.
        let now_ended: Vec<i32> = db
            .query(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE application_name = $1 AND pid <> ALL($2)",
                &[&name, &ended],
            )
            .expect("sessions ended")
            .iter()
            .filter(|r| r.get::<_, bool>(1))
            .map(|r| r.get(0))
            .collect();
        assert!(
            now_ended.len() >= 6,
            "cut {cut}: {} sessions ended",
            now_ended.len()
        );
        ended.extend(now_ended);
    }
    while successes(&mut db) < ITEMS as i64 {
        if std::time::Instant::now() > deadline {
            let left: Vec<String> = db
                .query(
                    "SELECT id, status, error, worker_id, claim, interrupted FROM executions
                      WHERE status <> 'success'",
                    &[],
                )
                .expect("rows")
                .iter()
                .map(|r| {
                    let row: (i64, String, Option<String>, Option<i64>, Option<i64>, i64) =
                        (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
                    format!("{row:?}")
                })
                .collect();
            panic!(
                "the server did not carry on: {} of {ITEMS} done; left: {left:#?}",
                successes(&mut db)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Past a lease since the cuts: still running, so its heartbeat found a new session. The
    // API's first request after the cuts finds its session gone and opens another.
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let answered = status();
    assert!(
        answered.status().is_success(),
        "the API answers: {answered:?}"
    );
    let shown: serde_json::Value = answered.json().expect("JSON");
    let workers = shown["workers"].as_array().expect("workers");
    let ours = workers
        .iter()
        .find(|w| {
            w["name"]
                .as_str()
                .is_some_and(|n| n.ends_with(&format!(":{}", serve.id())))
        })
        .expect("the server's worker");
    assert_eq!(ours["state"], "running", "{shown}");
    signal(&serve, libc::SIGINT);
    let ended = crate::support::wait_exit(&mut serve, 60, "prelabel serve");
    assert!(ended.success(), "prelabel serve ended {ended}");
    // Nor a panic that did not abort it (closing sessions on the API's runtime did, once).
    stderr.assert_no_panic();
    each_item_annotated_once(&mut db, ITEMS);
}

#[test]
fn migrate_moves_a_home_into_postgres_and_it_carries_on() {
    let source = tempdir();
    let url = postgres::server().create_database();
    let sqlite = On::new(source.path(), &[("PRELABEL_STORE", "sqlite")]);
    faces_on_the_photos(&sqlite);
    sqlite.ok(&["work", "--until-idle"]);
    let before = sqlite.ok(&["annotations", "export", "--dataset", "photos"]);
    let target = tempdir();
    let pg = On::new(target.path(), &[("PRELABEL_STORE", &url)]);
    let on_pg = |args: &[&str]| pg.run(args);
    let out = on_pg(&[
        "migrate",
        "--from",
        crate::support::path(source.path()),
        "--to",
        &url,
    ]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("check: ok"), "{}", stdout(&out));
    let check = on_pg(&["check"]);
    assert!(
        check.status.success() && stdout(&check).contains("ok"),
        "{}",
        stdout(&check)
    );
    let after = on_pg(&["annotations", "export", "--dataset", "photos"]);
    assert!(after.status.success(), "{}", stderr(&after));
    assert_eq!(stdout(&after), before, "the annotations, byte for byte");
    // Again into the same database: refused, nothing changed.
    let again = on_pg(&[
        "migrate",
        "--from",
        crate::support::path(source.path()),
        "--to",
        &url,
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not empty"),
        "{}",
        stderr(&again)
    );
    // The moved store carries on: a new item gets the next id and its execution runs.
    let dir = tempdir();
    std::fs::write(dir.path().join("new.png"), crate::support::png(64, 64)).expect("write");
    let up = on_pg(&[
        "upload",
        crate::support::path(dir.path()),
        "--dataset",
        "photos",
    ]);
    assert!(up.status.success(), "{}", stderr(&up));
    let work = on_pg(&["work", "--until-idle"]);
    assert!(work.status.success(), "{}", stderr(&work));
    let listed = on_pg(&["executions", "list", "--json"]);
    let executions: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let executions = executions.as_array().expect("a list");
    assert!(
        executions.iter().all(|e| e["status"] == "success"),
        "{executions:#?}"
    );
    let ids: std::collections::BTreeSet<i64> =
        executions.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert_eq!(ids.len(), executions.len(), "ids are unique");
}

/// Blobs in an S3-compatible bucket (moto's server): a worker whose home shares nothing with
/// the one that pushed and uploaded runs every item from the bucket and the database alone;
/// a blob missing from the bucket is named by `check` and fails its execution; bytes in the
/// bucket that are not the blob's are refused, never run.
#[test]
fn blobs_in_an_s3_bucket_serve_a_worker_that_shares_nothing_else() {
    let s3 = crate::support::s3::server();
    let blobs = s3.create_bucket("prelabel-test");
    let url = postgres::server().create_database();
    let (uploader, worker) = (tempdir(), tempdir());
    let up = uploader.path();
    let on = On::new(
        up,
        &[
            ("PRELABEL_STORE", &url),
            ("PRELABEL_BLOBS", &blobs),
            ("AWS_ACCESS_KEY_ID", crate::support::s3::KEY),
            ("AWS_SECRET_ACCESS_KEY", crate::support::s3::SECRET),
        ],
    );
    let ok = |args: &[&str]| on.ok(args);
    faces_on_the_photos(&on);
    let photos = crate::support::fixtures().join("images");
    assert!(
        !up.join("blobs").exists(),
        "nothing stored in the uploader's home"
    );
    on.at(worker.path()).ok(&["work", "--until-idle"]);
    let executions: serde_json::Value =
        serde_json::from_str(&ok(&["executions", "list", "--json"])).expect("JSON");
    let executions = executions.as_array().expect("a list");
    let photo_count = std::fs::read_dir(&photos).expect("photos").count();
    assert_eq!(executions.len(), photo_count);
    assert!(
        executions.iter().all(|e| e["status"] == "success"),
        "{executions:#?}"
    );
    let exported = ok(&[
        "annotations",
        "export",
        "--dataset",
        "photos",
        "--format",
        "coco",
    ]);
    let coco: serde_json::Value = serde_json::from_str(&exported).expect("COCO");
    assert!(
        coco["annotations"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "faces were found: {coco}"
    );
    assert!(ok(&["check"]).contains("ok"));
    // The worker read the artifacts from its cache of the bucket, checked.
    assert!(worker.path().join("cache/blobs/sha256").is_dir());

    // A blob gone from the bucket: `check` names it, its execution fails naming it.
    let items: serde_json::Value =
        serde_json::from_str(&ok(&["items", "list", "--json"])).expect("JSON");
    let item = &items.as_array().expect("items")[0];
    let digest = item["digest"].as_str().expect("a digest");
    s3.delete("prelabel-test", &format!("blobs/sha256/{digest}"));
    let check = on.run(&["check"]);
    assert!(!check.status.success());
    assert!(
        stdout(&check).contains(&format!("blob {digest} is missing")),
        "{}",
        stdout(&check)
    );
    // Bytes that are not the blob's: refused when read, never handed to a guest.
    s3.put(
        "prelabel-test",
        &format!("blobs/sha256/{digest}"),
        b"not the photo",
    );
    let fresh = tempdir();
    let id = item["id"].to_string();
    let out = on
        .at(fresh.path())
        .run(&["execute", "faces", "--item", &id]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("the bucket's bytes have sha256"),
        "a damaged blob is named: {text}"
    );
}
