//! `cargo xtask bench-http`: load on the HTTP API with `wrk`, against the
//! release server over a database filled with 1,000 volumes and 1,000,000
//! `volume_stats` rows.
//!
//! It reports requests per second for `GET /api/v1/volumes` and for
//! `GET /api/v1/scheduler/status` next to a bare actix handler measured in
//! the same run, and the 99th percentile latency of one volume's history.
//! The server is pointed at a Docker socket that does not exist, so the
//! reconcile cannot mark the generated volumes removed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::Connection;
use diesel::connection::SimpleConnection;

const VOLUMES: u32 = 1000;
const ROWS: u32 = 1_000_000;

const USAGE: &str = "usage: cargo xtask bench-http [--database-url URL] [--seconds N]
  --database-url URL   sqlite://PATH (default: a fresh file under target/bench) or postgres://… (an empty database)
  --seconds N          seconds per wrk run (default 10)";

fn fill_sql(postgres: bool) -> String {
    let series = |n: u32| {
        if postgres {
            format!("generate_series(1::bigint, {n}) AS s(n)")
        } else {
            format!(
                "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s) AS s"
            )
        }
    };
    let at = |seconds: &str| {
        if postgres {
            format!("TIMESTAMP '2026-01-01 00:00:00' + ({seconds}) * INTERVAL '1 second'")
        } else {
            format!("datetime('2026-01-01 00:00:00', '+' || ({seconds}) || ' seconds')")
        }
    };
    // Scan ids are UUIDs: a fixed head and the row number as the last group.
    let scan_id = if postgres {
        "'00000000-0000-4000-8000-' || lpad(n::text, 12, '0')"
    } else {
        "'00000000-0000-4000-8000-' || printf('%012d', n)"
    };
    format!(
        "DELETE FROM volume_stats; DELETE FROM scan_runs; DELETE FROM volumes;
         INSERT INTO volumes (name, driver, mountpoint, kind, labels, first_seen_at, last_seen_at)
           SELECT 'bench-' || n, 'local', '/nonexistent/bench-' || n, 'volume', '{{}}', {t0}, {t0} FROM {volumes};
         INSERT INTO volume_stats (volume_name, size_bytes, apparent_bytes, file_count, dir_count, error_count,
                                   scan_method, duration_ms, scan_id, ts, created_at, updated_at)
           SELECT 'bench-' || (n % {VOLUMES} + 1), n * 4096, n * 4000, n % 1000, 1, 0, 'native', 5,
                  {scan_id}, {ts}, {ts}, {ts} FROM {rows};",
        t0 = at("0"),
        volumes = series(VOLUMES),
        rows = series(ROWS),
        ts = at("n"),
    )
}

fn fill(url: &str) -> anyhow::Result<()> {
    let repo =
        volscan_repo::DieselRepository::connect(url, 1).context("failed to open the database")?;
    repo.migrate().context("failed to migrate")?;
    let started = Instant::now();
    if url.starts_with("postgres") {
        let mut conn = diesel::PgConnection::establish(url)?;
        conn.batch_execute(&fill_sql(true))?;
        conn.batch_execute("ANALYZE")?;
    } else {
        let path = url.trim_start_matches("sqlite://");
        let mut conn = diesel::SqliteConnection::establish(path)?;
        conn.batch_execute(&fill_sql(false))?;
        conn.batch_execute("ANALYZE")?;
    }
    eprintln!("filled {VOLUMES} volumes and {ROWS} volume_stats rows in {:.1?}", started.elapsed());
    Ok(())
}

pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP answer read to the end: status, head (lower-cased), body, and
/// how long from connecting until the last byte.
pub(crate) struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    pub took: Duration,
}

/// One `GET path` over a fresh connection (at most two minutes), asking for
/// gzip when `gzip`.
pub(crate) fn get(port: u16, path: &str, gzip: bool) -> anyhow::Result<Answer> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let encoding = if gzip { "Accept-Encoding: gzip\r\n" } else { "" };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{encoding}Connection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).with_context(|| format!("GET {path}"))?;
    let took = started.elapsed();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").context("no head")?;
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Answer { status, head, body: answer[head_end + 4..].to_vec(), took })
}

/// One `GET path` that must answer 200.
fn warm(port: u16, path: &str) -> anyhow::Result<()> {
    let answer = get(port, path, false)?;
    if answer.status != 200 {
        bail!("GET {path}: {}", answer.head);
    }
    Ok(())
}

/// The release server on 127.0.0.1:`port` over `url`, with periodic scans
/// off and a Docker socket that does not exist (so the reconcile cannot mark
/// generated volumes removed); killed when dropped.
pub(crate) fn release_server(
    root: &std::path::Path,
    url: &str,
    port: u16,
) -> anyhow::Result<Running> {
    Ok(Running(
        Command::new(root.join("target/release/volscan-server"))
            .env_clear()
            .env("DATABASE_URL", url)
            .env("VOLSCAN_BIND", format!("127.0.0.1:{port}"))
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("SCAN_ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("failed to start the server")?,
    ))
}

pub(crate) fn wait_for(port: u16, path: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} for {path}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs wrk and returns (requests per second, p99 latency in ms).
fn wrk(url: &str, seconds: u32, connections: u32) -> anyhow::Result<(f64, f64)> {
    let output = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", url])
        .output()
        .context("wrk is not installed (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(!text.contains("Non-2xx"), "non-2xx answers from {url}:\n{text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .and_then(|v| {
            let (number, unit) = v.split_at(v.find(|c: char| c.is_alphabetic())?);
            let number: f64 = number.parse().ok()?;
            Some(match unit {
                "us" => number / 1000.0,
                "ms" => number,
                "s" => number * 1000.0,
                _ => return None,
            })
        })
        .with_context(|| format!("no 99% latency in wrk output:\n{text}"))?;
    Ok((rps, p99))
}

pub fn bench_http(args: &[String]) -> anyhow::Result<()> {
    let mut url = None;
    let mut seconds = 10;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database-url" => url = Some(args.next().context(USAGE)?.clone()),
            "--seconds" => seconds = args.next().context(USAGE)?.parse().context(USAGE)?,
            _ => bail!("{USAGE}"),
        }
    }
    let root = crate::root();
    let url = match url {
        Some(url) => url,
        None => {
            let path = root.join("target/bench/http.db");
            std::fs::create_dir_all(root.join("target/bench"))?;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            format!("sqlite://{}", path.display())
        }
    };
    let mut build = crate::cargo();
    build.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "volscan-server",
        "-p",
        "volscan-http",
        "--examples",
        "--bins",
    ]);
    crate::run("build the release server and the bare handler", build)?;
    fill(&url)?;

    let (port, bare_port) = (18190, 18191);
    let server = release_server(&root, &url, port)?;
    let bare = Running(
        Command::new(root.join("target/release/examples/bare"))
            .arg(format!("127.0.0.1:{bare_port}"))
            .stdout(Stdio::null())
            .spawn()
            .context("failed to start the bare handler")?,
    );
    wait_for(port, "the server")?;
    wait_for(bare_port, "the bare handler")?;
    let base = format!("http://127.0.0.1:{port}/api/v1");
    // The goals are for answers served from the cache: the first read of a
    // data version computes every volume's growth from a month of stats.
    for path in ["volumes", "summary", "filesystems"] {
        let started = Instant::now();
        warm(port, &format!("/api/v1/{path}"))?;
        eprintln!("first GET /{path}: {:.1?}", started.elapsed());
    }
    let (volumes, _) = wrk(&format!("{base}/volumes"), seconds, 32)?;
    let (summary_rps, summary_p99) = wrk(&format!("{base}/summary"), seconds, 8)?;
    let (filesystems_rps, filesystems_p99) = wrk(&format!("{base}/filesystems"), seconds, 8)?;
    let (status, _) = wrk(&format!("{base}/scheduler/status"), seconds, 32)?;
    let (bare_rps, _) = wrk(&format!("http://127.0.0.1:{bare_port}/bare"), seconds, 32)?;
    let (history_rps, history_p99) =
        wrk(&format!("{base}/volumes/bench-500/history?limit=100"), seconds, 8)?;
    drop((server, bare));
    let backend = if url.starts_with("postgres") { "postgres" } else { "sqlite" };
    println!(
        "\nHTTP load on {backend}, {VOLUMES} volumes, {ROWS} volume_stats rows, wrk -t2, {seconds} s each"
    );
    println!("| request | req/s | goal |");
    println!("| --- | --- | --- |");
    println!("| GET /volumes (1,000 volumes) | {volumes:.0} | ≥ 5,000 |");
    println!(
        "| GET /scheduler/status | {status:.0} ({:.0} % of bare) | ≥ 50 % of bare |",
        100.0 * status / bare_rps
    );
    println!("| bare actix handler | {bare_rps:.0} | |");
    println!("| GET /summary | {summary_rps:.0}, p99 {summary_p99:.2} ms | p99 < 20 ms |");
    println!(
        "| GET /filesystems | {filesystems_rps:.0}, p99 {filesystems_p99:.2} ms | p99 < 20 ms |"
    );
    println!(
        "| GET /volumes/bench-500/history?limit=100 | {history_rps:.0}, p99 {history_p99:.2} ms | p99 < 20 ms |"
    );
    Ok(())
}
