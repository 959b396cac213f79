//! The scheduler: a builder, a cloneable handle, and the tasks it runs on the
//! caller's tokio runtime. The database is the queue; every repository,
//! source and engine call goes through `spawn_blocking`; timers use tokio's
//! clock and timestamps come from the injected `Clock`.
//!
//! # Tasks
//!
//! `start` spawns, and `stop` ends, these tasks; each one's doc comment lists
//! its steps in order:
//!
//! - `concurrency` workers ([`worker::Worker::run`]): claim, measure, record;
//! - the periodic task ([`housekeeping::periodic`]): a batch every interval;
//! - the event follower ([`sync::follow_events`]): the source's events, and
//!   the catch-up after a lost stream;
//! - the depth task ([`admission::track_depth`]): the queue depth gauge;
//! - the filesystem sampler ([`housekeeping::sample_filesystems`]), with a
//!   filesystem probe;
//! - the retention task ([`housekeeping::retention`]), when retention is on.
//!
//! # Who owns what
//!
//! Each concern owns its state, and a task gets only the parts it may touch:
//!
//! | state | module | touched by |
//! |---|---|---|
//! | `Ports`: source, engines, repository, options, clock (read-only) | here | everyone |
//! | `Queue`: capacity, depth, worker wake-ups, batch cooldown | `admission` | admission, workers, depth task |
//! | `Running`: live scans, claims in flight, cancel marks | `crate::running` | workers, cancel, stop |
//! | `Ledger`: totals, recent statuses, series, data version | `ledger` | workers, cancel, sync, retention |
//!
//! `insight` owns no state: it derives growth, filesystem forecasts and the
//! unused volumes from stored data into the ledger's series.
//! | `Schedule`: when the next periodic run is due | `housekeeping` | periodic task, start, stop |
//! | `Tasks`: running flag, stop signals, task handles | here | start, stop |
//!
//! Timing rules are in `crate::policy` (fixed) and `SchedulerOptions`
//! (configurable).

mod admission;
mod fleet;
mod housekeeping;
mod insight;
mod ledger;
mod sync;
mod worker;

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use volscan_domain::{
    CancelReason, CancelToken, EngineChain, Enqueued, FilesystemProbe, HostInfo, Repository,
    RunFilter, RunOutcome, ScanId, ScanRun, ScanStatus, Trigger, VolumeName, VolumeSource,
    WorkSignal,
};

pub use self::admission::Targets;
use self::admission::{Admission, Queue};
use self::housekeeping::Schedule;
use self::ledger::Ledger;
use self::worker::Worker;
use crate::clock::{Clock, SystemClock};
use crate::error::SchedulerError;
use crate::metrics;
use crate::options::SchedulerOptions;
use crate::policy::{self, Jitter};
use crate::running::{Running, lock};
use crate::status::{BatchSummary, SchedulerHealth, SchedulerStatus};

/// Builds a scheduler from its ports and options.
pub struct SchedulerBuilder {
    source: Arc<dyn VolumeSource>,
    engines: EngineChain,
    repo: Arc<dyn Repository>,
    options: SchedulerOptions,
    clock: Arc<dyn Clock>,
    probe: Option<Arc<dyn FilesystemProbe>>,
    host: Option<HostInfo>,
    signal: Option<Box<dyn WorkSignal>>,
}

impl SchedulerBuilder {
    /// A scheduler over these ports, using the system clock.
    pub fn new(
        source: Arc<dyn VolumeSource>,
        engines: EngineChain,
        repo: Arc<dyn Repository>,
        options: SchedulerOptions,
    ) -> Self {
        SchedulerBuilder {
            source,
            engines,
            repo,
            options,
            clock: Arc::new(SystemClock),
            probe: None,
            host: None,
            signal: None,
        }
    }

    /// Samples the filesystem holding each volume after its scans with
    /// `probe` (for `GET /filesystems` and the fill forecast); without one,
    /// no filesystem is sampled.
    pub fn filesystems(mut self, probe: Arc<dyn FilesystemProbe>) -> Self {
        self.probe = Some(probe);
        self
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
        let idle_poll = if self.signal.is_some() {
            self.options.idle_poll_interval
        } else {
            self.options.poll_interval
        };
        let core = Core {
            queue: Arc::new(Queue::new(self.options.queue_capacity(), idle_poll)),
            host: self.host,
            signal: self.signal.map(|s| Arc::new(Mutex::new(s))),
            ports: Arc::new(Ports {
                source: self.source,
                engines: self.engines,
                repo: self.repo,
                options: self.options,
                clock: self.clock,
                probe: self.probe,
            }),
            running: Arc::default(),
            ledger: Arc::default(),
            schedule: Arc::default(),
            jitter: Arc::new(Jitter::new(seed ^ 0x9E37_79B9_7F4A_7C15)),
            lifecycle: tokio::sync::Mutex::new(()),
            tasks: Mutex::default(),
        };
        metrics::describe();
        core.initialize().await?;
        core.spawn_tasks(&mut lock(&core.tasks));
        Ok(SchedulerHandle { core: Arc::new(core) })
    }
}

/// A handle to a running scheduler; cheap to clone, shared by the HTTP layer.
/// When the last handle is dropped, the scheduler's tasks are told to stop
/// (without waiting for them; `stop` waits).
#[derive(Clone)]
pub struct SchedulerHandle {
    core: Arc<Core>,
}

impl SchedulerHandle {
    /// Queues a scan of one volume (`POST /volumes/{name}/scan`). A volume
    /// not known yet is looked up in the source; a volume with an active run
    /// gets that run back with `deduplicated: true`.
    pub async fn scan_volume(&self, name: VolumeName) -> Result<Enqueued, SchedulerError> {
        self.core.admission().enqueue(name, Trigger::Manual, true).await
    }

    /// Queues every volume (`POST /scan/now`); refused inside the cooldown
    /// shared with periodic runs.
    pub async fn scan_all(&self) -> Result<BatchSummary, SchedulerError> {
        self.core.admission().batch(Trigger::Bulk).await
    }

    /// Cancels a run: a queued one at once, a running one within a second.
    /// A run that finished first, even while the cancel waited for it, is
    /// `ScanFinished`.
    pub async fn cancel(&self, scan_id: ScanId) -> Result<ScanRun, SchedulerError> {
        self.core.worker().cancel(scan_id).await
    }

    /// The status snapshot; cheap, no database access.
    pub fn status(&self) -> SchedulerStatus {
        self.core.status()
    }

    /// The scheduler's health, judged from the status snapshot.
    pub fn health(&self) -> SchedulerHealth {
        let core = &self.core;
        let options = &core.ports.options;
        policy::health(
            &core.status(),
            &core.ledger.recent(),
            options.periodic,
            options.interval,
            core.schedule.overdue(),
        )
    }

    /// A number that changes whenever the scheduler writes volumes or stats;
    /// readers may cache what they derived from them while it stays the same.
    pub fn data_version(&self) -> u64 {
        self.core.ledger.data_version()
    }

    /// A number that changes whenever old stats are deleted (retention), so
    /// readers that derive figures from many stats (growth) and update them
    /// one volume at a time know to derive them all again.
    pub fn history_version(&self) -> u64 {
        self.core.ledger.history_version()
    }

    /// Appends the per-volume series (`volscan_volume_*{volume}`) in the
    /// Prometheus text format: the latest completed scan of every volume that
    /// is still present, only the fields that scan measured, and its growth
    /// rate when known.
    pub fn render_volume_metrics(&self, out: &mut String) {
        self.core.ledger.series().render(out);
    }

    /// Appends the capacity series in the Prometheus text format: per
    /// filesystem holding scanned volumes (`volscan_filesystem_*`, the time
    /// until full only with a forecast), and the unused volumes
    /// (`volscan_volumes_unused`, `volscan_reclaimable_bytes`) once the
    /// containers have been looked at.
    pub fn render_capacity_metrics(&self, out: &mut String) {
        self.core.ledger.capacity().render(out, self.core.ports.clock.now());
    }

    /// Volumes with per-volume series now.
    pub fn volume_series_count(&self) -> usize {
        self.core.ledger.series().len()
    }

    /// Starts again after `stop`; does nothing when running. Waits for a stop
    /// in progress to finish, and two calls at once start one set of tasks.
    pub async fn start(&self) {
        let core = &self.core;
        let _lifecycle = core.lifecycle.lock().await;
        let mut tasks = lock(&core.tasks);
        if !tasks.running {
            core.spawn_tasks(&mut tasks);
        }
    }

    /// Stops taking work, cancels running scans and puts their runs back to
    /// `queued`, and waits for every task; the process lives on and `start`
    /// resumes. Returns within `shutdown_grace` plus a moment, whatever the
    /// scan timeout: runs whose scans do not stop in time are requeued here.
    pub async fn stop(&self) {
        let core = &self.core;
        let _lifecycle = core.lifecycle.lock().await;
        let Some(tasks) = core.signal_stop() else { return };
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let joined = tokio::time::timeout(core.ports.options.shutdown_grace, async {
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
            core.requeue_orphans().await;
        }
        metrics::active(core.running.len(), core.ports.options.concurrency);
        core.queue.refresh_depth(&core.ports).await;
        tracing::info!("scheduler stopped");
    }
}

/// The ports and options every concern reads; nothing in it changes.
pub(super) struct Ports {
    pub source: Arc<dyn VolumeSource>,
    pub engines: EngineChain,
    pub repo: Arc<dyn Repository>,
    pub options: SchedulerOptions,
    pub clock: Arc<dyn Clock>,
    /// Samples filesystems after scans, when given.
    pub probe: Option<Arc<dyn FilesystemProbe>>,
}

/// The tasks of a started scheduler, and how to stop them.
#[derive(Default)]
struct Tasks {
    running: bool,
    stop: Option<watch::Sender<bool>>,
    /// Ends the source's event watch, which runs on a blocking thread.
    watch_stop: Option<CancelToken>,
    handles: Vec<JoinHandle<()>>,
}

/// What the handles share: every concern, and the lifecycle only they touch.
struct Core {
    ports: Arc<Ports>,
    queue: Arc<Queue>,
    /// The local host, when registered (`SchedulerBuilder::host`).
    host: Option<HostInfo>,
    /// The work signal, when given; the listener task holds it while it runs.
    signal: Option<Arc<Mutex<Box<dyn WorkSignal>>>>,
    running: Arc<Running>,
    ledger: Arc<Ledger>,
    schedule: Arc<Schedule>,
    jitter: Arc<Jitter>,
    /// Held by `start` and `stop` for their whole length, so they never overlap.
    lifecycle: tokio::sync::Mutex<()>,
    tasks: Mutex<Tasks>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// The stop signal every task watches.
type Stop = watch::Receiver<bool>;

/// Whether the stop signal was given.
fn is_stopping(stop: &Stop) -> bool {
    *stop.borrow()
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SchedulerError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| SchedulerError::Interrupted)
}

impl Core {
    fn admission(&self) -> Admission {
        Admission {
            ports: Arc::clone(&self.ports),
            queue: Arc::clone(&self.queue),
            ledger: Arc::clone(&self.ledger),
        }
    }

    fn worker(&self) -> Worker {
        Worker {
            ports: Arc::clone(&self.ports),
            queue: Arc::clone(&self.queue),
            running: Arc::clone(&self.running),
            ledger: Arc::clone(&self.ledger),
            jitter: Arc::clone(&self.jitter),
        }
    }

    /// Start-up: fails and requeues the runs a dead process left `running`,
    /// then loads the ledger and the queue depth.
    async fn initialize(&self) -> Result<(), SchedulerError> {
        let (ports, ledger, queue) =
            (Arc::clone(&self.ports), Arc::clone(&self.ledger), Arc::clone(&self.queue));
        let host = self.host.clone();
        blocking(move || -> Result<(), SchedulerError> {
            let repo = &*ports.repo;
            if let Some(info) = &host {
                let row = repo.touch_host(info, ports.clock.now(), true)?;
                tracing::info!(host = %info.id, clock_skew_ms = ?row.clock_skew_ms, "host registered in the database");
            }
            let requeued = repo.recover_interrupted(ports.clock.now())?;
            if !requeued.is_empty() {
                tracing::warn!(
                    count = requeued.len(),
                    "runs interrupted by a previous process were failed and queued again"
                );
            }
            ledger.load(repo)?;
            insight::load(&ports, &ledger)?;
            queue.set_depth(repo.count_runs(&RunFilter::with_status(ScanStatus::Queued))?);
            Ok(())
        })
        .await?
    }

    /// Spawns the tasks and marks the scheduler running, under the lock of
    /// `tasks` the caller holds (so two starts cannot both spawn).
    fn spawn_tasks(&self, tasks: &mut Tasks) {
        let (stop_tx, stop) = watch::channel(false);
        let watch_stop = CancelToken::new();
        self.running.resume();
        let mut handles = Vec::new();
        for _ in 0..self.ports.options.concurrency.max(1) {
            handles.push(tokio::spawn(self.worker().run(stop.clone())));
        }
        handles.push(tokio::spawn(housekeeping::periodic(
            self.admission(),
            Arc::clone(&self.schedule),
            stop.clone(),
        )));
        if let Some(info) = &self.host {
            handles.push(tokio::spawn(fleet::heartbeat(
                Arc::clone(&self.ports),
                info.clone(),
                stop.clone(),
            )));
        }
        if let Some(signal) = &self.signal {
            handles.push(tokio::spawn(fleet::listen(
                Arc::clone(&self.ports),
                Arc::clone(&self.queue),
                Arc::clone(signal),
                stop.clone(),
            )));
        }
        handles.push(tokio::spawn(admission::track_depth(
            Arc::clone(&self.ports),
            Arc::clone(&self.queue),
            stop.clone(),
        )));
        handles.push(tokio::spawn(sync::follow_events(
            self.admission(),
            stop.clone(),
            watch_stop.clone(),
        )));
        if self.ports.probe.is_some() {
            handles.push(tokio::spawn(housekeeping::sample_filesystems(
                Arc::clone(&self.ports),
                Arc::clone(&self.ledger),
                stop.clone(),
            )));
        }
        if self.ports.options.retention.is_some() {
            handles.push(tokio::spawn(housekeeping::retention(
                Arc::clone(&self.ports),
                Arc::clone(&self.ledger),
                stop,
            )));
        }
        tasks.running = true;
        tasks.stop = Some(stop_tx);
        tasks.watch_stop = Some(watch_stop);
        tasks.handles = handles;
        self.schedule.set(&self.ports, self.ports.options.first_run_delay);
        metrics::active(self.running.len(), self.ports.options.concurrency);
        metrics::scheduler_running(true);
    }

    /// The first half of a stop, without waiting: tells every task to stop,
    /// cancels running scans (their runs go back to `queued`), claims no new
    /// run, and ends the source's event watch. Returns the tasks to wait for,
    /// or `None` when already stopped.
    fn signal_stop(&self) -> Option<Vec<JoinHandle<()>>> {
        let (stop, watch_stop, handles) = {
            let mut tasks = lock(&self.tasks);
            if !tasks.running {
                return None;
            }
            tasks.running = false;
            self.schedule.clear();
            (tasks.stop.take(), tasks.watch_stop.take(), std::mem::take(&mut tasks.handles))
        };
        self.running.stop_all(CancelReason::Shutdown);
        metrics::scheduler_running(false);
        if let Some(stop) = &stop {
            let _ = stop.send(true);
        }
        if let Some(watch_stop) = watch_stop {
            watch_stop.cancel(CancelReason::Shutdown);
        }
        Some(handles)
    }

    /// After a forced stop: puts the runs still registered here back to
    /// `queued`. A claim on its blocking thread registers its run when it
    /// returns, so this first waits up to `CLAIM_SETTLE` for those.
    async fn requeue_orphans(&self) {
        let settle = Instant::now() + policy::CLAIM_SETTLE;
        while self.running.claims_in_flight() > 0 && Instant::now() < settle {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        for scan_id in self.running.drain() {
            let (repo, now) = (Arc::clone(&self.ports.repo), self.ports.clock.now());
            let _ = blocking(move || repo.record_outcome(scan_id, RunOutcome::Requeue, now)).await;
        }
    }

    fn status(&self) -> SchedulerStatus {
        let running = lock(&self.tasks).running;
        let totals = self.ledger.totals();
        SchedulerStatus {
            running,
            last_run_at: self.queue.last_run_at(),
            next_run_at: self.schedule.next_run_at(),
            active_scans: self.running.len() as u64,
            queue_depth: self.queue.depth(),
            queue_capacity: self.queue.capacity(),
            worker_count: self.ports.options.concurrency as u64,
            total_completed: totals.completed,
            total_failed: totals.failed,
            total_canceled: totals.canceled,
        }
    }
}
