//! Outages of what the server depends on, with the real binary:
//!
//! - Docker away: a private `dockerd` (own socket and data root) serving the
//!   server is stopped for a while. The server stays up, health says docker
//!   is degraded, stored data is still served, and when the daemon returns
//!   the event stream reconnects and a volume created then is scanned by
//!   itself.
//! - PostgreSQL away: a private PostgreSQL server is stopped while scans
//!   run. Health answers 503 unhealthy, other endpoints clean 503 JSON, and
//!   once it is back every accepted run completes.
//! - SQLite locked: another process holds the database's write lock for
//!   longer than the busy timeout while scans run; nothing accepted is lost.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use volscan_testing::docker::PrivateDaemon;
use volscan_testing::{PgCluster, TempDir};

use crate::support::{
    ServerProcess, du_bytes, everything_but, filled_volumes, slow_tool_path, unique_prefix,
};

/// Polls `check` every 100 ms until it returns `Some`, for at most `within`;
/// on failure, shows the end of the server's log.
fn wait_for<T>(
    server: &ServerProcess,
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let log = server.log_text();
            let notable: Vec<&str> = log.lines().filter(|line| !line.contains("DEBUG")).collect();
            let tail = notable[notable.len().saturating_sub(40)..].join("\n");
            panic!("{what}: not within {within:?}; the server's log ends with:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the host network namespace has the machine's Docker bridge.
fn host_bridge_exists() -> bool {
    std::path::Path::new("/sys/class/net/docker0").exists()
}

fn mountpoint(daemon: &PrivateDaemon, name: &str) -> String {
    daemon.docker(&["volume", "inspect", "--format", "{{.Mountpoint}}", name])
}

/// A server on `url` that scans only volumes named `prefix…`, with two
/// workers and a `du` that takes `seconds` longer than the real one.
fn slow_du_server(dir: &TempDir, url: &str, prefix: &str, seconds: f32) -> ServerProcess {
    let skip = everything_but(prefix);
    let path = slow_tool_path(dir, "du", seconds);
    let vars = [
        ("DATABASE_URL", url),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", &skip),
        ("SCAN_METHODS_ORDER", "du"),
        ("SCAN_CONCURRENCY", "2"),
        ("PATH", &path),
    ];
    ServerProcess::start(&vars, dir.path())
}

fn health(server: &ServerProcess) -> (u16, Value) {
    let (status, _, body) = server.call("GET", "/api/v1/health");
    (status, body)
}

#[test]
fn docker_going_away_degrades_health_and_the_event_stream_comes_back() {
    let bridge_before = host_bridge_exists();
    let mut daemon = PrivateDaemon::start();
    let dir = TempDir::new("it-docker-away");
    daemon.docker(&["volume", "create", "before"]);
    let before = mountpoint(&daemon, "before");
    std::fs::write(format!("{before}/data"), vec![b'b'; 30_000]).unwrap();
    let host = daemon.host();
    let vars = [
        ("DATABASE_URL", &dir.sqlite_url() as &str),
        ("DOCKER_HOST", &host),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", "^$"),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    let run = server
        .follow(server.trigger("before")["status_url"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(run["status"], "completed", "{run}");
    let (code, body) = health(&server);
    assert_eq!((code, body["status"].as_str()), (200, Some("healthy")), "{body}");

    daemon.stop();
    let down = Instant::now();
    let (code, body) =
        wait_for(&server, Duration::from_secs(20), "health to see docker gone", || {
            let (code, body) = health(&server);
            (body["components"]["docker"]["status"] == "degraded").then_some((code, body))
        });
    assert_eq!((code, body["status"].as_str()), (200, Some("degraded")), "{body}");
    eprintln!("docker away: health said degraded {:?} after the daemon stopped", down.elapsed());
    assert_eq!(body["components"]["database"]["status"], "healthy", "{body}");
    // Stored data is still served.
    let (code, _, listed) = server.call("GET", "/api/v1/volumes");
    assert_eq!(code, 200, "{listed}");
    let volume = &listed.as_array().unwrap()[0];
    assert_eq!(volume["name"], "before");
    assert_eq!(
        volume["latest"]["size_bytes"].as_u64(),
        Some(du_bytes(before.as_ref())),
        "{volume}"
    );
    let (code, _, detail) = server.call("GET", "/api/v1/volumes/before");
    assert_eq!(code, 200, "{detail}");
    // A volume never seen needs Docker to be found: a clean 503.
    let (code, _, body) = server.call("POST", "/api/v1/volumes/never-seen/scan");
    assert_eq!((code, body["error"]["code"].as_str()), (503, Some("docker_unavailable")), "{body}");
    // Volumes already known are still measured from their stored mountpoints.
    let (code, _, batch) = server.call("POST", "/api/v1/scan/now");
    assert_eq!((code, batch["count"].as_u64()), (202, Some(1)), "{batch}");
    let batch_url = format!("/api/v1/scan/batches/{}", batch["batch_id"].as_str().unwrap());
    wait_for(&server, Duration::from_secs(30), "the batch during the outage", || {
        let (_, _, counts) = server.call("GET", &batch_url);
        (counts["completed"] == 1).then_some(())
    });
    while down.elapsed() < Duration::from_secs(6) {
        let (code, _) = health(&server);
        assert_eq!(code, 200, "Docker away is not unhealthy");
        std::thread::sleep(Duration::from_millis(500));
    }

    daemon.resume();
    let back = Instant::now();
    daemon.docker(&["volume", "create", "after"]);
    let after = mountpoint(&daemon, "after");
    std::fs::write(format!("{after}/data"), vec![b'a'; 90_000]).unwrap();
    // The reconnected event stream (or the reconcile after it) brings the new
    // volume in, and its `create` event queues a scan by itself.
    let detail = wait_for(&server, Duration::from_secs(60), "the new volume's event scan", || {
        let (code, _, detail) = server.call("GET", "/api/v1/volumes/after");
        (code == 200 && detail["latest"]["size_bytes"].is_u64()).then_some(detail)
    });
    eprintln!(
        "docker away: a volume created after the daemon returned was scanned {:?} after its return",
        back.elapsed()
    );
    let runs = detail["runs"].as_array().unwrap();
    assert!(runs.iter().any(|run| run["trigger"] == "event"), "{detail}");
    let (code, body) = wait_for(&server, Duration::from_secs(20), "health to recover", || {
        let (code, body) = health(&server);
        (body["status"] == "healthy").then_some((code, body))
    });
    assert_eq!(code, 200, "{body}");
    let log = server.log_text();
    assert!(log.contains("lost the volume source's event stream"), "the outage is logged");
    assert_eq!(
        host_bridge_exists(),
        bridge_before,
        "the private daemon changed the host's docker0"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn postgres_going_away_answers_503_and_accepted_runs_complete_after() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let prefix = unique_prefix("pgaway");
    let dir = TempDir::new("it-pg-away");
    let volumes = filled_volumes(&prefix, 6, 20_000);
    let server = slow_du_server(&dir, &url, &prefix, 1.5);
    let accepted: Vec<String> = volumes
        .iter()
        .map(|volume| server.trigger(volume.name())["status_url"].as_str().unwrap().to_owned())
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    cluster.stop();
    let stopped = Instant::now();
    let body =
        wait_for(&server, Duration::from_secs(20), "health to see the database gone", || {
            let (code, body) = health(&server);
            (code == 503).then_some(body)
        });
    assert_eq!(body["status"], "unhealthy", "{body}");
    eprintln!(
        "postgres away: health answered 503 {:?} after the server stopped",
        stopped.elapsed()
    );
    assert_eq!(body["components"]["database"]["status"], "unhealthy", "{body}");
    let mut first = true;
    for (method, path) in [
        ("GET", "/api/v1/volumes".to_owned()),
        ("GET", format!("/api/v1/volumes/{}", volumes[0].name())),
        ("GET", format!("/api/v1/volumes/{}/history", volumes[0].name())),
        ("GET", accepted[5].clone()),
        ("GET", "/api/v1/scans".to_owned()),
        ("POST", format!("/api/v1/volumes/{}/scan", volumes[0].name())),
    ] {
        let asked = Instant::now();
        let (code, head, body) = server.call(method, &path);
        let took = asked.elapsed();
        eprintln!("postgres away: {method} {path} answered {code} in {took:?}");
        // Once the repository has found the database gone, it answers quickly.
        if !first {
            assert!(took < Duration::from_secs(2), "{method} {path} waited {took:?} for a 503");
        }
        first = false;
        assert_eq!(
            (code, body["error"]["code"].as_str()),
            (503, Some("database_unavailable")),
            "{method} {path}: {body}"
        );
        assert!(head.contains("application/json"), "{head}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("127.0.0.1") && !message.contains("postgres"),
            "leaks: {message}"
        );
    }
    let (code, _, status) = server.call("GET", "/api/v1/scheduler/status");
    assert_eq!(code, 200, "{status}");
    std::thread::sleep(Duration::from_secs(3));

    cluster.resume();
    let back = Instant::now();
    wait_for(&server, Duration::from_secs(30), "health to see the database back", || {
        (health(&server).0 == 200).then_some(())
    });
    eprintln!("postgres away: health answered 200 {:?} after it returned", back.elapsed());
    for status_url in &accepted {
        let run = server.follow(status_url, Duration::from_secs(90));
        assert_eq!(run["status"], "completed", "{run}");
    }
    eprintln!(
        "postgres away: all {} accepted runs completed {:?} after it returned",
        accepted.len(),
        back.elapsed()
    );
    for volume in &volumes {
        let (_, _, history) =
            server.call("GET", &format!("/api/v1/volumes/{}/history", volume.name()));
        let points = history["points"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{history}");
        assert_eq!(points[0]["size_bytes"].as_u64(), Some(du_bytes(volume.mountpoint())));
    }
    assert_eq!(health(&server).0, 200);
    assert!(!server.log_text().contains("panicked"));
}

/// Holds SQLite's write lock on `path` for `seconds` from another process.
fn hold_sqlite_lock(path: &std::path::Path, seconds: u32) -> Child {
    let script = "import sqlite3, sys, time\n\
        c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n\
        c.execute('BEGIN EXCLUSIVE')\n\
        print('locked', flush=True)\n\
        time.sleep(float(sys.argv[2]))\n\
        c.execute('COMMIT')\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .arg(seconds.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (with its sqlite3 module) holds the lock");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked", "the lock holder failed");
    child
}

#[test]
fn sqlite_locked_by_another_writer_loses_nothing() {
    let prefix = unique_prefix("locked");
    let dir = TempDir::new("it-sqlite-locked");
    let volumes = filled_volumes(&prefix, 5, 15_000);
    let server = slow_du_server(&dir, &dir.sqlite_url(), &prefix, 0.5);
    let mut accepted: Vec<String> = volumes[..4]
        .iter()
        .map(|volume| server.trigger(volume.name())["status_url"].as_str().unwrap().to_owned())
        .collect();
    // Longer than the 15 s busy timeout: the repository's retries must carry the rest.
    let holder = hold_sqlite_lock(&dir.path().join("volscan.db"), 20);
    let locked = Instant::now();
    // Reads go on (WAL); a trigger made under the lock waits for it, then succeeds.
    let (code, _, _) = server.call("GET", "/api/v1/volumes");
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_secs(8));
    let late = server.trigger(volumes[4].name());
    eprintln!("sqlite locked: a trigger under the lock answered after {:?}", locked.elapsed());
    accepted.push(late["status_url"].as_str().unwrap().to_owned());
    let mut holder = holder;
    assert!(holder.wait().unwrap().success(), "the lock holder failed");
    for status_url in &accepted {
        let run = server.follow(status_url, Duration::from_secs(90));
        assert_eq!(run["status"], "completed", "{run}");
    }
    for volume in &volumes {
        let (_, _, detail) = server.call("GET", &format!("/api/v1/volumes/{}", volume.name()));
        assert_eq!(detail["latest"]["size_bytes"].as_u64(), Some(du_bytes(volume.mountpoint())));
    }
    assert!(!server.log_text().contains("panicked"));
}
