//! `cargo xtask bench-dashboard`: the dashboard's overview with 1,000
//! volumes and 30 days of history (a stat every 6 hours: 120,000
//! `volume_stats` rows, plus a week of filesystem samples), served by the
//! release server.
//!
//! It reports the latency of `GET /` measured by a client on loopback over
//! sequential requests (server-side render plus a loopback round trip; the
//! goal is p99 < 30 ms), the requests that read the database again after
//! the data cache's TTL apart, the first request of a data version apart
//! (it computes every volume's growth and sparkline), and the page's weight
//! compressed with gzip as a browser asks for it, with and without its
//! assets (goal: < 250 KB without cached assets).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::Connection;
use diesel::connection::SimpleConnection;

use crate::bench_http::{release_server, wait_for};

const VOLUMES: u32 = 1000;
const POINTS: u32 = 120;
const REQUESTS: usize = 300;

/// SQLite statements filling the tables (times relative to now).
fn fill_sql() -> String {
    let series = |n: u32| {
        format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) SELECT n FROM s) AS s"
        )
    };
    let rows = VOLUMES * POINTS;
    format!(
        "DELETE FROM volume_stats; DELETE FROM scan_runs; DELETE FROM volumes; DELETE FROM filesystem_samples;
         INSERT INTO volumes (name, driver, mountpoint, kind, labels, first_seen_at, last_seen_at,
                              in_use, unused_since, filesystem_id)
           SELECT 'bench-volume-' || printf('%04d', n), 'local', '/nonexistent/bench-' || n, 'volume',
                  '{{}}', datetime('now', '-31 days'), datetime('now'),
                  n % 4 <> 0, CASE WHEN n % 4 = 0 THEN datetime('now', '-3 days') END, 'fs-bench'
           FROM {volumes};
         INSERT INTO volume_stats (volume_name, size_bytes, apparent_bytes, file_count, dir_count, error_count,
                                   scan_method, duration_ms, scan_id, ts, created_at, updated_at)
           SELECT 'bench-volume-' || printf('%04d', n % {VOLUMES} + 1),
                  (n % {VOLUMES} + 1) * 1048576 + (n / {VOLUMES}) * 4096 * (n % 7),
                  (n % {VOLUMES} + 1) * 1000000 + (n / {VOLUMES}) * 4000 * (n % 7),
                  n % 5000, 10, 0, 'native', 5,
                  '00000000-0000-4000-8000-' || printf('%012d', n),
                  datetime('now', '-' || ((n / {VOLUMES}) * 6) || ' hours'),
                  datetime('now'), datetime('now')
           FROM {rows};
         INSERT INTO filesystem_samples (filesystem_id, mount_point, fs_type, total_bytes, avail_bytes, ts)
           SELECT 'fs-bench', '/var/lib/docker', 'ext4', 1099511627776, 549755813888 - n * 10485760,
                  datetime('now', '-' || (n * 10) || ' minutes')
           FROM {samples};",
        volumes = series(VOLUMES),
        rows = series(rows),
        samples = series(8 * 144),
    )
}

/// One `GET path` with `Accept-Encoding: gzip`; the status, how long until
/// the whole answer arrived, and the body's size on the wire (a chunked body
/// carries its chunk sizes too: a few bytes per chunk).
fn get(port: u16, path: &str) -> anyhow::Result<(u16, Duration, usize)> {
    let answer = crate::bench_http::get(port, path, true)?;
    if !answer.head.contains("content-encoding: gzip") {
        bail!("GET {path} was not compressed:\n{}", answer.head);
    }
    Ok((answer.status, answer.took, answer.body.len()))
}

/// The `n`-th percentile of sorted durations, in milliseconds.
fn percentile(sorted: &[Duration], n: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * n / 100.0).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

pub fn bench_dashboard() -> anyhow::Result<()> {
    let root = crate::root();
    let path = root.join("target/bench/dashboard.db");
    std::fs::create_dir_all(root.join("target/bench"))?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let url = format!("sqlite://{}", path.display());
    let mut build = crate::cargo();
    build.args(["build", "--release", "--quiet", "-p", "volscan-server", "--bins"]);
    crate::run("build the release server", build)?;
    let repo =
        volscan_repo::DieselRepository::connect(&url, 1).context("failed to open the database")?;
    repo.migrate().context("failed to migrate")?;
    drop(repo);
    let started = Instant::now();
    let mut conn = diesel::SqliteConnection::establish(&path.display().to_string())?;
    conn.batch_execute(&fill_sql())?;
    conn.batch_execute("ANALYZE")?;
    drop(conn);
    eprintln!(
        "filled {VOLUMES} volumes, {} volume_stats rows in {:.1?}",
        VOLUMES * POINTS,
        started.elapsed()
    );

    let port = 18192;
    let _server = release_server(&root, &url, port)?;
    wait_for(port, "the server")?;
    let (status, first, _) = get(port, "/")?;
    anyhow::ensure!(status == 200, "GET / answered {status}");
    let mut page = Vec::with_capacity(REQUESTS);
    let mut weight = 0;
    for _ in 0..REQUESTS {
        let (status, took, bytes) = get(port, "/")?;
        anyhow::ensure!(status == 200, "GET / answered {status}");
        page.push(took);
        weight = bytes;
    }
    page.sort();
    // The data behind the page is kept for the server's cache TTL (5 s);
    // a request after it reads the database again.
    let mut reread = Vec::new();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(5_200));
        reread.push(get(port, "/")?.1);
    }
    reread.sort();
    let mut sorted_by_delta = Vec::with_capacity(REQUESTS / 3);
    for _ in 0..REQUESTS / 3 {
        sorted_by_delta.push(get(port, "/?sort=delta_7d:desc")?.1);
    }
    sorted_by_delta.sort();
    let overview = String::from_utf8(crate::bench_http::get(port, "/", false)?.body)?;
    let rows = overview.matches("<tr data-volume=").count();
    let sparks = overview.matches("<svg class=\"spark\"").count();
    anyhow::ensure!(rows == VOLUMES as usize, "the overview lists {rows} volumes");
    let mut assets = 0;
    for asset in overview.split("\"/assets/").skip(1).filter_map(|rest| rest.split('"').next()) {
        assets += get(port, &format!("/assets/{asset}"))?.2;
    }
    println!(
        "\nDashboard overview, {VOLUMES} volumes × 30 days ({} stats rows), SQLite, release build, \
         {REQUESTS} sequential requests on loopback",
        VOLUMES * POINTS
    );
    println!("| measure | value | goal |");
    println!("| --- | --- | --- |");
    println!(
        "| GET / p50 / p99 | {:.2} ms / {:.2} ms | p99 < 30 ms |",
        percentile(&page, 50.0),
        percentile(&page, 99.0)
    );
    println!(
        "| GET /?sort=delta_7d:desc p50 / p99 | {:.2} ms / {:.2} ms | |",
        percentile(&sorted_by_delta, 50.0),
        percentile(&sorted_by_delta, 99.0)
    );
    println!(
        "| GET / reading the database again (after the 5 s TTL), median / max of {} | {:.2} ms / {:.2} ms | |",
        reread.len(),
        percentile(&reread, 50.0),
        percentile(&reread, 100.0)
    );
    println!("| first GET / of a data version (growth of every volume) | {:.1?} | |", first);
    println!("| rows, sparklines drawn | {rows}, {sparks} | |");
    println!(
        "| page, gzip | {:.1} KB (HTML {:.1} KB uncompressed) | |",
        weight as f64 / 1000.0,
        overview.len() as f64 / 1000.0
    );
    println!(
        "| page + assets, gzip, nothing cached | {:.1} KB | < 250 KB |",
        (weight + assets) as f64 / 1000.0
    );
    Ok(())
}
