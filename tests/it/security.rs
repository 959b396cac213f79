//! Security, against the real binary: with `AUTH_TOKEN` set, every `POST`
//! (and every `/api/v1/scan/*` path) without the token or with a wrong one
//! is `401` with the error body; neither token shows up in any log line,
//! even at `RUST_LOG=trace`; and the effective default listen address is
//! 127.0.0.1:8080. (Bind mounts outside the allowlist, through `..` or a
//! symlink, are refused in `crates/volscan-docker/tests/docker.rs`;
//! `cargo deny check` runs in `cargo xtask ci`.)

use serde_json::Value;
use volscan_testing::TempDir;

use crate::support::{ServerProcess, TOKEN, raw_request, run_server, text};

const WRONG: &str = "Bearer not-the-token-7c2e";

#[test]
fn every_write_needs_the_token_and_no_token_is_ever_logged() {
    let dir = TempDir::new("it-security");
    let url = dir.sqlite_url();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", "."),
        ("RATE_LIMIT_RPM", "1000000"),
        ("RUST_LOG", "trace"),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    let (_, _, document) = server.call("GET", "/api/v1/openapi.json");
    let id = "0b6f5e4e-8c1a-4a57-9d39-3f3c2f0f9a11";
    let concrete = |path: &str| {
        path.replace("{name}", "somevolume").replace("{scan_id}", id).replace("{batch_id}", id)
    };
    let mut guarded = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            if method == "post" || path.starts_with("/scan/") {
                guarded.push((method.to_ascii_uppercase(), format!("/api/v1{}", concrete(path))));
            }
        }
    }
    assert!(guarded.len() >= 4, "{guarded:?}");
    for (method, path) in &guarded {
        for header in [None, Some(WRONG), Some("Basic dm9sc2Nhbjp4"), Some("Bearer")] {
            let answer = send(&server, method, path, header);
            let (status, head, body) = answer;
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (401, Some("unauthorized")),
                "{method} {path} with {header:?}: {body}"
            );
            assert!(head.to_ascii_lowercase().contains("www-authenticate: bearer"), "{head}");
        }
        // With the token, the same request is past the guard (whatever it answers then).
        let (status, _, body) = server.call(method, path);
        assert_ne!(status, 401, "{method} {path}: {body}");
    }
    let log = server.log_text();
    assert!(log.lines().count() > 50, "the trace log is suspiciously short:\n{log}");
    for secret in [TOKEN, WRONG.trim_start_matches("Bearer ")] {
        let leaks: Vec<&str> = log.lines().filter(|line| line.contains(secret)).collect();
        assert!(leaks.is_empty(), "a token was logged:\n{}", leaks.join("\n"));
    }
}

fn send(
    server: &ServerProcess,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, String, Value) {
    let auth = auth.map(|value| format!("\r\nAuthorization: {value}")).unwrap_or_default();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: x{auth}\r\nContent-Length: 0");
    raw_request(server.port, &head, b"").expect("an answer")
}

#[test]
fn the_default_listen_address_is_loopback() {
    let output = run_server(&["check-config"], &[]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.lines().any(|line| line == "VOLSCAN_BIND=127.0.0.1:8080"), "{stdout}");
}

/// The dashboard's settings wired through the real binary: `AUTH_READ`
/// closes every read but health to requests without the token (pages go to
/// the login), and `VOLSCAN_DASHBOARD=false` leaves only the API.
#[test]
fn auth_read_and_the_dashboard_switch_reach_the_real_server() {
    let dir = TempDir::new("it-security-read");
    let url = dir.sqlite_url();
    let base =
        [("DATABASE_URL", url.as_str()), ("SCAN_ENABLED", "false"), ("SCAN_SKIP_PATTERN", ".")];
    let mut vars = base.to_vec();
    vars.push(("AUTH_READ", "true"));
    let server = ServerProcess::start(&vars, dir.path());
    let answer = |path: &str, auth: bool| server.request("GET", path, auth, None).unwrap();
    for path in ["/api/v1/volumes", "/api/v1/summary", "/metrics", "/api/v1/scheduler/status"] {
        assert_eq!(answer(path, false).0, 401, "{path} without the token");
        assert_eq!(answer(path, true).0, 200, "{path} with the token");
    }
    assert_eq!(answer("/api/v1/health", false).0, 200, "health stays open");
    let (status, head, _) = answer("/", false);
    assert_eq!(status, 303, "{head}");
    assert!(head.to_ascii_lowercase().contains("location: /login?next=/"), "{head}");
    drop(server);

    let mut vars = base.to_vec();
    vars.push(("VOLSCAN_DASHBOARD", "false"));
    let server = ServerProcess::start(&vars, dir.path());
    let (status, _, body) = server.request("GET", "/", false, None).unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    assert_eq!(server.request("GET", "/api/v1/volumes", false, None).unwrap().0, 200);
    let (status, head, _) = server.request("GET", "/scans", false, None).unwrap();
    assert_eq!(status, 404, "{head}");
}
