//! Repository tests of what a scan sees besides its totals (directories,
//! filesystem samples), the size points growth reads, and which volumes
//! containers use; each body runs on SQLite and on PostgreSQL.

use volscan_domain::{DirUsage, FilesystemSample, ScanDetails, VolumeUsers};

use super::*;

both_backends!(
    size_points_cover_each_volume_window_and_its_baseline,
    details_store_directories_and_one_sample_per_five_minutes,
    users_mark_volumes_in_use_and_unused_since,
    retention_deletes_old_details_in_batches,
);

const DAY: i64 = 24 * 3600;

fn sample(id: &str, avail: u64, at: Timestamp) -> FilesystemSample {
    FilesystemSample {
        id: id.to_owned(),
        mount_point: "/var/lib/docker".to_owned(),
        fs_type: "ext4".to_owned(),
        total_bytes: 1_000_000,
        avail_bytes: avail,
        ts: at,
    }
}

fn dir(path: &str, depth: u8, size: u64) -> DirUsage {
    DirUsage { path: path.to_owned(), depth, size_bytes: size, file_count: Some(size / 10) }
}

fn size_points_cover_each_volume_window_and_its_baseline(repo: &DieselRepository) {
    // "va": daily for ten days; "vb": two stats far in the past (its own window
    // is anchored at its own newest stat).
    for day in 0..10 {
        scan_once(repo, "va", 100 + day as u64, t(day * DAY));
    }
    scan_once(repo, "vb", 7, t(-40 * DAY));
    scan_once(repo, "vb", 9, t(-39 * DAY));
    let window = Duration::from_secs(3 * DAY as u64);
    let points = repo.size_points(None, window).unwrap();
    let seen: Vec<(&str, i64, u64)> = points
        .iter()
        .map(|p| (p.volume.as_str(), (p.ts - t(0)).whole_seconds() / DAY, p.size_bytes))
        .collect();
    // va: days 6..=9 lie within three days of day 9; day 5 is the baseline.
    // vb: both within its own window, no baseline before them.
    assert_eq!(
        seen,
        [
            ("va", 5, 105),
            ("va", 6, 106),
            ("va", 7, 107),
            ("va", 8, 108),
            ("va", 9, 109),
            ("vb", -40, 7),
            ("vb", -39, 9)
        ]
    );
    let only_b = repo.size_points(Some(&name("vb")), Duration::from_secs(3600)).unwrap();
    assert_eq!(only_b.iter().map(|p| p.size_bytes).collect::<Vec<_>>(), [7, 9]);
    assert!(repo.size_points(Some(&name("none")), window).unwrap().is_empty());
}

fn details_store_directories_and_one_sample_per_five_minutes(repo: &DieselRepository) {
    let first = scan_once(repo, "vol", 500, t(0));
    let dirs = vec![
        dir("logs", 1, 300),
        dir("data", 1, 100),
        dir("logs/old", 2, 200),
        dir("a\\x0ab", 1, 50),
    ];
    let details = ScanDetails { dirs: Some(dirs), filesystem: Some(sample("fs-1", 900, t(0))) };
    repo.record_details(first, &name("vol"), t(0), &details).unwrap();
    let stored = repo.dirs(first).unwrap();
    let listed: Vec<(&str, u8, u64)> =
        stored.iter().map(|d| (d.path.as_str(), d.depth, d.size_bytes)).collect();
    assert_eq!(
        listed,
        [("logs", 1, 300), ("data", 1, 100), ("a\\x0ab", 1, 50), ("logs/old", 2, 200)]
    );
    assert_eq!(stored[0].file_count, Some(30));
    assert_eq!(repo.volume(&name("vol")).unwrap().unwrap().filesystem_id.as_deref(), Some("fs-1"));

    // Two minutes later the same filesystem is not sampled again; six minutes later it is.
    let second = scan_once(repo, "vol", 600, t(120));
    let again = ScanDetails { dirs: None, filesystem: Some(sample("fs-1", 800, t(120))) };
    repo.record_details(second, &name("vol"), t(120), &again).unwrap();
    let third = scan_once(repo, "vol", 700, t(360));
    let later = ScanDetails {
        dirs: Some(vec![dir("logs", 1, 400)]),
        filesystem: Some(sample("fs-1", 700, t(360))),
    };
    repo.record_details(third, &name("vol"), t(360), &later).unwrap();
    let samples = repo.filesystem_samples(Some("fs-1"), t(-10)).unwrap();
    assert_eq!(samples.iter().map(|s| s.avail_bytes).collect::<Vec<_>>(), [900, 700]);
    assert_eq!(samples[0], sample("fs-1", 900, t(0)));
    assert!(repo.filesystem_samples(Some("fs-2"), t(-10)).unwrap().is_empty());
    assert_eq!(repo.filesystem_samples(None, t(100)).unwrap().len(), 1);

    // Newest first; a scan without directories is not listed.
    assert_eq!(repo.dir_scans(&name("vol")).unwrap(), [(third, t(360)), (first, t(0))]);
    assert!(repo.dirs(second).unwrap().is_empty());
}

fn users_mark_volumes_in_use_and_unused_since(repo: &DieselRepository) {
    for volume in ["used", "idle", "gone"] {
        repo.upsert_volume(&discovered(volume), t(0)).unwrap();
    }
    repo.mark_volume_removed(&name("gone"), t(1)).unwrap();
    assert_eq!(repo.volume(&name("used")).unwrap().unwrap().in_use, None, "unknown before a look");
    let users = |volume: &str, containers: &[&str]| VolumeUsers {
        volume: name(volume),
        containers: containers.iter().map(|c| c.to_string()).collect(),
        in_use: false,
    };
    // A stopped container (in_use false at the source) still uses its volume.
    repo.record_users(&[users("used", &["stopped"]), users("idle", &[])], t(10)).unwrap();
    let state = |volume: &str| {
        let v = repo.volume(&name(volume)).unwrap().unwrap();
        (v.in_use, v.last_used_at, v.unused_since)
    };
    assert_eq!(state("used"), (Some(true), Some(t(10)), None));
    assert_eq!(state("idle"), (Some(false), None, Some(t(10))));
    assert_eq!(state("gone"), (None, None, None), "a removed volume is left alone");
    // Still unused later: the first time it was seen unused is kept.
    repo.record_users(&[], t(20)).unwrap();
    assert_eq!(state("idle"), (Some(false), None, Some(t(10))));
    assert_eq!(state("used"), (Some(false), Some(t(10)), Some(t(20))));
    // Used again: unused_since goes.
    repo.record_users(&[users("idle", &["web"])], t(30)).unwrap();
    assert_eq!(state("idle"), (Some(true), Some(t(30)), None));
}

fn retention_deletes_old_details_in_batches(repo: &DieselRepository) {
    for i in 0..3 {
        let at = t(i * 600);
        let scan = scan_once(repo, "vol", 10, at);
        let details = ScanDetails {
            dirs: Some(vec![dir("va", 1, 5), dir("b", 1, 4)]),
            filesystem: Some(sample("fs", 100, at)),
        };
        repo.record_details(scan, &name("vol"), at, &details).unwrap();
    }
    // Before t(1200): two scans' directories (4 rows) and two samples.
    assert_eq!(repo.purge_details_before(t(1200), 3).unwrap(), 3);
    assert_eq!(repo.purge_details_before(t(1200), 3).unwrap(), 3);
    assert_eq!(repo.purge_details_before(t(1200), 3).unwrap(), 0);
    assert_eq!(repo.dir_scans(&name("vol")).unwrap().len(), 1);
    assert_eq!(repo.filesystem_samples(None, t(-1)).unwrap().len(), 1);
}
