//! Repository tests of many hosts on one database (SPEC §10): volumes, runs
//! and stats kept apart per host, claims and recovery of the local host's
//! runs only, heartbeats by the database's clock, and the migration of a
//! single-host database; each body runs on SQLite and on PostgreSQL. The
//! lease and the work signal exist on PostgreSQL only.

use diesel::connection::SimpleConnection;
use diesel_migrations::MigrationHarness;
use volscan_domain::{HostId, HostInfo, HostScope, Liveness};

use super::*;
use crate::connection::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

both_backends!(
    hosts_keep_volumes_runs_and_stats_apart,
    workers_claim_and_recover_only_their_own_hosts_runs,
    heartbeats_use_the_database_clock_and_measure_skew,
    a_single_host_database_migrates_to_the_first_host_that_starts,
);

fn host(id: &str) -> HostId {
    id.parse().unwrap()
}

fn info(id: &str) -> HostInfo {
    HostInfo {
        id: host(id),
        name: format!("machine-{id}"),
        docker_engine_id: Some(format!("engine-{id}")),
        docker_version: Some("27.5.1".into()),
        volscan_version: "0.0.0".into(),
    }
}

fn run_for(on: &DieselRepository, volume: &str, at: Timestamp) -> NewScanRun {
    NewScanRun { host: on.local_host().clone(), ..new_run(volume, at) }
}

/// Measures `volume` on `on`'s host: upsert, enqueue, claim, complete.
fn scan_on(on: &DieselRepository, volume: &str, size: u64, at: Timestamp) {
    on.upsert_volume(&discovered(volume), at).unwrap();
    on.enqueue(run_for(on, volume, at)).unwrap();
    let run = on.claim_next(at).unwrap().unwrap();
    on.record_outcome(run.scan_id, completed(size), at).unwrap();
}

fn hosts_keep_volumes_runs_and_stats_apart(repo: &DieselRepository) {
    let a = repo.clone().for_host(host("a"));
    let b = repo.clone().for_host(host("b"));
    // The same volume name on two hosts: two volumes, two histories.
    scan_on(&a, "data", 100, t(0));
    scan_on(&a, "data", 150, t(60));
    scan_on(&b, "data", 7, t(30));
    scan_on(&b, "only-b", 9, t(30));

    let sizes = |r: &dyn ReadRepository| -> Vec<(String, String, u64)> {
        r.latest_stats()
            .unwrap()
            .into_iter()
            .map(|s| (s.host.to_string(), s.volume.to_string(), s.usage.size_bytes))
            .collect()
    };
    assert_eq!(sizes(&a), [("a".into(), "data".into(), 150)]);
    assert_eq!(sizes(&b), [("b".into(), "data".into(), 7), ("b".into(), "only-b".into(), 9)]);
    let all = a.scoped(HostScope::All);
    assert_eq!(
        sizes(&*all),
        [
            ("a".into(), "data".into(), 150),
            ("b".into(), "data".into(), 7),
            ("b".into(), "only-b".into(), 9)
        ]
    );
    assert_eq!(a.history(&name("data"), None, None, 10).unwrap().len(), 2);
    assert_eq!(b.history(&name("data"), None, None, 10).unwrap().len(), 1);
    let b_seen_from_a = a.scoped(HostScope::One(host("b")));
    assert_eq!(b_seen_from_a.latest_stat(&name("data")).unwrap().unwrap().usage.size_bytes, 7);
    assert!(a.volume(&name("only-b")).unwrap().is_none());
    let volumes: Vec<(String, String)> = all
        .volumes(false)
        .unwrap()
        .into_iter()
        .map(|v| (v.host.to_string(), v.name.to_string()))
        .collect();
    assert_eq!(
        volumes,
        [("a".into(), "data".into()), ("b".into(), "data".into()), ("b".into(), "only-b".into())]
    );
    // Growth's points: one series per (host, volume).
    let points = all.size_points(None, Duration::from_secs(3600)).unwrap();
    let series: HashSet<(String, String)> =
        points.iter().map(|p| (p.host.to_string(), p.volume.to_string())).collect();
    assert_eq!(series.len(), 3);
    assert_eq!(a.size_points(None, Duration::from_secs(3600)).unwrap().len(), 2);

    // One active run per volume *of a host*: both hosts may queue "data".
    let on_a = a.enqueue(run_for(&a, "data", t(100))).unwrap();
    let on_b = b.enqueue(run_for(&b, "data", t(100))).unwrap();
    assert!(!on_a.deduplicated && !on_b.deduplicated);
    assert_eq!(on_b.run.host, host("b"));
    let again = a.enqueue(run_for(&a, "data", t(101))).unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.run.scan_id, on_a.run.scan_id);
    // A run of another host is found by id from anywhere.
    assert_eq!(a.run(on_b.run.scan_id).unwrap().unwrap().host, host("b"));
    let queued = RunFilter::with_status(ScanStatus::Queued);
    assert_eq!(a.count_runs(&queued).unwrap(), 1);
    assert_eq!(all.count_runs(&queued).unwrap(), 2);

    // Which volumes containers use is recorded per host: a's report leaves b's alone.
    a.record_users(&[], t(200)).unwrap();
    b.record_users(
        &[VolumeUsers { volume: name("data"), containers: vec!["web".into()], in_use: true }],
        t(200),
    )
    .unwrap();
    assert_eq!(a.volume(&name("data")).unwrap().unwrap().in_use, Some(false));
    assert_eq!(b.volume(&name("data")).unwrap().unwrap().in_use, Some(true));
    assert_eq!(b.volume(&name("only-b")).unwrap().unwrap().in_use, Some(false));
}

fn workers_claim_and_recover_only_their_own_hosts_runs(repo: &DieselRepository) {
    let a = repo.clone().for_host(host("a"));
    let c = repo.clone().for_host(host("c"));
    a.upsert_volume(&discovered("va"), t(0)).unwrap();
    c.upsert_volume(&discovered("vc"), t(0)).unwrap();
    // Node a queues a run for host c (a trigger through another node).
    let for_c = a.enqueue(NewScanRun { host: host("c"), ..new_run("vc", t(1)) }).unwrap();
    assert!(a.claim_next(t(2)).unwrap().is_none(), "a must not claim c's run");
    let claimed = c.claim_next(t(2)).unwrap().unwrap();
    assert_eq!(claimed.scan_id, for_c.run.scan_id);

    // a's own run is running when a dies; c's run is running too.
    a.enqueue(run_for(&a, "va", t(3))).unwrap();
    let a_running = a.claim_next(t(3)).unwrap().unwrap();
    let fresh = a.recover_interrupted(t(4)).unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!((fresh[0].host.as_str(), fresh[0].volume.as_str()), ("a", "va"));
    assert_eq!(a.run(a_running.scan_id).unwrap().unwrap().status, ScanStatus::Failed);
    assert_eq!(c.run(claimed.scan_id).unwrap().unwrap().status, ScanStatus::Running);
}

fn heartbeats_use_the_database_clock_and_measure_skew(repo: &DieselRepository) {
    let a = repo.clone().for_host(host("a"));
    let real_now = OffsetDateTime::now_utc();
    // A host whose clock runs ten minutes ahead of the database's.
    let first = a.touch_host(&info("a"), real_now + time::Duration::minutes(10), true).unwrap();
    assert!((first.last_seen_at - real_now).abs() < time::Duration::seconds(5));
    let skew = first.clock_skew_ms.unwrap();
    assert!((595_000..=605_000).contains(&skew), "skew {skew}");
    assert_eq!(first.liveness(), Liveness::Online);
    assert_eq!(first.info, info("a"));

    std::thread::sleep(Duration::from_millis(1100));
    let beat = a.touch_host(&info("a"), OffsetDateTime::now_utc(), false).unwrap();
    assert_eq!(beat.started_at, first.started_at, "a heartbeat keeps started_at");
    assert!(beat.last_seen_at > first.last_seen_at);
    assert!(beat.clock_skew_ms.unwrap().abs() < 5_000);

    let b = repo.clone().for_host(host("b"));
    b.touch_host(&info("b"), OffsetDateTime::now_utc(), true).unwrap();
    let listed = a.hosts().unwrap();
    let ids: Vec<&str> = listed.iter().map(|h| h.info.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    // Liveness is judged by the reading database's clock.
    let aged =
        Host { read_at: listed[0].last_seen_at + time::Duration::minutes(2), ..listed[0].clone() };
    assert_eq!(aged.liveness(), Liveness::Stale);
}

fn a_single_host_database_migrates_to_the_first_host_that_starts(repo: &DieselRepository) {
    // A fresh database at the previous version's schema, filled as that
    // version wrote it.
    {
        let mut conn = repo.pool.get().unwrap();
        let conn: &mut AnyConnection = &mut conn;
        let sql = match conn {
            AnyConnection::Postgresql(c) => {
                c.revert_all_migrations(POSTGRES_MIGRATIONS).unwrap();
                for _ in 0..4 {
                    c.run_next_migration(POSTGRES_MIGRATIONS).unwrap();
                }
                "now()"
            }
            AnyConnection::Sqlite(c) => {
                c.revert_all_migrations(SQLITE_MIGRATIONS).unwrap();
                for _ in 0..4 {
                    c.run_next_migration(SQLITE_MIGRATIONS).unwrap();
                }
                "CURRENT_TIMESTAMP"
            }
        };
        let fill = format!(
            "INSERT INTO volumes (name, driver, mountpoint, kind, first_seen_at, last_seen_at) \
               VALUES ('old', 'local', '/v/old', 'volume', {sql}, {sql}); \
             INSERT INTO scan_runs (scan_id, volume_id, \"trigger\", status, progress, attempt, queued_at) \
               VALUES ('00000000-0000-4000-8000-000000000001', 'old', 'manual', 'completed', 100, 1, {sql}), \
                      ('00000000-0000-4000-8000-000000000002', 'old', 'manual', 'queued', 0, 0, {sql}); \
             INSERT INTO volume_stats (volume_name, size_bytes, error_count, scan_method, duration_ms, \
                 scan_id, ts, created_at, updated_at) \
               VALUES ('old', 4096, 0, 'du', 5, '00000000-0000-4000-8000-000000000001', {sql}, {sql}, {sql}); \
             INSERT INTO volume_dirs (scan_id, volume_name, depth, path, size_bytes, ts) \
               VALUES ('00000000-0000-4000-8000-000000000001', 'old', 1, 'a', 4096, {sql}); \
             INSERT INTO filesystem_samples (filesystem_id, mount_point, fs_type, total_bytes, avail_bytes, ts) \
               VALUES ('fs1', '/', 'ext4', 100, 50, {sql});"
        );
        conn.batch_execute(&fill).unwrap();
    }
    assert_eq!(repo.migrate().unwrap().len(), 1, "only the hosts migration is pending");

    let h1 = repo.clone().for_host(host("h1"));
    h1.touch_host(&info("h1"), OffsetDateTime::now_utc(), true).unwrap();
    let volume = h1.volume(&name("old")).unwrap().expect("the old volume is h1's");
    assert_eq!(volume.host, host("h1"));
    let stat = h1.latest_stat(&name("old")).unwrap().expect("its stat too");
    assert_eq!((stat.host.as_str(), stat.usage.size_bytes), ("h1", 4096));
    assert_eq!(h1.count_runs(&RunFilter::default()).unwrap(), 2);
    let queued = h1.claim_next(OffsetDateTime::now_utc()).unwrap().expect("its queued run");
    assert_eq!(queued.host, host("h1"));
    assert_eq!(h1.dir_scans(&name("old")).unwrap().len(), 1);
    let since = OffsetDateTime::now_utc() - time::Duration::days(1);
    assert_eq!(h1.filesystem_samples(None, since).unwrap().len(), 1);
    // A second host starting later adopts nothing.
    let h2 = repo.clone().for_host(host("h2"));
    h2.touch_host(&info("h2"), OffsetDateTime::now_utc(), true).unwrap();
    assert!(h2.volumes(true).unwrap().is_empty());
    assert_eq!(h1.volumes(true).unwrap().len(), 1);
}

#[test]
fn a_second_lease_on_a_live_host_id_is_refused_naming_the_holder() {
    let db = TestDb::postgres();
    let a = db.repo.clone().for_host(host("web-1"));
    a.touch_host(&info("web-1"), OffsetDateTime::now_utc(), true).unwrap();
    let held = a.lease().unwrap().expect("PostgreSQL has leases");
    let refused = a.lease().unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, LeaseError::Held { .. }), "{message}");
    assert!(message.contains("web-1") && message.contains("machine-web-1"), "{message}");
    // Another id is free.
    let other = db.repo.clone().for_host(host("web-2")).lease().unwrap();
    assert!(other.is_some());
    // The holder's death (its session's end) frees the id at once.
    drop(held);
    assert!(a.lease().unwrap().is_some());
}

#[test]
fn sqlite_has_no_lease_and_no_work_signal() {
    let db = TestDb::sqlite();
    assert!(db.repo.lease().unwrap().is_none());
    assert!(db.repo.work_signal().is_none());
}

#[test]
fn an_enqueue_for_a_host_wakes_that_hosts_work_signal_only() {
    let db = TestDb::postgres();
    let a = db.repo.clone().for_host(host("a"));
    let b = db.repo.clone().for_host(host("b"));
    b.upsert_volume(&discovered("vb"), t(0)).unwrap();
    let mut signal_a = a.work_signal().unwrap();
    let mut signal_b = b.work_signal().unwrap();
    // The first wait connects, and reports work it may have missed.
    assert!(signal_a.wait(Duration::from_millis(10)).unwrap());
    assert!(signal_b.wait(Duration::from_millis(10)).unwrap());
    assert!(!signal_b.wait(Duration::from_millis(100)).unwrap(), "nothing queued yet");

    let started = std::time::Instant::now();
    a.enqueue(NewScanRun { host: host("b"), ..new_run("vb", t(1)) }).unwrap();
    assert!(signal_b.wait(Duration::from_secs(5)).unwrap());
    assert!(started.elapsed() < Duration::from_secs(1), "woken in {:?}", started.elapsed());
    assert!(!signal_a.wait(Duration::from_millis(200)).unwrap(), "a's signal stays quiet");
}
