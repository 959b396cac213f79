//! Many hosts on one PostgreSQL (SPEC §10), end to end: three real servers,
//! each with its own private `dockerd` and host id, sharing one database.
//! Each scans only its own volumes; a trigger through one node for another
//! host's volume is run by that host; a killed node turns `stale`, then
//! `offline`, keeps its data served and its queued runs waiting, and resumes
//! them when it comes back; a second process with a live node's id is
//! refused.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use volscan_testing::docker::PrivateDaemon;
use volscan_testing::{PgCluster, PgDatabase, TempDir};

use crate::support::{ServerProcess, du_bytes, server};

/// The heartbeat the test's servers use: `stale` after 3 s, `offline` after 20 s.
const HEARTBEAT: &str = "1s";

/// One host of the test: its daemon, its server's directory and its server.
struct Node {
    id: &'static str,
    daemon: PrivateDaemon,
    dir: TempDir,
    server: Option<ServerProcess>,
}

impl Node {
    /// A daemon with the volumes `shared` (the same name on every host) and
    /// `only-ID`, each filled with `bytes` bytes of its own.
    fn new(id: &'static str, bytes: usize) -> Node {
        let daemon = PrivateDaemon::start();
        for (volume, size) in [("shared".to_owned(), bytes), (format!("only-{id}"), bytes / 2)] {
            daemon.docker(&["volume", "create", &volume]);
            let path = mountpoint(&daemon, &volume);
            std::fs::write(format!("{path}/data"), vec![b'x'; size]).unwrap();
        }
        Node { id, daemon, dir: TempDir::new(&format!("it-fleet-{id}")), server: None }
    }

    fn vars(&self, url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", url.to_owned()),
            ("DOCKER_HOST", self.daemon.host()),
            ("VOLSCAN_HOST_ID", self.id.to_owned()),
            ("VOLSCAN_HEARTBEAT_INTERVAL", HEARTBEAT.to_owned()),
            ("SCAN_ENABLED", "false".to_owned()),
            ("SCAN_SKIP_PATTERN", "^$".to_owned()),
            ("SCAN_METHODS_ORDER", "native".to_owned()),
        ]
    }

    fn start(&mut self, url: &str) {
        let vars = self.vars(url);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.server = Some(ServerProcess::start(&vars, self.dir.path()));
    }

    fn server(&self) -> &ServerProcess {
        self.server.as_ref().expect("the node's server is running")
    }

    /// `du -sB1 -x` of one of its volumes.
    fn du(&self, volume: &str) -> u64 {
        du_bytes(mountpoint(&self.daemon, volume).as_ref())
    }

    /// `GET path` through this node, 200 asserted.
    fn get(&self, path: &str) -> Value {
        let (status, _, body) = self.server().call("GET", path);
        assert_eq!(status, 200, "GET {path} on {}: {body}", self.id);
        body
    }

    /// Triggers a scan of `volume` of `host` through this node; the answer.
    fn trigger(&self, volume: &str, host: &str) -> Value {
        let path = format!("/api/v1/volumes/{volume}/scan?host={host}");
        let (status, _, body) = self.server().call("POST", &path);
        assert_eq!(status, 202, "POST {path} on {}: {body}", self.id);
        body
    }

    /// Triggers and follows a scan of `volume` of `host` through this node.
    fn scan(&self, volume: &str, host: &str) -> Value {
        let url = self.trigger(volume, host)["status_url"].as_str().unwrap().to_owned();
        self.server().follow(&url, Duration::from_secs(60))
    }
}

fn mountpoint(daemon: &PrivateDaemon, name: &str) -> String {
    daemon.docker(&["volume", "inspect", "--format", "{{.Mountpoint}}", name])
}

/// The status `GET /hosts` through `node` gives `id`.
fn status_of(node: &Node, id: &str) -> String {
    let hosts = node.get("/api/v1/hosts");
    let host = hosts.as_array().unwrap().iter().find(|h| h["id"] == id);
    host.map_or_else(|| "absent".to_owned(), |h| h["status"].as_str().unwrap().to_owned())
}

/// Polls `check` every 100 ms until it returns something, at most `within`.
fn wait_until<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The size of `volume` in `GET /volumes?host=HOST` through `node`.
fn listed_size(node: &Node, host: &str, volume: &str) -> Option<u64> {
    let listed = node.get(&format!("/api/v1/volumes?host={host}"));
    let entry = listed.as_array().unwrap().iter().find(|v| v["name"] == volume)?.clone();
    assert_eq!(entry["host"], host, "{entry}");
    entry["latest"]["size_bytes"].as_u64()
}

/// The runs of `host`, by scan id and status.
fn runs_of(node: &Node, host: &str) -> Vec<(String, String)> {
    let runs = node.get(&format!("/api/v1/scans?host={host}&limit=1000"));
    let mut listed: Vec<(String, String)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            assert_eq!(run["host"], host, "{run}");
            (
                run["scan_id"].as_str().unwrap().to_owned(),
                run["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    listed
}

#[test]
fn three_hosts_on_one_postgres_each_scan_their_own_and_a_dead_one_resumes() {
    let database = PgDatabase::create();
    let url = database.url().to_owned();
    let mut nodes =
        [Node::new("alpha", 40_000), Node::new("beta", 90_000), Node::new("gamma", 150_000)];
    for node in &mut nodes {
        node.start(&url);
    }
    let [alpha, beta, gamma] = &mut nodes;

    // Every node lists all three, online.
    for node in [&*alpha, &*beta, &*gamma] {
        for id in ["alpha", "beta", "gamma"] {
            wait_until(Duration::from_secs(10), "every host online", || {
                (status_of(node, id) == "online").then_some(())
            });
        }
    }

    // Each host scans its own volumes; the sizes are its own `du`'s.
    for node in [&*alpha, &*beta, &*gamma] {
        for volume in ["shared".to_owned(), format!("only-{}", node.id)] {
            let run = node.scan(&volume, node.id);
            assert_eq!(run["status"], "completed", "{run}");
            assert_eq!(run["host"], node.id, "{run}");
        }
    }
    for node in [&*alpha, &*beta, &*gamma] {
        for reader in [&*alpha, &*beta, &*gamma] {
            assert_eq!(
                listed_size(reader, node.id, "shared"),
                Some(node.du("shared")),
                "{}",
                node.id
            );
            let own = format!("only-{}", node.id);
            assert_eq!(listed_size(reader, node.id, &own), Some(node.du(&own)));
        }
        // A host knows only its own Docker's volumes.
        let names: Vec<String> = node
            .get("/api/v1/volumes")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["only-".to_owned() + node.id, "shared".to_owned()], "{}", node.id);
    }
    let every = alpha.get("/api/v1/volumes?host=*");
    assert_eq!(every.as_array().unwrap().len(), 6, "{every}");

    // The same volume name on two hosts keeps two histories.
    std::fs::write(format!("{}/more", mountpoint(&alpha.daemon, "shared")), vec![b'y'; 8_192])
        .unwrap();
    assert_eq!(alpha.scan("shared", "alpha")["status"], "completed");
    let history = |reader: &Node, host: &str| -> Vec<u64> {
        let body = reader.get(&format!("/api/v1/volumes/shared/history?host={host}"));
        body["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["size_bytes"].as_u64().unwrap())
            .collect()
    };
    let alpha_history = history(beta, "alpha");
    assert_eq!(alpha_history.len(), 2, "{alpha_history:?}");
    assert_eq!(alpha_history[1], alpha.du("shared"));
    assert_eq!(history(alpha, "beta"), [beta.du("shared")]);
    assert_eq!(history(alpha, "gamma"), [gamma.du("shared")]);

    // A trigger through alpha for gamma's volume is run by gamma: only gamma
    // can see the file added to its volume.
    std::fs::write(format!("{}/added", mountpoint(&gamma.daemon, "shared")), vec![b'z'; 20_000])
        .unwrap();
    let run = alpha.scan("shared", "gamma");
    assert_eq!(
        (run["status"].as_str(), run["host"].as_str()),
        (Some("completed"), Some("gamma")),
        "{run}"
    );
    assert_eq!(listed_size(beta, "gamma", "shared"), Some(gamma.du("shared")));
    let detail = beta.get("/api/v1/volumes/shared?host=gamma");
    assert_eq!(detail["latest"]["size_bytes"].as_u64(), Some(gamma.du("shared")), "{detail}");

    // A bulk scan of every host through beta: each host's volumes are
    // queued for its own workers, and each host runs its own.
    let (status, _, batch) = beta.server().call("POST", "/api/v1/scan/now?host=*");
    assert_eq!(status, 202, "{batch}");
    assert_eq!(batch["count"], 6, "{batch}");
    let batch_id = batch["batch_id"].as_str().unwrap().to_owned();
    wait_until(Duration::from_secs(60), "the fleet-wide batch to complete", || {
        let counts = beta.get(&format!("/api/v1/scan/batches/{batch_id}"));
        (counts["completed"] == 6).then_some(())
    });
    let runs = alpha.get("/api/v1/scans?host=*&limit=1000");
    let mut ran: Vec<(String, String)> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|run| run["batch_id"] == batch_id.as_str())
        .map(|run| {
            (run["host"].as_str().unwrap().to_owned(), run["status"].as_str().unwrap().to_owned())
        })
        .collect();
    ran.sort();
    let completed = |host: &str| (host.to_owned(), "completed".to_owned());
    let expected: Vec<(String, String)> =
        ["alpha", "alpha", "beta", "beta", "gamma", "gamma"].map(completed).to_vec();
    assert_eq!(ran, expected);

    // The dashboard: a host selector, and another host's volumes from its
    // stored data, with links that keep to that host.
    let page = |node: &Node, path: &str| -> (u16, String) {
        let (status, _, body) = node.server().call("GET", path);
        (status, body.as_str().unwrap_or_default().to_owned())
    };
    let (status, overview) = page(alpha, "/");
    assert_eq!(status, 200, "{overview}");
    for id in ["alpha", "beta", "gamma"] {
        assert!(overview.contains(&format!("<option value=\"{id}\"")), "{overview}");
    }
    assert!(overview.contains("data-volume=\"only-alpha\"") && !overview.contains("only-gamma"));
    let (status, other) = page(alpha, "/?host=gamma");
    assert_eq!(status, 200, "{other}");
    assert!(other.contains("Docker volumes on gamma"), "{other}");
    assert!(other.contains("href=\"/volumes/only-gamma?host=gamma\""), "{other}");
    assert!(!other.contains("only-alpha"), "{other}");
    let (status, volume) = page(alpha, "/volumes/shared?host=gamma");
    assert_eq!(status, 200, "{volume}");
    assert!(volume.contains(" on gamma"), "{volume}");
    assert_eq!(page(alpha, "/?host=nowhere").0, 404);
    assert_eq!(page(alpha, "/volumes/only-alpha?host=gamma").0, 404);

    // The per-volume metrics of a server are its own host's.
    let (_, _, metrics) = alpha.server().call("GET", "/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("volume=\"only-alpha\""), "{metrics}");
    assert!(!metrics.contains("only-beta") && !metrics.contains("only-gamma"), "{metrics}");

    // A second process with a live node's id is refused, naming the id.
    let vars = alpha.vars(&url);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (exit, said) = refused(&vars);
    assert!(!exit.success(), "{said}");
    assert!(
        said.contains("host id \"alpha\" is already served by a live volscan-server"),
        "{said}"
    );

    // kill -9 gamma: stale, then offline; its data stays served.
    let others_before = (runs_of(alpha, "alpha"), runs_of(alpha, "beta"));
    gamma.server.as_mut().unwrap().kill9();
    let killed = Instant::now();
    wait_until(Duration::from_secs(15), "gamma stale", || {
        (status_of(alpha, "gamma") == "stale").then_some(())
    });
    let stale_after = killed.elapsed();
    let queued = alpha.trigger("only-gamma", "gamma");
    assert_eq!(queued["status"], "queued", "{queued}");
    // What the run must find when it runs.
    std::fs::write(
        format!("{}/later", mountpoint(&gamma.daemon, "only-gamma")),
        vec![b'w'; 12_288],
    )
    .unwrap();
    wait_until(Duration::from_secs(40), "gamma offline", || {
        (status_of(beta, "gamma") == "offline").then_some(())
    });
    let offline_after = killed.elapsed();
    eprintln!(
        "fleet: gamma stale {stale_after:?} and offline {offline_after:?} after kill -9 (heartbeat {HEARTBEAT})"
    );
    assert_eq!(listed_size(beta, "gamma", "shared"), Some(gamma.du("shared")));
    assert_eq!(status_of(alpha, "alpha"), "online");
    // The dashboard's /hosts page says the same, row by row.
    let (status, _, page) = alpha.server().call("GET", "/hosts");
    let page = page.as_str().unwrap_or_default().to_owned();
    assert_eq!(status, 200, "{page}");
    let row = |id: &str| -> String {
        let start = page
            .find(&format!("data-host=\"{id}\""))
            .unwrap_or_else(|| panic!("no row for {id}: {page}"));
        page[start..].split("</tr>").next().unwrap().to_owned()
    };
    for (id, liveness) in [("alpha", "online"), ("beta", "online"), ("gamma", "offline")] {
        let row = row(id);
        assert!(row.contains(&format!(">{liveness}</span>")), "{row}");
        assert!(row.contains("data-field=\"volumes\">2<"), "{row}");
    }
    assert!(row("alpha").contains("(this server)"), "{}", row("alpha"));
    // Nobody else ran gamma's queued run.
    let (_, _, waiting) = alpha.server().call("GET", queued["status_url"].as_str().unwrap());
    assert_eq!(waiting["status"], "queued", "{waiting}");

    // Restarted with the same id (the lease died with it), gamma runs it.
    gamma.start(&url);
    let run =
        gamma.server().follow(queued["status_url"].as_str().unwrap(), Duration::from_secs(90));
    assert_eq!(
        (run["status"].as_str(), run["host"].as_str()),
        (Some("completed"), Some("gamma")),
        "{run}"
    );
    assert_eq!(listed_size(alpha, "gamma", "only-gamma"), Some(gamma.du("only-gamma")));
    wait_until(Duration::from_secs(10), "gamma online again", || {
        (status_of(beta, "gamma") == "online").then_some(())
    });
    // No run of another host was touched.
    assert_eq!((runs_of(alpha, "alpha"), runs_of(alpha, "beta")), others_before);
}

/// Statements PostgreSQL ran in the database at `url` so far, from
/// `pg_stat_statements` (the README's test command preloads it), besides
/// the reads of that view.
fn statements(url: &str) -> (i64, String) {
    let query = "SELECT calls || ' ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 90) \
                 FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC";
    let output = std::process::Command::new("psql")
        .args([url, "-XAtqc", query])
        .output()
        .expect("psql runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let total = text.lines().filter_map(|line| line.split(' ').next()?.parse::<i64>().ok()).sum();
    (total, text)
}

#[test]
fn an_idle_host_with_two_workers_sends_at_most_ten_statements_a_minute_to_postgres() {
    let database = PgDatabase::create();
    let url = database.url().to_owned();
    let status = std::process::Command::new("psql")
        .args([url.as_str(), "-Xqc", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"])
        .status()
        .unwrap();
    assert!(status.success(), "pg_stat_statements is not available (shared_preload_libraries)");
    // Its own daemon, so the other tests' volumes and containers send it no events.
    let daemon = PrivateDaemon::start();
    daemon.docker(&["volume", "create", "idle"]);
    let dir = TempDir::new("it-fleet-idle");
    let host = daemon.host();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("DOCKER_HOST", host.as_str()),
        ("VOLSCAN_HOST_ID", "idle"),
        ("SCAN_CONCURRENCY", "2"),
        ("LIFECYCLE_ENABLED", "false"),
        ("RUST_LOG", "info"),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    // Start-up (migrations, registration, the first periodic batch) settles.
    std::thread::sleep(Duration::from_secs(10));
    let reset = "SELECT pg_stat_statements_reset(0, \
                 (SELECT oid FROM pg_database WHERE datname = current_database()), 0)";
    let status = std::process::Command::new("psql")
        .args([url.as_str(), "-Xqc", reset])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // Long enough for the once-a-minute polls and the five-minute filesystem
    // store to count at their rate, not by where the window's edges fall.
    let counting = Instant::now();
    std::thread::sleep(Duration::from_secs(150));
    let (sent, breakdown) = statements(&url);
    let per_minute = sent as f64 * 60.0 / counting.elapsed().as_secs_f64();
    eprintln!(
        "fleet: an idle host sent {sent} statements in {:.1?} ({per_minute:.1} a minute):\n{breakdown}",
        counting.elapsed()
    );
    assert!(per_minute <= 10.0, "{per_minute:.1} statements a minute:\n{breakdown}");
    // It was idle, not broken: the heartbeat kept it online.
    let hosts = server.call("GET", "/api/v1/hosts").2;
    assert_eq!(hosts[0]["status"], "online", "{hosts}");
}

/// Starts `volscan-server` with `vars` and waits (at most 30 s) for it to
/// exit; its exit status and everything it printed.
fn refused(vars: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let port = format!("127.0.0.1:{}", crate::support::free_port());
    let mut all = vars.to_vec();
    all.push(("VOLSCAN_BIND", &port));
    let mut child = server(&all).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let exit = wait_until(Duration::from_secs(30), "the second process to exit", || {
        child.try_wait().unwrap()
    });
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (exit, said)
}

/// The settings of a server that only holds `host`'s lease on the database
/// at `url`: no Docker Engine, no scans, a 1 s heartbeat.
fn lease_only<'a>(url: &'a str, host: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("DATABASE_URL", url),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        ("VOLSCAN_HOST_ID", host),
        ("VOLSCAN_HEARTBEAT_INTERVAL", HEARTBEAT),
        ("SCAN_ENABLED", "false"),
    ]
}

#[test]
fn the_host_lease_is_taken_again_after_postgres_restarts() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let dir = TempDir::new("it-fleet-lease");
    let vars = lease_only(&url, "solo");
    let server_process = ServerProcess::start(&vars, dir.path());
    // The restart ends the session holding the advisory lock.
    cluster.stop();
    std::thread::sleep(Duration::from_secs(2));
    cluster.resume();
    let restarted = Instant::now();
    wait_until(Duration::from_secs(30), "the lease taken again", || {
        server_process.log_text().contains("took it again").then_some(())
    });
    eprintln!(
        "fleet: the lease was taken again {:?} after PostgreSQL came back",
        restarted.elapsed()
    );
    let (exit, said) = refused(&vars);
    assert!(!exit.success(), "{said}");
    assert!(said.contains("host id \"solo\" is already served by a live volscan-server"), "{said}");
    let (status, _, hosts) = server_process.call("GET", "/api/v1/hosts");
    assert_eq!((status, hosts[0]["status"].as_str()), (200, Some("online")), "{hosts}");
}

#[test]
fn a_server_whose_lease_another_process_took_shuts_down() {
    let database = PgDatabase::create();
    let url = database.url().to_owned();
    let dir = TempDir::new("it-fleet-lease-lost");
    let vars = lease_only(&url, "twin");
    let mut first = ServerProcess::start(&vars, dir.path());
    // As a database restart would: every session of the server ends, and in
    // the same breath another session takes the host's lock (the key the
    // lease uses), before the server can take it again.
    let sql = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid(); \
               SELECT pg_advisory_lock(hashtextextended('volscan host ' || 'twin', 0)); \
               SELECT pg_sleep(60);";
    let mut other = std::process::Command::new("psql")
        .args([url.as_str(), "-Xqc", sql])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let exit = wait_until(Duration::from_secs(30), "the server to stop", || first.exited());
    let _ = other.kill();
    let _ = other.wait();
    let log = first.log_text();
    assert!(!exit.success(), "{log}");
    assert!(log.contains("another process took this host id"), "{log}");
    assert!(log.contains("host id \"twin\" is already served"), "{log}");
}
