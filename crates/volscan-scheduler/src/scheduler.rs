//! The scheduler itself: a builder, a cloneable handle, and the tasks it runs.
//!
//! The database is the queue. Workers (tokio tasks, `concurrency` of them)
//! claim due runs from the repository and measure each on a blocking thread
//! through the engine chain; a periodic task enqueues every volume each
//! interval; an events task follows the source; a retention task deletes old
//! rows. Every repository, source and engine call goes through
//! `spawn_blocking`. Timers use tokio's clock; timestamps come from the
//! injected `Clock`.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
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
use crate::running::{Lookup, Running, lock};
use crate::series::VolumeSeries;
use crate::status::{BatchSummary, SchedulerHealth, SchedulerStatus};

/// How long a reconnected event stream runs before the first catch-up
/// reconcile (the second follows four times as long after).
const CATCH_UP_DELAY: Duration = Duration::from_secs(1);

/// The longest wait between attempts to reconnect the event stream.
const MAX_EVENT_BACKOFF: Duration = Duration::from_secs(30);

/// Events waiting for the consumer at most; the stream waits when it is full.
const EVENT_BUFFER: usize = 1024;

/// How long the event consumer lets a burst gather before handling it, so a
/// burst of `create` events costs one listing of the source, not one each.
const EVENT_COALESCE: Duration = Duration::from_millis(100);

/// The queue depth is counted again at least this often (SPEC §6: the gauge
/// agrees with the table within a second).
const DEPTH_REFRESH: Duration = Duration::from_millis(500);

/// How long a forced stop waits for claims in flight to register their runs.
const CLAIM_SETTLE: Duration = Duration::from_secs(2);

/// How long a cancel waits for a running scan to stop and write its outcome.
const CANCEL_WAIT: Duration = Duration::from_secs(1);

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
            depth_changed: Notify::new(),
            state: Mutex::new(State::default()),
            lifecycle: tokio::sync::Mutex::new(()),
            running: Running::default(),
            series: VolumeSeries::default(),
            totals: Totals::default(),
            queue_depth: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            source_ok: AtomicBool::new(true),
            data_version: AtomicU64::new(0),
        });
        metrics::describe();
        inner.initialize().await?;
        inner.spawn_tasks(&mut lock(&inner.state));
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
    /// When the next periodic run is due, on the monotonic clock.
    next_run_due: Option<Instant>,
    /// Start of the last bulk or periodic batch that was enqueued (or is
    /// being enqueued), on the monotonic clock, for the shared cooldown.
    last_batch_at: Option<Instant>,
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
    /// Wakes the depth task when the queue may have changed.
    depth_changed: Notify,
    state: Mutex<State>,
    /// Held by `start` and `stop` for their whole length, so they never overlap.
    lifecycle: tokio::sync::Mutex<()>,
    /// Runs this process is measuring, and claims in flight.
    running: Running,
    /// The per-volume metric series.
    series: VolumeSeries,
    totals: Totals,
    queue_depth: AtomicU64,
    /// Final statuses of the last finished runs, newest last.
    recent: Mutex<VecDeque<ScanStatus>>,
    /// Whether the source answered at its last use.
    source_ok: AtomicBool,
    /// Bumped after every write of volumes or stats, so readers can cache.
    data_version: AtomicU64,
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SchedulerError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| SchedulerError::Interrupted)
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
            ScanError::RootMissing { .. }
            | ScanError::NotADirectory { .. }
            | ScanError::RootUnreadable { .. } => "unreachable",
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
            this.reload_series()?;
            Ok(())
        })
        .await?
    }

    /// Loads the per-volume series from the latest stats of the volumes that
    /// are still present (blocking).
    fn reload_series(&self) -> Result<(), RepoError> {
        let present: HashSet<VolumeName> =
            self.repo.volumes(false)?.into_iter().map(|v| v.name).collect();
        let latest = self.repo.latest_stats()?.into_iter().filter(|s| present.contains(&s.volume));
        self.series.replace_all(latest.map(|stat| (stat.volume, stat.usage, stat.ts)));
        Ok(())
    }

    /// Spawns the tasks and marks the scheduler running, under the state lock
    /// the caller holds (so two starts cannot both spawn).
    fn spawn_tasks(self: &Arc<Self>, state: &mut State) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let watch_stop = CancelToken::new();
        self.running.resume();
        let mut tasks = Vec::new();
        for _ in 0..self.options.concurrency.max(1) {
            tasks.push(tokio::spawn(worker(Arc::clone(self), stop_rx.clone())));
        }
        tasks.push(tokio::spawn(periodic(Arc::clone(self), stop_rx.clone())));
        tasks.push(tokio::spawn(track_depth(Arc::clone(self), stop_rx.clone())));
        tasks.push(tokio::spawn(follow_events(
            Arc::clone(self),
            stop_rx.clone(),
            watch_stop.clone(),
        )));
        if self.options.retention.is_some() {
            tasks.push(tokio::spawn(retention(Arc::clone(self), stop_rx)));
        }
        state.running = true;
        state.next_run_at =
            self.options.periodic.then(|| self.clock.now() + self.options.first_run_delay);
        state.next_run_due =
            self.options.periodic.then(|| Instant::now() + self.options.first_run_delay);
        state.stop = Some(stop_tx);
        state.watch_stop = Some(watch_stop);
        state.tasks = tasks;
        metrics::active(self.running.len(), self.options.concurrency);
    }

    fn set_depth(&self, depth: u64) {
        self.queue_depth.store(depth, Ordering::Relaxed);
        metrics::queue_depth(depth);
    }

    /// Counts the queued runs (retries waiting for their time included) and
    /// publishes the count.
    async fn refresh_depth(self: &Arc<Self>) {
        let repo = Arc::clone(&self.repo);
        let filter = RunFilter { status: Some(ScanStatus::Queued), ..RunFilter::default() };
        if let Ok(Ok(depth)) = blocking(move || repo.count_runs(&filter)).await {
            self.set_depth(depth);
        }
    }

    /// Forgets a run once its outcome is written, waking anyone waiting on it.
    fn unregister(&self, scan_id: ScanId) {
        self.running.unregister(scan_id);
        metrics::active(self.running.len(), self.options.concurrency);
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
            self.series.set(
                &stored.volume,
                usage,
                stored.completed_at.unwrap_or_else(|| self.clock.now()),
            );
        }
        // A retry or a requeue puts the run back in the queue; a cancel takes it out.
        self.depth_changed.notify_one();
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
        // Canceled while being claimed or prepared: no scan starts at all.
        if let Some(reason) = token.reason() {
            return self.canceled_outcome(run, reason);
        }
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
            Ok(Err(ScanError::Canceled(reason))) => self.canceled_outcome(run, reason),
            Ok(Err(err)) => self.retry_or_fail(run, Failure::from_scan(&err)),
            Err(_) => {
                self.retry_or_fail(run, Failure::new("the scan thread panicked", true, "panic"))
            }
        }
    }

    /// The outcome of a scan stopped by its token.
    fn canceled_outcome(&self, run: &ScanRun, reason: CancelReason) -> RunOutcome {
        match reason {
            CancelReason::User => RunOutcome::Canceled,
            CancelReason::Shutdown => RunOutcome::Requeue,
            CancelReason::Timeout => {
                metrics::error("timeout");
                tracing::warn!(scan_id = %run.scan_id, volume = %run.volume, timeout = ?self.options.timeout_per_volume, "scan timed out");
                RunOutcome::Failed { reason: "timeout".to_owned() }
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
                            this.series.remove(&known.name);
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
            let known = this.repo.volumes(false)?;
            // A scan that completed while its volume was being removed must not
            // bring the volume's series back.
            this.series.retain(&known.iter().map(|v| v.name.clone()).collect());
            Ok((known, listed))
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
                        // The reconcile above has inserted it.
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
    /// The cooldown and `last_run_at` count only a batch that was enqueued:
    /// a batch that fails (the database is away) leaves them as they were.
    async fn batch(self: &Arc<Self>, trigger: Trigger) -> Result<BatchSummary, SchedulerError> {
        let started = Instant::now();
        let previous = {
            let mut state = lock(&self.state);
            let since_last = state.last_batch_at.map(|at| started.saturating_duration_since(at));
            if let Some(retry_after) = policy::cooldown_remaining(since_last, self.options.cooldown)
            {
                return Err(SchedulerError::RateLimited { retry_after });
            }
            // Reserved now, so that two triggers at once do not both pass.
            state.last_batch_at.replace(started)
        };
        let now = self.clock.now();
        match self.enqueue_batch(trigger, now).await {
            Ok(summary) => {
                lock(&self.state).last_run_at = Some(now);
                metrics::last_run(now);
                Ok(summary)
            }
            Err(err) => {
                let mut state = lock(&self.state);
                if state.last_batch_at == Some(started) {
                    state.last_batch_at = previous;
                }
                Err(err)
            }
        }
    }

    async fn enqueue_batch(
        self: &Arc<Self>,
        trigger: Trigger,
        now: Timestamp,
    ) -> Result<BatchSummary, SchedulerError> {
        let volumes = self.reconcile().await?;
        let this = Arc::clone(self);
        let summary = blocking(move || -> Result<BatchSummary, SchedulerError> {
            let batch_id = BatchId::new();
            let mut summary = BatchSummary { batch_id, count: 0, skipped: 0, deduplicated: 0 };
            let queued = RunFilter { status: Some(ScanStatus::Queued), ..RunFilter::default() };
            let mut depth = this.repo.count_runs(&queued)?;
            for volume in volumes.into_iter().filter(|v| !this.source.is_skipped(&v.name)) {
                if depth >= this.capacity {
                    // A volume with an active run is not skipped: it will be scanned.
                    if this.repo.active_run(&volume.name)?.is_some() {
                        summary.deduplicated += 1;
                    } else {
                        summary.skipped += 1;
                    }
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

    /// Enqueues one volume (manual trigger); a volume not known yet is
    /// looked up in the source.
    async fn enqueue(
        self: &Arc<Self>,
        name: VolumeName,
        trigger: Trigger,
    ) -> Result<Enqueued, SchedulerError> {
        self.enqueue_with(name, trigger, true).await
    }

    /// Enqueues one volume; with `ask_source`, a volume not known yet is
    /// looked up in the source (otherwise it is not found).
    async fn enqueue_with(
        self: &Arc<Self>,
        name: VolumeName,
        trigger: Trigger,
        ask_source: bool,
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
                if !ask_source {
                    return Err(SchedulerError::VolumeNotFound(name));
                }
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

    /// Handles a burst of events in order. The `create` events of volumes not
    /// known yet share one listing of the source.
    async fn on_events(self: &Arc<Self>, events: Vec<SourceEvent>) {
        let created: Vec<VolumeName> = events
            .iter()
            .filter_map(|event| match event {
                SourceEvent::VolumeCreated(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        if !created.is_empty() {
            self.learn_volumes(created).await;
        }
        for event in events {
            self.on_event(event).await;
        }
    }

    /// Inserts the volumes among `names` that are not known yet, from one
    /// listing of the source.
    async fn learn_volumes(self: &Arc<Self>, names: Vec<VolumeName>) {
        let this = Arc::clone(self);
        let now = self.clock.now();
        let learned = blocking(move || -> Result<(), SchedulerError> {
            let mut unknown = HashSet::new();
            for name in names {
                let known = matches!(this.repo.volume(&name)?, Some(v) if v.removed_at.is_none());
                if !known && !this.source.is_skipped(&name) {
                    unknown.insert(name);
                }
            }
            if unknown.is_empty() {
                return Ok(());
            }
            for volume in this.source.volumes()? {
                if unknown.contains(&volume.name) {
                    this.repo.upsert_volume(&volume, now)?;
                }
            }
            this.touched();
            Ok(())
        })
        .await;
        if let Ok(Err(err)) = learned {
            tracing::warn!(error = %error_chain(&err), "could not look up newly created volumes");
        }
    }

    /// Handles one event; a created volume must be known by now (`learn_volumes`).
    async fn on_event(self: &Arc<Self>, event: SourceEvent) {
        match event {
            SourceEvent::VolumeCreated(name) => {
                match self.enqueue_with(name.clone(), Trigger::Event, false).await {
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
                self.series.remove(&name);
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
            active_scans: self.running.len() as u64,
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
        let (this, now) = (Arc::clone(&inner), inner.clock.now());
        // The claim and the registration happen together on the blocking
        // thread, so a claimed run is registered even if this task is aborted.
        let claimed = blocking(move || -> Result<Option<(ScanRun, CancelToken)>, RepoError> {
            let Some(claim) = this.running.begin_claim() else { return Ok(None) };
            let run = this.repo.claim_next(now)?;
            Ok(run.map(|run| {
                let token = this.running.register(claim, run.scan_id);
                (run, token)
            }))
        })
        .await;
        match claimed {
            Ok(Ok(Some((run, token)))) => {
                metrics::active(inner.running.len(), inner.options.concurrency);
                inner.depth_changed.notify_one();
                inner.execute(run, token, &stop).await;
                continue;
            }
            Ok(Ok(None)) => {}
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

/// Keeps `queue_depth` (and its gauge) in step with the table: counted after
/// every change this process makes and at least every `DEPTH_REFRESH`, so
/// claims, retries and other writers show within a second.
async fn track_depth(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = inner.refresh_depth() => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            () = inner.depth_changed.notified() => {}
            () = tokio::time::sleep(DEPTH_REFRESH) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn periodic(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut next = Instant::now() + inner.options.first_run_delay;
    let mut retry: Option<Duration> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if Inner::is_stopping(&stop) {
            return;
        }
        // Raced against the stop: a source or database that hangs must not
        // hold up shutdown (what was written so far is consistent).
        let ok = tokio::select! {
            ok = periodic_pass(&inner) => ok,
            _ = stop.changed() => return,
        };
        let wait = if ok {
            retry = None;
            inner.options.interval
        } else {
            let delay = policy::periodic_retry_delay(retry, inner.options.interval);
            tracing::info!(retry_in = ?delay, "the periodic run will be tried again");
            retry = Some(delay);
            delay
        };
        next = Instant::now() + wait;
        let mut state = lock(&inner.state);
        state.next_run_at = inner.options.periodic.then(|| inner.clock.now() + wait);
        state.next_run_due = inner.options.periodic.then_some(next);
    }
}

/// One periodic pass: a batch of every volume, or a reconcile when periodic
/// scans are off. Returns whether it succeeded.
async fn periodic_pass(inner: &Arc<Inner>) -> bool {
    if !inner.options.periodic {
        return match inner.reconcile().await {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "reconcile failed");
                false
            }
        };
    }
    match inner.batch(Trigger::Schedule).await {
        Ok(_) => true,
        Err(SchedulerError::RateLimited { retry_after }) => {
            tracing::info!(
                ?retry_after,
                "periodic run skipped: a bulk run started within the cooldown"
            );
            true
        }
        Err(err) => {
            tracing::warn!(error = %error_chain(&err), "periodic run failed");
            false
        }
    }
}

async fn follow_events(inner: Arc<Inner>, stop: watch::Receiver<bool>, watch_stop: CancelToken) {
    // Bounded: when the consumer falls behind, the stream waits for it.
    let (sender, mut receiver) = mpsc::channel(EVENT_BUFFER);
    let consumer = {
        let inner = Arc::clone(&inner);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                tokio::time::sleep(EVENT_COALESCE).await;
                let mut events = vec![first];
                while events.len() < EVENT_BUFFER {
                    match receiver.try_recv() {
                        Ok(event) => events.push(event),
                        Err(_) => break,
                    }
                }
                inner.on_events(events).await;
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
            source.watch(&token, &mut |event| send_waiting(&sender, event))
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

/// Hands an event to the consumer, waiting while the buffer is full. The
/// source may call this inside a runtime of its own (the Docker source
/// does), where `blocking_send` would panic, so it polls instead. An event
/// for a consumer that is gone no longer matters.
fn send_waiting(sender: &mpsc::Sender<SourceEvent>, mut event: SourceEvent) {
    loop {
        match sender.try_send(event) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
            Err(mpsc::error::TrySendError::Full(back)) => {
                event = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
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
        let cutoff = inner.clock.now() - options.ttl;
        // One batch per blocking call, raced against the stop, so a long purge
        // never holds up shutdown.
        let purged = tokio::select! {
            purged = purge(&inner, cutoff, options.batch) => purged,
            _ = stop.changed() => return,
        };
        match purged {
            Ok((stats, runs)) => {
                inner.touched();
                let this = Arc::clone(&inner);
                if let Ok(Err(err)) = blocking(move || this.reload_series()).await {
                    tracing::warn!(error = %error_chain(&err), "failed to reload the volume series");
                }
                tracing::info!(stats, runs, "retention pass done");
            }
            Err(err) => tracing::warn!(error = %error_chain(&err), "retention pass failed"),
        }
        wait = options.interval;
    }
}

/// Deletes stats and finished runs older than `cutoff`, one batch at a time.
async fn purge(
    inner: &Arc<Inner>,
    cutoff: Timestamp,
    batch: u32,
) -> Result<(u64, u64), SchedulerError> {
    let mut totals = (0, 0);
    for stats in [true, false] {
        loop {
            let repo = Arc::clone(&inner.repo);
            let deleted = blocking(move || {
                if stats {
                    repo.purge_stats_before(cutoff, batch)
                } else {
                    repo.purge_runs_before(cutoff, batch)
                }
            })
            .await??;
            if stats {
                totals.0 += deleted;
            } else {
                totals.1 += deleted;
            }
            if deleted < u64::from(batch.max(1)) {
                break;
            }
        }
    }
    Ok(totals)
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
    /// A run that finished first, even while the cancel waited for it, is
    /// `ScanFinished`.
    pub async fn cancel(&self, scan_id: ScanId) -> Result<ScanRun, SchedulerError> {
        let inner = &self.inner;
        let repo = Arc::clone(&inner.repo);
        let run = blocking(move || repo.run(scan_id))
            .await??
            .ok_or(SchedulerError::ScanNotFound(scan_id))?;
        if run.status.is_final() {
            return Err(SchedulerError::ScanFinished { scan_id, status: run.status });
        }
        // Either a worker here measures it, or a worker that registers it
        // later finds the mark and never starts the scan.
        if let Lookup::Live(scan) = inner.running.lookup_or_mark(scan_id, CancelReason::User) {
            let settled = scan.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            scan.token.cancel(CancelReason::User);
            // The worker writes the outcome itself, normally within milliseconds.
            if tokio::time::timeout(CANCEL_WAIT, settled).await.is_ok() {
                let repo = Arc::clone(&inner.repo);
                if let Some(run) = blocking(move || repo.run(scan_id)).await??
                    && run.status.is_final()
                {
                    return match run.status {
                        ScanStatus::Canceled => Ok(run),
                        status => Err(SchedulerError::ScanFinished { scan_id, status }),
                    };
                }
            }
        }
        // Queued, being claimed, or running without a worker here that
        // answers: settle it directly.
        let (repo, now) = (Arc::clone(&inner.repo), inner.clock.now());
        match blocking(move || repo.record_outcome(scan_id, RunOutcome::Canceled, now)).await? {
            Ok(run) => {
                inner.after_outcome(&RunOutcome::Canceled, &run);
                Ok(run)
            }
            // The worker that registered the run after our mark canceled it first.
            Err(RepoError::Transition { source, .. }) if source.from == ScanStatus::Canceled => {
                let repo = Arc::clone(&inner.repo);
                blocking(move || repo.run(scan_id))
                    .await??
                    .ok_or(SchedulerError::ScanNotFound(scan_id))
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
        let overdue = lock(&inner.state)
            .next_run_due
            .map(|due| Instant::now().saturating_duration_since(due));
        policy::health(&status, &recent, inner.options.periodic, inner.options.interval, overdue)
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

    /// Appends the per-volume series (`volscan_volume_*{volume}`) in the
    /// Prometheus text format: the latest completed scan of every volume that
    /// is still present, and only the fields that scan measured.
    pub fn render_volume_metrics(&self, out: &mut String) {
        self.inner.series.render(out);
    }

    /// Volumes with per-volume series now.
    pub fn volume_series_count(&self) -> usize {
        self.inner.series.len()
    }

    /// Starts again after `stop`; does nothing when running. Waits for a stop
    /// in progress to finish, and two calls at once start one set of tasks.
    pub async fn start(&self) {
        let inner = &self.inner;
        let _lifecycle = inner.lifecycle.lock().await;
        let mut state = lock(&inner.state);
        if !state.running {
            inner.spawn_tasks(&mut state);
        }
    }

    /// Stops taking work, cancels running scans and puts their runs back to
    /// `queued`, and waits for every task; the process lives on and `start`
    /// resumes. Returns within `shutdown_grace` plus a moment, whatever the
    /// scan timeout: runs whose scans do not stop in time are requeued here.
    pub async fn stop(&self) {
        let inner = &self.inner;
        let _lifecycle = inner.lifecycle.lock().await;
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
            // A claim on its blocking thread registers its run when it returns;
            // wait for those, so that none is missed below.
            let settle = Instant::now() + CLAIM_SETTLE;
            while inner.running.claims_in_flight() > 0 && Instant::now() < settle {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            for scan_id in inner.running.drain() {
                let (repo, now) = (Arc::clone(&inner.repo), inner.clock.now());
                let _ =
                    blocking(move || repo.record_outcome(scan_id, RunOutcome::Requeue, now)).await;
            }
        }
        metrics::active(inner.running.len(), inner.options.concurrency);
        inner.refresh_depth().await;
        tracing::info!("scheduler stopped");
    }

    /// The first half of `stop`, without waiting: tells every task to stop,
    /// cancels running scans (their runs go back to `queued`), claims no new
    /// run, and ends the source's event watch. Returns the tasks to wait for,
    /// or `None` when already stopped. Call it (or `stop`) before dropping the
    /// runtime: the event watch runs on a blocking thread that the runtime
    /// waits for.
    pub fn signal_stop(&self) -> Option<Vec<JoinHandle<()>>> {
        let inner = &self.inner;
        let (stop, watch_stop, tasks) = {
            let mut state = lock(&inner.state);
            if !state.running {
                return None;
            }
            state.running = false;
            state.next_run_at = None;
            state.next_run_due = None;
            (state.stop.take(), state.watch_stop.take(), std::mem::take(&mut state.tasks))
        };
        inner.running.stop_all(CancelReason::Shutdown);
        if let Some(stop) = &stop {
            let _ = stop.send(true);
        }
        if let Some(watch_stop) = watch_stop {
            watch_stop.cancel(CancelReason::Shutdown);
        }
        Some(tasks)
    }

    /// Stops for good (SIGINT/SIGTERM): the same as `stop`.
    pub async fn shutdown(&self) {
        self.stop().await;
    }
}
