//! The scheduler itself: a builder, a cloneable handle, and the tasks it runs.
//!
//! The database is the queue. Workers (tokio tasks, `concurrency` of them)
//! claim due runs from the repository and measure each on a blocking thread
//! through the engine chain; a periodic task enqueues every volume each
//! interval; an events task follows the source; a retention task deletes old
//! rows. Every repository, source and engine call goes through
//! `spawn_blocking`. Timers use tokio's clock; timestamps come from the
//! injected `Clock`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use volscan_domain::{
    BatchId, CancelReason, CancelToken, EngineChain, Enqueued, NewScanRun, RepoError, Repository,
    RunFilter, RunOutcome, ScanContext, ScanEngine, ScanError, ScanId, ScanMethod, ScanRun,
    ScanStatus, SourceError, SourceEvent, Timestamp, Trigger, Volume, VolumeName, VolumeSource,
    error_chain,
};

use crate::clock::{Clock, SystemClock};
use crate::error::SchedulerError;
use crate::metrics;
use crate::options::SchedulerOptions;
use crate::policy::{self, Jitter, RECENT};
use crate::status::{BatchSummary, SchedulerHealth, SchedulerStatus};

/// How long a reconnected event stream runs before the first catch-up
/// reconcile (the second follows four times as long after).
const CATCH_UP_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between attempts to reconnect the event stream.
const MAX_EVENT_BACKOFF: Duration = Duration::from_secs(30);

/// Builds a scheduler from its ports and options.
pub struct SchedulerBuilder {
    source: Arc<dyn VolumeSource>,
    engines: EngineChain,
    repo: Arc<dyn Repository>,
    options: SchedulerOptions,
    clock: Arc<dyn Clock>,
}

impl SchedulerBuilder {
    /// A scheduler over these ports, using the system clock.
    pub fn new(
        source: Arc<dyn VolumeSource>,
        engines: EngineChain,
        repo: Arc<dyn Repository>,
        options: SchedulerOptions,
    ) -> Self {
        SchedulerBuilder { source, engines, repo, options, clock: Arc::new(SystemClock) }
    }

    /// Uses `clock` for every timestamp it writes.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Recovers runs a dead process left `running`, then starts the workers
    /// and loops on the current tokio runtime.
    pub async fn start(self) -> Result<SchedulerHandle, SchedulerError> {
        let seed = self.clock.now().unix_timestamp_nanos() as u64;
        let inner = Arc::new(Inner {
            capacity: self.options.queue_capacity(),
            source: self.source,
            engines: self.engines,
            repo: self.repo,
            options: self.options,
            clock: self.clock,
            jitter: Jitter::new(seed ^ 0x9E37_79B9_7F4A_7C15),
            wake: Notify::new(),
            state: Mutex::new(State::default()),
            running_scans: Mutex::new(HashMap::new()),
            totals: Totals::default(),
            queue_depth: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            source_ok: AtomicBool::new(true),
            data_version: AtomicU64::new(0),
        });
        metrics::describe();
        inner.initialize().await?;
        inner.spawn_tasks();
        Ok(SchedulerHandle { inner })
    }
}

/// A handle to a running scheduler; cheap to clone, shared by the HTTP layer.
#[derive(Clone)]
pub struct SchedulerHandle {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Totals {
    completed: AtomicU64,
    failed: AtomicU64,
    canceled: AtomicU64,
}

#[derive(Default)]
struct State {
    running: bool,
    last_run_at: Option<Timestamp>,
    next_run_at: Option<Timestamp>,
    /// Start of the last bulk or periodic batch, for the shared cooldown.
    last_batch_at: Option<Timestamp>,
    stop: Option<watch::Sender<bool>>,
    watch_stop: Option<CancelToken>,
    tasks: Vec<JoinHandle<()>>,
}

struct Inner {
    source: Arc<dyn VolumeSource>,
    engines: EngineChain,
    repo: Arc<dyn Repository>,
    options: SchedulerOptions,
    clock: Arc<dyn Clock>,
    capacity: u64,
    jitter: Jitter,
    /// Wakes idle workers when work arrives.
    wake: Notify,
    state: Mutex<State>,
    /// Runs this process is measuring.
    running_scans: Mutex<HashMap<ScanId, RunningScan>>,
    totals: Totals,
    queue_depth: AtomicU64,
    /// Final statuses of the last finished runs, newest last.
    recent: Mutex<VecDeque<ScanStatus>>,
    /// Whether the source answered at its last use.
    source_ok: AtomicBool,
    /// Bumped after every write of volumes or stats, so readers can cache.
    data_version: AtomicU64,
}

/// Locks a mutex, ignoring poisoning: every critical section leaves its data
/// consistent, so a panic elsewhere does not make it unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SchedulerError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| SchedulerError::Interrupted)
}

/// A run a worker of this process is measuring.
struct RunningScan {
    /// Stops the scan.
    token: CancelToken,
    /// Notified once the run's outcome is written.
    settled: Arc<Notify>,
}

/// Why an attempt produced no usage, and whether another attempt may help.
struct Failure {
    reason: String,
    retry: bool,
    /// The `reason` label of `volscan_scan_errors_total`.
    metric: &'static str,
}

impl Failure {
    fn new(reason: impl Into<String>, retry: bool, metric: &'static str) -> Self {
        Failure { reason: reason.into(), retry, metric }
    }

    fn from_repo(err: RepoError) -> Self {
        Failure::new(format!("database: {err}"), true, "database")
    }

    fn from_scan(err: &ScanError) -> Self {
        let metric = match err {
            ScanError::RootMissing { .. } | ScanError::NotADirectory { .. } => "unreachable",
            ScanError::Unavailable { .. } | ScanError::NoEngine { .. } => "no_engine",
            ScanError::Spawn { .. }
            | ScanError::ToolFailed { .. }
            | ScanError::BadOutput { .. } => "tool_failed",
            ScanError::Canceled(_) => "canceled",
            ScanError::Io { .. } => "io",
        };
        let retry = !matches!(err, ScanError::NoEngine { .. });
        Failure::new(error_chain(err), retry, metric)
    }
}

/// What a worker needs to measure a run.
struct Prepared {
    root: std::path::PathBuf,
    engine: Arc<dyn ScanEngine>,
    previous_entries: Option<u64>,
}

impl Inner {
    async fn initialize(self: &Arc<Self>) -> Result<(), SchedulerError> {
        let this = Arc::clone(self);
        let now = self.clock.now();
        blocking(move || -> Result<(), SchedulerError> {
            let repo = &this.repo;
            let requeued = repo.recover_interrupted(now)?;
            if !requeued.is_empty() {
                tracing::warn!(
                    count = requeued.len(),
                    "runs interrupted by a previous process were failed and queued again"
                );
            }
            let count = |status| {
                repo.count_runs(&RunFilter { status: Some(status), ..RunFilter::default() })
            };
            this.totals.completed.store(count(ScanStatus::Completed)?, Ordering::Relaxed);
            this.totals.failed.store(count(ScanStatus::Failed)?, Ordering::Relaxed);
            this.totals.canceled.store(count(ScanStatus::Canceled)?, Ordering::Relaxed);
            this.set_depth(count(ScanStatus::Queued)?);
            let latest = repo.runs(&RunFilter { limit: Some(100), ..RunFilter::default() })?;
            let finished: Vec<ScanStatus> = latest
                .iter()
                .map(|run| run.status)
                .filter(|status| status.is_final())
                .take(RECENT)
                .collect();
            lock(&this.recent).extend(finished.into_iter().rev());
            for stat in repo.latest_stats()? {
                metrics::volume(&stat.volume, &stat.usage, stat.ts);
            }
            Ok(())
        })
        .await?
    }

    fn spawn_tasks(self: &Arc<Self>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let watch_stop = CancelToken::new();
        let mut tasks = Vec::new();
        for _ in 0..self.options.concurrency.max(1) {
            tasks.push(tokio::spawn(worker(Arc::clone(self), stop_rx.clone())));
        }
        tasks.push(tokio::spawn(periodic(Arc::clone(self), stop_rx.clone())));
        tasks.push(tokio::spawn(follow_events(
            Arc::clone(self),
            stop_rx.clone(),
            watch_stop.clone(),
        )));
        if self.options.retention.is_some() {
            tasks.push(tokio::spawn(retention(Arc::clone(self), stop_rx)));
        }
        let mut state = lock(&self.state);
        state.running = true;
        state.next_run_at =
            self.options.periodic.then(|| self.clock.now() + self.options.first_run_delay);
        state.stop = Some(stop_tx);
        state.watch_stop = Some(watch_stop);
        state.tasks = tasks;
        drop(state);
        metrics::active(0, self.options.concurrency);
    }

    fn set_depth(&self, depth: u64) {
        self.queue_depth.store(depth, Ordering::Relaxed);
        metrics::queue_depth(depth);
    }

    async fn refresh_depth(self: &Arc<Self>) {
        let repo = Arc::clone(&self.repo);
        let filter = RunFilter { status: Some(ScanStatus::Queued), ..RunFilter::default() };
        if let Ok(Ok(depth)) = blocking(move || repo.count_runs(&filter)).await {
            self.set_depth(depth);
        }
    }

    fn register(&self, scan_id: ScanId) -> CancelToken {
        let token = CancelToken::new();
        let mut running = lock(&self.running_scans);
        running.insert(
            scan_id,
            RunningScan { token: token.clone(), settled: Arc::new(Notify::new()) },
        );
        metrics::active(running.len(), self.options.concurrency);
        token
    }

    /// Forgets a run once its outcome is written, waking anyone waiting on it.
    fn unregister(&self, scan_id: ScanId) {
        let mut running = lock(&self.running_scans);
        if let Some(scan) = running.remove(&scan_id) {
            scan.settled.notify_waiters();
        }
        metrics::active(running.len(), self.options.concurrency);
    }

    fn is_stopping(stop: &watch::Receiver<bool>) -> bool {
        *stop.borrow()
    }

    /// Measures one claimed run and records how it ended.
    async fn execute(
        self: &Arc<Self>,
        run: ScanRun,
        token: CancelToken,
        stop: &watch::Receiver<bool>,
    ) {
        let outcome = self.attempt(&run, &token).await;
        let scan_id = run.scan_id;
        self.record(run, outcome, stop).await;
        self.unregister(scan_id);
    }

    /// Writes an outcome, retrying while the database is unavailable (it may
    /// be restarting) unless the scheduler stops; start-up recovery then
    /// handles a run left `running`.
    async fn record(
        self: &Arc<Self>,
        run: ScanRun,
        outcome: RunOutcome,
        stop: &watch::Receiver<bool>,
    ) {
        let mut delay = Duration::from_millis(500);
        loop {
            let repo = Arc::clone(&self.repo);
            let (scan_id, attempt_outcome, now) = (run.scan_id, outcome.clone(), self.clock.now());
            match blocking(move || repo.record_outcome(scan_id, attempt_outcome, now)).await {
                Ok(Ok(stored)) => {
                    self.after_outcome(&outcome, &stored);
                    return;
                }
                Ok(Err(RepoError::Transition { source, .. })) => {
                    // Someone else settled the run first (a cancel that timed out
                    // waiting for us, or a forced requeue at shutdown).
                    tracing::info!(scan_id = %run.scan_id, %source, "run already settled elsewhere");
                    return;
                }
                Ok(Err(err)) if !Self::is_stopping(stop) => {
                    tracing::warn!(scan_id = %run.scan_id, error = %error_chain(&err), "failed to record a scan outcome; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Ok(Err(err)) => {
                    tracing::error!(scan_id = %run.scan_id, error = %error_chain(&err), "failed to record a scan outcome while stopping; recovery at the next start will requeue it");
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Marks volumes or stats as changed.
    fn touched(&self) {
        self.data_version.fetch_add(1, Ordering::Release);
    }

    fn after_outcome(&self, outcome: &RunOutcome, stored: &ScanRun) {
        // First, so that whoever sees the counters move also sees the new version.
        if let RunOutcome::Completed { .. } = outcome {
            self.touched();
        }
        match outcome {
            RunOutcome::Completed { method, duration, .. } => {
                self.totals.completed.fetch_add(1, Ordering::Relaxed);
                metrics::duration(*method, *duration);
            }
            RunOutcome::Failed { .. } => {
                self.totals.failed.fetch_add(1, Ordering::Relaxed);
            }
            RunOutcome::Canceled => {
                self.totals.canceled.fetch_add(1, Ordering::Relaxed);
            }
            RunOutcome::Retry { .. } | RunOutcome::Requeue => {}
        }
        if stored.status.is_final() {
            metrics::finished(stored.status);
            let mut recent = lock(&self.recent);
            recent.push_back(stored.status);
            while recent.len() > RECENT {
                recent.pop_front();
            }
        }
        if let RunOutcome::Completed { usage, .. } = outcome {
            metrics::volume(
                &stored.volume,
                usage,
                stored.completed_at.unwrap_or_else(|| self.clock.now()),
            );
        }
        tracing::info!(scan_id = %stored.scan_id, volume = %stored.volume, status = %stored.status, attempt = stored.attempt, "scan attempt ended");
    }

    fn retry_or_fail(&self, run: &ScanRun, failure: Failure) -> RunOutcome {
        metrics::error(failure.metric);
        if failure.retry && run.attempt <= self.options.max_retries {
            let delay = policy::retry_delay(
                run.attempt,
                self.options.retry_base,
                self.options.retry_cap,
                self.jitter.unit(),
            );
            tracing::warn!(scan_id = %run.scan_id, volume = %run.volume, attempt = run.attempt, reason = %failure.reason, retry_in = ?delay, "scan attempt failed; will retry");
            RunOutcome::Retry { not_before: self.clock.now() + delay, reason: failure.reason }
        } else {
            tracing::warn!(scan_id = %run.scan_id, volume = %run.volume, attempt = run.attempt, reason = %failure.reason, "scan failed");
            RunOutcome::Failed { reason: failure.reason }
        }
    }

    /// Finds the volume's directory and the engine for it.
    async fn prepare(self: &Arc<Self>, run: &ScanRun) -> Result<Prepared, Failure> {
        let this = Arc::clone(self);
        let name = run.volume.clone();
        let prepared = blocking(move || -> Result<Prepared, Failure> {
            let volume = this.repo.volume(&name).map_err(Failure::from_repo)?;
            let volume = match volume {
                Some(volume) if volume.removed_at.is_none() => volume,
                Some(_) => return Err(Failure::new("the volume was removed", false, "removed")),
                None => return Err(Failure::new("the volume is unknown", false, "removed")),
            };
            let root = this.source.scan_root(&volume).map_err(|err| {
                let metric = if matches!(err, SourceError::Unavailable(_)) {
                    "source"
                } else {
                    "unreachable"
                };
                Failure::new(error_chain(&err), true, metric)
            })?;
            let engine = this.engines.select(&root).map_err(|err| Failure::from_scan(&err))?;
            let previous_entries = this
                .repo
                .latest_stat(&name)
                .map_err(Failure::from_repo)?
                .and_then(|stat| stat.usage.entries());
            Ok(Prepared { root, engine, previous_entries })
        })
        .await;
        prepared.unwrap_or_else(|_| Err(Failure::new("interrupted", true, "interrupted")))
    }

    /// One attempt at a claimed run: prepare, measure under the timeout while
    /// writing progress, and turn the result into an outcome.
    async fn attempt(self: &Arc<Self>, run: &ScanRun, token: &CancelToken) -> RunOutcome {
        let prepared = match self.prepare(run).await {
            Ok(prepared) => prepared,
            Err(failure) => return self.retry_or_fail(run, failure),
        };
        let method = prepared.engine.method();
        self.write_progress(run.scan_id, 0, Some(method));

        let seen = Arc::new(AtomicU64::new(0));
        let mut scan = {
            let (engine, root, token, seen) = (
                Arc::clone(&prepared.engine),
                prepared.root.clone(),
                token.clone(),
                Arc::clone(&seen),
            );
            tokio::task::spawn_blocking(move || {
                let progress = |entries: u64| seen.store(entries, Ordering::Relaxed);
                engine.scan(&root, &ScanContext { cancel: &token, progress: &progress })
            })
        };
        let started = tokio::time::Instant::now();
        let deadline = tokio::time::sleep(self.options.timeout_per_volume);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(
            started + self.options.progress_interval,
            self.options.progress_interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut timed_out = false;
        let mut written = 0;
        let result = loop {
            tokio::select! {
                result = &mut scan => break result,
                () = &mut deadline, if !timed_out => {
                    timed_out = true;
                    token.cancel(CancelReason::Timeout);
                }
                _ = ticker.tick() => {
                    let progress = policy::progress(
                        method,
                        seen.load(Ordering::Relaxed),
                        prepared.previous_entries,
                        started.elapsed(),
                        run.estimated_duration,
                    );
                    if progress != written {
                        written = progress;
                        self.write_progress(run.scan_id, progress, None);
                    }
                }
            }
        };
        let duration = started.elapsed();
        match result {
            Ok(Ok(usage)) => RunOutcome::Completed { usage, method, duration },
            Ok(Err(ScanError::Canceled(CancelReason::User))) => RunOutcome::Canceled,
            Ok(Err(ScanError::Canceled(CancelReason::Shutdown))) => RunOutcome::Requeue,
            Ok(Err(ScanError::Canceled(CancelReason::Timeout))) => {
                metrics::error("timeout");
                tracing::warn!(scan_id = %run.scan_id, volume = %run.volume, timeout = ?self.options.timeout_per_volume, "scan timed out");
                RunOutcome::Failed { reason: "timeout".to_owned() }
            }
            Ok(Err(err)) => self.retry_or_fail(run, Failure::from_scan(&err)),
            Err(_) => {
                self.retry_or_fail(run, Failure::new("the scan thread panicked", true, "panic"))
            }
        }
    }

    /// Writes progress without waiting for it: a slow database must not hold
    /// up the timeout or the cancel.
    fn write_progress(&self, scan_id: ScanId, progress: u8, method: Option<ScanMethod>) {
        let repo = Arc::clone(&self.repo);
        tokio::task::spawn_blocking(move || {
            if let Err(err) = repo.update_progress(scan_id, progress, method) {
                tracing::debug!(%scan_id, error = %err, "failed to write progress");
            }
        });
    }

    /// Refreshes `volumes` from the source: new ones inserted, seen ones
    /// refreshed, missing ones marked removed. Returns the volumes to scan;
    /// when the source does not answer, the ones already known.
    async fn reconcile(self: &Arc<Self>) -> Result<Vec<Volume>, SchedulerError> {
        Ok(self.reconcile_listing().await?.0)
    }

    /// Reconciles the known volumes with the source's list; returns the known
    /// volumes and, when the source answered, the names it listed.
    async fn reconcile_listing(
        self: &Arc<Self>,
    ) -> Result<(Vec<Volume>, Option<Vec<VolumeName>>), SchedulerError> {
        let this = Arc::clone(self);
        let now = self.clock.now();
        blocking(move || -> Result<(Vec<Volume>, Option<Vec<VolumeName>>), SchedulerError> {
            let mut listed = None;
            match this.source.volumes() {
                Ok(found) => {
                    this.source_ok.store(true, Ordering::Relaxed);
                    let present: HashSet<&VolumeName> = found.iter().map(|v| &v.name).collect();
                    for volume in &found {
                        this.repo.upsert_volume(volume, now)?;
                    }
                    for known in this.repo.volumes(false)? {
                        if !present.contains(&known.name) && this.repo.mark_volume_removed(&known.name, now)? {
                            tracing::info!(volume = %known.name, "volume is gone; its history is kept");
                        }
                    }
                    listed = Some(found.into_iter().map(|v| v.name).collect());
                }
                Err(err) => {
                    this.source_ok.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %error_chain(&err), "the volume source did not answer; using the volumes already known");
                }
            }
            this.touched();
            Ok((this.repo.volumes(false)?, listed))
        })
        .await?
    }

    /// The names of the volumes known now (not removed); empty when the
    /// database does not answer.
    async fn known_names(self: &Arc<Self>) -> HashSet<VolumeName> {
        let repo = Arc::clone(&self.repo);
        match blocking(move || repo.volumes(false)).await {
            Ok(Ok(volumes)) => volumes.into_iter().map(|v| v.name).collect(),
            _ => {
                tracing::warn!(
                    "cannot read the known volumes; every volume counts as new when the event stream returns"
                );
                HashSet::new()
            }
        }
    }

    /// Events were missed: reconciles, and queues a scan (trigger `event`) for
    /// every listed volume that `known` (the volumes known when the stream was
    /// lost) lacks, as its `create` event would have, adding it to `known`.
    /// Returns whether the source answered.
    async fn catch_up(self: &Arc<Self>, known: &mut HashSet<VolumeName>) -> bool {
        match self.reconcile_listing().await {
            Ok((_, Some(listed))) => {
                for name in listed {
                    if known.insert(name.clone()) {
                        tracing::info!(volume = %name, "volume created while the event stream was down");
                        self.on_event(SourceEvent::VolumeCreated(name)).await;
                    }
                }
                true
            }
            Ok((_, None)) => false,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "reconcile after reconnecting failed");
                false
            }
        }
    }

    /// Enqueues every volume under one batch, as far as the queue allows.
    async fn batch(self: &Arc<Self>, trigger: Trigger) -> Result<BatchSummary, SchedulerError> {
        let now = self.clock.now();
        {
            let mut state = lock(&self.state);
            if let Some(retry_after) =
                policy::cooldown_remaining(state.last_batch_at, now, self.options.cooldown)
            {
                return Err(SchedulerError::RateLimited { retry_after });
            }
            state.last_batch_at = Some(now);
            state.last_run_at = Some(now);
        }
        metrics::last_run(now);
        let volumes = self.reconcile().await?;
        let this = Arc::clone(self);
        let summary = blocking(move || -> Result<BatchSummary, SchedulerError> {
            let batch_id = BatchId::new();
            let mut summary = BatchSummary { batch_id, count: 0, skipped: 0, deduplicated: 0 };
            let queued = RunFilter { status: Some(ScanStatus::Queued), ..RunFilter::default() };
            let mut depth = this.repo.count_runs(&queued)?;
            for volume in volumes.into_iter().filter(|v| !this.source.is_skipped(&v.name)) {
                if depth >= this.capacity {
                    summary.skipped += 1;
                    continue;
                }
                let run = NewScanRun {
                    scan_id: ScanId::new(),
                    volume: volume.name,
                    batch_id: Some(batch_id),
                    trigger,
                    queued_at: now,
                };
                if this.repo.enqueue(run)?.deduplicated {
                    summary.deduplicated += 1;
                } else {
                    summary.count += 1;
                    depth += 1;
                }
            }
            this.set_depth(depth);
            Ok(summary)
        })
        .await??;
        for _ in 0..self.options.concurrency {
            self.wake.notify_one();
        }
        tracing::info!(%trigger, batch_id = %summary.batch_id, count = summary.count, skipped = summary.skipped, deduplicated = summary.deduplicated, "batch enqueued");
        Ok(summary)
    }

    /// Enqueues one volume (manual or event trigger).
    async fn enqueue(
        self: &Arc<Self>,
        name: VolumeName,
        trigger: Trigger,
    ) -> Result<Enqueued, SchedulerError> {
        if self.source.is_skipped(&name) {
            return Err(SchedulerError::Forbidden(name));
        }
        let this = Arc::clone(self);
        let now = self.clock.now();
        let enqueued = blocking(move || -> Result<Enqueued, SchedulerError> {
            let repo = &this.repo;
            let known = matches!(repo.volume(&name)?, Some(volume) if volume.removed_at.is_none());
            if !known {
                // Perhaps created since the last reconcile: ask the source.
                let found = this.source.volumes()?.into_iter().find(|v| v.name == name);
                match found {
                    Some(volume) => {
                        repo.upsert_volume(&volume, now)?;
                        this.touched();
                    }
                    None => return Err(SchedulerError::VolumeNotFound(name)),
                }
            }
            if let Some(active) = repo.active_run(&name)? {
                return Ok(Enqueued { run: active, deduplicated: true });
            }
            let queued = RunFilter { status: Some(ScanStatus::Queued), ..RunFilter::default() };
            let depth = repo.count_runs(&queued)?;
            if depth >= this.capacity {
                return Err(SchedulerError::QueueFull { capacity: this.capacity });
            }
            let enqueued = repo.enqueue(NewScanRun {
                scan_id: ScanId::new(),
                volume: name,
                batch_id: None,
                trigger,
                queued_at: now,
            })?;
            this.set_depth(depth + u64::from(!enqueued.deduplicated));
            Ok(enqueued)
        })
        .await??;
        if !enqueued.deduplicated {
            self.wake.notify_one();
        }
        Ok(enqueued)
    }

    async fn on_event(self: &Arc<Self>, event: SourceEvent) {
        match event {
            SourceEvent::VolumeCreated(name) => {
                match self.enqueue(name.clone(), Trigger::Event).await {
                    Ok(enqueued) => {
                        tracing::info!(volume = %name, scan_id = %enqueued.run.scan_id, "new volume queued for a scan")
                    }
                    Err(err) => {
                        tracing::warn!(volume = %name, error = %error_chain(&err), "could not queue a new volume")
                    }
                }
            }
            SourceEvent::VolumeDestroyed(name) => {
                let (repo, now) = (Arc::clone(&self.repo), self.clock.now());
                let removed =
                    blocking(move || repo.mark_volume_removed(&name, now).map(|r| (name, r))).await;
                self.touched();
                if let Ok(Ok((name, true))) = removed {
                    tracing::info!(volume = %name, "volume removed; its history is kept");
                }
            }
            SourceEvent::ContainersChanged => {}
        }
    }

    fn status(&self) -> SchedulerStatus {
        let state = lock(&self.state);
        SchedulerStatus {
            running: state.running,
            last_run_at: state.last_run_at,
            next_run_at: state.next_run_at,
            active_scans: lock(&self.running_scans).len() as u64,
            queue_depth: self.queue_depth.load(Ordering::Relaxed),
            queue_capacity: self.capacity,
            worker_count: self.options.concurrency as u64,
            total_completed: self.totals.completed.load(Ordering::Relaxed),
            total_failed: self.totals.failed.load(Ordering::Relaxed),
            total_canceled: self.totals.canceled.load(Ordering::Relaxed),
        }
    }
}

async fn worker(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        if Inner::is_stopping(&stop) {
            return;
        }
        let (repo, now) = (Arc::clone(&inner.repo), inner.clock.now());
        let claimed = blocking(move || repo.claim_next(now)).await;
        match claimed {
            Ok(Ok(Some(run))) => {
                // No await between the claim and the registration, so a forced
                // stop always finds this run in `running_scans`.
                let token = inner.register(run.scan_id);
                if Inner::is_stopping(&stop) {
                    token.cancel(CancelReason::Shutdown);
                }
                inner
                    .queue_depth
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                        Some(d.saturating_sub(1))
                    })
                    .ok();
                inner.execute(run, token, &stop).await;
                continue;
            }
            Ok(Ok(None)) => inner.refresh_depth().await,
            Ok(Err(err)) => {
                tracing::warn!(error = %error_chain(&err), "failed to claim a scan run")
            }
            Err(_) => return,
        }
        tokio::select! {
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(inner.options.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn periodic(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut next = tokio::time::Instant::now() + inner.options.first_run_delay;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if Inner::is_stopping(&stop) {
            return;
        }
        if inner.options.periodic {
            match inner.batch(Trigger::Schedule).await {
                Ok(_) => {}
                Err(SchedulerError::RateLimited { retry_after }) => {
                    tracing::info!(
                        ?retry_after,
                        "periodic run skipped: a bulk run started within the cooldown"
                    );
                }
                Err(err) => tracing::warn!(error = %error_chain(&err), "periodic run failed"),
            }
        } else if let Err(err) = inner.reconcile().await {
            tracing::warn!(error = %error_chain(&err), "reconcile failed");
        }
        next = tokio::time::Instant::now() + inner.options.interval;
        let next_at = inner.options.periodic.then(|| inner.clock.now() + inner.options.interval);
        lock(&inner.state).next_run_at = next_at;
    }
}

async fn follow_events(inner: Arc<Inner>, stop: watch::Receiver<bool>, watch_stop: CancelToken) {
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let consumer = {
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                inner.on_event(event).await;
            }
        })
    };
    let mut backoff = Duration::from_secs(1);
    // The volumes known when the stream was last lost, while events may have
    // been missed; `None` while none were.
    let mut known_at_loss: Option<HashSet<VolumeName>> = None;
    loop {
        let (source, token, sender) =
            (Arc::clone(&inner.source), watch_stop.clone(), sender.clone());
        let started = tokio::time::Instant::now();
        let mut watching = tokio::task::spawn_blocking(move || {
            source.watch(&token, &mut |event| {
                let _ = sender.send(event);
            })
        });
        // While the new stream runs, catch up on what was missed. The stream
        // subscribes some time after it starts, so the catch-up repeats until
        // it has succeeded twice, the second time well after the start: a
        // volume created around the reconnect is then seen by one or the
        // other (a duplicate is deduplicated).
        let mut finished = None;
        let mut caught_up = 0;
        while let Some(known) = known_at_loss.as_mut() {
            let delay = if caught_up == 0 { CATCH_UP_DELAY } else { CATCH_UP_DELAY * 4 };
            tokio::select! {
                result = &mut watching => {
                    finished = Some(result);
                    break;
                }
                () = tokio::time::sleep(delay) => {
                    if inner.catch_up(known).await {
                        caught_up += 1;
                    }
                }
            }
            if caught_up >= 2 {
                known_at_loss = None;
            }
        }
        let result = match finished {
            Some(result) => result,
            None => watching.await,
        };
        if Inner::is_stopping(&stop) || watch_stop.is_canceled() {
            break;
        }
        match result {
            Ok(Ok(())) => break,
            Ok(Err(err)) => {
                inner.source_ok.store(false, Ordering::Relaxed);
                if known_at_loss.is_none() {
                    known_at_loss = Some(inner.known_names().await);
                }
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(error = %error_chain(&err), retry_in = ?backoff, "lost the volume source's event stream");
                let mut stop = stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => break,
                }
                backoff = (backoff * 2).min(MAX_EVENT_BACKOFF);
            }
            Err(_) => break,
        }
    }
    drop(sender);
    let _ = consumer.await;
}

async fn retention(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let Some(options) = inner.options.retention.clone() else { return };
    let mut wait = options.first_pass_delay;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if Inner::is_stopping(&stop) {
            return;
        }
        let (repo, now) = (Arc::clone(&inner.repo), inner.clock.now());
        let ttl = options.ttl;
        let batch = options.batch;
        let purged = blocking(move || -> Result<(u64, u64), RepoError> {
            let cutoff = now - ttl;
            Ok((repo.purge_stats_before(cutoff, batch)?, repo.purge_runs_before(cutoff, batch)?))
        })
        .await;
        match purged {
            Ok(Ok((stats, runs))) => {
                inner.touched();
                tracing::info!(stats, runs, "retention pass done");
            }
            Ok(Err(err)) => tracing::warn!(error = %error_chain(&err), "retention pass failed"),
            Err(_) => return,
        }
        wait = options.interval;
    }
}

impl SchedulerHandle {
    /// Queues a scan of one volume (`POST /volumes/{name}/scan`). A volume
    /// with an active run gets that run back with `deduplicated: true`.
    pub async fn scan_volume(&self, name: VolumeName) -> Result<Enqueued, SchedulerError> {
        self.inner.enqueue(name, Trigger::Manual).await
    }

    /// Queues every volume (`POST /scan/now`); refused inside the cooldown
    /// shared with periodic runs.
    pub async fn scan_all(&self) -> Result<BatchSummary, SchedulerError> {
        self.inner.batch(Trigger::Bulk).await
    }

    /// Cancels a run: a queued one at once, a running one within a second.
    pub async fn cancel(&self, scan_id: ScanId) -> Result<ScanRun, SchedulerError> {
        let inner = &self.inner;
        let repo = Arc::clone(&inner.repo);
        let run = blocking(move || repo.run(scan_id))
            .await??
            .ok_or(SchedulerError::ScanNotFound(scan_id))?;
        if run.status.is_final() {
            return Err(SchedulerError::ScanFinished { scan_id, status: run.status });
        }
        let running = lock(&inner.running_scans)
            .get(&scan_id)
            .map(|scan| (scan.token.clone(), Arc::clone(&scan.settled)));
        if let Some((token, settled)) = running {
            let settled = settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            token.cancel(CancelReason::User);
            // The worker writes `canceled` itself, normally within milliseconds.
            if tokio::time::timeout(Duration::from_secs(1), settled).await.is_ok() {
                let repo = Arc::clone(&inner.repo);
                if let Some(run) = blocking(move || repo.run(scan_id)).await??
                    && run.status.is_final()
                {
                    return Ok(run);
                }
            }
        }
        // Queued, or running without a worker here that answers: settle it directly.
        let (repo, now) = (Arc::clone(&inner.repo), inner.clock.now());
        match blocking(move || repo.record_outcome(scan_id, RunOutcome::Canceled, now)).await? {
            Ok(run) => {
                inner.after_outcome(&RunOutcome::Canceled, &run);
                if run.status == ScanStatus::Canceled {
                    inner.refresh_depth().await;
                }
                Ok(run)
            }
            Err(RepoError::Transition { source, .. }) => {
                Err(SchedulerError::ScanFinished { scan_id, status: source.from })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The status snapshot; cheap, no database access.
    pub fn status(&self) -> SchedulerStatus {
        self.inner.status()
    }

    /// The scheduler's health, judged from the status snapshot.
    pub fn health(&self) -> SchedulerHealth {
        let inner = &self.inner;
        let status = inner.status();
        let recent: Vec<ScanStatus> = lock(&inner.recent).iter().copied().collect();
        policy::health(
            &status,
            &recent,
            inner.options.periodic,
            inner.options.interval,
            inner.clock.now(),
        )
    }

    /// A number that changes whenever the scheduler writes volumes or stats;
    /// readers may cache what they derived from them while it stays the same.
    pub fn data_version(&self) -> u64 {
        self.inner.data_version.load(Ordering::Acquire)
    }

    /// Whether the volume source answered at its last use.
    pub fn source_reachable(&self) -> bool {
        self.inner.source_ok.load(Ordering::Relaxed)
    }

    /// Pings the volume source now; updates `source_reachable`.
    pub async fn check_source(&self) -> Result<String, SchedulerError> {
        let source = Arc::clone(&self.inner.source);
        let result = blocking(move || source.ping()).await?;
        self.inner.source_ok.store(result.is_ok(), Ordering::Relaxed);
        Ok(result?)
    }

    /// The volume source, for read-only questions (which containers use a volume).
    pub fn source(&self) -> Arc<dyn VolumeSource> {
        Arc::clone(&self.inner.source)
    }

    /// Starts again after `stop`; does nothing when running.
    pub fn start(&self) {
        if !lock(&self.inner.state).running {
            self.inner.spawn_tasks();
        }
    }

    /// Stops taking work, cancels running scans and puts their runs back to
    /// `queued`, and waits for every task; the process lives on and `start`
    /// resumes. Returns within `shutdown_grace` plus a moment, whatever the
    /// scan timeout: runs whose scans do not stop in time are requeued here.
    pub async fn stop(&self) {
        let inner = &self.inner;
        let Some(tasks) = self.signal_stop() else { return };
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let joined = tokio::time::timeout(inner.options.shutdown_grace, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
        if joined.is_err() {
            tracing::warn!(
                "scans did not stop within the grace period; putting their runs back to queued"
            );
            for abort in aborts {
                abort.abort();
            }
            let stuck: Vec<ScanId> = lock(&inner.running_scans).drain().map(|(id, _)| id).collect();
            for scan_id in stuck {
                let (repo, now) = (Arc::clone(&inner.repo), inner.clock.now());
                let _ =
                    blocking(move || repo.record_outcome(scan_id, RunOutcome::Requeue, now)).await;
            }
        }
        metrics::active(0, inner.options.concurrency);
        inner.refresh_depth().await;
        tracing::info!("scheduler stopped");
    }

    /// The first half of `stop`, without waiting: tells every task to stop,
    /// cancels running scans (their runs go back to `queued`) and ends the
    /// source's event watch. Returns the tasks to wait for, or `None` when
    /// already stopped. Call it (or `stop`) before dropping the runtime: the
    /// event watch runs on a blocking thread that the runtime waits for.
    pub fn signal_stop(&self) -> Option<Vec<JoinHandle<()>>> {
        let inner = &self.inner;
        let (stop, watch_stop, tasks) = {
            let mut state = lock(&inner.state);
            if !state.running {
                return None;
            }
            state.running = false;
            state.next_run_at = None;
            (state.stop.take(), state.watch_stop.take(), std::mem::take(&mut state.tasks))
        };
        if let Some(stop) = &stop {
            let _ = stop.send(true);
        }
        if let Some(watch_stop) = watch_stop {
            watch_stop.cancel(CancelReason::Shutdown);
        }
        for scan in lock(&inner.running_scans).values() {
            scan.token.cancel(CancelReason::Shutdown);
        }
        Some(tasks)
    }

    /// Stops for good (SIGINT/SIGTERM): the same as `stop`.
    pub async fn shutdown(&self) {
        self.stop().await;
    }
}
