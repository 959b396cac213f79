//! Repository tests: every body runs once on SQLite and once on PostgreSQL.
//!
//! PostgreSQL comes from `volscan_testing::PgDatabase` (each test creates and
//! drops its own database). When no server is configured the PostgreSQL tests
//! fail with a message saying how to start one: they never skip.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use time::OffsetDateTime;
use volscan_domain::{
    BatchId, DiscoveredVolume, NewScanRun, ReadRepository, RepoError, Repository, RunFilter,
    RunOutcome, ScanId, ScanMethod, ScanStatus, Trigger, Usage, VolumeKind, VolumeName,
};

use volscan_testing::{PgDatabase, TempDir};

use super::*;
use crate::retry::TxError;
use crate::schema::volume_stats;

/// A fresh database that is removed when the test ends.
struct TestDb {
    repo: DieselRepository,
    // The temporary directory or database; dropped after `repo`, which it outlives.
    _place: Box<dyn std::any::Any>,
}

impl TestDb {
    fn sqlite() -> Self {
        let dir = TempDir::new("repo-test");
        Self::open(&dir.sqlite_url(), Box::new(dir))
    }

    fn postgres() -> Self {
        let database = PgDatabase::create();
        let url = database.url().to_owned();
        Self::open(&url, Box::new(database))
    }

    fn open(url: &str, place: Box<dyn std::any::Any>) -> Self {
        let repo = DieselRepository::connect(url, 8).unwrap();
        repo.migrate().unwrap();
        TestDb { repo, _place: place }
    }
}

/// Declares each listed body as a test on SQLite and on PostgreSQL.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::TestDb::sqlite().repo); })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(&super::TestDb::postgres().repo); })*
        }
    };
}

both_backends!(
    migrating_twice_changes_nothing,
    upsert_inserts_then_refreshes_a_volume,
    removed_volumes_keep_their_history,
    enqueue_returns_the_active_run_instead_of_a_second_one,
    claim_takes_the_oldest_due_run_and_counts_the_attempt,
    completing_writes_exactly_one_stat_row,
    cancel_and_illegal_transitions,
    retry_waits_and_requeue_gives_the_attempt_back,
    progress_is_capped_below_100_and_only_for_running_runs,
    runs_are_listed_newest_first_and_counted,
    latest_stats_and_history,
    recovery_fails_interrupted_runs_and_queues_fresh_ones,
    retention_deletes_old_rows_in_batches_but_never_active_runs,
    claim_race_gives_every_run_to_exactly_one_worker,
    estimated_duration_comes_from_the_last_scan,
    a_completed_run_keeps_no_earlier_error_and_says_when_it_is_partial,
);

fn t(seconds: i64) -> Timestamp {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

fn name(s: &str) -> VolumeName {
    VolumeName::new(s).unwrap()
}

fn discovered(s: &str) -> DiscoveredVolume {
    DiscoveredVolume {
        name: name(s),
        driver: "local".into(),
        mountpoint: PathBuf::from(format!("/var/lib/docker/volumes/{s}/_data")),
        kind: VolumeKind::Volume,
        labels: BTreeMap::from([("app".to_owned(), "db".to_owned())]),
        created_at: Some(t(-100)),
    }
}

fn new_run(volume: &str, at: Timestamp) -> NewScanRun {
    NewScanRun {
        host: Default::default(),
        scan_id: ScanId::new(),
        volume: name(volume),
        batch_id: None,
        trigger: Trigger::Manual,
        queued_at: at,
    }
}

fn usage(size: u64) -> Usage {
    Usage {
        size_bytes: size,
        apparent_bytes: Some(size / 2),
        file_count: Some(3),
        dir_count: Some(1),
        error_count: 0,
    }
}

fn completed(size: u64) -> RunOutcome {
    RunOutcome::Completed {
        usage: usage(size),
        method: ScanMethod::Native,
        duration: Duration::from_millis(1500),
    }
}

/// Upserts `volume`, then enqueues, claims and completes one scan of it measuring `size` at `at`.
fn scan_once(repo: &DieselRepository, volume: &str, size: u64, at: Timestamp) -> ScanId {
    repo.upsert_volume(&discovered(volume), at).unwrap();
    let enqueued = repo.enqueue(new_run(volume, at)).unwrap();
    let claimed = repo.claim_next(at).unwrap().unwrap();
    assert_eq!(claimed.scan_id, enqueued.run.scan_id);
    repo.record_outcome(claimed.scan_id, completed(size), at).unwrap();
    claimed.scan_id
}

fn count_stat_rows(repo: &DieselRepository, scan_id: ScanId) -> i64 {
    let mut conn = repo.pool.get().unwrap();
    volume_stats::table
        .filter(volume_stats::scan_id.eq(scan_id.to_string()))
        .count()
        .get_result(&mut **conn)
        .unwrap()
}

fn migrating_twice_changes_nothing(repo: &DieselRepository) {
    assert_eq!(repo.migrate().unwrap(), Vec::<String>::new());
    repo.ping().unwrap();
}

fn upsert_inserts_then_refreshes_a_volume(repo: &DieselRepository) {
    let first = repo.upsert_volume(&discovered("pgdata"), t(0)).unwrap();
    assert_eq!(first.first_seen_at, t(0));
    assert_eq!(first.labels["app"], "db");
    assert_eq!(first.created_at, Some(t(-100)));
    let mut changed = discovered("pgdata");
    changed.driver = "other".into();
    let second = repo.upsert_volume(&changed, t(10)).unwrap();
    assert_eq!((second.first_seen_at, second.last_seen_at), (t(0), t(10)));
    assert_eq!(second.driver, "other");
    assert_eq!(repo.volume(&name("pgdata")).unwrap(), Some(second));
    assert_eq!(repo.volume(&name("nope")).unwrap(), None);
}

fn removed_volumes_keep_their_history(repo: &DieselRepository) {
    repo.upsert_volume(&discovered("gone"), t(0)).unwrap();
    repo.upsert_volume(&discovered("kept"), t(0)).unwrap();
    scan_once(repo, "gone", 4096, t(1));
    assert!(repo.mark_volume_removed(&name("gone"), t(5)).unwrap());
    assert!(!repo.mark_volume_removed(&name("gone"), t(6)).unwrap(), "already removed");
    assert!(!repo.mark_volume_removed(&name("unknown"), t(6)).unwrap());
    let listed: Vec<_> = repo.volumes(false).unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(listed, [name("kept")]);
    let all = repo.volumes(true).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].removed_at, Some(t(5)));
    assert_eq!(repo.history(&name("gone"), None, None, 10).unwrap().len(), 1);
    // Seen again: no longer removed.
    let back = repo.upsert_volume(&discovered("gone"), t(9)).unwrap();
    assert_eq!(back.removed_at, None);
}

fn enqueue_returns_the_active_run_instead_of_a_second_one(repo: &DieselRepository) {
    let first = repo.enqueue(new_run("vol1", t(0))).unwrap();
    assert!(!first.deduplicated);
    assert_eq!(first.run.status, ScanStatus::Queued);
    assert_eq!((first.run.attempt, first.run.progress), (0, 0));
    let second = repo.enqueue(new_run("vol1", t(1))).unwrap();
    assert!(second.deduplicated);
    assert_eq!(second.run.scan_id, first.run.scan_id);
    // Still deduplicated while running.
    repo.claim_next(t(2)).unwrap().unwrap();
    let third = repo.enqueue(new_run("vol1", t(3))).unwrap();
    assert_eq!((third.deduplicated, third.run.status), (true, ScanStatus::Running));
    // Once finished, a new run is accepted.
    repo.record_outcome(first.run.scan_id, completed(1), t(4)).unwrap();
    let fourth = repo.enqueue(new_run("vol1", t(5))).unwrap();
    assert!(!fourth.deduplicated);
    assert_ne!(fourth.run.scan_id, first.run.scan_id);
    assert_eq!(repo.active_run(&name("vol1")).unwrap().unwrap().scan_id, fourth.run.scan_id);
}

fn claim_takes_the_oldest_due_run_and_counts_the_attempt(repo: &DieselRepository) {
    assert_eq!(repo.claim_next(t(0)).unwrap(), None);
    let late = repo.enqueue(new_run("late", t(2))).unwrap().run;
    let early = repo.enqueue(new_run("early", t(1))).unwrap().run;
    let claimed = repo.claim_next(t(3)).unwrap().unwrap();
    assert_eq!(claimed.scan_id, early.scan_id);
    assert_eq!(claimed.status, ScanStatus::Running);
    assert_eq!((claimed.attempt, claimed.started_at), (1, Some(t(3))));
    assert_eq!(repo.run(early.scan_id).unwrap().unwrap(), claimed);
    assert_eq!(repo.claim_next(t(3)).unwrap().unwrap().scan_id, late.scan_id);
    assert_eq!(repo.claim_next(t(3)).unwrap(), None);
}

fn completing_writes_exactly_one_stat_row(repo: &DieselRepository) {
    let run = repo.enqueue(new_run("data", t(0))).unwrap().run;
    repo.claim_next(t(1)).unwrap().unwrap();
    let done = repo.record_outcome(run.scan_id, completed(8192), t(2)).unwrap();
    assert_eq!(done.status, ScanStatus::Completed);
    assert_eq!(
        (done.progress, done.method, done.completed_at),
        (100, Some(ScanMethod::Native), Some(t(2)))
    );
    let stat = repo.latest_stat(&name("data")).unwrap().unwrap();
    assert_eq!((stat.scan_id, stat.usage, stat.ts), (run.scan_id, usage(8192), t(2)));
    assert_eq!(stat.duration, Duration::from_millis(1500));
    // A second completion of the same run is refused and writes nothing.
    let err = repo.record_outcome(run.scan_id, completed(1), t(3)).unwrap_err();
    assert!(matches!(err, RepoError::Transition { .. }), "{err:?}");
    assert_eq!(count_stat_rows(repo, run.scan_id), 1);
    // An unknown run is reported as such.
    let missing = ScanId::new();
    let err = repo.record_outcome(missing, completed(1), t(3)).unwrap_err();
    assert!(matches!(err, RepoError::ScanNotFound(id) if id == missing), "{err:?}");
}

fn cancel_and_illegal_transitions(repo: &DieselRepository) {
    let queued = repo.enqueue(new_run("aa", t(0))).unwrap().run;
    let canceled = repo.record_outcome(queued.scan_id, RunOutcome::Canceled, t(1)).unwrap();
    assert_eq!((canceled.status, canceled.completed_at), (ScanStatus::Canceled, Some(t(1))));
    let err = repo.record_outcome(queued.scan_id, RunOutcome::Canceled, t(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("scan run {}: a canceled run cannot become canceled", queued.scan_id)
    );
    // A queued run cannot complete without being claimed.
    let other = repo.enqueue(new_run("bb", t(3))).unwrap().run;
    assert!(repo.record_outcome(other.scan_id, completed(1), t(4)).is_err());
    assert_eq!(count_stat_rows(repo, other.scan_id), 0);
    // A running run can be canceled.
    repo.claim_next(t(5)).unwrap().unwrap();
    let stopped = repo.record_outcome(other.scan_id, RunOutcome::Canceled, t(6)).unwrap();
    assert_eq!(stopped.status, ScanStatus::Canceled);
    let failed_run = repo.enqueue(new_run("cc", t(7))).unwrap().run;
    repo.claim_next(t(7)).unwrap().unwrap();
    let reason = "timeout".to_owned();
    let failed =
        repo.record_outcome(failed_run.scan_id, RunOutcome::Failed { reason }, t(8)).unwrap();
    assert_eq!(
        (failed.status, failed.error_message.as_deref()),
        (ScanStatus::Failed, Some("timeout"))
    );
}

fn retry_waits_and_requeue_gives_the_attempt_back(repo: &DieselRepository) {
    let run = repo.enqueue(new_run("retry", t(0))).unwrap().run;
    repo.claim_next(t(0)).unwrap().unwrap();
    let retry = RunOutcome::Retry { not_before: t(60), reason: "du exited with 1".into() };
    let waiting = repo.record_outcome(run.scan_id, retry, t(1)).unwrap();
    assert_eq!(
        (waiting.status, waiting.attempt, waiting.not_before),
        (ScanStatus::Queued, 1, Some(t(60)))
    );
    assert_eq!(repo.claim_next(t(59)).unwrap(), None, "not due before not_before");
    let second = repo.claim_next(t(60)).unwrap().unwrap();
    assert_eq!((second.attempt, second.not_before), (2, None));
    let back = repo.record_outcome(run.scan_id, RunOutcome::Requeue, t(61)).unwrap();
    assert_eq!((back.status, back.attempt), (ScanStatus::Queued, 1));
    assert_eq!(repo.claim_next(t(61)).unwrap().unwrap().attempt, 2);
}

fn a_completed_run_keeps_no_earlier_error_and_says_when_it_is_partial(repo: &DieselRepository) {
    let run = repo.enqueue(new_run("flaky", t(0))).unwrap().run;
    repo.claim_next(t(0)).unwrap().unwrap();
    let retry = RunOutcome::Retry { not_before: t(1), reason: "du exited with 2".into() };
    let waiting = repo.record_outcome(run.scan_id, retry, t(0)).unwrap();
    assert_eq!(waiting.error_message.as_deref(), Some("du exited with 2"));
    repo.claim_next(t(1)).unwrap().unwrap();
    let done = repo.record_outcome(run.scan_id, completed(10), t(2)).unwrap();
    assert_eq!((done.status, done.error_message), (ScanStatus::Completed, None));

    let run = repo.enqueue(new_run("locked", t(3))).unwrap().run;
    repo.claim_next(t(3)).unwrap().unwrap();
    let partial = Usage { error_count: 2, ..usage(10) };
    let outcome = RunOutcome::Completed {
        usage: partial,
        method: ScanMethod::Native,
        duration: std::time::Duration::from_millis(5),
    };
    let done = repo.record_outcome(run.scan_id, outcome, t(4)).unwrap();
    let message = done.error_message.unwrap_or_default();
    assert!(message.starts_with("partial: 2 entries could not be read"), "{message}");
    assert_eq!(repo.latest_stat(&name("locked")).unwrap().unwrap().usage.error_count, 2);
}

fn progress_is_capped_below_100_and_only_for_running_runs(repo: &DieselRepository) {
    let run = repo.enqueue(new_run("prog", t(0))).unwrap().run;
    repo.update_progress(run.scan_id, 50, None).unwrap();
    assert_eq!(repo.run(run.scan_id).unwrap().unwrap().progress, 0, "queued runs keep 0");
    repo.claim_next(t(0)).unwrap().unwrap();
    repo.update_progress(run.scan_id, 42, Some(ScanMethod::Du)).unwrap();
    let now = repo.run(run.scan_id).unwrap().unwrap();
    assert_eq!((now.progress, now.method), (42, Some(ScanMethod::Du)));
    repo.update_progress(run.scan_id, 100, None).unwrap();
    assert_eq!(repo.run(run.scan_id).unwrap().unwrap().progress, 99);
}

fn runs_are_listed_newest_first_and_counted(repo: &DieselRepository) {
    let batch = BatchId::new();
    let mut ids = Vec::new();
    for (i, volume) in ["r1", "r2", "r3"].into_iter().enumerate() {
        let mut run = new_run(volume, t(i as i64));
        run.batch_id = Some(batch);
        run.trigger = Trigger::Bulk;
        ids.push(repo.enqueue(run).unwrap().run.scan_id);
    }
    repo.enqueue(new_run("r4", t(10))).unwrap();
    let claimed = repo.claim_next(t(20)).unwrap().unwrap();
    repo.record_outcome(claimed.scan_id, completed(1), t(21)).unwrap();
    let listed: Vec<_> =
        repo.runs(&RunFilter { batch: Some(batch), ..RunFilter::default() }).unwrap();
    assert_eq!(listed.iter().map(|r| r.scan_id).collect::<Vec<_>>(), [ids[2], ids[1], ids[0]]);
    assert_eq!(listed[0].trigger, Trigger::Bulk);
    let limited = repo.runs(&RunFilter { limit: Some(2), ..RunFilter::default() }).unwrap();
    assert_eq!(limited.len(), 2);
    let by_volume = RunFilter { volume: Some(name("r2")), ..RunFilter::default() };
    assert_eq!(repo.runs(&by_volume).unwrap()[0].scan_id, ids[1]);
    let queued = RunFilter { status: Some(ScanStatus::Queued), ..RunFilter::default() };
    assert_eq!(repo.count_runs(&queued).unwrap(), 3);
    assert_eq!(repo.count_runs(&RunFilter::default()).unwrap(), 4);
    let counts = repo.batch_counts(batch).unwrap();
    assert_eq!((counts.total(), counts.queued, counts.completed), (3, 2, 1));
    assert_eq!(repo.batch_counts(BatchId::new()).unwrap().total(), 0);
}

fn latest_stats_and_history(repo: &DieselRepository) {
    for i in 0..5 {
        scan_once(repo, "hist", 1000 + i, t(i as i64 * 10));
    }
    scan_once(repo, "other", 7, t(3));
    let latest = repo.latest_stats().unwrap();
    let sizes: Vec<_> = latest.iter().map(|s| (s.volume.as_str(), s.usage.size_bytes)).collect();
    assert_eq!(sizes, [("hist", 1004), ("other", 7)]);
    let all = repo.history(&name("hist"), None, None, 100).unwrap();
    assert_eq!(
        all.iter().map(|s| s.usage.size_bytes).collect::<Vec<_>>(),
        [1000, 1001, 1002, 1003, 1004]
    );
    let window = repo.history(&name("hist"), Some(t(10)), Some(t(40)), 100).unwrap();
    assert_eq!(window.iter().map(|s| s.usage.size_bytes).collect::<Vec<_>>(), [1001, 1002, 1003]);
    let newest_two = repo.history(&name("hist"), None, None, 2).unwrap();
    assert_eq!(newest_two.iter().map(|s| s.usage.size_bytes).collect::<Vec<_>>(), [1003, 1004]);
    assert!(repo.history(&name("none"), None, None, 10).unwrap().is_empty());
}

fn recovery_fails_interrupted_runs_and_queues_fresh_ones(repo: &DieselRepository) {
    let a = repo.enqueue(new_run("crash-a", t(0))).unwrap().run;
    let b = repo.enqueue(new_run("crash-b", t(1))).unwrap().run;
    let waiting = repo.enqueue(new_run("crash-c", t(2))).unwrap().run;
    repo.claim_next(t(3)).unwrap().unwrap();
    repo.claim_next(t(3)).unwrap().unwrap();
    let fresh = repo.recover_interrupted(t(10)).unwrap();
    assert_eq!(fresh.len(), 2);
    for old in [a.scan_id, b.scan_id] {
        let old = repo.run(old).unwrap().unwrap();
        assert_eq!(
            (old.status, old.error_message.as_deref()),
            (ScanStatus::Failed, Some(INTERRUPTED))
        );
        let new = repo.active_run(&old.volume).unwrap().unwrap();
        assert_eq!(
            (new.status, new.queued_at, new.trigger),
            (ScanStatus::Queued, t(10), Trigger::Manual)
        );
        assert!(fresh.contains(&new));
    }
    assert_eq!(repo.run(waiting.scan_id).unwrap().unwrap().status, ScanStatus::Queued);
    assert!(repo.recover_interrupted(t(11)).unwrap().is_empty());
}

fn retention_deletes_old_rows_in_batches_but_never_active_runs(repo: &DieselRepository) {
    for i in 0..7 {
        scan_once(repo, &format!("old{i}"), 10, t(i));
    }
    scan_once(repo, "new1", 10, t(100));
    // An old run that is still active must survive.
    let active = repo.enqueue(new_run("stuck", t(0))).unwrap().run;
    repo.claim_next(t(0)).unwrap().unwrap();
    // One batch per call, so the caller can stop between batches.
    let stats: Vec<u64> = (0..4).map(|_| repo.purge_stats_before(t(50), 3).unwrap()).collect();
    assert_eq!(stats, [3, 3, 1, 0]);
    assert_eq!(repo.latest_stats().unwrap().len(), 1);
    let runs: Vec<u64> = (0..4).map(|_| repo.purge_runs_before(t(50), 3).unwrap()).collect();
    assert_eq!(runs, [3, 3, 1, 0]);
    assert_eq!(repo.run(active.scan_id).unwrap().unwrap().status, ScanStatus::Running);
    assert_eq!(repo.count_runs(&RunFilter::default()).unwrap(), 2);
    assert_eq!(repo.purge_stats_before(t(50), 3).unwrap(), 0);
}

fn claim_race_gives_every_run_to_exactly_one_worker(repo: &DieselRepository) {
    const RUNS: usize = 1000;
    const WORKERS: usize = 4;
    let mut expected = HashSet::new();
    for i in 0..RUNS {
        let run = repo.enqueue(new_run(&format!("race{i:04}"), t(i as i64))).unwrap().run;
        expected.insert(run.scan_id);
    }
    let claimed = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            let claimed = Arc::clone(&claimed);
            scope.spawn(move || {
                let mut mine = Vec::new();
                loop {
                    match repo.claim_next(t(RUNS as i64)).unwrap() {
                        Some(run) => mine.push(run.scan_id),
                        // PostgreSQL's SKIP LOCKED may find nothing while others hold
                        // the last rows; stop only once nothing is queued.
                        None if repo
                            .count_runs(&RunFilter {
                                status: Some(ScanStatus::Queued),
                                ..RunFilter::default()
                            })
                            .unwrap()
                            == 0 =>
                        {
                            break;
                        }
                        None => {}
                    }
                }
                claimed.lock().unwrap().push(mine);
            });
        }
    });
    let per_worker = claimed.lock().unwrap();
    let all: Vec<ScanId> = per_worker.iter().flatten().copied().collect();
    let distinct: HashSet<ScanId> = all.iter().copied().collect();
    assert_eq!(all.len(), RUNS, "every run claimed once, none twice");
    assert_eq!(distinct, expected);
    let running = RunFilter { status: Some(ScanStatus::Running), ..RunFilter::default() };
    assert_eq!(repo.count_runs(&running).unwrap(), RUNS as u64);
    let sizes: Vec<usize> = per_worker.iter().map(Vec::len).collect();
    eprintln!("{} claim race: runs claimed per worker {sizes:?}", repo.backend_name());
}

fn estimated_duration_comes_from_the_last_scan(repo: &DieselRepository) {
    let first = repo.enqueue(new_run("est", t(0))).unwrap().run;
    assert_eq!(first.estimated_duration, None);
    repo.claim_next(t(0)).unwrap().unwrap();
    repo.record_outcome(first.scan_id, completed(1), t(1)).unwrap();
    let second = repo.enqueue(new_run("est", t(2))).unwrap().run;
    assert_eq!(second.estimated_duration, Some(Duration::from_millis(1500)));
    assert_eq!(
        repo.run(second.scan_id).unwrap().unwrap().estimated_duration,
        Some(Duration::from_millis(1500))
    );
}

#[test]
fn unsupported_urls_and_unreachable_servers_are_clear_errors() {
    let err = DieselRepository::connect("mysql://x", 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported database url (expected sqlite://PATH or postgres://…)"
    );
    let err = DieselRepository::connect("postgres://nobody@127.0.0.1:1/none", 1).unwrap_err();
    assert_eq!(err.to_string(), "failed to connect to the postgres database");
    assert!(Backend::from_url("sqlite://").is_err());
    assert_eq!(
        Backend::from_url("sqlite:///var/lib/v.db").unwrap(),
        Backend::Sqlite("/var/lib/v.db".into())
    );
}

#[test]
fn a_lock_held_past_every_retry_or_a_closed_connection_is_unavailable_not_a_query_error() {
    let diesel_error = |kind, message: &str| {
        TxError::Diesel(diesel::result::Error::DatabaseError(kind, Box::new(message.to_owned())))
    };
    for message in ["database is locked", "database is busy"] {
        let err = diesel_error(DatabaseErrorKind::Unknown, message);
        assert!(err.is_busy());
        assert!(matches!(err.into_repo(), RepoError::Unavailable(_)), "{message}");
    }
    let closed = diesel_error(DatabaseErrorKind::ClosedConnection, "server closed the connection");
    assert!(matches!(closed.into_repo(), RepoError::Unavailable(_)));
    let other = diesel_error(DatabaseErrorKind::UniqueViolation, "duplicate key");
    assert!(!other.is_busy());
    assert!(matches!(other.into_repo(), RepoError::Query(_)));
}

// After `both_backends!`, which it uses.
mod details;
mod hosts;
