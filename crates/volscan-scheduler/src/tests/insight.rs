//! Scheduler tests of the figures derived from scans (SPEC §8): a completed
//! scan stores its directories and its filesystem's sample, each volume's
//! growth rate and each filesystem's figures reach the exposition, and a
//! container event refreshes which volumes are unused.

use volscan_domain::{DirUsage, FilesystemProbe, FilesystemSample, ProbeError, Timestamp};

use super::*;

/// An engine measuring the sizes of a script (then 500), with one directory
/// holding half of it.
struct DirsEngine {
    sizes: Mutex<VecDeque<u64>>,
}

impl ScanEngine for DirsEngine {
    fn method(&self) -> ScanMethod {
        ScanMethod::Native
    }

    fn availability(&self, _root: &Path) -> Result<(), ScanError> {
        Ok(())
    }

    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError> {
        Ok(self.scan_with_dirs(root, context)?.0)
    }

    fn scan_with_dirs(
        &self,
        _root: &Path,
        _context: &ScanContext<'_>,
    ) -> Result<(Usage, Option<Vec<DirUsage>>), ScanError> {
        let size = self.sizes.lock().unwrap().pop_front().unwrap_or(500);
        let usage = Usage { size_bytes: size, file_count: Some(2), ..Usage::default() };
        let logs = DirUsage {
            path: "logs".to_owned(),
            depth: 1,
            size_bytes: size / 2,
            file_count: Some(1),
        };
        Ok((usage, Some(vec![logs])))
    }
}

/// A filesystem with 1,000,000 bytes free at `T0`, losing 50,000 an hour.
struct ShrinkingProbe;

impl FilesystemProbe for ShrinkingProbe {
    fn probe(&self, _dir: &Path, now: Timestamp) -> Result<FilesystemSample, ProbeError> {
        let hours = (now - T0).as_seconds_f64() / 3600.0;
        Ok(FilesystemSample {
            id: "fs-test".to_owned(),
            mount_point: "/data".to_owned(),
            fs_type: "ext4".to_owned(),
            total_bytes: 10_000_000,
            avail_bytes: (1_000_000.0 - 50_000.0 * hours) as u64,
            ts: now,
        })
    }
}

/// The value of the sample of `family` whose labels contain `label`.
fn value(text: &str, family: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{family}{{")) && line.contains(label))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(start_paused = true)]
async fn completed_scans_feed_growth_filesystems_and_unused_volumes() {
    let db = TempDir::new("sched-insight");
    let repo = Arc::new(DieselRepository::connect(&db.sqlite_url(), 4).unwrap());
    repo.migrate().unwrap();
    let source = FakeSource::new(&["grows", "idle"]);
    for volume in source.volumes().unwrap() {
        repo.upsert_volume(&volume, T0).unwrap();
    }
    let engine =
        Arc::new(DirsEngine { sizes: Mutex::new(VecDeque::from([777, 1000, 2000, 3000, 4000])) });
    let probe = Arc::new(ShrinkingProbe);
    let handle = SchedulerBuilder::new(
        source.clone(),
        EngineChain::new(vec![engine as Arc<dyn ScanEngine>]),
        repo.clone(),
        options(),
    )
    .clock(Arc::new(TokioClock::starting_at(T0)))
    .filesystems(probe)
    .start()
    .await
    .unwrap();
    let h = Harness { handle, repo, engine: FakeEngine::new(Behaviour::Fail), source, _db: db };

    let idle = h.scan("idle").await;
    h.until_status(idle.scan_id, ScanStatus::Completed).await;
    // Four scans of "grows", two hours apart: 1,000 bytes more each time,
    // while the filesystem loses 50,000 bytes an hour.
    let mut last = None;
    for _ in 0..4 {
        // Two hours in ten-minute steps, for the sampler between scans.
        for _ in 0..12 {
            tokio::time::advance(Duration::from_secs(600)).await;
            for _ in 0..3 {
                tokio::task::yield_now().await;
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(2)))
                    .await
                    .unwrap();
            }
        }
        let run = h.scan("grows").await;
        last = Some(h.until_status(run.scan_id, ScanStatus::Completed).await);
    }
    let last = last.unwrap();

    // The directories of every scan are stored; the newest holds half of 4,000.
    // The details are stored, then the filesystem's figures published, after
    // the run's row is final.
    h.until("the last scan's directories and sample are in", |h| {
        let mut text = String::new();
        h.handle.render_capacity_metrics(&mut text);
        let sampled = value(&text, "volscan_filesystem_avail_bytes", "filesystem=\"fs-test\"");
        h.repo.dir_scans(&name("grows")).unwrap().len() == 4
            && sampled.is_some_and(|avail| (avail - 600_000.0).abs() <= 2_000.0)
    })
    .await;
    let dirs = h.repo.dirs(last.scan_id).unwrap();
    assert_eq!(
        dirs.iter().map(|d| (d.path.as_str(), d.size_bytes)).collect::<Vec<_>>(),
        [("logs", 2000)]
    );
    let volume = h.repo.volume(&name("grows")).unwrap().unwrap();
    assert_eq!(volume.filesystem_id.as_deref(), Some("fs-test"));

    let mut text = String::new();
    h.handle.render_volume_metrics(&mut text);
    h.handle.render_capacity_metrics(&mut text);
    // 1,000 bytes every 2 hours is 12,000 a day.
    let rate = value(&text, "volscan_volume_growth_bytes_per_day", "volume=\"grows\"").unwrap();
    assert!((rate - 12_000.0).abs() < 1.0, "{rate}\n{text}");
    // One scan of "idle": no rate.
    assert_eq!(value(&text, "volscan_volume_growth_bytes_per_day", "volume=\"idle\""), None);
    // Sampled at the scans and every minute between them: free space falls
    // 1.2 MB a day to about 600,000 now (8 h after T0), so the filesystem is
    // full 20 h after T0, about 12 h from now.
    let avail = value(&text, "volscan_filesystem_avail_bytes", "filesystem=\"fs-test\"").unwrap();
    assert!((avail - 600_000.0).abs() <= 2_000.0, "{avail}\n{text}");
    let full_in =
        value(&text, "volscan_filesystem_full_in_seconds", "mount_point=\"/data\"").unwrap();
    assert!((full_in - 12.0 * 3600.0).abs() < 180.0, "{full_in}\n{text}");
    // Stored history: spaced at least five minutes apart.
    let samples = h.repo.filesystem_samples(Some("fs-test"), T0).unwrap();
    assert!(samples.len() > 5, "sampled between scans: {}", samples.len());
    assert!(samples.windows(2).all(|w| w[1].ts - w[0].ts >= time::Duration::minutes(5)));
    assert_eq!(value(&text, "volscan_volumes_unused", ""), None, "unknown before a look");

    // A container event: "grows" has a (stopped) user, "idle" has none.
    *h.source.users.lock().unwrap() = vec![VolumeUsers {
        volume: name("grows"),
        containers: vec!["web".to_owned()],
        in_use: false,
    }];
    h.source.emit(SourceEvent::ContainersChanged);
    h.until("the unused volumes are counted", |h| {
        let mut text = String::new();
        h.handle.render_capacity_metrics(&mut text);
        text.contains("volscan_volumes_unused 1\n")
            && text.contains("volscan_reclaimable_bytes 777\n")
    })
    .await;
    let idle = h.repo.volume(&name("idle")).unwrap().unwrap();
    assert_eq!((idle.in_use, idle.last_used_at), (Some(false), None));
    assert!(idle.unused_since.is_some());
    assert_eq!(h.repo.volume(&name("grows")).unwrap().unwrap().in_use, Some(true));
}
