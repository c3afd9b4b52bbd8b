//! Elastic instances (issue 35): a service's concurrency is its most instances; a burst makes
//! them, and each is given back once idle for the service's `--idle`, except the first
//! `--min-instances`. Read from outside, as an operator would: `/metrics` and the server's RSS.

use std::time::{Duration, Instant};

use crate::support::server::*;
use crate::support::*;

/// The sum of a scrape's series that start with `series` (a family: `prelabel_instances{`,
/// or one series).
fn scraped(server: &Server, series: &str) -> f64 {
    let scrape = server
        .with_token(server.client.get(server.url("/metrics")))
        .send()
        .expect("scrape")
        .text()
        .expect("text");
    scrape
        .lines()
        .filter(|l| l.starts_with(series) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `prelabel_instances` of a service in a scrape.
fn instances(server: &Server, service: &str) -> f64 {
    scraped(
        server,
        &format!("prelabel_instances{{service=\"{service}\"}} "),
    )
}

/// `instances` of a service as `prelabel status --json` reads it from the store (what the
/// workers' heartbeats reported), from another process.
fn status_instances(home: &Home, service: &str) -> u64 {
    let status = home.json(&["status", "--json"]);
    status["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["service"] == service)
        .and_then(|q| q["instances"].as_u64())
        .unwrap_or_else(|| panic!("no {service} in {status:#}"))
}

/// Reads `read` until `want` holds of it, for at most `secs`; the last value read.
fn poll<T>(secs: u64, read: impl Fn() -> T, want: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let seen = read();
        if want(&seen) || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/metrics`' instances of a service, polled until `want` holds.
fn until(server: &Server, service: &str, secs: u64, want: impl Fn(f64) -> bool) -> f64 {
    poll(secs, || instances(server, service), |n| want(*n))
}

/// `status`'s instances of a service, polled until `want` holds.
fn status_until(home: &Home, service: &str, secs: u64, want: impl Fn(u64) -> bool) -> u64 {
    poll(secs, || status_instances(home, service), |n| want(*n))
}

#[test]
fn a_burst_scales_a_service_up_to_its_most_and_idle_instances_are_given_back() {
    let home = Home::new();
    home.seed_flow(&[]);
    // At most 4, none kept, given back after 3 s idle (heartbeats come every second).
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "face-detector",
        "--max-instances",
        "4",
        "--min-instances",
        "0",
        "--idle",
        "3",
    ]);
    let err = home.fails(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "face-detector",
        "--max-instances",
        "2",
        "--min-instances",
        "3",
    ]);
    assert!(
        err.contains("--min-instances must be at most the service's concurrency"),
        "{err}"
    );
    // A heartbeat a second, so that `status` follows closely.
    let server = Server::start(&home, &["--token", "boot", "--lease", "3"]);
    assert_eq!(instances(&server, "face-detector"), 0.0, "none before work");
    // The idle figure: the component compiled and loaded, one execution run, its instance
    // given back.
    let first = photo("skimage_camera.png");
    assert!(
        server
            .upload("burst", &[("first.png", first)])
            .status()
            .is_success()
    );
    assert_eq!(
        until(&server, "face-detector", 60, |n| n == 1.0),
        1.0,
        "made for work"
    );
    assert_eq!(
        until(&server, "face-detector", 20, |n| n == 0.0),
        0.0,
        "given back"
    );
    let idle_rss = server.rss_mb();

    // A burst: sixteen photos at once.
    let files: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| {
            let name = ["skimage_astronaut.png", "mosaic_2x2.png"][i % 2];
            (format!("{i}-{name}"), photo(name))
        })
        .collect();
    let started = Instant::now();
    for (name, bytes) in &files {
        let response = server.upload("burst", &[(name, bytes.clone())]);
        assert!(response.status().is_success(), "{name}");
    }
    let peak = until(&server, "face-detector", 60, |n| n >= 4.0);
    assert_eq!(peak, 4.0, "scaled up to its most");
    let up = started.elapsed();
    let busy_rss = server.rss_mb();
    // `status` (any process, any machine) sees them through the worker's heartbeat.
    let reported = status_until(&home, "face-detector", 10, |n| n == 4);
    server.wait_executions("?limit=100", |all| {
        all.len() == 17 && all.iter().all(|e| e["status"] == "success")
    });
    // Idle: each instance is given back a second after its last execution.
    let down = until(&server, "face-detector", 20, |n| n == 0.0);
    assert_eq!(down, 0.0, "back to none after the idle time");
    let after_rss = server.rss_mb();
    assert_eq!(reported, 4, "status saw the four");
    assert_eq!(
        status_until(&home, "face-detector", 10, |n| n == 0),
        0,
        "and none after"
    );
    eprintln!(
        "scaled to 4 in {:.1} s; RSS idle {idle_rss:.0} MiB, with 4 instances {busy_rss:.0} MiB, \
         after they were given back {after_rss:.0} MiB",
        up.as_secs_f64()
    );
    // Most of what the instances held is the host's again.
    assert!(
        after_rss < idle_rss + (busy_rss - idle_rss) / 2.0,
        "RSS idle {idle_rss:.0} MiB, busy {busy_rss:.0}, after {after_rss:.0}"
    );
    // A cold start is counted in the execution that paid it, and in no other: the first
    // photo's, then one per instance the burst made.
    let all = server.ok("/api/executions?limit=100")["executions"].clone();
    let all = all.as_array().expect("executions");
    let cold: Vec<&serde_json::Value> =
        all.iter().filter(|e| e["cold_start_ms"].is_u64()).collect();
    assert_eq!(cold.len(), 5, "{all:#?}");
    for e in cold {
        assert!(
            e["cold_start_ms"].as_u64() <= e["duration_ms"].as_u64(),
            "{e:#}"
        );
    }
    // Every item annotated once.
    assert_eq!(home.count("SELECT COUNT(*) FROM executions"), 17);
    assert_eq!(
        home.count("SELECT COUNT(DISTINCT item_id) FROM executions WHERE status = 'success'"),
        17
    );

    // Kept: with one instance kept, the burst's others go and it stays.
    drop(server);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "face-detector",
        "--min-instances",
        "1",
    ]);
    let server = Server::start(&home, &["--token", "boot"]);
    // Made ahead of work: the one kept is there before anything is uploaded.
    assert_eq!(
        until(&server, "face-detector", 60, |n| n == 1.0),
        1.0,
        "made ahead"
    );
    for (name, bytes) in files.iter().take(8) {
        let again = format!("again-{name}");
        assert!(
            server
                .upload("burst", &[(&again, bytes.clone())])
                .status()
                .is_success()
        );
    }
    server.wait_executions("?limit=100", |all| {
        all.len() == 25 && all.iter().all(|e| e["status"] == "success")
    });
    // The burst's others go after their idle time (3 s, counted from each one's last
    // execution: polled, not slept, for a loaded machine ends them a little later)...
    assert_eq!(
        until(&server, "face-detector", 20, |n| n <= 1.0),
        1.0,
        "the burst's others given back"
    );
    // ...and the kept one stays past it.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        instances(&server, "face-detector"),
        1.0,
        "the one kept stays"
    );
    // The instance made ahead took the first of the eight warm: cold starts only for the
    // others the burst made (at most 3 more, the service's four less the kept one).
    let again = server.ok("/api/executions?limit=100")["executions"].clone();
    let again: Vec<&serde_json::Value> = again
        .as_array()
        .expect("executions")
        .iter()
        .filter(|e| e["item"].as_str().is_some_and(|i| i.starts_with("again-")))
        .collect();
    let cold = again.iter().filter(|e| e["cold_start_ms"].is_u64()).count();
    assert!(cold <= 3, "{cold} cold starts: {again:#?}");
}

#[test]
fn services_over_a_small_host_budget_take_turns_and_never_exceed_it() {
    let home = Home::new();
    home.seed_flow(&[]);
    // Two services whose caps together (800 MiB) are more than the host offers (600 MiB): one
    // instance at a time fits. A third whose one instance could never fit.
    for (name, memory) in [
        ("face-detector", "400"),
        ("faces-b", "400"),
        ("too-big", "700"),
    ] {
        home.ok(&[
            "service",
            "deploy",
            "face-detector",
            "--name",
            name,
            "--memory-mb",
            memory,
            "--max-instances",
            "4",
        ]);
    }
    for (trigger, service) in [("faces-b", "faces-b"), ("too-big", "too-big")] {
        home.ok(&[
            "trigger",
            "create",
            trigger,
            "--service",
            service,
            "--filter",
            "metadata.system.mimetype=image/*",
        ]);
    }
    let server = Server::start(&home, &["--token", "boot", "--host-memory", "600"]);
    // Set once the scheduler starts, which may be after the API listens.
    let offered = poll(
        10,
        || scraped(&server, "prelabel_host_memory_bytes"),
        |b| *b > 0.0,
    );
    assert_eq!(offered, 600.0 * 1048576.0);
    let photos = 6;
    for i in 0..photos {
        let name = ["skimage_astronaut.png", "mosaic_2x2.png"][i % 2];
        let response = server.upload("budget", &[(&format!("{i}-{name}"), photo(name))]);
        assert!(response.status().is_success(), "{name}");
    }
    // Watched while they run: never more than one instance, never more than 600 MiB promised.
    let (mut most, mut promised) = (0.0f64, 0.0f64);
    let done = |all: &[serde_json::Value]| {
        all.iter()
            .filter(|e| e["service"] != "too-big" && e["status"] == "success")
            .count()
            == 2 * photos
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let all = loop {
        most = most.max(scraped(&server, "prelabel_instances{"));
        promised = promised.max(scraped(&server, "prelabel_host_memory_promised_bytes"));
        let all = server.ok("/api/executions?limit=100")["executions"]
            .as_array()
            .expect("executions")
            .clone();
        if done(&all) || Instant::now() > deadline {
            break all;
        }
        std::thread::sleep(Duration::from_millis(30));
    };
    assert!(done(&all), "not all annotated: {all:#?}");
    let peak = server.peak_rss_mb();
    eprintln!(
        "most instances at once {most}, most promised {:.0} MiB, peak RSS {peak:.0} MiB",
        promised / 1048576.0
    );
    assert_eq!(most, 1.0, "one instance at a time fits");
    assert!(promised <= 600.0 * 1048576.0, "promised {promised}");
    assert!(peak < 600.0, "the server's peak RSS {peak:.0} MiB");
    // Both progressed: each service finished an execution before the other finished all of
    // its own (they took turns, rather than one waiting for the other's queue to empty).
    let finished = |service: &str| -> Vec<String> {
        let mut at: Vec<String> = all
            .iter()
            .filter(|e| e["service"] == service)
            .filter_map(|e| e["finished_at"].as_str().map(str::to_string))
            .collect();
        at.sort();
        at
    };
    let (a, b) = (finished("face-detector"), finished("faces-b"));
    assert!(a[0] < b[photos - 1] && b[0] < a[photos - 1], "{a:?} {b:?}");
    // The one that cannot fit is left queued, for a host with room, and said why.
    let big = all.iter().filter(|e| e["service"] == "too-big");
    assert!(big.clone().count() == photos && big.clone().all(|e| e["status"] == "queued"));
}

#[test]
fn instance_types_name_an_instances_memory_and_threads_and_a_home_adds_its_own() {
    let home = Home::new();
    home.seed_flow(&[]);
    let settings = |service: &str| home.json(&["service", "show", service]);
    let deploy = |more: &[&'static str]| {
        let mut args = vec!["service", "deploy", "face-detector", "--name", "faces"];
        args.extend_from_slice(more);
        args
    };
    // The seed's wording is ours: its medium instance is `large`.
    home.ok(&deploy(&["--instance-type", "regular-m"]));
    let shown = settings("faces");
    assert_eq!(shown["instance_type"], "large");
    assert_eq!(shown["settings"]["memory_mb"], 4096);
    assert_eq!(shown["settings"]["inference_threads"], 2);
    // A flag beside the type wins; a redeploy without one keeps what it had.
    home.ok(&deploy(&["--instance-type", "small", "--memory-mb", "300"]));
    home.ok(&deploy(&["--timeout", "30"]));
    let shown = settings("faces");
    assert_eq!(shown["instance_type"], "small");
    assert_eq!(shown["settings"]["memory_mb"], 300);
    assert_eq!(shown["settings"]["inference_threads"], 1);
    // Refused, naming why, and nothing changes.
    let err = home.fails(&deploy(&["--instance-type", "gpu-t4-s"]));
    assert!(err.contains("asks for a GPU"), "{err}");
    let err = home.fails(&deploy(&["--instance-type", "huge"]));
    assert!(
        err.contains("no instance type `huge`") && err.contains("highmem"),
        "{err}"
    );
    assert_eq!(settings("faces")["settings"]["memory_mb"], 300);

    // The home's own table.
    let table = home.path().join("instance-types.toml");
    std::fs::write(
        &table,
        "[yolo-big]\nmemory_mb = 6144\ninference_threads = 3\nabout = \"the big YOLO\"\n",
    )
    .expect("writes");
    let listed = home.ok(&["service", "types"]);
    assert!(
        listed.contains("yolo-big") && listed.contains("6144 MiB"),
        "{listed}"
    );
    assert!(
        listed.contains("highmem") && listed.contains("16384 MiB"),
        "{listed}"
    );
    let server = Server::start(&home, &["--token", "boot"]);
    let deployed = server.json(
        server.send(
            reqwest::Method::PUT,
            "/api/services/faces",
            Some(serde_json::json!({"package": "face-detector", "instance_type": "yolo-big"})),
        ),
        reqwest::StatusCode::OK,
    );
    assert_eq!(deployed["service"]["instance_type"], "yolo-big");
    assert_eq!(deployed["service"]["settings"]["memory_mb"], 6144);
    drop(server);
    std::fs::write(&table, "[yolo-big]\nmemory_mb = 6144\ncores = 3\n").expect("writes");
    let err = home.fails(&deploy(&["--instance-type", "yolo-big"]));
    assert!(
        err.contains("instance-types.toml") && err.contains("unknown field `cores`"),
        "{err}"
    );
}
