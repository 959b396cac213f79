//! Workers and attempts: claiming a due run, measuring it, and writing how
//! the attempt ended; and cancelling a run, which races the same steps.
//!
//! A worker touches the ports, the queue (it wakes the depth task), the
//! registry of running scans, and the ledger (through `settle`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use volscan_domain::{
    CancelReason, CancelToken, RepoError, RunOutcome, ScanContext, ScanDetails, ScanEngine,
    ScanError, ScanId, ScanMethod, ScanRun, ScanStatus, SourceError, error_chain,
};

use super::admission::Queue;
use super::insight;
use super::ledger::Ledger;
use super::{Ports, Stop, blocking, is_stopping};
use crate::error::SchedulerError;
use crate::metrics::{self, ErrorReason};
use crate::policy::{self, Jitter};
use crate::running::{Lookup, Running};

/// What a worker may touch.
#[derive(Clone)]
pub(super) struct Worker {
    pub ports: Arc<Ports>,
    pub queue: Arc<Queue>,
    pub running: Arc<Running>,
    pub ledger: Arc<Ledger>,
    /// Shared by the workers, for retry jitter.
    pub jitter: Arc<Jitter>,
}

/// Why an attempt produced no usage, and whether another attempt may help.
struct Failure {
    reason: String,
    retry: bool,
    metric: ErrorReason,
}

impl Failure {
    fn new(reason: impl Into<String>, retry: bool, metric: ErrorReason) -> Self {
        Failure { reason: reason.into(), retry, metric }
    }

    fn from_repo(err: RepoError) -> Self {
        Failure::new(format!("database: {err}"), true, ErrorReason::Database)
    }

    fn from_source(err: &SourceError) -> Self {
        let metric = match err {
            SourceError::Unavailable(_) => ErrorReason::Source,
            _ => ErrorReason::Unreachable,
        };
        Failure::new(error_chain(err), true, metric)
    }

    fn from_scan(err: &ScanError) -> Self {
        let metric = match err {
            ScanError::RootMissing { .. }
            | ScanError::NotADirectory { .. }
            | ScanError::RootUnreadable { .. } => ErrorReason::Unreachable,
            ScanError::Unavailable { .. } | ScanError::NoEngine { .. } => ErrorReason::NoEngine,
            ScanError::Spawn { .. }
            | ScanError::ToolFailed { .. }
            | ScanError::BadOutput { .. } => ErrorReason::ToolFailed,
            ScanError::Canceled(_) => ErrorReason::Canceled,
            ScanError::Io { .. } => ErrorReason::Io,
        };
        let retry = !matches!(err, ScanError::NoEngine { .. });
        Failure::new(error_chain(err), retry, metric)
    }
}

/// What a completed scan saw besides its totals, and where.
struct Observed {
    root: PathBuf,
    details: ScanDetails,
}

/// What a worker needs to measure a run.
struct Prepared {
    root: PathBuf,
    engine: Arc<dyn ScanEngine>,
    previous_entries: Option<u64>,
}

impl Worker {
    /// A worker's loop. Until the scheduler stops:
    ///
    /// 1. claim the oldest due run and register it as running here, in one
    ///    step on a blocking thread (so a claimed run is registered even if
    ///    this task is aborted, and a cancel or a stop cannot miss it);
    /// 2. prepare: the volume must still exist; ask the source for its root
    ///    and the engine chain for an engine;
    /// 3. measure on a blocking thread under `timeout_per_volume`, writing
    ///    progress every `progress_interval` without waiting for the write;
    /// 4. turn the result into an outcome: completed, a retry after
    ///    `policy::retry_delay` (jittered), failed, canceled, or back to
    ///    queued on shutdown;
    /// 5. write the outcome, again after `policy::outcome_write_retry_delay`
    ///    while the database is away (not once stopping), then count it in
    ///    the ledger and forget the run;
    /// 6. with nothing due, wait for a wake-up (an enqueue here, the work
    ///    signal, a retry of this process coming due), the idle poll
    ///    (`poll_interval`, or `idle_poll_interval` with a work signal), or
    ///    the stop.
    pub async fn run(self, mut stop: Stop) {
        loop {
            if is_stopping(&stop) {
                return;
            }
            let (this, now) = (self.clone(), self.ports.clock.now());
            let claimed = blocking(move || -> Result<Option<(ScanRun, CancelToken)>, RepoError> {
                let Some(claim) = this.running.begin_claim() else { return Ok(None) };
                let run = this.ports.repo.claim_next(now)?;
                Ok(run.map(|run| {
                    let token = this.running.register(claim, run.scan_id);
                    (run, token)
                }))
            })
            .await;
            match claimed {
                Ok(Ok(Some((run, token)))) => {
                    self.publish_active();
                    self.queue.changed();
                    self.execute(run, token, &stop).await;
                    continue;
                }
                Ok(Ok(None)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %error_chain(&err), "failed to claim a scan run")
                }
                Err(_) => return,
            }
            tokio::select! {
                () = self.queue.woken() => {}
                () = tokio::time::sleep(self.queue.idle_wait()) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Publishes how many scans run now.
    fn publish_active(&self) {
        metrics::active(self.running.len(), self.ports.options.concurrency);
    }

    /// Measures one claimed run and records how it ended.
    async fn execute(&self, run: ScanRun, token: CancelToken, stop: &Stop) {
        let (outcome, observed) = self.attempt(&run, &token).await;
        let scan_id = run.scan_id;
        self.record(run, outcome, observed, stop).await;
        self.running.unregister(scan_id);
        self.publish_active();
    }

    /// Writes an outcome, retrying while the database is unavailable (it may
    /// be restarting) unless the scheduler stops; start-up recovery then
    /// handles a run left `running`. After a completed scan, stores its
    /// details and refreshes the figures derived from it.
    async fn record(
        &self,
        run: ScanRun,
        outcome: RunOutcome,
        observed: Option<Observed>,
        stop: &Stop,
    ) {
        let mut delay = None;
        loop {
            let repo = Arc::clone(&self.ports.repo);
            let (scan_id, written, now) = (run.scan_id, outcome.clone(), self.ports.clock.now());
            match blocking(move || repo.record_outcome(scan_id, written, now)).await {
                Ok(Ok(stored)) => {
                    settle(&self.ports, &self.queue, &self.ledger, &outcome, &stored);
                    if let (RunOutcome::Completed { .. }, Some(seen)) = (&outcome, observed) {
                        let (ports, ledger) = (Arc::clone(&self.ports), Arc::clone(&self.ledger));
                        let derived = blocking(move || {
                            insight::after_scan(&ports, &ledger, &stored, &seen.root, &seen.details)
                        });
                        if let Ok(Err(err)) = derived.await {
                            insight::warn(
                                "failed to store a scan's directories or filesystem",
                                &err,
                            );
                        }
                        // Readers that cached before the details were stored see them now.
                        self.ledger.touched();
                    }
                    return;
                }
                Ok(Err(RepoError::Transition { source, .. })) => {
                    // Someone else settled the run first (a cancel that timed out
                    // waiting for us, or a forced requeue at shutdown).
                    tracing::info!(scan_id = %run.scan_id, %source, "run already settled elsewhere");
                    return;
                }
                Ok(Err(err)) if !is_stopping(stop) => {
                    tracing::warn!(scan_id = %run.scan_id, error = %error_chain(&err), "failed to record a scan outcome; retrying");
                    let wait = policy::outcome_write_retry_delay(delay);
                    delay = Some(wait);
                    tokio::time::sleep(wait).await;
                }
                Ok(Err(err)) => {
                    tracing::error!(scan_id = %run.scan_id, error = %error_chain(&err), "failed to record a scan outcome while stopping; recovery at the next start will requeue it");
                    return;
                }
                Err(_) => return,
            }
        }
    }

    fn retry_or_fail(&self, run: &ScanRun, failure: Failure) -> RunOutcome {
        metrics::error(failure.metric);
        let options = &self.ports.options;
        if failure.retry && run.attempt <= options.max_retries {
            let delay = policy::retry_delay(
                run.attempt,
                options.retry_base,
                options.retry_cap,
                self.jitter.unit(),
            );
            tracing::warn!(scan_id = %run.scan_id, volume = %run.volume, attempt = run.attempt, reason = %failure.reason, retry_in = ?delay, "scan attempt failed; will retry");
            self.queue.due_after(delay);
            RunOutcome::Retry { not_before: self.ports.clock.now() + delay, reason: failure.reason }
        } else {
            tracing::warn!(scan_id = %run.scan_id, volume = %run.volume, attempt = run.attempt, reason = %failure.reason, "scan failed");
            RunOutcome::Failed { reason: failure.reason }
        }
    }

    /// Finds the volume's directory and the engine for it.
    async fn prepare(&self, run: &ScanRun) -> Result<Prepared, Failure> {
        let ports = Arc::clone(&self.ports);
        let name = run.volume.clone();
        let prepared = blocking(move || -> Result<Prepared, Failure> {
            let volume = ports.repo.volume(&name).map_err(Failure::from_repo)?;
            let volume = match volume {
                Some(volume) if volume.removed_at.is_none() => volume,
                Some(_) => {
                    return Err(Failure::new(
                        "the volume was removed",
                        false,
                        ErrorReason::Removed,
                    ));
                }
                None => {
                    return Err(Failure::new("the volume is unknown", false, ErrorReason::Removed));
                }
            };
            let root = ports.source.scan_root(&volume).map_err(|err| Failure::from_source(&err))?;
            let engine = ports.engines.select(&root).map_err(|err| Failure::from_scan(&err))?;
            let previous_entries = ports
                .repo
                .latest_stat(&name)
                .map_err(Failure::from_repo)?
                .and_then(|stat| stat.usage.entries());
            Ok(Prepared { root, engine, previous_entries })
        })
        .await;
        prepared
            .unwrap_or_else(|_| Err(Failure::new("interrupted", true, ErrorReason::Interrupted)))
    }

    /// One attempt at a claimed run: prepare, measure under the timeout while
    /// writing progress, and turn the result into an outcome, with what the
    /// scan saw besides its totals.
    async fn attempt(&self, run: &ScanRun, token: &CancelToken) -> (RunOutcome, Option<Observed>) {
        let none = None;
        let prepared = match self.prepare(run).await {
            Ok(prepared) => prepared,
            Err(failure) => return (self.retry_or_fail(run, failure), none),
        };
        // Canceled while being claimed or prepared: no scan starts at all.
        if let Some(reason) = token.reason() {
            return (canceled_outcome(&self.ports, run, reason), none);
        }
        let method = prepared.engine.method();
        self.write_progress(run.scan_id, 0, Some(method));

        let seen = Arc::new(AtomicU64::new(0));
        let mut scan = {
            let (engine, root, token, seen, ports) = (
                Arc::clone(&prepared.engine),
                prepared.root.clone(),
                token.clone(),
                Arc::clone(&seen),
                Arc::clone(&self.ports),
            );
            tokio::task::spawn_blocking(move || {
                let progress = |entries: u64| seen.store(entries, Ordering::Relaxed);
                let context = ScanContext { cancel: &token, progress: &progress };
                let (usage, dirs) = engine.scan_with_dirs(&root, &context)?;
                let filesystem = ports.probe.as_ref().and_then(|probe| {
                    probe
                        .probe(&root, ports.clock.now())
                        .map_err(|err| insight::warn("failed to sample a filesystem", &err))
                        .ok()
                });
                Ok::<_, ScanError>((usage, ScanDetails { dirs, filesystem }))
            })
        };
        let options = &self.ports.options;
        let started = tokio::time::Instant::now();
        let deadline = tokio::time::sleep(options.timeout_per_volume);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval_at(
            started + options.progress_interval,
            options.progress_interval,
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
        let outcome = match result {
            Ok(Ok((usage, details))) => {
                let observed = Observed { root: prepared.root, details };
                return (RunOutcome::Completed { usage, method, duration }, Some(observed));
            }
            Ok(Err(ScanError::Canceled(reason))) => canceled_outcome(&self.ports, run, reason),
            Ok(Err(err)) => self.retry_or_fail(run, Failure::from_scan(&err)),
            Err(_) => self.retry_or_fail(
                run,
                Failure::new("the scan thread panicked", true, ErrorReason::Panic),
            ),
        };
        (outcome, none)
    }

    /// Writes progress without waiting for it: a slow database must not hold
    /// up the timeout or the cancel.
    fn write_progress(&self, scan_id: ScanId, progress: u8, method: Option<ScanMethod>) {
        let repo = Arc::clone(&self.ports.repo);
        tokio::task::spawn_blocking(move || {
            if let Err(err) = repo.update_progress(scan_id, progress, method) {
                tracing::debug!(%scan_id, error = %err, "failed to write progress");
            }
        });
    }

    /// Cancels a run: a queued one at once, a running one within
    /// `CANCEL_WAIT`. A run that finished first, even while the cancel waited
    /// for it, is `ScanFinished`.
    /// Cancels another host's run: a queued one here, since no worker holds
    /// it; a running one only its host's process can stop.
    async fn cancel_remote(&self, run: ScanRun) -> Result<ScanRun, SchedulerError> {
        let scan_id = run.scan_id;
        if run.status == ScanStatus::Running {
            return Err(SchedulerError::RunningElsewhere { scan_id, host: run.host });
        }
        let (repo, now) = (Arc::clone(&self.ports.repo), self.ports.clock.now());
        match blocking(move || repo.record_outcome(scan_id, RunOutcome::Canceled, now)).await? {
            Ok(run) => Ok(run),
            // Its host claimed it meanwhile.
            Err(RepoError::Transition { source, .. }) if source.from == ScanStatus::Running => {
                Err(SchedulerError::RunningElsewhere { scan_id, host: run.host })
            }
            Err(RepoError::Transition { source, .. }) => {
                Err(SchedulerError::ScanFinished { scan_id, status: source.from })
            }
            Err(err) => Err(err.into()),
        }
    }

    pub async fn cancel(&self, scan_id: ScanId) -> Result<ScanRun, SchedulerError> {
        let repo = Arc::clone(&self.ports.repo);
        let run = blocking(move || repo.run(scan_id))
            .await??
            .ok_or(SchedulerError::ScanNotFound(scan_id))?;
        if run.status.is_final() {
            return Err(SchedulerError::ScanFinished { scan_id, status: run.status });
        }
        if run.host != *self.ports.repo.local_host() {
            return self.cancel_remote(run).await;
        }
        // Either a worker here measures it, or a worker that registers it
        // later finds the mark and never starts the scan.
        if let Lookup::Live(scan) = self.running.lookup_or_mark(scan_id, CancelReason::User) {
            let settled = scan.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            scan.token.cancel(CancelReason::User);
            // The worker writes the outcome itself, normally within milliseconds.
            if tokio::time::timeout(policy::CANCEL_WAIT, settled).await.is_ok() {
                let repo = Arc::clone(&self.ports.repo);
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
        let (repo, now) = (Arc::clone(&self.ports.repo), self.ports.clock.now());
        match blocking(move || repo.record_outcome(scan_id, RunOutcome::Canceled, now)).await? {
            Ok(run) => {
                settle(&self.ports, &self.queue, &self.ledger, &RunOutcome::Canceled, &run);
                Ok(run)
            }
            // The worker that registered the run after our mark canceled it first.
            Err(RepoError::Transition { source, .. }) if source.from == ScanStatus::Canceled => {
                let repo = Arc::clone(&self.ports.repo);
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
}

/// After an outcome was written: counts it in the ledger and tells the depth
/// task (a retry or a requeue puts the run back in the queue; a cancel takes
/// it out).
fn settle(ports: &Ports, queue: &Queue, ledger: &Ledger, outcome: &RunOutcome, stored: &ScanRun) {
    ledger.record(outcome, stored, ports.clock.now());
    queue.changed();
    tracing::info!(scan_id = %stored.scan_id, volume = %stored.volume, status = %stored.status, attempt = stored.attempt, "scan attempt ended");
}

/// The outcome of a scan stopped by its token.
fn canceled_outcome(ports: &Ports, run: &ScanRun, reason: CancelReason) -> RunOutcome {
    match reason {
        CancelReason::User => RunOutcome::Canceled,
        CancelReason::Shutdown => RunOutcome::Requeue,
        CancelReason::Timeout => {
            metrics::error(ErrorReason::Timeout);
            tracing::warn!(scan_id = %run.scan_id, volume = %run.volume, timeout = ?ports.options.timeout_per_volume, "scan timed out");
            RunOutcome::Failed { reason: "timeout".to_owned() }
        }
    }
}
