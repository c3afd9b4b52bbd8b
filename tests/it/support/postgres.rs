//! PostgreSQL for the tests: with `PRELABEL_TEST_STORE=postgres`, every test home keeps its
//! rows in a database of its own on a throwaway server, so that the same tests check both
//! backends (`postgres::the_platform_and_sandbox_tests_pass_on_postgres` runs them so).
//!
//! The server is the dev crate's throwaway one (`prelabel_dev::scratch`) on Debian's
//! `postgresql`, installed with apt on first use where it is missing: one per test process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use prelabel_dev::scratch;

/// Whether this test process runs its homes on PostgreSQL.
pub fn enabled() -> bool {
    std::env::var("PRELABEL_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The test process's server, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        install();
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("postgres-{}", std::process::id()));
        Server(scratch::Server::start(&dir, false).expect("the test server starts"))
    })
}

pub struct Server(scratch::Server);

impl Server {
    /// A fresh, empty database; its URL.
    pub fn create_database(&self) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.0.create_database(&name).expect("a test database")
    }
}

/// The database each home keeps its rows in, created on first use.
pub fn database_for(home: &Path) -> String {
    static HOMES: OnceLock<Mutex<std::collections::HashMap<PathBuf, String>>> = OnceLock::new();
    let mut homes = HOMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    homes
        .entry(home.to_path_buf())
        .or_insert_with(|| server().create_database())
        .clone()
}

/// A session on a home's database.
pub fn client(home: &Path) -> postgres::Client {
    postgres::Client::connect(&database_for(home), postgres::NoTls).expect("connect")
}

/// Runs SQL statements on a home's database.
pub fn execute(home: &Path, sql: &str) {
    client(home).batch_execute(sql).expect("statements run");
}

/// A number that `sql` selects from a home's database.
pub fn count(home: &Path, sql: &str) -> i64 {
    client(home)
        .query_one(sql, &[])
        .expect("the query runs")
        .get(0)
}

/// Debian's postgresql, installed where it is missing (as the browser test installs chromium).
fn install() {
    if scratch::bin_dir().is_some() {
        return;
    }
    super::apt_install(&["postgresql"], "the PostgreSQL tests");
}
