//! Accounts through the binary (issue 32, first step): a password only from standard input or
//! an environment variable, never from the command line; neither a password nor a token's
//! secret anywhere in the home in plain text; each mistake refused naming it.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use crate::support::{Home, PASSWORD, command, stderr};

/// `prelabel ARGS` with `input` on standard input.
fn with_stdin(home: &Home, args: &[&str], input: &str) -> Output {
    let mut child = command(home.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prelabel starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write the password");
    child.wait_with_output().expect("prelabel ends")
}

/// Whether `needle` is in any file under `dir` (the database, its journal, the blobs).
fn anywhere(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir)
        .expect("a folder")
        .flatten()
        .any(|e| {
            let path = e.path();
            if path.is_dir() {
                anywhere(&path, needle)
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle)
            }
        })
}

#[test]
fn accounts_keep_no_password_or_secret_in_plain_text_and_refuse_mistakes() {
    let home = Home::new();
    let ann_password = "correct horse battery";
    let out = with_stdin(
        &home,
        &["user", "add", "ann", "--role", "admin"],
        &format!("{ann_password}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ann: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (ann["name"].as_str(), ann["role"].as_str()),
        (Some("ann"), Some("admin"))
    );
    assert!(ann.get("password_hash").is_none(), "{ann}");
    let bo_password = "staple of the battery";
    let out = command(home.path())
        .args([
            "user",
            "add",
            "bo",
            "--role",
            "reviewer",
            "--password-env",
            "BO_PASSWORD",
        ])
        .env("BO_PASSWORD", bo_password)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));

    // Mistakes, each named: a taken name, a short password, none at all, an unknown role, and
    // a password on the command line (there is no such option).
    let again = with_stdin(
        &home,
        &["user", "add", "ann", "--role", "viewer"],
        "another password\n",
    );
    assert!(
        stderr(&again).contains("a user named `ann` exists already"),
        "{}",
        stderr(&again)
    );
    let short = with_stdin(&home, &["user", "add", "cy", "--role", "viewer"], "short\n");
    assert!(
        stderr(&short).contains("8 to 1024 characters"),
        "{}",
        stderr(&short)
    );
    let none = with_stdin(&home, &["user", "add", "cy", "--role", "viewer"], "");
    assert!(stderr(&none).contains("no password"), "{}", stderr(&none));
    let role = with_stdin(
        &home,
        &["user", "add", "cy", "--role", "root"],
        "long enough password\n",
    );
    assert!(stderr(&role).contains("root"), "{}", stderr(&role));
    let argv = home.run(&[
        "user",
        "add",
        "cy",
        "--role",
        "viewer",
        "--password",
        "on the line",
    ]);
    assert!(
        !argv.status.success() && stderr(&argv).contains("--password"),
        "{}",
        stderr(&argv)
    );
    let bad_name = with_stdin(
        &home,
        &["user", "add", "Cy!", "--role", "viewer"],
        "long enough password\n",
    );
    assert!(
        stderr(&bad_name).contains("is not a name"),
        "{}",
        stderr(&bad_name)
    );

    // Tokens: the secret once, then only names and times.
    let made = home.json(&["user", "token", "bo", "--name", "laptop"]);
    let secret = made["secret"].as_str().expect("a secret").to_string();
    assert!(secret.starts_with("plt_") && secret.len() == 68, "{secret}");
    let listed = home.json(&["user", "tokens", "bo"]);
    assert_eq!(listed[0]["name"], "laptop");
    assert!(!listed.to_string().contains(&secret[4..]));
    let twice = home.fails(&["user", "token", "bo", "--name", "laptop"]);
    assert!(
        twice.contains("has a token named `laptop` already"),
        "{twice}"
    );

    // Grants, a new password, disabling, and the list.
    assert_eq!(
        home.json(&["user", "grant", "bo", "photos"])["grants"],
        serde_json::json!(["photos"])
    );
    let out = with_stdin(&home, &["user", "passwd", "bo"], "a newer password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(home.json(&["user", "disable", "bo"])["disabled"], true);
    let users = home.json(&["user", "list"]);
    let names: Vec<&str> = users
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["ann", "bo"]);

    // Nothing of the passwords or the secret in the home, in any file.
    for needle in [ann_password, bo_password, "a newer password", &secret[4..]] {
        assert!(
            !anywhere(home.path(), needle.as_bytes()),
            "`{needle}` is stored in plain text"
        );
    }
    // Deleted with its tokens.
    home.ok(&["user", "delete", "bo"]);
    let gone = home.fails(&["user", "tokens", "bo"]);
    assert!(gone.contains("no user named `bo`"), "{gone}");
    assert_eq!(home.count("SELECT COUNT(*) FROM user_tokens"), 0);
}

/// A user token over HTTP, beside the bootstrap token: its role decides what it may do
/// (coarsely, by method and route, until grants are enforced per dataset); a disabled account
/// and a revoked token open nothing.
#[test]
fn a_user_token_opens_the_api_as_far_as_its_role_goes() {
    use reqwest::{Method, StatusCode};
    let home = Home::new();
    for (name, role) in [("vi", "viewer"), ("re", "reviewer"), ("ma", "maintainer")] {
        let out = with_stdin(
            &home,
            &["user", "add", name, "--role", role],
            "long enough password\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let secret = |name: &str| {
        let made = home.json(&["user", "token", name, "--name", "t"]);
        made["secret"].as_str().expect("a secret").to_string()
    };
    let (vi, re, ma) = (secret("vi"), secret("re"), secret("ma"));
    let server = crate::support::server::Server::start(&home, &["--token", "boot"]);
    let ask = |token: &str, method: Method, path: &str, body: serde_json::Value| {
        let request = server
            .client
            .request(method, server.url(path))
            .bearer_auth(token);
        request.json(&body).send().expect("a request").status()
    };
    let trigger = serde_json::json!({"name": "t", "service": "nope"});
    assert_eq!(
        ask(&vi, Method::GET, "/api/datasets", serde_json::json!(null)),
        StatusCode::OK
    );
    assert_eq!(
        ask(&vi, Method::POST, "/api/triggers", trigger.clone()),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ask(&re, Method::POST, "/api/triggers", trigger.clone()),
        StatusCode::FORBIDDEN
    );
    // A reviewer may decide (the task does not exist: refused by the handler, not the role).
    let decide = "/api/tasks/none/items/1/complete";
    assert_eq!(
        ask(&re, Method::POST, decide, serde_json::json!({})),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ask(&vi, Method::POST, decide, serde_json::json!({})),
        StatusCode::FORBIDDEN
    );
    // A maintainer reaches the handler (no service `nope`: 404, not 403).
    assert_eq!(
        ask(&ma, Method::POST, "/api/triggers", trigger.clone()),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ask(
            "boot",
            Method::GET,
            "/api/datasets",
            serde_json::json!(null)
        ),
        StatusCode::OK
    );
    assert_eq!(
        ask(
            "plt_nope",
            Method::GET,
            "/api/datasets",
            serde_json::json!(null)
        ),
        StatusCode::UNAUTHORIZED
    );
    home.ok(&["user", "disable", "vi"]);
    assert_eq!(
        ask(&vi, Method::GET, "/api/datasets", serde_json::json!(null)),
        StatusCode::UNAUTHORIZED
    );
    home.ok(&["user", "untoken", "re", "--name", "t"]);
    assert_eq!(
        ask(&re, Method::GET, "/api/datasets", serde_json::json!(null)),
        StatusCode::UNAUTHORIZED
    );
    let used = home.json(&["user", "tokens", "ma"]);
    assert!(used[0]["last_used_at"].is_string(), "{used}");
}

/// The value of cookie `name` in a response's `Set-Cookie` headers, with the whole header.
fn set_cookie(response: &reqwest::blocking::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap_or_default();
            (value.to_string(), v.to_string())
        })
}

/// The UI's ways in: with accounts, loopback is no longer open; a login sets an HttpOnly,
/// SameSite=Strict cookie (Secure behind TLS) kept as a digest only; a change sent with the
/// cookie needs the CSRF value, so a cross-site form post is refused; logout and a new
/// password end the session; a flood of logins is slowed per account and per address.
#[test]
fn logins_set_a_strict_cookie_refuse_cross_site_posts_and_slow_a_flood() {
    use reqwest::StatusCode;
    use serde_json::json;
    let home = Home::new();
    home.account("re", "reviewer");
    let server = crate::support::server::Server::start(&home, &[]);
    let client = &server.client;
    assert_eq!(
        client
            .get(server.url("/api/datasets"))
            .send()
            .expect("GET")
            .status(),
        StatusCode::UNAUTHORIZED,
        "an account exists: the open local mode is over"
    );
    // The page itself loads without a login (it shows the form).
    assert_eq!(
        client.get(server.url("/")).send().expect("GET").status(),
        StatusCode::OK
    );
    let login = |body: serde_json::Value, forwarded: Option<&str>| {
        let mut request = client.post(server.url("/api/login")).json(&body);
        if let Some(proto) = forwarded {
            request = request.header("x-forwarded-proto", proto);
        }
        request.send().expect("login")
    };
    let wrong = login(json!({"name": "re", "password": "not the password"}), None);
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let nobody = login(
        json!({"name": "nobody", "password": "not the password"}),
        None,
    );
    assert_eq!(
        nobody.text().ok(),
        Some(r#"{"error":"wrong name or password"}"#.into())
    );
    // Hostile logins: each refused plainly, none a 500, nothing stored.
    for (body, status) in [
        (
            json!({"name": "re", "password": "x".repeat(1 << 20)}),
            StatusCode::UNAUTHORIZED,
        ),
        (
            json!({"name": "re' OR '1'='1", "password": "' OR '1'='1"}),
            StatusCode::UNAUTHORIZED,
        ),
        (json!({"token": "plt_0000"}), StatusCode::UNAUTHORIZED),
        (
            json!({"name": "re", "password": PASSWORD, "token": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "re", "password": PASSWORD, "admin": true}),
            StatusCode::BAD_REQUEST,
        ),
        (json!(["re", PASSWORD]), StatusCode::BAD_REQUEST),
    ] {
        let answer = login(body, None);
        assert_eq!(answer.status(), status);
        assert!(set_cookie(&answer, "prelabel_session").is_none());
    }
    let garbage = client
        .get(server.url("/api/me"))
        .header(
            reqwest::header::COOKIE,
            "prelabel_session=pls_; prelabel_session=%00garbage; x=\"y",
        )
        .send()
        .expect("me");
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    let ok = login(json!({"name": "re", "password": PASSWORD}), None);
    assert_eq!(ok.status(), StatusCode::OK);
    let (secret, header) = set_cookie(&ok, "prelabel_session").expect("a session cookie");
    assert!(secret.starts_with("pls_"), "{header}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(part), "{header}");
    }
    assert!(!header.contains("Secure"), "{header}");
    let me: serde_json::Value = ok.json().expect("JSON");
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("re"), Some("reviewer"))
    );
    let csrf = me["csrf"].as_str().expect("a CSRF value").to_string();
    let behind_tls = login(json!({"name": "re", "password": PASSWORD}), Some("https"));
    let (_, tls_header) = set_cookie(&behind_tls, "prelabel_session").expect("a cookie");
    assert!(tls_header.contains("Secure"), "{tls_header}");

    // The cookie alone reads; a change needs the CSRF header too.
    let cookie = format!("prelabel_session={secret}");
    let with_cookie = |method: reqwest::Method, route: &str| {
        client
            .request(method, server.url(route))
            .header(reqwest::header::COOKIE, &cookie)
    };
    let me = with_cookie(reqwest::Method::GET, "/api/me")
        .send()
        .expect("me");
    assert_eq!(me.status(), StatusCode::OK);
    let decide = "/api/tasks/none/items/1/complete";
    let forged = with_cookie(reqwest::Method::POST, decide)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body("by=mallory")
        .send()
        .expect("a cross-site form post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().expect("body").contains("x-csrf-token"));
    let wrong_csrf = with_cookie(reqwest::Method::POST, decide)
        .header("x-csrf-token", "0".repeat(64))
        .json(&json!({}))
        .send()
        .expect("POST");
    assert_eq!(wrong_csrf.status(), StatusCode::FORBIDDEN);
    let honest = with_cookie(reqwest::Method::POST, decide)
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .expect("POST");
    assert_eq!(
        honest.status(),
        StatusCode::NOT_FOUND,
        "the handler answers: no such item"
    );
    // The session's secret is nowhere in the home; logout ends it.
    assert!(!anywhere(home.path(), &secret.as_bytes()[4..]));
    let out = with_cookie(reqwest::Method::POST, "/api/logout")
        .header("x-csrf-token", &csrf)
        .send()
        .expect("logout");
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let (cleared, _) = set_cookie(&out, "prelabel_session").expect("cleared");
    assert_eq!(cleared, "");
    let after = with_cookie(reqwest::Method::GET, "/api/me")
        .send()
        .expect("me");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    // A new password ends the logins made with the old one.
    let again = login(json!({"name": "re", "password": PASSWORD}), None);
    let (second, _) = set_cookie(&again, "prelabel_session").expect("a cookie");
    let out = with_stdin(&home, &["user", "passwd", "re"], "an even newer password\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let stale = client
        .get(server.url("/api/me"))
        .header(
            reqwest::header::COOKIE,
            format!("prelabel_session={second}"),
        )
        .send()
        .expect("me");
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);

    // A flood: the account is slowed after a few tries, the right password then too; other
    // names from the same address soon after.
    let statuses: Vec<StatusCode> = (0..6)
        .map(|_| login(json!({"name": "re", "password": "guess"}), None).status())
        .collect();
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let slowed = login(
        json!({"name": "re", "password": "an even newer password"}),
        None,
    );
    assert_eq!(slowed.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        slowed
            .text()
            .expect("body")
            .contains("too many login attempts")
    );
    let from_here = (0..20)
        .map(|i| login(json!({"name": format!("n{i}"), "password": "guess"}), None).status())
        .position(|s| s == StatusCode::TOO_MANY_REQUESTS);
    assert!(
        from_here.is_some(),
        "twenty names from one address were never slowed"
    );
}
