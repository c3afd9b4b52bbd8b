//! Scaled out: PostgreSQL and shared blobs, several workers, a hot swap under load.

use super::*;

/// The queue on PostgreSQL beside the embedded SQLite: items/s of the no-op guest through
/// `prelabel work` processes (one on SQLite, whose home has one scheduler; 1, 2 and 4 sharing
/// a throwaway PostgreSQL on this machine), then what the PostgreSQL path costs per
/// execution: the claim, the outcome's commit, and a heartbeat (one per worker every third
/// of its lease, not per execution). Skipped, saying why, without Debian's postgresql.
pub(super) fn scale_rows(rows: &mut Vec<Row>, options: &Options, runs: usize) -> Result<()> {
    if scratch::bin_dir().is_none() {
        rows.push(skipped("scale", "PostgreSQL rows"));
        return Ok(());
    }
    let scale = Scale {
        options,
        server: scratch::Server::start(&options.scratch.join("postgres"), true)?,
        shared: runtime_arc(&options.scratch)?,
    };
    // 400 items at the default 20 runs.
    let items = runs * 20;
    let cases = [
        ("SQLite", 1),
        ("PostgreSQL", 1),
        ("PostgreSQL", 2),
        ("PostgreSQL", 4),
    ];
    for (n, (store, workers)) in cases.into_iter().enumerate() {
        let home = scale.queued(store, format!("scale-{n}"), items)?;
        rows.push(scale.throughput(&home, store, workers, items)?);
    }
    // Each path's steps in-process: claim (lost-worker check, count, row), commit, heartbeat.
    for (n, backend) in ["SQLite", "PostgreSQL"].into_iter().enumerate() {
        let home = scale.queued(backend, format!("cost-{n}"), runs)?;
        rows.extend(costs(&home, backend, runs)?);
    }
    Ok(())
}

/// What the scale rows share: the bench's options, a PostgreSQL server, one runtime.
struct Scale<'a> {
    options: &'a Options,
    server: scratch::Server,
    shared: Arc<Runtime>,
}

impl Scale<'_> {
    /// A home with `items` no-op items queued, on SQLite or a database of its own.
    fn queued(&self, store: &str, name: String, items: usize) -> Result<Home> {
        let dir = self.options.scratch.join(&name);
        let location = match store {
            "SQLite" => Location::home(&dir),
            _ => Location {
                database: Database::Postgres(self.server.create_database(&name.replace('-', "_"))?),
                blobs: Some(BlobsAt::Folder(dir.join("blobs"))),
                ..Location::home(dir)
            },
        };
        let home = platform_at(location, &self.shared, &self.options.noop, 4)?;
        for i in 0..items {
            home.upload("d", &format!("ok-{i}.png"), format!("ok {i}").as_bytes())?;
        }
        Ok(home)
    }

    /// `workers` processes of `prelabel work --until-idle` on the home's queue, timed.
    fn throughput(&self, home: &Home, store: &str, workers: usize, items: usize) -> Result<Row> {
        let exe = std::env::current_exe().context("this binary")?;
        let (dir, location) = (home.dir().to_path_buf(), home.location().clone());
        let database = match &location.database {
            Database::Sqlite => "sqlite".to_string(),
            Database::Postgres(url) => url.clone(),
        };
        let started = Instant::now();
        let children = (0..workers)
            .map(|w| {
                std::process::Command::new(&exe)
                    .args(["work", "--until-idle"])
                    // The embedded store is its home's; shared, each worker has its own.
                    .env(
                        "PRELABEL_HOME",
                        match location.database {
                            Database::Sqlite => dir.clone(),
                            Database::Postgres(_) => dir.join(format!("worker-{w}")),
                        },
                    )
                    .env("PRELABEL_STORE", &database)
                    .env("PRELABEL_BLOBS", location.blobs_at().describe())
                    .env("PRELABEL_CACHE_DIR", self.options.scratch.join("cache"))
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .context("a worker starts")
            })
            .collect::<Result<Vec<_>>>()?;
        for mut child in children {
            anyhow::ensure!(child.wait()?.success(), "a `prelabel work` failed");
        }
        let elapsed = started.elapsed();
        let done = home.executions(Some(execution::Status::Success))?.len();
        anyhow::ensure!(done == items, "{done} of {items} executions succeeded");
        Ok(stats(
            "scale",
            &format!("queue, no-op guest, {store}, {workers} worker process(es)"),
            vec![elapsed / items as u32],
            format!(
                "{:.0} items/s over {items} items, concurrency 4 (starts included)",
                items as f64 / elapsed.as_secs_f64()
            ),
        ))
    }
}

/// What one execution costs the store in-process: its claim, its outcome's commit, and a
/// worker's heartbeat.
fn costs(home: &Home, backend: &str, runs: usize) -> Result<Vec<Row>> {
    let dir = home.dir().to_path_buf();
    let service = home.service("svc")?;
    let mut store = home.store()?;
    let me = worker::register(&mut store, &dir, worker::DEFAULT_LEASE)?;
    let (mut claims, mut commits, mut beats) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (claimed, took) = time(|| {
            let claim = me.next_claim();
            execution::claim_next(&mut store, service.id, 4, service.revision_id, &me, claim)
        });
        let claimed = claimed?.context("a queued execution")?;
        claims.push(took);
        let ran = execution::Ran {
            component_digest: "",
            init_inputs: None,
            inference_engine: None,
            cold_start_ms: None,
        };
        let outcome = execution::Outcome::Success {
            annotations: Vec::new(),
            made: Vec::new(),
        };
        let (finished, took) =
            time(|| execution::finish(&mut store, &claimed, &outcome, "", 0, ran));
        finished?;
        commits.push(took);
        let (beat, took) = time(|| worker::beat(&store, me.id));
        beat?;
        beats.push(took);
    }
    Ok(vec![
        stats(
            "scale",
            &format!("{backend}: claim"),
            claims,
            "per execution",
        ),
        stats(
            "scale",
            &format!("{backend}: commit the outcome"),
            commits,
            "per execution (durable)",
        ),
        stats(
            "scale",
            &format!("{backend}: heartbeat"),
            beats,
            "per worker every lease/3 (5 s)",
        ),
    ])
}
