//! End to end: the real `volscan-server` binary against the real Docker
//! Engine, once on SQLite and once on PostgreSQL, spoken to over HTTP.
//!
//! The server is told to skip every volume whose name does not start with
//! this test's own prefix, so even a bulk scan touches only volumes the test
//! created.

use std::process::Command;
use std::time::{Duration, Instant};

use volscan_testing::{PgDatabase, TempDir};

use crate::support::{
    ServerProcess, TOKEN, du_bytes as du, everything_but, filled_volumes, unique_prefix,
};

fn end_to_end(url: &str, backend: &str) {
    let prefix = unique_prefix("e2e");
    let dir = TempDir::new("it-e2e");
    let volumes = filled_volumes(&prefix, 3, 50_000);
    let skip = everything_but(&prefix);
    let vars = [("DATABASE_URL", url), ("SCAN_ENABLED", "false"), ("SCAN_SKIP_PATTERN", &skip)];
    let mut server = ServerProcess::start(&vars, dir.path());

    // Trigger, follow status_url to completed, compare with du.
    let trigger = server.trigger(volumes[0].name());
    let run = server.follow(trigger["status_url"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["status"], "completed", "{run}");
    let (_, _, detail) = server.call("GET", &format!("/api/v1/volumes/{}", volumes[0].name()));
    assert_eq!(
        detail["latest"]["size_bytes"].as_u64(),
        Some(du(volumes[0].mountpoint())),
        "{detail}"
    );

    // Auth: no token, wrong token.
    let (status, _, body) = server.request("POST", "/api/v1/scan/now", false, None).unwrap();
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
    assert_eq!(names, [volumes[2].name(), volumes[1].name(), volumes[0].name()], "{listed}");
    let (_, _, history) =
        server.call("GET", &format!("/api/v1/volumes/{}/history", volumes[0].name()));
    assert_eq!(history["points"].as_array().unwrap().len(), 2, "{history}");
    let (_, _, status) = server.call("GET", "/api/v1/scheduler/status");
    assert!(status["total_completed"].as_u64().unwrap() >= 4, "{status}");
    let (_, _, metrics) = server.call("GET", "/metrics");
    let metrics = metrics.as_str().unwrap().to_owned();
    for needle in [
        format!(
            "volscan_volume_size_bytes{{volume=\"{}\"}} {}",
            volumes[1].name(),
            du(volumes[1].mountpoint())
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
    server.trigger(volumes[1].name());
    server.trigger(volumes[2].name());
    let took = server.sigterm_and_wait();
    eprintln!("{backend}: SIGTERM to exit took {took:?}");
    assert!(took < Duration::from_secs(10));
    let log = server.log_text();
    assert!(log.contains("serving the HTTP API"), "the log was not captured:\n{log}");
    assert!(!log.contains(TOKEN), "the token must never be logged");
    let repo = volscan_repo::DieselRepository::connect(url, 1).unwrap();
    use volscan_domain::ReadRepository;
    let running = volscan_domain::RunFilter {
        status: Some(volscan_domain::ScanStatus::Running),
        ..Default::default()
    };
    assert_eq!(repo.count_runs(&running).unwrap(), 0, "no run may stay running");
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
