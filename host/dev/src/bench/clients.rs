//! Many people at once (issue 33): a real `prelabel serve` under sixteen closed-loop clients
//! (eight uploading 1-2 MB photos, four reviewing, two listing with thumbnails and item
//! pages, two on the event stream) for a fixed time while one service at concurrency 2
//! annotates, on SQLite and on PostgreSQL; halfway, a backup of the serving store. Then every
//! upload is checked stored once and annotated once, and the backup restored, checked and
//! found to hold what was committed before it began. Per route: p50, p95, p99, the slowest,
//! and errors by kind.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::blocking::{Client, multipart};

use super::*;

/// Each uploader sends a photo, waits for the answer, then waits out the rest of this.
const UPLOAD_PACE: Duration = Duration::from_secs(2);
/// A reviewer's look at an item and its decision, then this pause (a person reading).
const REVIEW_PACE: Duration = Duration::from_millis(500);
/// A listing (the dataset, a page of thumbnails, one item), then this pause.
const LIST_PACE: Duration = Duration::from_secs(1);
/// How long the queue may take to drain once the clients stop.
const DRAIN: Duration = Duration::from_secs(600);
/// The bootstrap token the server runs with: requests pass the access check, as in use.
const TOKEN: &str = "bench-clients-token";

/// The clients' run on each store (PostgreSQL skipped, saying so, without Debian's server).
pub(super) fn clients_rows(rows: &mut Vec<Row>, options: &Options) -> Result<()> {
    let photos = big_photos(&options.samples)?;
    let runtime = runtime_arc(&options.scratch)?;
    let dir = options.scratch.join("clients-sqlite");
    let home = platform_at(Location::home(&dir), &runtime, &options.face_detector, 2)?;
    rows.extend(Run::new(options, "SQLite", &home, &photos)?.measure()?);
    if scratch::bin_dir().is_none() {
        rows.push(skipped("clients", "PostgreSQL rows"));
        return Ok(());
    }
    let server = scratch::Server::start(&options.scratch.join("clients-postgres"), true)?;
    let dir = options.scratch.join("clients-pg");
    let location = Location {
        database: Database::Postgres(server.create_database("clients")?),
        blobs: Some(BlobsAt::Folder(dir.join("blobs"))),
        ..Location::home(&dir)
    };
    let home = platform_at(location, &runtime, &options.face_detector, 2)?;
    rows.extend(Run::new(options, "PostgreSQL", &home, &photos)?.measure()?);
    Ok(())
}

/// The sample photos enlarged to 3000 pixels wide with some sensor-like noise, as JPEGs of
/// 1-2 MB (a phone's or a camera's size; the samples themselves are small).
fn big_photos(samples: &Path) -> Result<Vec<Vec<u8>>> {
    let mut seed = 0x9e37_79b9_u32;
    photos(samples)?
        .into_iter()
        .map(|(name, bytes)| {
            let image = image::load_from_memory(&bytes).with_context(|| name.clone())?;
            let height = 3000 * image.height() / image.width().max(1);
            let mut big = image
                .resize_exact(3000, height, image::imageops::FilterType::Triangle)
                .to_rgb8();
            for value in big.iter_mut() {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *value = value.saturating_add((seed >> 28) as u8).saturating_sub(8);
            }
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
                .encode_image(&big)
                .with_context(|| name.clone())?;
            Ok(jpeg)
        })
        .collect()
}

/// Photo `n`: one of the enlarged photos made unique by a JPEG comment naming `n` (so that
/// every upload is a new item, not an unchanged one).
fn unique_photo(photos: &[Vec<u8>], n: usize) -> Vec<u8> {
    let base = &photos[n % photos.len()];
    let comment = format!("prelabel bench upload {n}");
    let mut bytes = Vec::with_capacity(base.len() + comment.len() + 4);
    bytes.extend_from_slice(&base[..2]); // SOI
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    bytes.extend_from_slice(comment.as_bytes());
    bytes.extend_from_slice(&base[2..]);
    bytes
}

/// What the clients saw: request times by route, errors by kind, the items they made.
#[derive(Default)]
struct Seen {
    times: Mutex<BTreeMap<&'static str, Vec<Duration>>>,
    errors: Mutex<BTreeMap<String, usize>>,
    /// Uploaded items and when their upload was answered.
    uploaded: Mutex<Vec<(i64, Instant)>>,
    events: AtomicUsize,
}

impl Seen {
    /// Records one request: its time when it answered 2xx, its error's kind otherwise.
    fn record<T>(
        &self,
        route: &'static str,
        request: impl FnOnce() -> reqwest::Result<reqwest::blocking::Response>,
        read: impl FnOnce(reqwest::blocking::Response) -> reqwest::Result<T>,
    ) -> Option<T> {
        let started = Instant::now();
        let answer = request().and_then(|r| r.error_for_status()).and_then(read);
        let took = started.elapsed();
        match answer {
            Ok(value) => {
                lock(&self.times).entry(route).or_default().push(took);
                Some(value)
            }
            Err(error) => {
                let kind = match error.status() {
                    Some(status) => status.as_u16().to_string(),
                    None if error.is_timeout() => "timeout".into(),
                    None if error.is_connect() => "connect".into(),
                    None => "other".into(),
                };
                *lock(&self.errors)
                    .entry(format!("{route}: {kind}"))
                    .or_default() += 1;
                None
            }
        }
    }

    /// An item whose upload was answered at least `age` ago, picked by `n`.
    fn older_item(&self, age: Duration, n: usize) -> Option<i64> {
        let uploaded = lock(&self.uploaded);
        let old: Vec<i64> = uploaded
            .iter()
            .filter(|(_, at)| at.elapsed() >= age)
            .map(|(id, _)| *id)
            .collect();
        (!old.is_empty()).then(|| old[n % old.len()])
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A backup taken during the run: where, what was committed before it (see [`committed`]),
/// how long it took.
struct Backup {
    dir: PathBuf,
    before: (usize, usize, i64),
    took: Duration,
}

/// The dataset's items up to id `last`, their annotations, and the last item's id.
fn committed(home: &Home, last: i64) -> Result<(usize, usize, i64)> {
    let items: Vec<i64> = home
        .items(Some("load"))?
        .into_iter()
        .map(|i| i.id)
        .filter(|&id| id <= last)
        .collect();
    let mut boxes = 0;
    for id in &items {
        boxes += home.item_annotations(*id)?.len();
    }
    Ok((items.len(), boxes, items.iter().copied().max().unwrap_or(0)))
}

/// The server's process, stopped as a service manager would (SIGINT: drain, exit) however
/// the run ends.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        let _ = self.0.wait();
    }
}

/// One store's run: the home, its server, what the clients saw.
struct Run<'a> {
    options: &'a Options,
    store: &'static str,
    home: &'a Home,
    photos: &'a [Vec<u8>],
    base: String,
    seen: Seen,
    deadline: Instant,
}

impl<'a> Run<'a> {
    fn new(
        options: &'a Options,
        store: &'static str,
        home: &'a Home,
        photos: &'a [Vec<u8>],
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(Run {
            options,
            store,
            home,
            photos,
            base: format!("http://127.0.0.1:{port}"),
            seen: Seen::default(),
            deadline: Instant::now(),
        })
    }

    /// Starts the server, runs the clients, drains the queue, checks and tabulates.
    fn measure(mut self) -> Result<Vec<Row>> {
        let _server = self.serve()?;
        self.wait_ready()?;
        self.deadline = Instant::now() + self.options.seconds;
        let this = &self;
        // The clients, and halfway a backup, as an operator would take one.
        let backup = std::thread::scope(|s| {
            for k in 0..8 {
                s.spawn(move || this.uploader(k));
            }
            for k in 0..4 {
                s.spawn(move || this.reviewer(k));
            }
            for k in 0..2 {
                s.spawn(move || this.lister(k));
                s.spawn(move || this.subscriber());
            }
            let backup = s.spawn(move || this.backup_halfway());
            backup
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the backup panicked")))
        });
        // Every client has stopped: the scope waits for them.
        let mut rows = this.drain_and_check()?;
        rows.push(this.restored(backup?)?);
        Ok(rows)
    }

    /// Waits for half the run, counts the items and annotations committed so far, and backs
    /// the serving store up (in this process, as `prelabel backup` does).
    fn backup_halfway(&self) -> Result<Backup> {
        let halfway = self.deadline - self.options.seconds / 2;
        std::thread::sleep(halfway.saturating_duration_since(Instant::now()));
        // The dataset exists from its first upload on.
        while lock(&self.seen.uploaded).is_empty() && Instant::now() < self.deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let before = committed(self.home, i64::MAX)?;
        let dir = self.options.scratch.join(format!("backup-{}", self.store));
        let (backed_up, took) = time(|| self.home.backup(&dir));
        backed_up?;
        Ok(Backup { dir, before, took })
    }

    /// The backup restored into a fresh home, checked, and holding what was committed before
    /// it began.
    fn restored(&self, backup: Backup) -> Result<Row> {
        let home = Home::at(Location::home(backup.dir.with_extension("restored")), None);
        let restored = home.restore(&backup.dir)?;
        anyhow::ensure!(
            restored.problems.is_empty(),
            "the restored backup: {:?}",
            restored.problems
        );
        let (items, boxes, last) = backup.before;
        let (got_items, got_boxes, _) = committed(&home, last)?;
        // At least: an annotation of an item counted can commit between the count and the
        // backup's start, and on PostgreSQL a smaller id after a larger one.
        anyhow::ensure!(
            got_items >= items && got_boxes >= boxes,
            "committed before the backup: {items} items, {boxes} annotations; restored \
             {got_items}, {got_boxes}"
        );
        Ok(stats(
            "clients",
            &format!("{}: backup halfway through, under the load", self.store),
            vec![backup.took],
            format!(
                "restored and checked: the {items} items and {boxes} annotations committed \
                 before it began, all there"
            ),
        ))
    }

    /// `prelabel serve` on the home, as a process of its own.
    fn serve(&self) -> Result<Serving> {
        let location = self.home.location();
        let addr = self.base.trim_start_matches("http://");
        std::process::Command::new(std::env::current_exe().context("this binary")?)
            .args(["serve", "--addr", addr, "--token", TOKEN])
            .env("PRELABEL_HOME", self.home.dir())
            .env(
                "PRELABEL_STORE",
                match &location.database {
                    Database::Sqlite => "sqlite".to_string(),
                    Database::Postgres(url) => url.clone(),
                },
            )
            .env("PRELABEL_BLOBS", location.blobs_at().describe())
            .env("PRELABEL_CACHE_DIR", self.options.scratch.join("cache"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .map(Serving)
            .context("`prelabel serve` starts")
    }

    fn client(&self, timeout: Duration) -> Result<Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {TOKEN}").parse()?,
        );
        // reqwest is built without a default TLS provider (the host's choice): ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .build()?)
    }

    fn wait_ready(&self) -> Result<()> {
        let client = self.client(Duration::from_secs(2))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let answer = client.get(format!("{}/api/status", self.base)).send();
            if answer.is_ok_and(|a| a.status().is_success()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(anyhow!("`prelabel serve` did not answer within a minute"))
    }

    /// Runs `step` until the deadline, each round taking at least `pace`; client `k` of
    /// `of` starts `k/of` of a pace late, so that clients of a kind do not move in step.
    fn paced(&self, (k, of): (usize, usize), pace: Duration, mut step: impl FnMut(usize)) {
        std::thread::sleep(pace * k as u32 / of as u32);
        let mut n = 0;
        while Instant::now() < self.deadline {
            let started = Instant::now();
            step(n);
            n += 1;
            let rest = pace.saturating_sub(started.elapsed());
            std::thread::sleep(rest.min(self.deadline.saturating_duration_since(Instant::now())));
        }
    }

    fn uploader(&self, k: usize) {
        let Ok(client) = self.client(Duration::from_secs(30)) else {
            return;
        };
        self.paced((k, 8), UPLOAD_PACE, |n| {
            let n = n * 8 + k;
            let part = multipart::Part::bytes(unique_photo(self.photos, n))
                .file_name(format!("photo-{n}.jpg"));
            let url = format!("{}/api/datasets/load/items", self.base);
            let answer = self.seen.record(
                "upload a 1-2 MB photo",
                || {
                    let form = multipart::Form::new().part("file", part);
                    client.post(&url).multipart(form).send()
                },
                |r| r.json::<serde_json::Value>(),
            );
            if let Some(id) = answer.as_ref().and_then(|a| a[0]["item"]["id"].as_i64()) {
                lock(&self.seen.uploaded).push((id, Instant::now()));
            }
        });
    }

    /// A person reviewing: an item's annotations, then a decision on its first.
    fn reviewer(&self, k: usize) {
        let Ok(client) = self.client(Duration::from_secs(30)) else {
            return;
        };
        self.paced((k, 4), REVIEW_PACE, |n| {
            let Some(item) = self.seen.older_item(Duration::from_secs(3), n * 4 + k) else {
                return;
            };
            let url = format!("{}/api/items/{item}/annotations", self.base);
            let boxes = self.seen.record(
                "an item's annotations",
                || client.get(&url).send(),
                |r| r.json::<Vec<serde_json::Value>>(),
            );
            // The first box, decided (or decided again: a person changes their mind).
            let first = boxes.unwrap_or_default().into_iter().next();
            if let Some(id) = first.and_then(|b| b["id"].as_i64()) {
                let url = format!("{}/api/annotations/{id}", self.base);
                let state = if n % 3 == 0 { "rejected" } else { "accepted" };
                self.seen.record(
                    "review an annotation (PATCH)",
                    || {
                        let body = serde_json::json!({"state": state});
                        client.patch(&url).json(&body).send()
                    },
                    |r| r.bytes(),
                );
            }
        });
    }

    /// Someone browsing: the dataset's list, the newest twelve thumbnails, one item's page
    /// (its record and its photo).
    fn lister(&self, k: usize) {
        let Ok(client) = self.client(Duration::from_secs(30)) else {
            return;
        };
        self.paced((k, 2), LIST_PACE, |n| {
            // The dataset exists from its first upload on (before, a listing is a 404).
            if lock(&self.seen.uploaded).is_empty() {
                return;
            }
            let url = format!("{}/api/items?dataset=load", self.base);
            let items = self.seen.record(
                "list the dataset's items",
                || client.get(&url).send(),
                |r| r.json::<Vec<serde_json::Value>>(),
            );
            let ids: Vec<i64> = items
                .unwrap_or_default()
                .iter()
                .rev()
                .take(12)
                .filter_map(|i| i["id"].as_i64())
                .collect();
            for id in &ids {
                let url = format!("{}/api/items/{id}/thumbnail", self.base);
                self.seen
                    .record("a thumbnail", || client.get(&url).send(), |r| r.bytes());
            }
            if let Some(id) = ids.get((n * 2 + k) % ids.len().max(1)) {
                let url = format!("{}/api/items/{id}", self.base);
                self.seen
                    .record("an item's page", || client.get(&url).send(), |r| r.bytes());
                let url = format!("{url}/data");
                self.seen
                    .record("an item's photo", || client.get(&url).send(), |r| r.bytes());
            }
        });
    }

    /// Someone with the UI open: the event stream until the deadline; after two quiet
    /// seconds (a read's timeout) it connects again from the last event, as a browser does.
    fn subscriber(&self) {
        let Ok(client) = self.client(Duration::from_secs(2)) else {
            return;
        };
        let mut last: Option<i64> = None;
        while Instant::now() < self.deadline {
            let url = match last {
                Some(id) => format!("{}/api/events?after={id}", self.base),
                None => format!("{}/api/events", self.base),
            };
            let stream = self
                .seen
                .record("open the event stream", || client.get(&url).send(), Ok);
            let Some(stream) = stream else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else {
                    break;
                };
                if let Some(id) = line.strip_prefix("id:") {
                    last = id.trim().parse().ok().or(last);
                } else if line.starts_with("event:") {
                    self.seen.events.fetch_add(1, Ordering::Relaxed);
                }
                if Instant::now() >= self.deadline {
                    break;
                }
            }
        }
    }

    /// Waits for the queue to empty, checks every upload stored and annotated once, and
    /// makes the rows.
    fn drain_and_check(&self) -> Result<Vec<Row>> {
        let stopped = Instant::now();
        loop {
            let waiting: i64 = self
                .home
                .status()?
                .queues
                .iter()
                .map(|q| q.queued + q.running)
                .sum();
            if waiting == 0 {
                break;
            }
            anyhow::ensure!(
                stopped.elapsed() < DRAIN,
                "{waiting} executions still waiting {DRAIN:?} after the clients stopped"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let drained = stopped.elapsed();
        let uploaded: Vec<i64> = lock(&self.seen.uploaded)
            .iter()
            .map(|(id, _)| *id)
            .collect();
        let items = self.home.items(Some("load"))?;
        anyhow::ensure!(
            items.len() == uploaded.len(),
            "{} uploads answered, {} items stored",
            uploaded.len(),
            items.len()
        );
        let mut runs: BTreeMap<i64, Vec<execution::Status>> = BTreeMap::new();
        for e in self.home.executions(None)? {
            runs.entry(e.item_id).or_default().push(e.status);
        }
        let once = uploaded
            .iter()
            .filter(|id| {
                runs.get(id)
                    .is_some_and(|r| *r == [execution::Status::Success])
            })
            .count();
        anyhow::ensure!(
            once == uploaded.len(),
            "{once} of {} uploads annotated exactly once",
            uploaded.len()
        );
        Ok(self.rows(uploaded.len(), drained))
    }

    fn rows(&self, uploads: usize, drained: Duration) -> Vec<Row> {
        let errors = lock(&self.seen.errors);
        let mut rows: Vec<Row> = std::mem::take(&mut *lock(&self.seen.times))
            .into_iter()
            .map(|(route, mut samples)| {
                samples.sort();
                let slowest = samples.last().copied().unwrap_or_default();
                let p99 = quantile(&samples, 0.99);
                let failed: usize = errors
                    .iter()
                    .filter(|(kind, _)| kind.starts_with(route))
                    .map(|(_, n)| n)
                    .sum();
                let note = format!(
                    "p99 {:.0} ms, slowest {:.0} ms, {failed} errors",
                    p99.as_secs_f64() * 1e3,
                    slowest.as_secs_f64() * 1e3
                );
                stats(
                    "clients",
                    &format!("{}: {route}", self.store),
                    samples,
                    note,
                )
            })
            .collect();
        let errors = match errors.is_empty() {
            true => "no errors".to_string(),
            false => format!("errors: {errors:?}"),
        };
        rows.push(Row {
            group: "clients",
            name: format!("{}: 16 clients for {:?}", self.store, self.options.seconds),
            median: drained,
            p95: drained,
            runs: uploads,
            note: format!(
                "{uploads} uploads of {:.1} MB on average, each stored and annotated once (the \
                 queue drained {:.1} s after the clients stopped); {} events streamed; {errors}",
                self.photos.iter().map(Vec::len).sum::<usize>() as f64
                    / self.photos.len().max(1) as f64
                    / 1e6,
                drained.as_secs_f64(),
                self.seen.events.load(Ordering::Relaxed)
            ),
        });
        rows
    }
}
