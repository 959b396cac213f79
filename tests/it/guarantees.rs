//! What the server promises about how it exits, what its metrics say and how
//! it behaves around a database outage, checked on the real binary:
//!
//! - a port already taken ends start-up at once with exit 1, and nothing is
//!   left `running`;
//! - SIGTERM while the Docker daemon hangs (a private `dockerd` frozen with
//!   SIGSTOP) exits within 10 s, with every run final or queued;
//! - `volscan_scan_queue_depth`, `queue_depth` in the status and the table
//!   agree within a second while a batch drains, and so do the active scans;
//! - a removed volume's series leave the next scrape and stay gone after a
//!   restart, and a field the latest scan did not measure is not exported;
//! - a bulk scan refused with 503 while PostgreSQL is away does not start the
//!   cooldown, and a failed periodic run is tried again within a minute.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use volscan_domain::{
    DiscoveredVolume, NewScanRun, ReadRepository, Repository, RunFilter, ScanId, ScanStatus,
};
use volscan_repo::DieselRepository;
use volscan_testing::docker::{PrivateDaemon, TestVolume};
use volscan_testing::{PgCluster, TempDir};

use crate::support::{
    ServerProcess, TOKEN, du_bytes, everything_but, filled_volumes, raw_request, server,
    slow_tool_path, unique_prefix,
};

/// The value of one exact series (`name{labels}`) in a scrape.
pub(crate) fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn scrape(server: &ServerProcess) -> String {
    let (status, _, body) = server.call("GET", "/metrics");
    assert_eq!(status, 200, "{body}");
    body.as_str().unwrap_or_default().to_owned()
}

fn count(repo: &DieselRepository, status: ScanStatus) -> u64 {
    repo.count_runs(&RunFilter { status: Some(status), ..RunFilter::default() }).unwrap()
}

#[test]
fn a_busy_port_exits_1_at_once_and_leaves_no_run_running() {
    let dir = TempDir::new("it-busy-port");
    let url = dir.sqlite_url();
    // A run left queued by an earlier process: a scheduler that started
    // would claim it at once.
    let repo = DieselRepository::connect(&url, 1).unwrap();
    repo.migrate().unwrap();
    let root = dir.path().join("volume");
    std::fs::create_dir_all(&root).unwrap();
    let name = volscan_domain::VolumeName::new("busy-port-volume").unwrap();
    let volume = DiscoveredVolume {
        name: name.clone(),
        driver: "local".into(),
        mountpoint: root,
        kind: volscan_domain::VolumeKind::Volume,
        labels: Default::default(),
        created_at: None,
    };
    let now = volscan_domain::Timestamp::now_utc();
    repo.upsert_volume(&volume, now).unwrap();
    let queued = repo
        .enqueue(NewScanRun {
            host: Default::default(),
            scan_id: ScanId::new(),
            volume: name,
            batch_id: None,
            trigger: volscan_domain::Trigger::Manual,
            queued_at: now,
        })
        .unwrap()
        .run;

    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = holder.local_addr().unwrap().to_string();
    let started = Instant::now();
    let mut child = server(&[
        ("DATABASE_URL", &url),
        ("VOLSCAN_BIND", &bind),
        ("SCAN_ENABLED", "false"),
        ("SCAN_METHODS_ORDER", "native"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("the server on a busy port did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    eprintln!("busy port: exit {status} after {took:?}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(stderr.contains(&format!("failed to listen on {bind}")), "{stderr}");
    let run = repo.run(queued.scan_id).unwrap().unwrap();
    assert_eq!(run.status, ScanStatus::Queued, "the queued run is untouched");
    assert_eq!(count(&repo, ScanStatus::Running), 0);
}

#[test]
fn sigterm_while_docker_hangs_exits_within_10_s() {
    let daemon = PrivateDaemon::start();
    let dir = TempDir::new("it-docker-hangs");
    daemon.docker(&["volume", "create", "hangs"]);
    let (url, host) = (dir.sqlite_url(), daemon.host());
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("DOCKER_HOST", &host),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", "^$"),
    ];
    let mut server = ServerProcess::start(&vars, dir.path());
    let run = server
        .follow(server.trigger("hangs")["status_url"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(run["status"], "completed", "{run}");

    daemon.freeze();
    // A bulk scan lists Docker's volumes first: that call now hangs.
    let port = server.port;
    let pending = std::thread::spawn(move || {
        let head = format!(
            "POST /api/v1/scan/now HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0"
        );
        raw_request(port, &head, b"")
    });
    std::thread::sleep(Duration::from_secs(2));
    let took = server.sigterm_and_wait();
    daemon.thaw();
    eprintln!("docker hangs: SIGTERM to exit took {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {}", server.log_text());
    let _ = pending.join();
    let repo = DieselRepository::connect(&url, 1).unwrap();
    assert_eq!(count(&repo, ScanStatus::Running), 0, "every run is final or queued");
}

#[test]
fn the_queue_depth_and_active_gauges_follow_the_table_while_a_batch_drains() {
    let prefix = unique_prefix("depth");
    let dir = TempDir::new("it-depth");
    let _volumes = filled_volumes(&prefix, 8, 1000);
    let skip = everything_but(&prefix);
    let path = slow_tool_path(&dir, "du", 1.0);
    let url = dir.sqlite_url();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", &skip),
        ("SCAN_METHODS_ORDER", "du"),
        ("SCAN_CONCURRENCY", "1"),
        ("PATH", &path),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    let (code, _, batch) = server.call("POST", "/api/v1/scan/now");
    assert_eq!((code, batch["count"].as_u64()), (202, Some(8)), "{batch}");
    let repo = DieselRepository::connect(&url, 1).unwrap();

    let mut checked = HashSet::new();
    let mut active_checked = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let queued = count(&repo, ScanStatus::Queued);
        if !checked.insert(queued) {
            if queued == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        // Within a second the gauge, the status and the table agree.
        let agreed_by = Instant::now() + Duration::from_secs(1);
        let mut last;
        let agreed = loop {
            let text = scrape(&server);
            let gauge = metric(&text, "volscan_scan_queue_depth");
            let (_, _, status) = server.call("GET", "/api/v1/scheduler/status");
            let (table, running) =
                (count(&repo, ScanStatus::Queued), count(&repo, ScanStatus::Running));
            let active = metric(&text, "volscan_scans_active");
            let utilization = metric(&text, "volscan_worker_utilization");
            last = format!(
                "table {table}, gauge {gauge:?}, status {}; running {running}, active {active:?}, utilization {utilization:?}",
                status["queue_depth"]
            );
            if gauge == Some(table as f64) && status["queue_depth"].as_u64() == Some(table) {
                if running == 1 && active == Some(1.0) && utilization == Some(1.0) {
                    active_checked = true;
                }
                break true;
            }
            if Instant::now() > agreed_by {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(agreed, "not in agreement within a second: {last}");
    }
    eprintln!("queue depth: agreement checked at queue lengths {checked:?}");
    assert!(checked.len() >= 5, "the drain was seen at too few points: {checked:?}");
    assert!(active_checked, "a running scan was never seen as active in the gauges");
    while count(&repo, ScanStatus::Completed) < 8 {
        assert!(Instant::now() < deadline + Duration::from_secs(10), "the batch did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = scrape(&server);
    assert_eq!(metric(&text, "volscan_scans_active"), Some(0.0), "{text}");
}

#[test]
fn a_removed_volume_leaves_the_scrape_and_unmeasured_fields_are_not_exported() {
    let dir = TempDir::new("it-series");
    let volume = TestVolume::create();
    std::fs::write(volume.mountpoint().join("data"), vec![b's'; 50_000]).unwrap();
    let name = volume.name().to_owned();
    let skip = everything_but(&name);
    let url = dir.sqlite_url();
    let vars = |method: &'static str| {
        vec![
            ("DATABASE_URL".to_owned(), url.clone()),
            ("SCAN_ENABLED".to_owned(), "false".to_owned()),
            ("SCAN_SKIP_PATTERN".to_owned(), skip.clone()),
            ("SCAN_METHODS_ORDER".to_owned(), method.to_owned()),
        ]
    };
    let start = |method| {
        let owned = vars(method);
        let pairs: Vec<(&str, &str)> =
            owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ServerProcess::start(&pairs, dir.path())
    };
    let series = |metric_name: &str| format!("{metric_name}{{volume=\"{name}\"}}");

    let mut server = start("native");
    let run = server
        .follow(server.trigger(&name)["status_url"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(run["status"], "completed", "{run}");
    let text = scrape(&server);
    let size = du_bytes(volume.mountpoint()) as f64;
    assert_eq!(metric(&text, &series("volscan_volume_size_bytes")), Some(size), "{text}");
    let apparent = crate::support::du(&["-sb", "-x"], volume.mountpoint()) as f64;
    assert_eq!(metric(&text, &series("volscan_volume_apparent_bytes")), Some(apparent), "{text}");
    assert_eq!(metric(&text, &series("volscan_volume_files")), Some(1.0), "{text}");
    assert_eq!(metric(&text, &series("volscan_volume_scan_partial")), Some(0.0), "{text}");
    server.sigterm_and_wait();

    // du measures the size only: after its scan, native's fields are gone.
    let mut server = start("du");
    let text = scrape(&server);
    assert_eq!(
        metric(&text, &series("volscan_volume_size_bytes")),
        Some(size),
        "after a restart: {text}"
    );
    let run = server
        .follow(server.trigger(&name)["status_url"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!((run["status"].as_str(), run["method"].as_str()), (Some("completed"), Some("du")));
    let text = scrape(&server);
    assert_eq!(metric(&text, &series("volscan_volume_size_bytes")), Some(size), "{text}");
    assert_eq!(metric(&text, &series("volscan_volume_apparent_bytes")), None, "{text}");
    assert_eq!(metric(&text, &series("volscan_volume_files")), None, "{text}");

    // Removed: its series leave the next scrape (the destroy event), and stay gone.
    volume.remove();
    let label = format!("volume=\"{name}\"");
    let deadline = Instant::now() + Duration::from_secs(15);
    while scrape(&server).contains(&label) {
        assert!(Instant::now() < deadline, "the removed volume is still scraped");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.sigterm_and_wait();
    let server = start("du");
    let text = scrape(&server);
    assert!(!text.contains(&label), "a removed volume came back after a restart: {text}");
}

#[test]
fn a_database_outage_does_not_start_the_cooldown_and_periodic_runs_retry_soon() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let prefix = unique_prefix("cool");
    let dir = TempDir::new("it-cooldown");
    let _volumes = filled_volumes(&prefix, 2, 1000);
    let skip = everything_but(&prefix);
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("SCAN_ENABLED", "true"),
        ("SCAN_INTERVAL", "1h"),
        ("SCAN_SKIP_PATTERN", &skip),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    let started = Instant::now();
    cluster.stop();
    let (code, _, body) = server.call("POST", "/api/v1/scan/now");
    assert_eq!(code, 503, "{body}");

    // The first periodic run (10 s after start) meets the outage and is
    // tried again soon, not an interval later.
    let deadline = started + Duration::from_secs(40);
    while !server.log_text().contains("the periodic run will be tried again") {
        assert!(Instant::now() < deadline, "no periodic failure: {}", server.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, _, status) = server.call("GET", "/api/v1/scheduler/status");
    let next = time::OffsetDateTime::parse(
        status["next_run_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = next - time::OffsetDateTime::now_utc();
    eprintln!("database outage: the failed periodic run is due again in {wait}");
    assert!(wait < time::Duration::seconds(60), "next run in {wait}: {status}");

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    let batch = loop {
        let (code, _, body) = server.call("POST", "/api/v1/scan/now");
        if code == 202 {
            break body;
        }
        assert_ne!(code, 429, "the failed bulk scan started the cooldown: {body}");
        assert!(Instant::now() < deadline, "{code} {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(batch["count"].as_u64(), Some(2), "{batch}");
}
