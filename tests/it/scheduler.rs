//! The scheduler against the real Docker Engine, on SQLite and on PostgreSQL:
//! a full cycle over 50 real volumes checked against `du`, a volume created
//! and scanned through Docker's event, a removed volume keeping its history,
//! container users, and a skip-pattern volume that is never scanned.
//!
//! The source is the real `DockerSource`, seen through `OwnVolumes`, which
//! hides every volume this test did not create: volumes of others are not
//! ours to scan.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use volscan_docker::{DockerSource, DockerSourceOptions};
use volscan_domain::{
    CancelToken, DiscoveredVolume, EngineChain, Repository, RunFilter, ScanMethod, ScanStatus,
    SourceError, SourceEvent, Trigger, Volume, VolumeName, VolumeSource, VolumeUsers,
};
use volscan_repo::DieselRepository;
use volscan_scheduler::{SchedulerBuilder, SchedulerError, SchedulerOptions};
use volscan_testing::docker::{TestContainer, TestVolume, test_image};
use volscan_testing::{PgDatabase, TempDir};

use crate::support::du_bytes;

/// The Docker source restricted to the volumes named in `names`.
struct OwnVolumes {
    docker: DockerSource,
    names: Mutex<HashSet<String>>,
}

impl OwnVolumes {
    fn owns(&self, name: &VolumeName) -> bool {
        self.names.lock().unwrap().contains(name.as_str())
    }
}

impl VolumeSource for OwnVolumes {
    fn ping(&self) -> Result<String, SourceError> {
        self.docker.ping()
    }

    fn volumes(&self) -> Result<Vec<DiscoveredVolume>, SourceError> {
        Ok(self.docker.volumes()?.into_iter().filter(|v| self.owns(&v.name)).collect())
    }

    fn is_skipped(&self, name: &VolumeName) -> bool {
        self.docker.is_skipped(name)
    }

    fn scan_root(&self, volume: &Volume) -> Result<PathBuf, SourceError> {
        self.docker.scan_root(volume)
    }

    fn users(&self) -> Result<Vec<VolumeUsers>, SourceError> {
        Ok(self.docker.users()?.into_iter().filter(|u| self.owns(&u.volume)).collect())
    }

    fn watch(
        &self,
        stop: &CancelToken,
        on_event: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), SourceError> {
        self.docker.watch(stop, &mut |event| {
            let ours = match &event {
                SourceEvent::VolumeCreated(name) | SourceEvent::VolumeDestroyed(name) => {
                    self.owns(name)
                }
                SourceEvent::ContainersChanged => true,
            };
            if ours {
                on_event(event);
            }
        })
    }
}

/// Polls `done` every 50 ms for at most `limit`.
async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn name(s: &str) -> VolumeName {
    VolumeName::new(s).unwrap()
}

const VOLUMES: usize = 50;

fn docker_cycle(url: &str, backend: &str) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Fifty volumes with different known content, and one the skip pattern hides.
    let volumes: Vec<TestVolume> = (0..VOLUMES).map(|_| TestVolume::create()).collect();
    for (i, volume) in volumes.iter().enumerate() {
        let dir = volume.mountpoint().join("sub");
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..(i % 7 + 1) {
            std::fs::write(dir.join(format!("f{f}")), vec![b'v'; 1000 * (i + 1) + f]).unwrap();
        }
    }
    let skipped = TestVolume::create();
    std::fs::write(skipped.mountpoint().join("secret"), b"never measured").unwrap();
    let mut names: HashSet<String> = volumes.iter().map(|v| v.name().to_owned()).collect();
    names.insert(skipped.name().to_owned());
    let options = DockerSourceOptions {
        skip_pattern: Some(regex::Regex::new(&format!("^{}$", skipped.name())).unwrap()),
        ..DockerSourceOptions::default()
    };
    let source = Arc::new(OwnVolumes {
        docker: DockerSource::new(options).unwrap(),
        names: Mutex::new(names),
    });

    let repo = DieselRepository::connect(url, 8).unwrap();
    repo.migrate().unwrap();
    let repo: Arc<dyn Repository> = Arc::new(repo);
    let engines = EngineChain::new(
        [ScanMethod::Diskus, ScanMethod::Du, ScanMethod::Native]
            .into_iter()
            .map(|method| {
                volscan_scan::engine(method, &std::env::var_os("PATH").unwrap_or_default())
            })
            .collect(),
    );
    let options =
        SchedulerOptions { periodic: false, retention: None, ..SchedulerOptions::default() };

    runtime.block_on(async {
        let scheduler = SchedulerBuilder::new(source.clone(), engines, Arc::clone(&repo), options).start().await.unwrap();

        // One full cycle.
        let started = Instant::now();
        let summary = scheduler.scan_all().await.unwrap();
        assert_eq!((summary.count, summary.skipped), (VOLUMES as u64, 0));
        eventually("the cycle completes", Duration::from_secs(180), || {
            let counts = repo.batch_counts(summary.batch_id).unwrap();
            counts.completed + counts.failed + counts.canceled == VOLUMES as u64
        })
        .await;
        let wall = started.elapsed();
        let counts = repo.batch_counts(summary.batch_id).unwrap();
        let rows = repo.latest_stats().unwrap();
        let engine_ms: u128 = rows.iter().map(|s| s.duration.as_millis()).sum();
        eprintln!(
            "{backend} cycle over {VOLUMES} real volumes: completed {} failed {} canceled {} queued {} running {}; \
             volume_stats rows {}; wall {:?}; engine time {engine_ms} ms in all",
            counts.completed, counts.failed, counts.canceled, counts.queued, counts.running, rows.len(), wall
        );
        assert_eq!(counts.completed, VOLUMES as u64, "{counts:?}");
        for volume in &volumes {
            let stat = repo.latest_stat(&name(volume.name())).unwrap().expect("every volume has a stats row");
            assert_eq!(stat.usage.size_bytes, du_bytes(volume.mountpoint()), "{} ({})", volume.name(), stat.method);
            assert_eq!(stat.method, ScanMethod::Diskus, "the first available method");
        }

        // The skip-pattern volume is never scanned, not even on request.
        assert!(repo.volume(&name(skipped.name())).unwrap().is_none());
        let refused = scheduler.scan_volume(name(skipped.name())).await.unwrap_err();
        assert!(matches!(refused, SchedulerError::Forbidden(_)), "{refused}");
        let never = RunFilter { volume: Some(name(skipped.name())), ..RunFilter::default() };
        assert_eq!(repo.count_runs(&never).unwrap(), 0);

        // A container using a volume is listed as using it.
        let user = TestContainer::create(test_image(), &[(volumes[1].name(), "/data")], true);
        let users = source.clone();
        let users = tokio::task::spawn_blocking(move || users.users()).await.unwrap().unwrap();
        let entry = users.iter().find(|u| u.volume.as_str() == volumes[1].name()).expect("volume 1 has a user");
        assert!(entry.in_use && entry.containers.iter().any(|c| c == user.name()), "{entry:?}");
        drop(user);

        // A new volume is scanned through Docker's create event.
        let fresh_name = volscan_testing::docker::unique_name();
        source.names.lock().unwrap().insert(fresh_name.clone());
        let status = Command::new("docker").args(["volume", "create", &fresh_name]).output().unwrap();
        assert!(status.status.success());
        let fresh = FreshVolume(fresh_name.clone());
        eventually("the created volume is scanned", Duration::from_secs(60), || {
            repo.latest_stat(&name(&fresh.0)).unwrap().is_some()
        })
        .await;
        let runs = repo.runs(&RunFilter { volume: Some(name(&fresh.0)), ..RunFilter::default() }).unwrap();
        assert_eq!(runs[0].trigger, Trigger::Event);

        // A removed volume gets `removed_at` and keeps its history.
        volumes[0].remove();
        eventually("the removed volume is marked", Duration::from_secs(30), || {
            repo.volume(&name(volumes[0].name())).unwrap().is_some_and(|v| v.removed_at.is_some())
        })
        .await;
        assert_eq!(repo.history(&name(volumes[0].name()), None, None, 10).unwrap().len(), 1);
        let listed: Vec<_> = repo.volumes(false).unwrap().into_iter().map(|v| v.name.into_string()).collect();
        assert!(!listed.contains(&volumes[0].name().to_owned()));

        scheduler.stop().await;
        let running = RunFilter { status: Some(ScanStatus::Running), ..RunFilter::default() };
        assert_eq!(repo.count_runs(&running).unwrap(), 0);
    });
}

/// A volume created with the CLI by name, removed on drop.
struct FreshVolume(String);

impl Drop for FreshVolume {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["volume", "rm", "-f", &self.0]).output();
    }
}

#[test]
fn a_docker_cycle_on_sqlite() {
    let dir = TempDir::new("it-docker-cycle");
    docker_cycle(&dir.sqlite_url(), "sqlite");
}

#[test]
fn a_docker_cycle_on_postgres() {
    let database = PgDatabase::create();
    docker_cycle(database.url(), "postgres");
}
