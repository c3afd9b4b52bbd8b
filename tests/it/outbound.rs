//! Outbound hosts as a package declares them and a deployer narrows them: checked when
//! pushed, narrowed (never widened) by `service deploy --allow-host`, shown by `service show`,
//! carried by later deploys only where the new revision still allows them.

use serde_json::json;

use crate::support::*;

/// The face detector's package declaring two hosts it may call.
fn calling_package(home: &Home, hosts: &str) -> std::path::PathBuf {
    let dir = home.path().join("pkg");
    face_detector_package(&dir, |manifest| {
        manifest.replacen(
            "[module]\n",
            &format!("[module]\nallowed_outbound_hosts = [{hosts}]\n"),
            1,
        )
    });
    dir
}

fn hosts(home: &Home, service: &str) -> serde_json::Value {
    home.json(&["service", "show", service])["allowed_outbound_hosts"].clone()
}

#[test]
fn a_deploy_narrows_the_packages_hosts_and_never_widens_them() {
    let home = Home::new();
    let dir = calling_package(
        &home,
        r#""https://api.example.com", "http://127.0.0.1:9000""#,
    );
    home.ok(&["package", "push", path(&dir)]);

    // The package's list, unless the deployer narrows it.
    home.ok(&["service", "deploy", "face-detector", "--name", "all"]);
    assert_eq!(
        hosts(&home, "all"),
        json!(["http://127.0.0.1:9000", "https://api.example.com"])
    );
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--allow-host",
        "https://api.example.com/",
    ]);
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));
    // Another deploy keeps the narrowed list.
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--concurrency",
        "2",
    ]);
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));

    // Wider: refused, and the service is as it was.
    let error = home.fails(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--allow-host",
        "https://evil.example.com",
    ]);
    assert!(
        error.contains("`https://evil.example.com` is not among the package's allowed_outbound_hosts (http://127.0.0.1:9000, https://api.example.com): a deploy may narrow the list, never widen it"),
        "{error}"
    );
    let error = home.fails(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--allow-host",
        "api.example.com",
    ]);
    assert!(
        error.contains("--allow-host `api.example.com` is not a URL"),
        "{error}"
    );
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));

    // A package that declares none gives none, and none can be given.
    home.ok(&["package", "push", path(&face_detector_dir())]);
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "offline",
        "--revision",
        "2",
    ]);
    assert_eq!(hosts(&home, "offline"), json!([]));
    let error = home.fails(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "offline",
        "--revision",
        "2",
        "--allow-host",
        "https://api.example.com",
    ]);
    assert!(error.contains("allowed_outbound_hosts (none)"), "{error}");
    // A narrowed service moved to that revision keeps nothing the revision does not allow.
    home.ok(&[
        "service",
        "deploy",
        "face-detector",
        "--name",
        "one",
        "--revision",
        "2",
    ]);
    assert_eq!(hosts(&home, "one"), json!([]));
    home.ok(&["service", "rollback", "one"]);
    assert_eq!(hosts(&home, "one"), json!(["https://api.example.com"]));

    // Over HTTP, as a deploy's body.
    let server = crate::support::server::Server::start(&home, &[]);
    let response = server.send(
        reqwest::Method::PUT,
        "/api/services/api",
        Some(json!({"package": "face-detector", "revision": 1, "allow_host": ["http://127.0.0.1:9000"]})),
    );
    let deployed = server.json(response, reqwest::StatusCode::OK);
    assert_eq!(
        deployed["service"]["allowed_outbound_hosts"],
        json!(["http://127.0.0.1:9000"])
    );
    let response = server.send(
        reqwest::Method::PUT,
        "/api/services/api",
        Some(json!({"package": "face-detector", "revision": 1, "allow_host": ["http://127.0.0.1:9001"]})),
    );
    let error = crate::support::server::error_of(response, reqwest::StatusCode::BAD_REQUEST);
    assert!(error.contains("never widen it"), "{error}");
}

#[test]
fn a_package_whose_hosts_are_not_origins_is_refused_when_pushed() {
    let home = Home::new();
    let dir = calling_package(&home, r#""https://api.example.com/v1/detect""#);
    let error = home.fails(&["package", "push", path(&dir)]);
    assert!(
        error.contains("`module.allowed_outbound_hosts`: `https://api.example.com/v1/detect`: an allowed host is a scheme, a host and a port"),
        "{error}"
    );
}
