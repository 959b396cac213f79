//! SPEC §8 against real components.
//!
//! - The real server over real Docker volumes, on SQLite and on PostgreSQL:
//!   growth from a seeded history plus real scans (`delta_24h`,
//!   `fastest_growing`), the directory breakdown of the volume that grew
//!   against `du -sB1 -x`, and unused volumes following real containers.
//! - A real filesystem (a 64 MiB tmpfs) filled at a steady rate over
//!   simulated time: the fill date against the truth.
//! - Directory names that are hard to carry (a newline, invalid UTF-8,
//!   `..`-like names, a backslash, the longest name Linux allows) through the
//!   native and the `du` engine and the API. A 4 KB name cannot exist: Linux
//!   limits one name to 255 bytes (`NAME_MAX`), so that is the longest tested.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use volscan_domain::{EngineChain, Repository, ScanMethod, Timestamp, VolumeName};
use volscan_repo::DieselRepository;
use volscan_scheduler::{Clock, SchedulerBuilder, SchedulerOptions, StaticSource};
use volscan_testing::docker::{TestContainer, TestVolume, test_image};
use volscan_testing::{PgDatabase, TempDir};

use crate::support::{ServerProcess, du_bytes, everything_but, seed, unique_prefix};

const MIB: u64 = 1024 * 1024;

/// Writes `bytes` of incompressible-enough data to `path`.
fn write(path: &Path, bytes: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let block: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut data = Vec::with_capacity(bytes as usize);
    while (data.len() as u64) < bytes {
        data.extend_from_slice(&block);
    }
    data.truncate(bytes as usize);
    std::fs::write(path, data).unwrap();
}

/// Polls `GET path` until `done` holds for its body; returns it.
fn until(server: &ServerProcess, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, body) = server.call("GET", path);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: {status} {body}\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Scans `volume` through the API and waits for the run to complete.
fn scan(server: &ServerProcess, volume: &str) -> Value {
    let trigger = server.trigger(volume);
    let run = server.follow(trigger["status_url"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(run["status"], "completed", "{run}");
    run
}

fn growth_directories_and_unused_volumes(url: &str) {
    let prefix = unique_prefix("ins");
    let dir = TempDir::new("it-insights");
    let grows = TestVolume::create_named(format!("{prefix}grows"), &[]);
    let idle = TestVolume::create_named(format!("{prefix}idle"), &[]);
    write(&grows.mountpoint().join("logs/a.log"), MIB);
    write(&grows.mountpoint().join("data/db"), 100_000);
    write(&idle.mountpoint().join("old"), 300_000);

    // History as an older volscan would have left it: three days of slow growth.
    let repo = DieselRepository::connect(url, 2).unwrap();
    repo.migrate().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let base = du_bytes(grows.mountpoint());
    let seeded = |quarters: u64| base * quarters / 4;
    for (hours, quarters) in [(72, 1), (48, 2), (25, 3)] {
        seed(&repo, &grows, seeded(quarters), now - time::Duration::hours(hours));
    }

    let skip = everything_but(&prefix);
    let vars = [
        ("DATABASE_URL", url),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", skip.as_str()),
        ("SCAN_METHODS_ORDER", "native"),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    scan(&server, grows.name());
    let logs = grows.mountpoint().join("logs");
    let logs_before = du_bytes(&logs);
    // The volume grows between two scans, in one directory.
    write(&logs.join("new/b.log"), 2 * MIB);
    let run = scan(&server, grows.name());
    let size = du_bytes(grows.mountpoint());
    let logs_after = du_bytes(&logs);

    let volume_path = format!("/api/v1/volumes/{}", grows.name());
    let (_, _, detail) = server.call("GET", &volume_path);
    assert_eq!(detail["latest"]["size_bytes"].as_u64(), Some(size), "{detail}");
    let growth = &detail["growth"];
    // Against the newest stat at or before 24 h before the newest one: the seed at -25 h.
    assert_eq!(growth["delta_24h"].as_i64(), Some((size - seeded(3)) as i64), "{detail}");
    assert_eq!(growth["delta_7d"].as_i64(), None, "no stat 7 days back: {detail}");
    assert!(growth["rate_bytes_per_day"].as_f64().unwrap() > 0.0, "{detail}");
    assert_eq!(growth["as_of"], run["completed_at"], "{detail}");

    let (_, _, summary) = server.call("GET", "/api/v1/summary");
    let fastest: Vec<&str> = summary["fastest_growing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(fastest.contains(&grows.name()), "{summary}");

    // The directory that grew, with its delta, equal to du of that directory.
    let (status, _, dirs) = server.call("GET", &format!("{volume_path}/dirs?depth=1&compare=24h"));
    assert_eq!(status, 200, "{dirs}");
    assert_eq!(dirs["scan_id"], run["scan_id"], "{dirs}");
    let entry = |path: &str| {
        dirs["entries"].as_array().unwrap().iter().find(|e| e["path"] == path).cloned()
    };
    let logs_entry = entry("logs").unwrap_or_else(|| panic!("no logs entry: {dirs}"));
    assert_eq!(logs_entry["size_bytes"].as_u64(), Some(logs_after), "{dirs}");
    assert_eq!(logs_entry["delta_bytes"].as_i64(), Some((logs_after - logs_before) as i64));
    let data_entry = entry("data").unwrap();
    assert_eq!(data_entry["size_bytes"].as_u64(), Some(du_bytes(&grows.mountpoint().join("data"))));
    assert_eq!(data_entry["delta_bytes"].as_i64(), Some(0), "{dirs}");
    let (_, _, deeper) = server.call("GET", &format!("{volume_path}/dirs?depth=2"));
    let deep: Vec<&str> =
        deeper["entries"].as_array().unwrap().iter().filter_map(|e| e["path"].as_str()).collect();
    assert!(deep.contains(&"logs/new"), "{deeper}");

    // A volume used only by a stopped container is in use; once its last
    // container is removed it is unused, since then.
    let idle_path = format!("/api/v1/volumes/{}", idle.name());
    let stopped = TestContainer::create(test_image(), &[(idle.name(), "/data")], false);
    until(&server, &idle_path, "in use by a stopped container", |v| v["in_use"] == true);
    scan(&server, idle.name());
    let removed_at = time::OffsetDateTime::now_utc();
    drop(stopped);
    let unused =
        until(&server, &idle_path, "unused after its container went", |v| v["in_use"] == false);
    let since = time::OffsetDateTime::parse(
        unused["unused_since"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((since - removed_at).abs() < time::Duration::seconds(30), "{unused}");
    assert!(unused["last_used_at"].is_string(), "{unused}");
    let (_, _, listed) = server.call("GET", "/api/v1/volumes?unused=true");
    let listed = listed.as_array().unwrap();
    // "grows" has never had a container either.
    let names: Vec<&str> = listed.iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, [grows.name(), idle.name()], "{listed:?}");
    let (_, _, in_use) = server.call("GET", "/api/v1/volumes?unused=false");
    assert!(in_use.as_array().unwrap().is_empty(), "{in_use}");
    let summary = until(&server, "/api/v1/summary", "the idle volume is reclaimable", |s| {
        s["reclaimable_bytes"].as_u64() >= Some(du_bytes(idle.mountpoint()))
    });
    assert!(summary["unused_count"].as_u64() >= Some(1), "{summary}");

    // The filesystem holding both volumes, from the real probe.
    let (_, _, filesystems) = server.call("GET", "/api/v1/filesystems");
    let holding = filesystems
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == detail["filesystem_id"])
        .unwrap_or_else(|| panic!("no filesystem {}: {filesystems}", detail["filesystem_id"]));
    assert!(holding["volume_count"].as_u64() >= Some(2), "{holding}");
    let (total, avail) = (holding["total_bytes"].as_u64(), holding["avail_bytes"].as_u64());
    assert!(avail.is_some() && avail <= total, "{holding}");
    assert!(holding["full_at"].is_null(), "never a fill date from so few samples: {holding}");

    // The same figures in the scrape: the growth rate, the unused volumes and
    // the filesystem.
    let (_, _, metrics) = server.call("GET", "/metrics");
    let metrics = metrics.as_str().unwrap().to_owned();
    let series = format!("volscan_volume_growth_bytes_per_day{{volume=\"{}\"}} ", grows.name());
    assert!(metrics.contains(&series), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("volscan_volumes_unused ")), "{metrics}");
    let fs_series = format!("volscan_filesystem_avail_bytes{{filesystem={}", holding["id"]);
    assert!(metrics.contains(&fs_series), "{metrics}");
}

#[test]
fn growth_directories_and_unused_volumes_on_sqlite() {
    let db = TempDir::new("it-insights-db");
    growth_directories_and_unused_volumes(&db.sqlite_url());
}

#[test]
fn growth_directories_and_unused_volumes_on_postgres() {
    let db = PgDatabase::create();
    growth_directories_and_unused_volumes(db.url());
}

/// A wall clock the test steps by hand.
struct ManualClock(Mutex<Timestamp>);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

/// A tmpfs of `size` mounted on a new directory, unmounted when dropped.
struct Tmpfs {
    _dir: TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new("it-tmpfs");
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "volscan-test"])
            .arg(&path)
            .status()
            .expect("mount runs (the tests run as root)");
        assert!(status.success(), "mounting a tmpfs failed; the tests need root");
        Tmpfs { _dir: dir, path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// The body of `GET /api/v1/filesystems` from the app over `repo`.
async fn filesystems(
    repo: &Arc<dyn Repository>,
    source: &Arc<StaticSource>,
    scheduler: &volscan_scheduler::SchedulerHandle,
) -> Value {
    let state = volscan_http::AppState::new(
        repo.clone(),
        source.clone(),
        scheduler.clone(),
        None,
        60,
        None,
    );
    let app = actix_web::test::init_service(
        actix_web::App::new().configure(volscan_http::configure(state)),
    )
    .await;
    let request = actix_web::test::TestRequest::get().uri("/api/v1/filesystems").to_request();
    actix_web::test::call_and_read_body_json(&app, request).await
}

#[actix_web::test]
async fn a_filesystem_filling_at_a_steady_rate_gets_the_right_fill_date() {
    let fs = Tmpfs::mount("64m");
    let volume = fs.path.join("volume");
    std::fs::create_dir(&volume).unwrap();
    let db = TempDir::new("it-fill-db");
    let repo = DieselRepository::connect(&db.sqlite_url(), 4).unwrap();
    repo.migrate().unwrap();
    let repo: Arc<dyn Repository> = Arc::new(repo);
    let name = VolumeName::new("filling").unwrap();
    let source = Arc::new(StaticSource::new([(name.clone(), volume.clone())]));
    let t0 = time::macros::datetime!(2026-06-01 00:00:00 UTC);
    let clock = Arc::new(ManualClock(Mutex::new(t0)));
    let engines = EngineChain::new(vec![volscan_scan::engine(
        ScanMethod::Native,
        &std::env::var_os("PATH").unwrap_or_default(),
    )]);
    let options =
        SchedulerOptions { periodic: false, retention: None, ..SchedulerOptions::default() };
    let scheduler = SchedulerBuilder::new(source.clone(), engines, Arc::clone(&repo), options)
        .clock(clock.clone())
        .filesystems(Arc::new(volscan_scan::StatvfsProbe::default()))
        .start()
        .await
        .unwrap();

    // 3 MiB an hour; one scan (and sample) an hour, twelve hours.
    let rate = 3 * MIB;
    let mut last = None;
    for hour in 0..12u64 {
        *clock.0.lock().unwrap() = t0 + time::Duration::hours(hour as i64);
        write(&volume.join(format!("part{hour:02}")), rate);
        let run = scheduler.scan_volume(name.clone()).await.unwrap().run;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !repo.run(run.scan_id).unwrap().unwrap().status.is_final() {
            assert!(Instant::now() < deadline, "scan {hour} did not finish");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        // The details are stored right after the outcome.
        let deadline = Instant::now() + Duration::from_secs(10);
        while repo.filesystem_samples(None, t0).unwrap().len() < hour as usize + 1 {
            assert!(Instant::now() < deadline, "sample {hour} was not stored");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let listed = filesystems(&repo, &source, &scheduler).await;
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["mount_point"] == fs.path.to_str().unwrap())
            .cloned()
            .unwrap_or_else(|| panic!("the tmpfs is not listed: {listed}"));
        if hour < 3 {
            // Never a date from two or three points.
            assert!(entry["full_at"].is_null(), "hour {hour}: {entry}");
        }
        last = Some(entry);
    }
    let entry = last.unwrap();
    assert_eq!(entry["fs_type"], "tmpfs", "{entry}");
    assert_eq!(entry["volume_count"], 1, "{entry}");
    assert_eq!(entry["total_bytes"].as_u64(), Some(64 * MIB), "{entry}");
    // The truth: from the last sample's free space, 3 MiB an hour.
    let sampled_at = t0 + time::Duration::hours(11);
    let avail = entry["avail_bytes"].as_u64().unwrap();
    let truth = sampled_at + time::Duration::seconds_f64(avail as f64 / rate as f64 * 3600.0);
    let full_at = time::OffsetDateTime::parse(
        entry["full_at"].as_str().unwrap_or_else(|| panic!("no fill date: {entry}")),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let error = (full_at - truth).abs().as_seconds_f64() / (truth - sampled_at).as_seconds_f64();
    eprintln!("fill date {full_at}, truth {truth}: error {:.2} % of the time left", error * 100.0);
    assert!(error <= 0.10, "fill date {full_at}, truth {truth}: {entry}");
    assert_eq!(entry["trend"], "rising", "{entry}");
    scheduler.stop().await;
}

/// The names of `names` as the API shows them, with what they must be shown as.
fn hard_names() -> Vec<(Vec<u8>, String)> {
    let long = "n".repeat(255);
    vec![
        (b"line\nbreak".to_vec(), "line\\x0Abreak".to_owned()),
        (b"line\\x0abreak".to_vec(), "line\\\\x0abreak".to_owned()),
        (b"caf\xe9".to_vec(), "caf\\xE9".to_owned()),
        (b"...".to_vec(), "...".to_owned()),
        (b"..a".to_vec(), "..a".to_owned()),
        (b"(other)".to_vec(), "\\x28other)".to_owned()),
        (long.as_bytes().to_vec(), long.clone()),
    ]
}

fn hard_directory_names(method: &str) {
    let prefix = unique_prefix("names");
    let dir = TempDir::new("it-names");
    let db = TempDir::new("it-names-db");
    let volume = TestVolume::create_named(format!("{prefix}v"), &[]);
    let names = hard_names();
    for (i, (name, _)) in names.iter().enumerate() {
        let path = volume.mountpoint().join(OsStr::from_bytes(name));
        write(&path.join("file"), 10_000 * (i as u64 + 1));
    }
    let skip = everything_but(&prefix);
    let url = db.sqlite_url();
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", skip.as_str()),
        ("SCAN_METHODS_ORDER", method),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    scan(&server, volume.name());
    let (status, _, dirs) =
        server.call("GET", &format!("/api/v1/volumes/{}/dirs?depth=1", volume.name()));
    assert_eq!(status, 200, "{dirs}");
    let entries = dirs["entries"].as_array().unwrap();
    assert_eq!(entries.len(), names.len(), "{method}: {dirs}");
    for (name, shown) in &names {
        let entry = entries
            .iter()
            .find(|e| e["path"].as_str() == Some(shown.as_str()))
            .unwrap_or_else(|| panic!("{method}: {shown:?} missing: {dirs}"));
        let expected = du_bytes(&volume.mountpoint().join(OsStr::from_bytes(name)));
        assert_eq!(entry["size_bytes"].as_u64(), Some(expected), "{method}: {entry}");
    }
}

#[test]
fn hard_directory_names_round_trip_through_the_native_engine() {
    hard_directory_names("native");
}

#[test]
fn hard_directory_names_round_trip_through_du() {
    hard_directory_names("du");
}
