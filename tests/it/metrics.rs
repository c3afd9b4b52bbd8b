//! `/metrics` and `prelabel status` (issue 33): after a real server annotated photos, the
//! scrape holds the store's numbers (queue, executions by status), the stages the scheduler
//! timed, its instance and its memory, and the requests by route; it needs a login, and a
//! path a client makes up never becomes a label.

use reqwest::StatusCode;

use crate::support::Home;
use crate::support::server::{Server, photo};

/// The value of the series `name{labels}` in a scrape; panics naming it when absent.
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{series}` in:\n{scrape}"))
}

#[test]
fn metrics_report_the_store_the_stages_the_instances_and_the_requests() {
    let home = Home::new();
    home.seed_flow(&[]);
    let server = Server::start(&home, &["--token", "boot"]);
    for name in ["skimage_astronaut.png", "matplotlib_grace_hopper.jpg"] {
        let answer = server.upload("photos", &[(name, photo(name))]);
        assert_eq!(answer.status(), StatusCode::OK);
    }
    server.wait_executions("?status=success", |done| done.len() == 2);

    let anonymous = server
        .client
        .get(server.url("/metrics"))
        .send()
        .expect("a scrape");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let made_up = "/no-such-route-7f3a";
    assert_eq!(server.get(made_up).status(), StatusCode::NOT_FOUND);
    let answer = server.get("/metrics");
    assert_eq!(answer.status(), StatusCode::OK);
    let kind = answer.headers()["content-type"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let scrape = answer.text().expect("a body");
    assert!(scrape.trim_end().ends_with("# EOF"), "{scrape}");

    let service = r#"service="face-detector""#;
    assert_eq!(
        value(&scrape, &format!("prelabel_queue_depth{{{service}}}")),
        0.0
    );
    assert_eq!(
        value(
            &scrape,
            &format!("prelabel_running_executions{{{service}}}")
        ),
        0.0
    );
    assert_eq!(
        value(
            &scrape,
            &format!("prelabel_service_concurrency{{{service}}}")
        ),
        1.0
    );
    assert_eq!(
        value(&scrape, r#"prelabel_executions{status="success"}"#),
        2.0
    );
    assert_eq!(value(&scrape, r#"prelabel_workers{state="running"}"#), 1.0);
    for (stage, count) in [
        ("queue_wait", 2.0),
        ("read", 2.0),
        ("init", 1.0),
        ("call", 2.0),
        ("total", 2.0),
    ] {
        let series =
            format!(r#"prelabel_execution_stage_seconds_count{{{service},stage="{stage}"}}"#);
        assert_eq!(value(&scrape, &series), count, "{series}");
    }
    let calls = value(
        &scrape,
        &format!(r#"prelabel_execution_stage_seconds_sum{{{service},stage="call"}}"#),
    );
    assert!(calls > 0.0 && calls < 60.0, "{calls}");
    assert_eq!(
        value(&scrape, &format!("prelabel_instances{{{service}}}")),
        1.0
    );
    let memory = value(
        &scrape,
        &format!("prelabel_instance_memory_bytes{{{service}}}"),
    );
    assert!(memory > 1e6, "the instance's memory is charged: {memory}");
    let uploads = r#"prelabel_api_requests_total{method="POST",route="/api/datasets/{dataset}/items",status="200"}"#;
    assert_eq!(value(&scrape, uploads), 2.0);
    assert_eq!(
        value(
            &scrape,
            r#"prelabel_api_requests_total{method="GET",route="/metrics",status="401"}"#
        ),
        1.0
    );
    assert!(
        value(
            &scrape,
            r#"prelabel_api_requests_total{method="GET",route="unmatched",status="404"}"#
        ) >= 1.0
    );
    assert!(!scrape.contains(made_up), "a made-up path is no label");

    // The same store numbers in `prelabel status`.
    let status = home.ok(&["status"]);
    assert!(status.contains("executions: success 2"), "{status}");
    let json = home.json(&["status", "--json"]);
    let queue = &json["queues"][0];
    assert_eq!(queue["recent"]["finished"], 2, "{json}");
    assert!(
        queue["recent"]["run_p50_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0),
        "{json}"
    );
}
