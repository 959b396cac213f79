//! `cargo xtask bench-fleet --database-url postgres://…`: 200 hosts on one
//! PostgreSQL (SPEC §10), simulated on this machine.
//!
//! The database (empty, on a server with `pg_stat_statements` in
//! `shared_preload_libraries` and room for about 300 connections) is filled
//! with 200 hosts of 50 volumes each and 30 days of stats (one every 6 hours:
//! 1.2M `volume_stats` rows). Then the `fleet` example of volscan-scheduler
//! runs the 200 hosts as real schedulers in one process (each with its own
//! host id, heartbeat, two workers and `LISTEN` connection; static sources),
//! and the release server joins as a 201st host, `hub`, whose HTTP API is
//! measured:
//!
//! - statements per second the whole idle fleet sends, from
//!   `pg_stat_statements` over `--seconds` (default 60) after a settling pause;
//! - the latency of `GET /api/v1/volumes?host=*` (10,000 volumes), median,
//!   p99 and max of `--requests` (default 200) sequential requests 50 ms
//!   apart (the answer is rendered again every 5 s, so renders count), and
//!   the time of one render (the first request);
//! - from a trigger through the hub for a volume of a simulated host until
//!   that host's worker started it (`started_at - queued_at` of the run), for
//!   20 triggers on 20 hosts.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};

use crate::bench_http::{Running, get, wait_for};

const HOSTS: u32 = 200;
const VOLUMES: u32 = 50;
/// Stats per volume: 30 days, one every 6 hours.
const POINTS: u32 = 120;
const PORT: u16 = 18_195;

const USAGE: &str =
    "usage: cargo xtask bench-fleet --database-url postgres://… [--seconds N] [--requests N]
  --database-url URL   an empty PostgreSQL database; the server needs pg_stat_statements in
                       shared_preload_libraries and max_connections of at least 300
  --seconds N          how long the idle fleet's statements are counted (default 60)
  --requests N         sequential GET /volumes?host=* requests timed (default 200)";

fn fill_sql() -> String {
    let rows = HOSTS * VOLUMES * POINTS;
    format!(
        "INSERT INTO hosts (id, name, started_at, last_seen_at, volscan_version)
           SELECT 'sim-' || lpad(h::text, 3, '0'), 'simulated', now(), now(), 'bench'
           FROM generate_series(0, {HOSTS} - 1) AS h;
         INSERT INTO volumes (host_id, name, driver, mountpoint, kind, labels, first_seen_at, last_seen_at)
           SELECT 'sim-' || lpad(h::text, 3, '0'), 'vol-' || lpad(v::text, 2, '0'), 'local',
                  '/nonexistent', 'volume', '{{}}', now() - INTERVAL '31 days', now()
           FROM generate_series(0, {HOSTS} - 1) AS h, generate_series(0, {VOLUMES} - 1) AS v;
         INSERT INTO volume_stats (host_id, volume_name, size_bytes, apparent_bytes, file_count,
                                   dir_count, error_count, scan_method, duration_ms, scan_id, ts,
                                   created_at, updated_at)
           SELECT 'sim-' || lpad((n / ({VOLUMES} * {POINTS}))::text, 3, '0'),
                  'vol-' || lpad((n / {POINTS} % {VOLUMES})::text, 2, '0'),
                  1000000 + (n % {POINTS}) * 4096, 1000000, 100, 1, 0, 'native', 5,
                  '00000000-0000-4000-8000-' || lpad(n::text, 12, '0'),
                  now() - (({POINTS} - n % {POINTS}) * INTERVAL '6 hours'),
                  now(), now()
           FROM generate_series(0::bigint, {rows} - 1) AS n;
         ANALYZE;"
    )
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Statements the database ran so far, besides the reads of
/// `pg_stat_statements` themselves.
fn statements(conn: &mut diesel::PgConnection) -> anyhow::Result<i64> {
    let rows: Vec<Count> = diesel::sql_query(
        "SELECT COALESCE(sum(calls), 0)::bigint AS n FROM pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND query NOT LIKE '%pg_stat_statements%'",
    )
    .load(conn)?;
    Ok(rows.first().map_or(0, |row| row.n))
}

/// One request over a fresh connection; the status and body.
fn request(method: &str, path: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", PORT))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").context("no head")?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null)))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis_between(from: &str, to: &str) -> anyhow::Result<f64> {
    let parse = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("not RFC 3339: {text}"))
    };
    Ok((parse(to)? - parse(from)?).as_seconds_f64() * 1000.0)
}

pub fn bench_fleet(args: &[String]) -> anyhow::Result<()> {
    let (mut url, mut seconds, mut requests) = (None, 60u64, 200usize);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database-url" => url = Some(args.next().context(USAGE)?.clone()),
            "--seconds" => seconds = args.next().context(USAGE)?.parse().context(USAGE)?,
            "--requests" => requests = args.next().context(USAGE)?.parse().context(USAGE)?,
            _ => bail!("{USAGE}"),
        }
    }
    let url = url.context(USAGE)?;
    if !url.starts_with("postgres") {
        bail!("{USAGE}");
    }
    let root = crate::root();
    let mut build = crate::cargo();
    build.args(["build", "--release", "--quiet", "-p", "volscan-server", "--bins"]);
    crate::run("build the release server", build)?;
    let mut build = crate::cargo();
    build.args(["build", "--release", "--quiet", "-p", "volscan-scheduler", "--example", "fleet"]);
    crate::run("build the fleet example", build)?;

    let repo =
        volscan_repo::DieselRepository::connect(&url, 1).context("failed to open the database")?;
    repo.migrate().context("failed to migrate")?;
    let mut conn = diesel::PgConnection::establish(&url)?;
    conn.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .context("pg_stat_statements is needed (shared_preload_libraries)")?;
    let started = Instant::now();
    conn.batch_execute(&fill_sql())?;
    eprintln!(
        "filled {HOSTS} hosts, {} volumes, {} volume_stats rows in {:.1?}",
        HOSTS * VOLUMES,
        HOSTS * VOLUMES * POINTS,
        started.elapsed()
    );

    let dir = root.join("target/bench/fleet-volume");
    std::fs::create_dir_all(&dir)?;
    for i in 0..10 {
        std::fs::write(dir.join(format!("f{i}")), vec![b'x'; 4096])?;
    }
    let started = Instant::now();
    let mut fleet = Command::new(root.join("target/release/examples/fleet"))
        .args([&url, &HOSTS.to_string(), &VOLUMES.to_string()])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start the fleet example")?;
    let mut ready = [0u8; 6];
    fleet.stdout.as_mut().context("no stdout")?.read_exact(&mut ready)?;
    let fleet = Running(fleet);
    eprintln!("{HOSTS} simulated hosts started in {:.1?}", started.elapsed());
    let hub = Running(
        Command::new(root.join("target/release/volscan-server"))
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("VOLSCAN_HOST_ID", "hub")
            .env("VOLSCAN_BIND", format!("127.0.0.1:{PORT}"))
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env("SCAN_ENABLED", "false")
            .env("RATE_LIMIT_RPM", "1000000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("failed to start the server")?,
    );
    wait_for(PORT, "the hub")?;

    // Idle: every host beating, its workers waiting on the signal.
    std::thread::sleep(Duration::from_secs(20));
    let before = statements(&mut conn)?;
    let counting = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let sent = statements(&mut conn)? - before;
    let counted = counting.elapsed();
    let per_second = sent as f64 / counted.as_secs_f64();

    // The fleet-wide list.
    let path = "/api/v1/volumes?host=*";
    let first = get(PORT, path, false)?;
    if first.status != 200 {
        bail!("GET {path}: {}", first.head);
    }
    let listed =
        serde_json::from_slice::<serde_json::Value>(&first.body)?.as_array().map_or(0, Vec::len);
    let rendered = first.took.as_secs_f64() * 1000.0;
    // Spread over more than the cache's 5 s, so re-renders count too.
    let mut took = Vec::with_capacity(requests);
    for _ in 0..requests {
        took.push(get(PORT, path, false)?.took.as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    took.sort_by(f64::total_cmp);

    // Trigger on the hub, start on the host.
    let mut waits = Vec::new();
    for h in (0..HOSTS).step_by((HOSTS / 20).max(1) as usize) {
        let (status, body) =
            request("POST", &format!("/api/v1/volumes/vol-07/scan?host=sim-{h:03}"))?;
        if status != 202 {
            bail!("trigger for sim-{h:03}: {status} {body}");
        }
        let url = body["status_url"].as_str().context("no status_url")?.to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        let run = loop {
            let (_, run) = request("GET", &url)?;
            if run["started_at"].is_string() {
                break run;
            }
            if Instant::now() > deadline {
                bail!("sim-{h:03} did not start its run within 30 s: {run}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (queued, started) = (run["queued_at"].as_str(), run["started_at"].as_str());
        waits.push(millis_between(queued.context("queued_at")?, started.context("started_at")?)?);
    }
    waits.sort_by(f64::total_cmp);
    drop((hub, fleet));

    println!(
        "\n{HOSTS} simulated hosts + 1 server on one PostgreSQL, {VOLUMES} volumes each, {POINTS} stats per volume"
    );
    println!("| measure | value | goal |");
    println!("| --- | --- | --- |");
    println!(
        "| statements/s, whole fleet idle ({sent} in {:.0} s) | {per_second:.1} | ≤ 50 |",
        counted.as_secs_f64()
    );
    println!(
        "| GET /volumes?host=* ({listed} volumes), {requests} requests 50 ms apart | median {:.1} ms, p99 {:.1} ms, max {:.1} ms | p99 < 100 ms |",
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took.last().copied().unwrap_or(0.0)
    );
    println!("| the same, rendered (first request; again once per 5 s) | {rendered:.1} ms | |");
    println!(
        "| trigger on the hub until its host started it, {} hosts | median {:.0} ms, max {:.0} ms | < 1 s |",
        waits.len(),
        percentile(&waits, 0.5),
        waits.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
