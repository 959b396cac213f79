//! Crash: the real server is killed with SIGKILL while at least 20 runs are
//! queued or running, then restarted; every accepted run must reach a final
//! state, none may stay `running`, each volume ends with a completed scan,
//! and no `scan_id` has two `volume_stats` rows. On both databases.
//!
//! Scans are held by a `du` placed first on `PATH` that waits while a gate
//! file exists, so each kill lands with scans running and runs queued.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use volscan_domain::{ReadRepository, RunFilter, ScanId, ScanStatus, VolumeName};
use volscan_repo::DieselRepository;
use volscan_testing::{PgDatabase, TempDir};

use crate::support::{
    ServerProcess, everything_but, filled_volumes, tool_shim_path, unique_prefix,
};

/// Runs accepted before the first kill.
const RUNS: usize = 30;

/// Runs that complete before the gate closes.
const BEFORE_GATE: usize = 4;

fn crash_and_recover(url: &str, backend: &str) {
    let prefix = unique_prefix("crash");
    let dir = TempDir::new("it-crash");
    let volumes = filled_volumes(&prefix, RUNS, 10_000);
    let skip = everything_but(&prefix);
    // While the gate file exists, every scan waits in the shim `du`.
    let gate = dir.path().join("gate");
    let gated_path = tool_shim_path(
        &dir,
        "du",
        &format!("while [ -e '{}' ]; do sleep 0.05; done", gate.display()),
    );
    let base = [
        ("DATABASE_URL", url),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", skip.as_str()),
        ("SCAN_METHODS_ORDER", "du"),
        ("SCAN_CONCURRENCY", "2"),
        ("RATE_LIMIT_RPM", "100000"),
    ];
    let repo = DieselRepository::connect(url, 2).unwrap();

    // First life: a few runs complete; the gate closes; the rest are accepted,
    // two start and hang at the gate; kill -9.
    let mut server = ServerProcess::start(&with_path(&base, &gated_path), dir.path());
    let mut accepted: Vec<ScanId> = Vec::new();
    let mut trigger = |volume: &volscan_testing::docker::TestVolume| {
        accepted.push(server.trigger(volume.name())["scan_id"].as_str().unwrap().parse().unwrap());
    };
    volumes[..BEFORE_GATE].iter().for_each(&mut trigger);
    wait_until(&repo, "the first runs to complete", |repo| {
        count(repo, ScanStatus::Completed) == BEFORE_GATE as u64
    });
    std::fs::write(&gate, b"closed").unwrap();
    volumes[BEFORE_GATE..].iter().for_each(&mut trigger);
    wait_until(&repo, "two scans to run", |repo| count(repo, ScanStatus::Running) == 2);
    server.kill9();
    let in_flight =
        accepted.iter().filter(|id| !repo.run(**id).unwrap().unwrap().status.is_final()).count();
    eprintln!(
        "{backend}: killed with {in_flight} of {RUNS} accepted runs queued or running (2 running)"
    );
    assert!(in_flight >= 20, "the kill must land with at least 20 runs in flight, not {in_flight}");

    // Second life: start-up recovery, two scans running again, kill -9 again.
    let mut server = ServerProcess::start(&with_path(&base, &gated_path), dir.path());
    let interrupted = |repo: &DieselRepository| {
        let failed = RunFilter { status: Some(ScanStatus::Failed), ..Default::default() };
        repo.runs(&RunFilter { limit: Some(10_000), ..failed }).unwrap().len()
    };
    assert_eq!(interrupted(&repo), 2, "recovery fails the two runs left running");
    wait_until(&repo, "two scans to run again", |repo| count(repo, ScanStatus::Running) == 2);
    server.kill9();
    std::fs::remove_file(&gate).unwrap();

    // Third life, the gate open: everything settles.
    let server = ServerProcess::start(&with_path(&base, &gated_path), dir.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let active = count(&repo, ScanStatus::Queued) + count(&repo, ScanStatus::Running);
        let settled = accepted.iter().all(|id| repo.run(*id).unwrap().unwrap().status.is_final());
        if active == 0 && settled {
            break;
        }
        assert!(Instant::now() < deadline, "{active} runs still active:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);

    // Each accepted run is final: completed, or failed as interrupted (its
    // volume then got a fresh run).
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for id in &accepted {
        let run = repo.run(*id).unwrap().unwrap();
        let label = match run.status {
            ScanStatus::Completed => "completed".to_owned(),
            status => format!("{status:?} ({})", run.error_message.clone().unwrap_or_default()),
        };
        *outcomes.entry(label).or_default() += 1;
    }
    eprintln!("{backend}: accepted runs ended as {outcomes:?}");
    for (label, _) in outcomes.iter().filter(|(label, _)| *label != "completed") {
        assert!(label.contains("interrupted"), "unexpected final state {label}");
    }

    // Every volume has a completed scan, equal to its size, and no run has two stats rows.
    let mut seen = HashSet::new();
    let mut rows = 0;
    for volume in &volumes {
        let name = VolumeName::new(volume.name()).unwrap();
        let history = repo.history(&name, None, None, 1000).unwrap();
        assert!(!history.is_empty(), "{} has no stats", volume.name());
        for stat in &history {
            rows += 1;
            assert!(seen.insert(stat.scan_id), "scan {} has two volume_stats rows", stat.scan_id);
            let run = repo.run(stat.scan_id).unwrap().expect("a stats row without its run");
            assert_eq!(run.status, ScanStatus::Completed, "stats of a run that is not completed");
        }
        let latest = history.last().unwrap();
        assert_eq!(latest.usage.size_bytes, crate::support::du_bytes(volume.mountpoint()));
    }
    let runs = repo.runs(&RunFilter { limit: Some(10_000), ..Default::default() }).unwrap();
    let completed = runs.iter().filter(|run| run.status == ScanStatus::Completed).count();
    assert_eq!(completed, rows, "every completed run has exactly one stats row");
    eprintln!("{backend}: {} runs in all, {completed} completed, {rows} stats rows", runs.len());
}

fn with_path<'a>(base: &[(&'a str, &'a str)], path: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut vars = base.to_vec();
    vars.push(("PATH", path));
    vars
}

/// Polls `done` every 20 ms for at most 60 s.
fn wait_until(repo: &DieselRepository, what: &str, done: impl Fn(&DieselRepository) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(repo) {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count(repo: &DieselRepository, status: ScanStatus) -> u64 {
    repo.count_runs(&RunFilter { status: Some(status), ..Default::default() }).unwrap()
}

#[test]
fn kill_9_with_runs_in_flight_loses_nothing_on_sqlite() {
    let dir = TempDir::new("it-crash-db");
    crash_and_recover(&dir.sqlite_url(), "sqlite");
}

#[test]
fn kill_9_with_runs_in_flight_loses_nothing_on_postgres() {
    let database = PgDatabase::create();
    crash_and_recover(database.url(), "postgres");
}
