//! Scheduler tests on fakes (an engine and a source) over a real SQLite
//! repository, with tokio's clock paused: time moves only when a test
//! advances it, so retries, timeouts and cooldowns are checked without
//! sleeping.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::macros::datetime;
use tokio::sync::Notify;
use volscan_domain::{
    CancelToken, DiscoveredVolume, EngineChain, ReadRepository, Repository, RunFilter, ScanContext,
    ScanEngine, ScanError, ScanId, ScanMethod, ScanRun, ScanStatus, SourceError, SourceEvent,
    Trigger, Usage, Volume, VolumeKind, VolumeName, VolumeSource, VolumeUsers,
};
use volscan_repo::DieselRepository;
use volscan_testing::TempDir;

use crate::{
    HealthState, RetentionOptions, SchedulerBuilder, SchedulerError, SchedulerHandle,
    SchedulerOptions, TokioClock,
};

const T0: volscan_domain::Timestamp = datetime!(2026-06-01 12:00:00 UTC);

/// What the fake engine does on one call.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    Measure(u64),
    Fail,
    BlockUntilCanceled,
    /// Ignores the cancel for this long (real time), then stops.
    Stubborn(Duration),
}

/// An engine that follows a script, then its default behaviour.
struct FakeEngine {
    /// Set when the test ends, so a blocked scan never outlives it.
    closed: AtomicBool,
    script: Mutex<VecDeque<Behaviour>>,
    default: Behaviour,
    calls: AtomicUsize,
    started: Notify,
    /// Scans running now, per root.
    active: Mutex<BTreeMap<PathBuf, usize>>,
    /// Times a scan started while another of the same root ran.
    overlaps: AtomicUsize,
    /// The method it reports.
    method: ScanMethod,
}

impl FakeEngine {
    fn new(default: Behaviour) -> Arc<Self> {
        Self::reporting(default, ScanMethod::Native)
    }

    fn reporting(default: Behaviour, method: ScanMethod) -> Arc<Self> {
        Arc::new(FakeEngine {
            closed: AtomicBool::new(false),
            script: Mutex::new(VecDeque::new()),
            default,
            calls: AtomicUsize::new(0),
            started: Notify::new(),
            active: Mutex::new(BTreeMap::new()),
            overlaps: AtomicUsize::new(0),
            method,
        })
    }

    /// Scans running now, over every root.
    fn running(&self) -> usize {
        self.active.lock().unwrap().values().sum()
    }
}

/// Counts a scan as running while it lives.
struct ActiveScan<'a> {
    engine: &'a FakeEngine,
    root: PathBuf,
}

impl Drop for ActiveScan<'_> {
    fn drop(&mut self) {
        *self.engine.active.lock().unwrap().get_mut(&self.root).unwrap() -= 1;
    }
}

impl ScanEngine for FakeEngine {
    fn method(&self) -> ScanMethod {
        self.method
    }

    fn availability(&self, _root: &Path) -> Result<(), ScanError> {
        Ok(())
    }

    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError> {
        {
            let mut active = self.active.lock().unwrap();
            let count = active.entry(root.to_path_buf()).or_default();
            if *count > 0 {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            *count += 1;
        }
        let _active = ActiveScan { engine: self, root: root.to_path_buf() };
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.started.notify_one();
        let behaviour = self.script.lock().unwrap().pop_front().unwrap_or(self.default);
        match behaviour {
            Behaviour::Measure(size) => Ok(Usage {
                size_bytes: size,
                apparent_bytes: Some(size),
                file_count: Some(1),
                dir_count: Some(1),
                error_count: 0,
            }),
            Behaviour::Fail => Err(ScanError::ToolFailed {
                tool: "fake",
                status: "exit status: 1".into(),
                stderr: "boom".into(),
            }),
            Behaviour::BlockUntilCanceled => loop {
                if let Some(reason) = context.cancel.reason() {
                    return Err(ScanError::Canceled(reason));
                }
                if self.closed.load(Ordering::SeqCst) {
                    return Err(ScanError::Canceled(volscan_domain::CancelReason::Shutdown));
                }
                (context.progress)(1);
                std::thread::sleep(Duration::from_millis(2));
            },
            Behaviour::Stubborn(time) => {
                std::thread::sleep(time);
                Err(ScanError::Canceled(
                    context.cancel.reason().unwrap_or(volscan_domain::CancelReason::Shutdown),
                ))
            }
        }
    }
}

/// A source over temporary directories, with a skip list and scripted events.
struct FakeSource {
    /// Set when the test ends, so `watch` never outlives it.
    closed: AtomicBool,
    root: TempDir,
    volumes: Mutex<Vec<DiscoveredVolume>>,
    skipped: HashSet<String>,
    events: Mutex<VecDeque<SourceEvent>>,
    /// While set, `watch` fails at once, as an event stream that is lost
    /// and cannot reconnect.
    stream_down: AtomicBool,
    /// Calls of `watch` so far.
    watch_calls: AtomicUsize,
    /// Calls of `volumes` so far.
    list_calls: AtomicUsize,
    /// What `users` answers.
    users: Mutex<Vec<VolumeUsers>>,
}

impl FakeSource {
    fn new(names: &[&str]) -> Arc<Self> {
        let root = TempDir::new("sched-source");
        let source = FakeSource {
            closed: AtomicBool::new(false),
            volumes: Mutex::new(Vec::new()),
            skipped: HashSet::from(["docker_skipped".to_owned()]),
            events: Mutex::new(VecDeque::new()),
            stream_down: AtomicBool::new(false),
            watch_calls: AtomicUsize::new(0),
            list_calls: AtomicUsize::new(0),
            users: Mutex::new(Vec::new()),
            root,
        };
        for name in names {
            source.add(name);
        }
        Arc::new(source)
    }

    fn add(&self, name: &str) {
        let mountpoint = self.root.path().join(name);
        std::fs::create_dir_all(&mountpoint).unwrap();
        self.volumes.lock().unwrap().push(DiscoveredVolume {
            name: VolumeName::new(name).unwrap(),
            driver: "local".into(),
            mountpoint,
            kind: VolumeKind::Volume,
            labels: BTreeMap::new(),
            created_at: None,
        });
    }

    fn remove(&self, name: &str) {
        self.volumes.lock().unwrap().retain(|v| v.name.as_str() != name);
    }

    fn emit(&self, event: SourceEvent) {
        self.events.lock().unwrap().push_back(event);
    }
}

impl VolumeSource for FakeSource {
    fn ping(&self) -> Result<String, SourceError> {
        Ok("fake".into())
    }

    fn volumes(&self) -> Result<Vec<DiscoveredVolume>, SourceError> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .volumes
            .lock()
            .unwrap()
            .iter()
            .filter(|v| !self.is_skipped(&v.name))
            .cloned()
            .collect())
    }

    fn is_skipped(&self, name: &VolumeName) -> bool {
        self.skipped.contains(name.as_str())
    }

    fn scan_root(&self, volume: &Volume) -> Result<PathBuf, SourceError> {
        Ok(volume.mountpoint.clone())
    }

    fn users(&self) -> Result<Vec<VolumeUsers>, SourceError> {
        Ok(self.users.lock().unwrap().clone())
    }

    fn watch(
        &self,
        stop: &CancelToken,
        on_event: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), SourceError> {
        self.watch_calls.fetch_add(1, Ordering::SeqCst);
        while !stop.is_canceled() && !self.closed.load(Ordering::SeqCst) {
            if self.stream_down.load(Ordering::SeqCst) {
                return Err(SourceError::Unavailable("the event stream ended".into()));
            }
            let next = self.events.lock().unwrap().pop_front();
            match next {
                Some(event) => on_event(event),
                None => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        Ok(())
    }
}

/// A scheduler over fakes and a fresh SQLite database.
struct Harness {
    handle: SchedulerHandle,
    repo: Arc<DieselRepository>,
    engine: Arc<FakeEngine>,
    source: Arc<FakeSource>,
    _db: TempDir,
}

fn options() -> SchedulerOptions {
    SchedulerOptions {
        periodic: false,
        concurrency: 1,
        retention: None,
        ..SchedulerOptions::default()
    }
}

async fn harness(names: &[&str], engine: Arc<FakeEngine>, options: SchedulerOptions) -> Harness {
    let db = TempDir::new("sched-db");
    let repo = Arc::new(DieselRepository::connect(&db.sqlite_url(), 4).unwrap());
    repo.migrate().unwrap();
    harness_on(db, repo, names, engine, options).await
}

async fn harness_on(
    db: TempDir,
    repo: Arc<DieselRepository>,
    names: &[&str],
    engine: Arc<FakeEngine>,
    options: SchedulerOptions,
) -> Harness {
    let source = FakeSource::new(names);
    for volume in source.volumes().unwrap() {
        repo.upsert_volume(&volume, T0).unwrap();
    }
    let chain = EngineChain::new(vec![engine.clone() as Arc<dyn ScanEngine>]);
    let handle = SchedulerBuilder::new(source.clone(), chain, repo.clone(), options)
        .clock(Arc::new(TokioClock::starting_at(T0)))
        .start()
        .await
        .unwrap();
    Harness { handle, repo, engine, source, _db: db }
}

impl Drop for Harness {
    /// A failed assertion must not leave blocking fakes running: the runtime
    /// would wait for them forever instead of reporting the failure.
    fn drop(&mut self) {
        self.engine.closed.store(true, Ordering::SeqCst);
        self.source.closed.store(true, Ordering::SeqCst);
    }
}

fn name(s: &str) -> VolumeName {
    VolumeName::new(s).unwrap()
}

impl Harness {
    fn run(&self, scan_id: ScanId) -> ScanRun {
        self.repo.run(scan_id).unwrap().unwrap()
    }

    /// Lets the scheduler work (advancing tokio's paused clock in small steps)
    /// until `done` holds; fails after 20 s of real time.
    async fn until(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::advance(Duration::from_millis(20)).await;
            tokio::task::yield_now().await;
            tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
                .await
                .unwrap();
        }
    }

    async fn until_status(&self, scan_id: ScanId, status: ScanStatus) -> ScanRun {
        self.until(&format!("{scan_id} {status}"), |h| h.run(scan_id).status == status).await;
        self.run(scan_id)
    }

    async fn scan(&self, volume: &str) -> ScanRun {
        self.handle.scan_volume(name(volume)).await.unwrap().run
    }
}

#[tokio::test(start_paused = true)]
async fn a_manual_scan_completes_and_stores_its_usage() {
    let h = harness(&["data"], FakeEngine::new(Behaviour::Measure(4096)), options()).await;
    let run = h.scan("data").await;
    assert_eq!((run.status, run.trigger), (ScanStatus::Queued, Trigger::Manual));
    let done = h.until_status(run.scan_id, ScanStatus::Completed).await;
    assert_eq!((done.progress, done.method, done.attempt), (100, Some(ScanMethod::Native), 1));
    let stat = h.repo.latest_stat(&name("data")).unwrap().unwrap();
    assert_eq!((stat.scan_id, stat.usage.size_bytes), (run.scan_id, 4096));
    // The counters follow the database write.
    h.until("the completion is counted", |h| h.handle.status().total_completed == 1).await;
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_second_trigger_while_active_returns_the_same_run() {
    let engine = FakeEngine::new(Behaviour::BlockUntilCanceled);
    let h = harness(&["busy"], engine.clone(), options()).await;
    let first = h.handle.scan_volume(name("busy")).await.unwrap();
    assert!(!first.deduplicated);
    engine.started.notified().await;
    let second = h.handle.scan_volume(name("busy")).await.unwrap();
    assert!(second.deduplicated);
    assert_eq!(second.run.scan_id, first.run.scan_id);
    assert_eq!(second.run.status, ScanStatus::Running);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_and_skipped_volumes_are_refused() {
    let h = harness(&["known"], FakeEngine::new(Behaviour::Measure(1)), options()).await;
    let err = h.handle.scan_volume(name("unknown")).await.unwrap_err();
    assert!(matches!(err, SchedulerError::VolumeNotFound(_)), "{err}");
    let err = h.handle.scan_volume(name("docker_skipped")).await.unwrap_err();
    assert!(matches!(err, SchedulerError::Forbidden(_)), "{err}");
    // A volume created since the last reconcile is found by asking the source.
    h.source.add("fresh");
    assert_eq!(h.scan("fresh").await.status, ScanStatus::Queued);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_manual_triggers_and_bulk_reports_what_it_skipped() {
    let names: Vec<String> = (0..105).map(|i| format!("vol{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let h = harness(&refs, FakeEngine::new(Behaviour::Measure(1)), options()).await;
    // With the workers stopped nothing leaves the queue.
    h.handle.stop().await;
    let summary = h.handle.scan_all().await.unwrap();
    assert_eq!((summary.count, summary.skipped, summary.deduplicated), (100, 5, 0));
    assert_eq!(h.repo.batch_counts(summary.batch_id).unwrap().queued, 100);
    let err = h.handle.scan_volume(name("vol104")).await.unwrap_err();
    assert!(matches!(err, SchedulerError::QueueFull { capacity: 100 }), "{err}");
    // Already queued volumes are still answered idempotently.
    assert!(h.handle.scan_volume(name("vol000")).await.unwrap().deduplicated);
    assert_eq!(h.handle.status().queue_depth, 100);
    assert_eq!(h.handle.health().status, HealthState::Stopped);
    // Another bulk run on the full queue: the queued volumes are not skipped.
    tokio::time::advance(Duration::from_secs(61)).await;
    let again = h.handle.scan_all().await.unwrap();
    assert_eq!((again.count, again.skipped, again.deduplicated), (0, 5, 100));
}

#[tokio::test(start_paused = true)]
async fn a_batch_larger_than_the_queue_takes_the_stalest_volumes_first() {
    let names: Vec<String> = (0..150).map(|i| format!("vol{i:03}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let h = harness(&refs, FakeEngine::new(Behaviour::Measure(1)), options()).await;
    let first = h.handle.scan_all().await.unwrap();
    assert_eq!((first.count, first.skipped), (100, 50), "never measured: name order");
    let queued = |batch| {
        let runs = h.repo.runs(&RunFilter { batch: Some(batch), ..RunFilter::default() }).unwrap();
        runs.into_iter().map(|run| run.volume.to_string()).collect::<HashSet<String>>()
    };
    assert!(
        queued(first.batch_id).contains("vol099") && !queued(first.batch_id).contains("vol100")
    );
    h.until("the first batch completes", |h| h.handle.status().total_completed >= 100).await;
    tokio::time::advance(Duration::from_secs(61)).await;
    let second = h.handle.scan_all().await.unwrap();
    assert_eq!((second.count, second.skipped), (100, 50));
    let taken = queued(second.batch_id);
    assert!(
        (100..150).all(|i| taken.contains(&format!("vol{i:03}"))),
        "the 50 left out last time come first"
    );
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn bulk_runs_share_a_cooldown() {
    let h = harness(&["aa", "bb"], FakeEngine::new(Behaviour::Measure(1)), options()).await;
    let first = h.handle.scan_all().await.unwrap();
    assert_eq!(first.count, 2);
    tokio::time::advance(Duration::from_secs(15)).await;
    match h.handle.scan_all().await.unwrap_err() {
        SchedulerError::RateLimited { retry_after } => {
            assert_eq!(retry_after, Duration::from_secs(45))
        }
        other => panic!("expected rate limited, got {other}"),
    }
    tokio::time::advance(Duration::from_secs(46)).await;
    let again = h.handle.scan_all().await.unwrap();
    assert_eq!(again.count + again.deduplicated, 2);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failed_attempts_retry_with_jittered_backoff_then_fail() {
    let mut options = options();
    options.max_retries = 3;
    let h = harness(&["flaky"], FakeEngine::new(Behaviour::Fail), options.clone()).await;
    let run = h.scan("flaky").await;
    for attempt in 1..=3u32 {
        h.until(&format!("attempt {attempt} failed"), |h| {
            let r = h.run(run.scan_id);
            r.attempt == attempt && r.status == ScanStatus::Queued && r.not_before.is_some()
        })
        .await;
        let waiting = h.run(run.scan_id);
        let ceiling = options.retry_base * 2u32.pow(attempt - 1);
        let failed_at = waiting.started_at.unwrap();
        let delay = waiting.not_before.unwrap() - failed_at;
        assert!(delay >= time::Duration::ZERO, "attempt {attempt}: {delay}");
        // `started_at` is a little before the failure was recorded; allow that slack.
        assert!(
            delay < time::Duration::try_from(ceiling).unwrap() + time::Duration::seconds(1),
            "attempt {attempt}: {delay} ≥ {ceiling:?}"
        );
        assert!(waiting.error_message.as_deref().unwrap().contains("boom"));
        tokio::time::advance(ceiling).await;
    }
    let failed = h.until_status(run.scan_id, ScanStatus::Failed).await;
    assert_eq!(failed.attempt, 4, "one attempt and three retries");
    assert_eq!(h.engine.calls.load(Ordering::SeqCst), 4);
    h.until("the failure is counted", |h| h.handle.status().total_failed == 1).await;
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_works_while_queued_and_while_running() {
    let engine = FakeEngine::new(Behaviour::BlockUntilCanceled);
    let h = harness(&["one", "two"], engine.clone(), options()).await;
    let running = h.scan("one").await;
    engine.started.notified().await;
    let queued = h.scan("two").await;
    assert_eq!(h.run(queued.scan_id).status, ScanStatus::Queued, "one worker, busy");
    let canceled = h.handle.cancel(queued.scan_id).await.unwrap();
    assert_eq!(canceled.status, ScanStatus::Canceled);
    let canceled = h.handle.cancel(running.scan_id).await.unwrap();
    assert_eq!(canceled.status, ScanStatus::Canceled);
    let err = h.handle.cancel(running.scan_id).await.unwrap_err();
    assert!(
        matches!(err, SchedulerError::ScanFinished { status: ScanStatus::Canceled, .. }),
        "{err}"
    );
    let err = h.handle.cancel(ScanId::new()).await.unwrap_err();
    assert!(matches!(err, SchedulerError::ScanNotFound(_)), "{err}");
    assert_eq!(h.handle.status().total_canceled, 2);
    assert_eq!(h.handle.status().active_scans, 0);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_scan_past_its_timeout_fails_with_reason_timeout() {
    let engine = FakeEngine::new(Behaviour::BlockUntilCanceled);
    let mut options = options();
    options.timeout_per_volume = Duration::from_secs(120);
    let h = harness(&["slow"], engine.clone(), options).await;
    let run = h.scan("slow").await;
    engine.started.notified().await;
    tokio::time::advance(Duration::from_secs(119)).await;
    assert_eq!(h.run(run.scan_id).status, ScanStatus::Running);
    tokio::time::advance(Duration::from_secs(2)).await;
    let failed = h.until_status(run.scan_id, ScanStatus::Failed).await;
    assert_eq!(failed.error_message.as_deref(), Some("timeout"));
    assert_eq!(engine.calls.load(Ordering::SeqCst), 1, "a timeout is not retried");
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stop_puts_running_scans_back_in_the_queue_and_start_resumes_them() {
    // A first attempt that blocks until stopped, and a second one that measures.
    let engine = FakeEngine::new(Behaviour::Measure(7));
    engine.script.lock().unwrap().push_back(Behaviour::BlockUntilCanceled);
    let h = harness(&["long"], engine.clone(), options()).await;
    let run = h.scan("long").await;
    engine.started.notified().await;
    h.handle.stop().await;
    let back = h.run(run.scan_id);
    assert_eq!(
        (back.status, back.attempt),
        (ScanStatus::Queued, 0),
        "requeued; the attempt does not count"
    );
    let status = h.handle.status();
    assert!(!status.running);
    assert_eq!((status.active_scans, status.next_run_at), (0, None));
    h.handle.start().await;
    assert!(h.handle.status().running);
    let done = h.until_status(run.scan_id, ScanStatus::Completed).await;
    assert_eq!(done.attempt, 1);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn start_up_recovers_runs_left_running_by_a_dead_process() {
    let db = TempDir::new("sched-crash");
    let repo = Arc::new(DieselRepository::connect(&db.sqlite_url(), 4).unwrap());
    repo.migrate().unwrap();
    let source = FakeSource::new(&["crashed", "waiting"]);
    for volume in source.volumes().unwrap() {
        repo.upsert_volume(&volume, T0).unwrap();
    }
    // A "previous process" claimed one run and died; another run was still queued.
    let new = |volume: &str| volscan_domain::NewScanRun {
        host: Default::default(),
        scan_id: ScanId::new(),
        volume: name(volume),
        batch_id: None,
        trigger: Trigger::Schedule,
        queued_at: T0,
    };
    let crashed = repo.enqueue(new("crashed")).unwrap().run;
    assert_eq!(repo.claim_next(T0).unwrap().unwrap().scan_id, crashed.scan_id);
    let waiting = repo.enqueue(new("waiting")).unwrap().run;
    let h = harness_on(
        db,
        repo,
        &["crashed", "waiting"],
        FakeEngine::new(Behaviour::Measure(3)),
        options(),
    )
    .await;
    let old = h.run(crashed.scan_id);
    assert_eq!(
        (old.status, old.error_message.as_deref()),
        (ScanStatus::Failed, Some("interrupted"))
    );
    h.until_status(waiting.scan_id, ScanStatus::Completed).await;
    h.until("the fresh run of the crashed volume completes", |h| {
        h.repo.latest_stat(&name("crashed")).unwrap().is_some()
    })
    .await;
    let runs =
        h.repo.runs(&RunFilter { volume: Some(name("crashed")), ..RunFilter::default() }).unwrap();
    let mut statuses: Vec<ScanStatus> = runs.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [ScanStatus::Completed, ScanStatus::Failed]);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn events_queue_new_volumes_and_mark_removed_ones() {
    let h = harness(&["existing"], FakeEngine::new(Behaviour::Measure(11)), options()).await;
    h.source.add("created");
    h.source.emit(SourceEvent::VolumeCreated(name("created")));
    h.until("the created volume is scanned", |h| {
        h.repo.latest_stat(&name("created")).unwrap().is_some()
    })
    .await;
    let run =
        &h.repo.runs(&RunFilter { volume: Some(name("created")), ..RunFilter::default() }).unwrap()
            [0];
    assert_eq!(run.trigger, Trigger::Event);
    h.source.remove("existing");
    h.source.emit(SourceEvent::VolumeDestroyed(name("existing")));
    h.until("the destroyed volume is marked removed", |h| {
        h.repo.volume(&name("existing")).unwrap().unwrap().removed_at.is_some()
    })
    .await;
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_volume_created_while_the_event_stream_was_down_is_scanned_after_reconnecting() {
    let h = harness(&["existing"], FakeEngine::new(Behaviour::Measure(11)), options()).await;
    // The stream is lost and stays down; the scheduler retries it.
    h.source.stream_down.store(true, Ordering::SeqCst);
    h.until("a reconnect attempt", |h| h.source.watch_calls.load(Ordering::SeqCst) >= 3).await;
    // A volume is created meanwhile (its event is lost), and something (a
    // periodic reconcile, say) records it before the stream returns.
    h.source.add("missed");
    let missed = h.source.volumes().unwrap().into_iter().find(|v| v.name == name("missed"));
    h.repo.upsert_volume(&missed.unwrap(), T0).unwrap();
    h.source.stream_down.store(false, Ordering::SeqCst);
    h.until("the missed volume is scanned", |h| {
        h.repo.latest_stat(&name("missed")).unwrap().is_some()
    })
    .await;
    let runs = h.repo.runs(&RunFilter { volume: Some(name("missed")), ..RunFilter::default() });
    let runs = runs.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].trigger, Trigger::Event);
    // A volume known before the loss is not scanned by the catch-up.
    let existing = RunFilter { volume: Some(name("existing")), ..RunFilter::default() };
    assert_eq!(h.repo.count_runs(&existing).unwrap(), 0);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn periodic_runs_scan_every_volume_and_reconcile() {
    let mut options = options();
    options.periodic = true;
    options.first_run_delay = Duration::from_secs(5);
    options.interval = Duration::from_secs(3600);
    let h =
        harness(&["p1", "p2", "docker_skipped"], FakeEngine::new(Behaviour::Measure(5)), options)
            .await;
    assert_eq!(h.handle.status().next_run_at, Some(T0 + Duration::from_secs(5)));
    h.source.remove("p2");
    tokio::time::advance(Duration::from_secs(6)).await;
    h.until("the periodic run completes", |h| h.repo.latest_stat(&name("p1")).unwrap().is_some())
        .await;
    let run =
        &h.repo.runs(&RunFilter { volume: Some(name("p1")), ..RunFilter::default() }).unwrap()[0];
    assert_eq!(run.trigger, Trigger::Schedule);
    assert!(
        h.repo.volume(&name("p2")).unwrap().unwrap().removed_at.is_some(),
        "reconcile marks it removed"
    );
    assert!(
        h.repo
            .runs(&RunFilter { volume: Some(name("p2")), ..RunFilter::default() })
            .unwrap()
            .is_empty()
    );
    let status = h.handle.status();
    assert!(status.last_run_at.is_some());
    assert!(status.next_run_at.unwrap() > T0 + Duration::from_secs(3600));
    // The periodic run started the shared cooldown.
    assert!(matches!(h.handle.scan_all().await, Err(SchedulerError::RateLimited { .. })));
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn health_degrades_when_most_recent_runs_fail() {
    let mut options = options();
    options.max_retries = 0;
    let h = harness(&["f1", "f2", "f3"], FakeEngine::new(Behaviour::Fail), options).await;
    assert_eq!(h.handle.health().status, HealthState::Healthy);
    for (i, volume) in ["f1", "f2", "f3"].into_iter().enumerate() {
        h.scan(volume).await;
        h.until("the failure is counted", |h| h.handle.status().total_failed == i as u64 + 1).await;
    }
    let health = h.handle.health();
    assert_eq!(health.status, HealthState::Degraded);
    assert!(
        health.reasons[0].contains("3 of the last 3 finished runs failed"),
        "{:?}",
        health.reasons
    );
    h.handle.stop().await;
    assert_eq!(h.handle.health().status, HealthState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn retention_deletes_old_rows() {
    let mut options = options();
    options.retention = Some(RetentionOptions {
        ttl: Duration::from_secs(24 * 3600),
        interval: Duration::from_secs(3600),
        first_pass_delay: Duration::from_secs(10),
        batch: 2,
    });
    let h = harness(&["old"], FakeEngine::new(Behaviour::Measure(1)), options).await;
    // Rows written two days "ago" by a previous process.
    for i in 0..5 {
        let run = h
            .repo
            .enqueue(volscan_domain::NewScanRun {
                host: Default::default(),
                scan_id: ScanId::new(),
                volume: name("old"),
                batch_id: None,
                trigger: Trigger::Schedule,
                queued_at: T0 - Duration::from_secs(2 * 24 * 3600 - i),
            })
            .unwrap()
            .run;
        let at = T0 - Duration::from_secs(2 * 24 * 3600 - i);
        h.repo.claim_next(at).unwrap().unwrap();
        let usage = Usage { size_bytes: 1, ..Usage::default() };
        let outcome = volscan_domain::RunOutcome::Completed {
            usage,
            method: ScanMethod::Du,
            duration: Duration::ZERO,
        };
        h.repo.record_outcome(run.scan_id, outcome, at).unwrap();
    }
    assert_eq!(h.repo.history(&name("old"), None, None, 100).unwrap().len(), 5);
    tokio::time::advance(Duration::from_secs(11)).await;
    h.until("retention removes the old rows", |h| {
        h.repo.history(&name("old"), None, None, 100).unwrap().is_empty()
    })
    .await;
    h.until("and the old runs", |h| h.repo.count_runs(&RunFilter::default()).unwrap() == 0).await;
    h.handle.stop().await;
}

/// Cancels a fresh run of one volume again and again, the cancel landing
/// before, during and after a worker's claim: every cancel answers
/// `canceled`, the scan stops within a second, and no two scans of the
/// volume ever run at once.
async fn cancel_races_the_claim(db: TempDir, repo: Arc<DieselRepository>) {
    let engine = FakeEngine::new(Behaviour::BlockUntilCanceled);
    let options =
        SchedulerOptions { concurrency: 2, poll_interval: Duration::from_millis(2), ..options() };
    let h = harness_on(db, repo, &["race"], engine.clone(), options).await;
    for i in 0..300u64 {
        let run = h.scan("race").await;
        match i % 4 {
            0 => {}
            1 => tokio::task::yield_now().await,
            _ => tokio::time::sleep(Duration::from_micros(150 * (i % 16))).await,
        }
        let canceled = h.handle.cancel(run.scan_id).await.unwrap();
        assert_eq!(canceled.status, ScanStatus::Canceled, "iteration {i}");
        let deadline = Instant::now() + Duration::from_secs(1);
        while engine.running() > 0 {
            assert!(Instant::now() < deadline, "iteration {i}: the scan still runs after 1 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(h.run(run.scan_id).status, ScanStatus::Canceled, "iteration {i}");
    }
    assert_eq!(engine.overlaps.load(Ordering::SeqCst), 0, "two scans of one volume at once");
    assert!(engine.calls.load(Ordering::SeqCst) > 0, "no cancel ever met a running scan");
    h.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_races_the_claim_on_sqlite() {
    let db = TempDir::new("sched-race");
    let repo = Arc::new(DieselRepository::connect(&db.sqlite_url(), 4).unwrap());
    repo.migrate().unwrap();
    cancel_races_the_claim(db, repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_races_the_claim_on_postgres() {
    let pg = volscan_testing::PgDatabase::create();
    let repo = Arc::new(DieselRepository::connect(pg.url(), 4).unwrap());
    repo.migrate().unwrap();
    cancel_races_the_claim(TempDir::new("sched-race-pg"), repo).await;
    drop(pg);
}

/// Runs `running` in the table, and whether each has a live scan here.
fn running_rows(h: &Harness) -> usize {
    let filter = RunFilter { status: Some(ScanStatus::Running), ..RunFilter::default() };
    h.repo.count_runs(&filter).unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_and_start_in_any_order_leave_no_orphan_and_one_set_of_workers() {
    let names: Vec<String> = (0..12).map(|i| format!("ss{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let engine = FakeEngine::new(Behaviour::BlockUntilCanceled);
    let options = SchedulerOptions {
        concurrency: 2,
        poll_interval: Duration::from_millis(5),
        shutdown_grace: Duration::from_millis(100),
        ..options()
    };
    let h = harness(&refs, engine.clone(), options).await;
    h.handle.scan_all().await.unwrap();
    for i in 0..30 {
        // Some stops outlast the grace period: their scans ignore the cancel.
        // Not in the rounds that start again at once (`i % 3 == 1`): a scan
        // that ignores its cancel must end before the next start (see below),
        // and real engines do end when canceled.
        if i % 5 == 4 && i % 3 != 1 {
            let mut script = engine.script.lock().unwrap();
            script.push_back(Behaviour::Stubborn(Duration::from_millis(200)));
            script.push_back(Behaviour::Stubborn(Duration::from_millis(200)));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while engine.running() < 2 {
            assert!(Instant::now() < deadline, "round {i}: the workers did not start scans");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        match i % 3 {
            0 => h.handle.stop().await,
            1 => {
                tokio::join!(h.handle.stop(), h.handle.start());
                h.handle.stop().await;
            }
            _ => {
                tokio::join!(h.handle.stop(), h.handle.stop());
            }
        }
        assert!(!h.handle.status().running, "round {i}");
        assert_eq!(running_rows(&h), 0, "round {i}: a run stayed running after the stop");
        // A scan that ignored the cancel ends by itself before the next start
        // (real engines stop when canceled).
        while engine.running() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::join!(h.handle.start(), h.handle.start());
        // One set of workers: never more than two scans at once.
        for _ in 0..10 {
            assert!(engine.running() <= 2, "round {i}: {} scans at once", engine.running());
            assert!(running_rows(&h) <= 2, "round {i}");
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    // Stubborn scans may still be finishing; none of them may overlap a new one.
    assert_eq!(engine.overlaps.load(Ordering::SeqCst), 0);
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_create_events_costs_a_few_listings_not_one_each() {
    let options = SchedulerOptions { concurrency: 50, ..options() };
    let h = harness(&[], FakeEngine::new(Behaviour::Measure(1)), options).await;
    let before = h.source.list_calls.load(Ordering::SeqCst);
    for i in 0..500 {
        let name = format!("burst{i:03}");
        h.source.add(&name);
        h.source.emit(SourceEvent::VolumeCreated(self::name(&name)));
    }
    h.until("500 event runs", |h| h.repo.count_runs(&RunFilter::default()).unwrap() == 500).await;
    let runs = h.repo.runs(&RunFilter { limit: Some(1000), ..RunFilter::default() }).unwrap();
    assert!(runs.iter().all(|run| run.trigger == Trigger::Event));
    let listings = h.source.list_calls.load(Ordering::SeqCst) - before;
    assert!(listings <= 10, "{listings} listings for 500 created volumes");
    h.handle.stop().await;
}

#[tokio::test(start_paused = true)]
async fn volume_churn_leaves_the_per_volume_series_where_they_started() {
    let options = SchedulerOptions { concurrency: 50, ..options() };
    let h = harness(&["keep"], FakeEngine::new(Behaviour::Measure(4096)), options).await;
    let kept = h.scan("keep").await;
    h.until_status(kept.scan_id, ScanStatus::Completed).await;
    // The row is committed on a blocking thread before the worker records
    // the outcome in its series.
    h.until("the kept volume's series", |h| h.handle.volume_series_count() == 1).await;
    let mut baseline = String::new();
    h.handle.render_volume_metrics(&mut baseline);
    assert!(baseline.contains("volume=\"keep\""), "{baseline}");
    let completed = RunFilter { status: Some(ScanStatus::Completed), ..RunFilter::default() };
    let mut done = 1;
    for round in 0..10 {
        let names: Vec<String> = (0..500).map(|i| format!("churn{round}-{i:03}")).collect();
        for name in &names {
            h.source.add(name);
            h.source.emit(SourceEvent::VolumeCreated(self::name(name)));
        }
        done += 500;
        h.until("the round's scans", |h| h.repo.count_runs(&completed).unwrap() == done).await;
        h.until("the round's series", |h| h.handle.volume_series_count() == 501).await;
        for name in &names {
            h.source.remove(name);
            h.source.emit(SourceEvent::VolumeDestroyed(self::name(name)));
        }
        h.until("the round's series gone", |h| h.handle.volume_series_count() == 1).await;
    }
    let mut after = String::new();
    h.handle.render_volume_metrics(&mut after);
    assert_eq!(after.len(), baseline.len(), "{after}");
    h.handle.stop().await;
}

/// Wall time that can be stepped, on top of tokio's clock.
struct SteppedClock {
    inner: TokioClock,
    offset: Mutex<time::Duration>,
}

impl crate::Clock for SteppedClock {
    fn now(&self) -> volscan_domain::Timestamp {
        self.inner.now() + *self.offset.lock().unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_stepping_back_does_not_block_bulk_scans() {
    let db = TempDir::new("sched-db");
    let repo = Arc::new(DieselRepository::connect(&db.sqlite_url(), 4).unwrap());
    repo.migrate().unwrap();
    let source = FakeSource::new(&["aa"]);
    for volume in source.volumes().unwrap() {
        repo.upsert_volume(&volume, T0).unwrap();
    }
    let clock = Arc::new(SteppedClock {
        inner: TokioClock::starting_at(T0),
        offset: Mutex::new(time::Duration::ZERO),
    });
    let engine = FakeEngine::new(Behaviour::Measure(1));
    let chain = EngineChain::new(vec![engine.clone() as Arc<dyn ScanEngine>]);
    let handle = SchedulerBuilder::new(source.clone(), chain, repo.clone(), options())
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    handle.scan_all().await.unwrap();
    *clock.offset.lock().unwrap() = -time::Duration::hours(1);
    tokio::time::advance(Duration::from_secs(61)).await;
    handle.scan_all().await.expect("the cooldown counts real elapsed time");
    handle.stop().await;
    engine.closed.store(true, Ordering::SeqCst);
    source.closed.store(true, Ordering::SeqCst);
}

#[tokio::test(start_paused = true)]
async fn an_external_tool_reports_elapsed_time_against_the_estimate() {
    // du-like: no entry counts, so progress is elapsed time over the estimate.
    let engine = FakeEngine::reporting(Behaviour::BlockUntilCanceled, ScanMethod::Du);
    let h = harness(&["tool"], engine.clone(), options()).await;
    // An earlier scan that took 10 s gives the estimate.
    h.handle.stop().await;
    let earlier = h
        .repo
        .enqueue(volscan_domain::NewScanRun {
            host: Default::default(),
            scan_id: ScanId::new(),
            volume: name("tool"),
            batch_id: None,
            trigger: Trigger::Manual,
            queued_at: T0,
        })
        .unwrap()
        .run;
    h.repo.claim_next(T0).unwrap().unwrap();
    let outcome = volscan_domain::RunOutcome::Completed {
        usage: Usage { size_bytes: 1, ..Usage::default() },
        method: ScanMethod::Du,
        duration: Duration::from_secs(10),
    };
    h.repo.record_outcome(earlier.scan_id, outcome, T0).unwrap();
    h.handle.start().await;
    let run = h.scan("tool").await;
    assert_eq!(run.estimated_duration, Some(Duration::from_secs(10)));
    h.until("the scan runs", |h| h.run(run.scan_id).status == ScanStatus::Running).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    h.until("about half way", |h| (45..=70).contains(&h.run(run.scan_id).progress)).await;
    tokio::time::advance(Duration::from_secs(20)).await;
    h.until("capped at 99", |h| h.run(run.scan_id).progress == 99).await;
    assert_eq!(h.run(run.scan_id).method, Some(ScanMethod::Du));
    h.handle.cancel(run.scan_id).await.unwrap();
    h.handle.stop().await;
}

// After the fakes and the harness, which it uses.
mod insight;
