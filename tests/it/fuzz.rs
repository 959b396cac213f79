//! The API under fire, against the real binary: schemathesis (PyPI) fuzzes
//! every operation of `/api/v1/openapi.json` with every check (no 5xx,
//! status codes, content types and bodies as documented, auth enforced), and
//! explicit hostile requests each get a 4xx with the error body.
//!
//! schemathesis comes from `VOLSCAN_SCHEMATHESIS` or `PATH`; `scripts/test.sh`
//! installs it into a virtualenv. `VOLSCAN_FUZZ_EXAMPLES` sets the examples per
//! operation (default 300: some 3,000 to 5,000 requests, never fewer than 2,000
//! in the runs seen; 1200 gives over
//! 10,000).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use volscan_testing::{PgDatabase, TempDir};

use crate::support::{
    ServerProcess, TOKEN, everything_but, filled_volumes, raw_request, unique_prefix,
};

/// The schemathesis command, or a panic saying how to install it.
fn schemathesis() -> String {
    if let Ok(path) = std::env::var("VOLSCAN_SCHEMATHESIS") {
        return path;
    }
    let found = Command::new("schemathesis").arg("--version").output();
    assert!(
        found.is_ok_and(|output| output.status.success()),
        "schemathesis is not installed: run scripts/test.sh (it installs it into a virtualenv and \
         sets VOLSCAN_SCHEMATHESIS), or `pip install schemathesis`"
    );
    "schemathesis".to_owned()
}

/// A server with two scanned volumes of its own, so that lists and links
/// carry real rows; every other volume on the machine is skipped.
fn populated_server(
    dir: &TempDir,
    url: &str,
) -> (ServerProcess, Vec<volscan_testing::docker::TestVolume>) {
    let prefix = unique_prefix("fuzz");
    let volumes = filled_volumes(&prefix, 2, 30_000);
    let skip = everything_but(&prefix);
    let vars = [
        ("DATABASE_URL", url),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", skip.as_str()),
        ("RATE_LIMIT_RPM", "1000000"),
        ("RUST_LOG", "info"),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    for volume in &volumes {
        let trigger = server.trigger(volume.name());
        let run = server.follow(trigger["status_url"].as_str().unwrap(), Duration::from_secs(60));
        assert_eq!(run["status"], "completed", "{run}");
    }
    (server, volumes)
}

#[test]
fn schemathesis_finds_no_5xx_and_no_answer_off_the_schema_on_sqlite() {
    let dir = TempDir::new("it-fuzz");
    fuzz(&dir, &dir.sqlite_url());
}

#[test]
fn schemathesis_finds_no_5xx_and_no_answer_off_the_schema_on_postgres() {
    let dir = TempDir::new("it-fuzz-pg");
    let database = PgDatabase::create();
    fuzz(&dir, database.url());
}

/// Runs schemathesis against a populated server on `url`.
fn fuzz(dir: &TempDir, url: &str) {
    let (server, _volumes) = populated_server(dir, url);
    let examples = std::env::var("VOLSCAN_FUZZ_EXAMPLES").unwrap_or_else(|_| "300".to_owned());
    let url = format!("http://127.0.0.1:{}/api/v1/openapi.json", server.port);
    let output = Command::new(schemathesis())
        .args(["run", &url, "--checks", "all", "--max-examples", &examples, "--no-color"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--request-timeout", "20", "--generation-database", "none"])
        .current_dir(dir.path())
        .output()
        .expect("failed to run schemathesis");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let summary: Vec<&str> = text.lines().skip_while(|line| !line.contains("SUMMARY")).collect();
    eprintln!("{}", summary.join("\n"));
    assert!(output.status.success(), "schemathesis found failures:\n{text}");
    // "Test cases:\n  2546 generated, 2546 passed"
    let generated: u64 = text
        .lines()
        .find_map(|line| line.trim().split_once(" generated")?.0.trim().parse().ok())
        .unwrap_or_else(|| panic!("no test case count in:\n{text}"));
    assert!(generated >= 2000, "only {generated} generated requests");
    let (code, _, health) = server.call("GET", "/api/v1/health");
    assert_eq!(code, 200, "the server must still be healthy after the fuzzing: {health}");
    assert!(!server.log_text().contains("panicked"), "{}", server.log_text());
}

/// One raw request; when the server answers early (413) and closes, the
/// connection may be reset before the answer is read, so that is retried.
fn raw(port: u16, head: &str, body: &[u8]) -> (u16, String, Value) {
    (0..3)
        .find_map(|_| raw_request(port, head, body))
        .unwrap_or_else(|| panic!("no answer to {}", &head[..head.len().min(80)]))
}

#[test]
fn hostile_requests_get_a_4xx_with_the_error_body() {
    let dir = TempDir::new("it-hostile-api");
    let (server, volumes) = populated_server(&dir, &dir.sqlite_url());
    let auth = format!("Authorization: Bearer {TOKEN}");
    let long = "a".repeat(10_000);
    let cases: Vec<(String, u16, &str)> = vec![
        ("GET /api/v1/volumes/.. HTTP/1.1".into(), 400, "invalid_volume_name"),
        ("GET /api/v1/volumes/%2e%2e HTTP/1.1".into(), 400, "invalid_volume_name"),
        ("GET /api/v1/volumes/%2e%2e/history HTTP/1.1".into(), 400, "invalid_volume_name"),
        ("POST /api/v1/volumes/..%2F..%2Fetc/scan HTTP/1.1".into(), 400, "invalid_volume_name"),
        ("POST /api/v1/volumes/%2F/scan HTTP/1.1".into(), 400, "invalid_volume_name"),
        ("POST /api/v1/volumes/a%00b/scan HTTP/1.1".into(), 400, "invalid_volume_name"),
        (format!("POST /api/v1/volumes/{long}/scan HTTP/1.1"), 400, "invalid_volume_name"),
        (format!("GET /api/v1/volumes/{long} HTTP/1.1"), 400, "invalid_volume_name"),
        ("GET /api/v1/scans?volume=%00 HTTP/1.1".into(), 400, "invalid_volume_name"),
        ("GET /api/v1/volumes/x/../../etc/passwd HTTP/1.1".into(), 404, "not_found"),
        ("GET /api/v1/scans/..%2F HTTP/1.1".into(), 404, "scan_not_found"),
        ("DELETE /api/v1/volumes HTTP/1.1".into(), 405, "method_not_allowed"),
        ("PUT /api/v1/scan/now HTTP/1.1".into(), 405, "method_not_allowed"),
        ("GET /api/v1/volumes/alpha/scan HTTP/1.1".into(), 405, "method_not_allowed"),
        ("PATCH /api/v1/health HTTP/1.1".into(), 405, "method_not_allowed"),
    ];
    for (line, expected, code) in &cases {
        let (status, head, body) = raw(server.port, &format!("{line}\r\nHost: x\r\n{auth}"), b"");
        let shown = &line[..line.len().min(80)];
        assert_eq!(status, *expected, "{shown}: {head}\n{body}");
        assert_eq!(body["error"]["code"], *code, "{shown}: {body}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
        if *expected == 405 {
            // The one method the path takes.
            let allow =
                if line.contains("/scan ") || line.contains("/scan/now") { "POST" } else { "GET" };
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("\nallow: {}", allow.to_ascii_lowercase())),
                "{shown}: {head}"
            );
        }
    }
    // Bodies: invalid JSON, and a 10 MB body (declared, and chunked).
    let trigger =
        format!("POST /api/v1/volumes/{}/scan HTTP/1.1\r\nHost: x\r\n{auth}", volumes[0].name());
    let json = "Content-Type: application/json";
    let (status, _, body) =
        raw(server.port, &format!("{trigger}\r\n{json}\r\nContent-Length: 9"), b"{not json");
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_body")), "{body}");
    let big = vec![b'['; 10 * 1024 * 1024];
    let (status, _, body) =
        raw(server.port, &format!("{trigger}\r\n{json}\r\nContent-Length: {}", big.len()), &big);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    let mut chunked = Vec::new();
    for _ in 0..160 {
        chunked.extend_from_slice(format!("{:x}\r\n", 65_536).as_bytes());
        chunked.extend(std::iter::repeat_n(b' ', 65_536));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let (status, _, body) =
        raw(server.port, &format!("{trigger}\r\n{json}\r\nTransfer-Encoding: chunked"), &chunked);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    // After all that, the server still answers and has not crashed.
    let (code, _, health) = server.call("GET", "/api/v1/health");
    assert_eq!(code, 200, "{health}");
    assert!(!server.log_text().contains("panicked"));
}
