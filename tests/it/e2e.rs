//! End to end: the real `volscan-server` binary against the real Docker
//! Engine, once on SQLite and once on PostgreSQL, spoken to over HTTP.
//!
//! The server is told to skip every volume whose name does not start with
//! this test's own prefix, so even a bulk scan touches only volumes the test
//! created.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use volscan_testing::{PgDatabase, TempDir};

use crate::support::{du_bytes as du, free_port, server};

const TOKEN: &str = "e2e-secret-token-4f1d";

/// A regex matching every name that does not start with `prefix` (the regex
/// crate has no lookahead): a differing character at some position, or a
/// name shorter than the prefix.
fn everything_but(prefix: &str) -> String {
    let chars: Vec<char> = prefix.chars().collect();
    let mut alternatives: Vec<String> = (0..chars.len())
        .map(|i| {
            let head: String = chars[..i].iter().collect();
            format!("^{}[^{}]", regex::escape(&head), regex::escape(&chars[i].to_string()))
        })
        .collect();
    alternatives.push(format!("^.{{0,{}}}$", chars.len() - 1));
    alternatives.join("|")
}

/// A Docker volume made by this test, removed on drop.
struct E2eVolume {
    name: String,
    mountpoint: PathBuf,
}

impl E2eVolume {
    fn create(name: String, bytes: usize) -> Self {
        let out =
            Command::new("docker").args(["volume", "create", &name]).output().expect("docker CLI");
        assert!(
            out.status.success(),
            "docker volume create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new("docker")
            .args(["volume", "inspect", "--format", "{{.Mountpoint}}", &name])
            .output()
            .unwrap();
        let volume = E2eVolume {
            name,
            mountpoint: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        };
        std::fs::write(volume.mountpoint.join("data"), vec![b'e'; bytes]).unwrap();
        volume
    }
}

impl Drop for E2eVolume {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["volume", "rm", "-f", &self.name]).output();
    }
}

/// The running server, killed on drop if the test did not stop it.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(url: &str, skip: &str, dir: &TempDir) -> Server {
        let port = free_port();
        let log = dir.path().join("server.log");
        let bind = format!("127.0.0.1:{port}");
        let child = server(&[
            ("DATABASE_URL", url),
            ("VOLSCAN_BIND", &bind),
            ("AUTH_TOKEN", TOKEN),
            ("SCAN_ENABLED", "false"),
            ("SCAN_SKIP_PATTERN", skip),
            ("RUST_LOG", "debug"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
        let server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.request("GET", "/api/v1/health", false).is_none() {
            assert!(Instant::now() < deadline, "the server did not start: {}", server.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.1 request; returns status, headers and JSON (or text) body.
    fn request(&self, method: &str, path: &str, auth: bool) -> Option<(u16, String, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
        let auth = if auth { format!("Authorization: Bearer {TOKEN}\r\n") } else { String::new() };
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
        Some((status, head.to_owned(), body))
    }

    fn call(&self, method: &str, path: &str) -> (u16, String, Value) {
        self.request(method, path, true).unwrap_or_else(|| panic!("{method} {path}: no answer"))
    }

    fn follow(&self, status_url: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _, run) = self.call("GET", status_url);
            assert_eq!(status, 200, "{run}");
            if ["completed", "failed", "canceled"].contains(&run["status"].as_str().unwrap_or("")) {
                return run;
            }
            assert!(Instant::now() < deadline, "{run}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sigterm_and_wait(&mut self) -> Duration {
        let started = Instant::now();
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                assert!(exit.success(), "exit {exit}: {}", self.log_text());
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(15), "SIGTERM ignored");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn end_to_end(url: &str, backend: &str) {
    let prefix = format!("vse2e-{}-", &uuid_suffix());
    let dir = TempDir::new("it-e2e");
    let volumes: Vec<E2eVolume> =
        (0..3).map(|i| E2eVolume::create(format!("{prefix}{i}"), 50_000 * (i + 1))).collect();
    let mut server = Server::start(url, &everything_but(&prefix), &dir);

    // Trigger, follow status_url to completed, compare with du.
    let (status, _, trigger) =
        server.call("POST", &format!("/api/v1/volumes/{}/scan", volumes[0].name));
    assert_eq!(status, 202, "{trigger}");
    let run = server.follow(trigger["status_url"].as_str().unwrap());
    assert_eq!(run["status"], "completed", "{run}");
    let (_, _, detail) = server.call("GET", &format!("/api/v1/volumes/{}", volumes[0].name));
    assert_eq!(
        detail["latest"]["size_bytes"].as_u64(),
        Some(du(&volumes[0].mountpoint)),
        "{detail}"
    );

    // Auth: no token, wrong token.
    let (status, _, body) = server.request("POST", "/api/v1/scan/now", false).unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")));

    // Bulk: our three volumes only; a second one inside the cooldown is refused.
    let (status, _, batch) = server.call("POST", "/api/v1/scan/now");
    assert_eq!(status, 202, "{batch}");
    assert_eq!(
        batch["count"].as_u64().unwrap() + batch["deduplicated"].as_u64().unwrap(),
        3,
        "{batch}"
    );
    let (status, head, body) = server.call("POST", "/api/v1/scan/now");
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("rate_limited")), "{body}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let batch_url = format!("/api/v1/scan/batches/{}", batch["batch_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, counts) = server.call("GET", &batch_url);
        if counts["completed"].as_u64() == batch["count"].as_u64() {
            break;
        }
        assert!(Instant::now() < deadline, "{counts}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Volumes, history, status, metrics and health reflect the last runs.
    let (_, _, listed) = server.call("GET", "/api/v1/volumes?sort=size_bytes:desc");
    let names: Vec<&str> =
        listed.as_array().unwrap().iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(
        names,
        [volumes[2].name.as_str(), volumes[1].name.as_str(), volumes[0].name.as_str()],
        "{listed}"
    );
    let (_, _, history) =
        server.call("GET", &format!("/api/v1/volumes/{}/history", volumes[0].name));
    assert_eq!(history["points"].as_array().unwrap().len(), 2, "{history}");
    let (_, _, status) = server.call("GET", "/api/v1/scheduler/status");
    assert!(status["total_completed"].as_u64().unwrap() >= 4, "{status}");
    let (_, _, metrics) = server.call("GET", "/metrics");
    let metrics = metrics.as_str().unwrap().to_owned();
    for needle in [
        format!(
            "volscan_volume_size_bytes{{volume=\"{}\"}} {}",
            volumes[1].name,
            du(&volumes[1].mountpoint)
        ),
        "volscan_scans_total{status=\"completed\"}".to_owned(),
        "volscan_scan_duration_seconds_bucket".to_owned(),
        "# HELP volscan_volume_size_bytes".to_owned(),
    ] {
        assert!(metrics.contains(&needle), "{needle} missing from:\n{metrics}");
    }
    promtool_check(&metrics, &dir);
    let (code, _, health) = server.call("GET", "/api/v1/health");
    assert_eq!((code, health["status"].as_str()), (200, Some("healthy")), "{health}");

    // SIGTERM while scans are queued or running leaves no run `running`.
    let (_, _, _) = server.call("POST", &format!("/api/v1/volumes/{}/scan", volumes[1].name));
    let (_, _, _) = server.call("POST", &format!("/api/v1/volumes/{}/scan", volumes[2].name));
    let took = server.sigterm_and_wait();
    eprintln!("{backend}: SIGTERM to exit took {took:?}");
    assert!(took < Duration::from_secs(10));
    let log = server.log_text();
    assert!(!log.contains(TOKEN), "the token must never be logged");
    let repo = volscan_repo::DieselRepository::connect(url, 1).unwrap();
    use volscan_domain::Repository;
    let running = volscan_domain::RunFilter {
        status: Some(volscan_domain::ScanStatus::Running),
        ..Default::default()
    };
    assert_eq!(repo.count_runs(&running).unwrap(), 0, "no run may stay running");
}

fn uuid_suffix() -> String {
    let id = volscan_domain::ScanId::new().to_string();
    id[..8].to_owned()
}

/// `promtool check metrics` on a real scrape (Debian package `prometheus`).
fn promtool_check(metrics: &str, dir: &TempDir) {
    let file = dir.path().join("scrape.txt");
    std::fs::write(&file, metrics).unwrap();
    let output = Command::new("sh")
        .arg("-c")
        .arg("promtool check metrics < \"$1\"")
        .arg("sh")
        .arg(&file)
        .output()
        .expect("sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed (install the Debian package prometheus; scripts/test.sh does): {text}"
    );
}

#[test]
fn end_to_end_on_sqlite() {
    let dir = TempDir::new("it-e2e-db");
    end_to_end(&dir.sqlite_url(), "sqlite");
}

#[test]
fn end_to_end_on_postgres() {
    let database = PgDatabase::create();
    end_to_end(database.url(), "postgres");
}

#[test]
fn the_skip_regex_hides_everything_but_the_prefix() {
    let skip = regex::Regex::new(&everything_but("vse2e-ab-")).unwrap();
    for name in ["pgdata", "vse2e-ac-0", "vse2e-ab", "v", "docker_x", "vse2e_ab-0"] {
        assert!(skip.is_match(name), "{name} must be skipped");
    }
    for name in ["vse2e-ab-0", "vse2e-ab-long.name"] {
        assert!(!skip.is_match(name), "{name} must not be skipped");
    }
}
