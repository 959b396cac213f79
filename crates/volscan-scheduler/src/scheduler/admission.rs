//! Admission: what enters the queue. It owns the queue's capacity, its
//! last counted depth, the wake-ups of idle workers, and the cooldown shared
//! by bulk and periodic batches (with `last_run_at`).
//!
//! One volume (`enqueue`): refused when skipped; a volume not known yet is
//! looked up in the source; an active run is returned deduplicated; a full
//! queue refuses. A batch (`batch`): refused inside the cooldown, whose slot
//! is reserved first and given back when the batch fails; then a reconcile
//! and one run per volume while the queue has room. The depth task
//! (`track_depth`) keeps the depth gauge in step with the table.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;
use volscan_domain::{
    BatchId, Enqueued, HostId, HostScope, NewScanRun, RunFilter, ScanId, ScanStatus, Timestamp,
    Trigger, VolumeName,
};

use super::ledger::Ledger;
use super::sync::SourceSync;
use super::{Ports, Stop, blocking};
use crate::error::SchedulerError;
use crate::metrics;
use crate::policy;
use crate::running::lock;
use crate::status::BatchSummary;

/// The queue as this process sees it.
pub(super) struct Queue {
    capacity: u64,
    /// Queued runs, as last counted.
    depth: AtomicU64,
    /// Wakes idle workers when work arrives.
    wake: Notify,
    /// Wakes the depth task when the queue may have changed.
    changed: Notify,
    batches: Mutex<Batches>,
    /// How long an idle worker (and the depth task) waits without a wake-up.
    idle_poll: std::time::Duration,
    /// When the earliest retry this process wrote comes due.
    next_due: Mutex<Option<Instant>>,
}

/// The shared cooldown of bulk and periodic batches.
#[derive(Default)]
struct Batches {
    /// Start of the last batch that was enqueued (or is being enqueued), on
    /// the monotonic clock.
    last_batch_at: Option<Instant>,
    /// When the last batch that succeeded started.
    last_run_at: Option<Timestamp>,
}

impl Queue {
    /// An empty queue holding at most `capacity` runs, whose idle workers
    /// look for due runs every `idle_poll` without a wake-up.
    pub fn new(capacity: u64, idle_poll: std::time::Duration) -> Self {
        Queue {
            capacity,
            depth: AtomicU64::new(0),
            wake: Notify::new(),
            changed: Notify::new(),
            batches: Mutex::default(),
            idle_poll,
            next_due: Mutex::default(),
        }
    }

    /// Remembers that a retry comes due after `delay`, so that idle workers
    /// wake for it even when the idle poll is slow.
    pub fn due_after(&self, delay: std::time::Duration) {
        let at = Instant::now() + delay;
        let mut next = lock(&self.next_due);
        if next.is_none_or(|next| at < next) {
            *next = Some(at);
        }
    }

    /// How long an idle worker waits now: the idle poll, or less when a
    /// retry comes due sooner (a due one is forgotten: the claim that follows
    /// takes it).
    pub fn idle_wait(&self) -> std::time::Duration {
        let now = Instant::now();
        let mut next = lock(&self.next_due);
        match *next {
            Some(at) if at <= now => {
                *next = None;
                std::time::Duration::ZERO
            }
            Some(at) => self.idle_poll.min(at - now),
            None => self.idle_poll,
        }
    }

    /// The capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Queued runs, as last counted.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Publishes a new depth.
    pub fn set_depth(&self, depth: u64) {
        self.depth.store(depth, Ordering::Relaxed);
        metrics::queue_depth(depth);
    }

    /// Counts the queued runs (retries waiting for their time included) and
    /// publishes the count.
    pub async fn refresh_depth(&self, ports: &Ports) {
        let repo = Arc::clone(&ports.repo);
        let filter = RunFilter::with_status(ScanStatus::Queued);
        if let Ok(Ok(depth)) = blocking(move || repo.count_runs(&filter)).await {
            self.set_depth(depth);
        }
    }

    /// Tells the depth task that the queue may have changed.
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Wakes up to `workers` idle workers.
    pub fn wake(&self, workers: usize) {
        for _ in 0..workers {
            self.wake.notify_one();
        }
    }

    /// Resolves when a worker is woken.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// When the last successful batch started.
    pub fn last_run_at(&self) -> Option<Timestamp> {
        lock(&self.batches).last_run_at
    }
}

/// Which hosts a batch covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// The local host (reconciled with its source first).
    Local,
    /// Another host sharing the database, from its stored volumes.
    Remote(HostId),
    /// Every host: the local one as `Local`, the others as `Remote`.
    All,
}

/// What admitting work may touch: the ports, the queue, and the ledger (a
/// volume learned from the source changes the data version).
#[derive(Clone)]
pub(super) struct Admission {
    pub ports: Arc<Ports>,
    pub queue: Arc<Queue>,
    pub ledger: Arc<Ledger>,
}

impl Admission {
    /// Enqueues every volume under one batch, as far as the queue allows.
    /// The cooldown and `last_run_at` count only a batch that was enqueued:
    /// a batch that fails (the database is away) leaves them as they were.
    pub async fn batch(&self, trigger: Trigger) -> Result<BatchSummary, SchedulerError> {
        self.batch_on(trigger, Targets::Local).await
    }

    /// Like `batch`, for the hosts `targets` names; the cooldown is this
    /// process's, whichever hosts a batch covers.
    pub async fn batch_on(
        &self,
        trigger: Trigger,
        targets: Targets,
    ) -> Result<BatchSummary, SchedulerError> {
        let started = Instant::now();
        let previous = {
            let mut batches = lock(&self.queue.batches);
            let since_last = batches.last_batch_at.map(|at| started.saturating_duration_since(at));
            if let Some(retry_after) =
                policy::cooldown_remaining(since_last, self.ports.options.cooldown)
            {
                return Err(SchedulerError::RateLimited { retry_after });
            }
            // Reserved now, so that two triggers at once do not both pass.
            batches.last_batch_at.replace(started)
        };
        let now = self.ports.clock.now();
        match self.enqueue_targets(trigger, now, targets).await {
            Ok(summary) => {
                lock(&self.queue.batches).last_run_at = Some(now);
                metrics::last_run(now);
                Ok(summary)
            }
            Err(err) => {
                let mut batches = lock(&self.queue.batches);
                if batches.last_batch_at == Some(started) {
                    batches.last_batch_at = previous;
                }
                Err(err)
            }
        }
    }

    async fn enqueue_targets(
        &self,
        trigger: Trigger,
        now: Timestamp,
        targets: Targets,
    ) -> Result<BatchSummary, SchedulerError> {
        match targets {
            Targets::Local => self.enqueue_batch(trigger, now).await,
            Targets::Remote(host) => {
                let repo = Arc::clone(&self.ports.repo);
                let exists =
                    blocking(move || repo.hosts()).await??.iter().any(|h| h.info.id == host);
                if !exists {
                    return Err(SchedulerError::HostNotFound(host));
                }
                self.enqueue_remote_batch(vec![host], BatchId::new(), trigger).await
            }
            Targets::All => {
                let mut summary = self.enqueue_batch(trigger, now).await?;
                let repo = Arc::clone(&self.ports.repo);
                let hosts: Vec<HostId> =
                    blocking(move || repo.hosts()).await??.into_iter().map(|h| h.info.id).collect();
                let remote = self.enqueue_remote_batch(hosts, summary.batch_id, trigger).await?;
                summary.count += remote.count;
                summary.skipped += remote.skipped;
                summary.deduplicated += remote.deduplicated;
                Ok(summary)
            }
        }
    }

    async fn enqueue_batch(
        &self,
        trigger: Trigger,
        now: Timestamp,
    ) -> Result<BatchSummary, SchedulerError> {
        let sync = SourceSync { ports: Arc::clone(&self.ports), ledger: Arc::clone(&self.ledger) };
        let (mut volumes, _) = sync.reconcile().await?;
        let (ports, queue) = (Arc::clone(&self.ports), Arc::clone(&self.queue));
        let summary = blocking(move || -> Result<BatchSummary, SchedulerError> {
            let batch_id = BatchId::new();
            let mut summary = BatchSummary { batch_id, count: 0, skipped: 0, deduplicated: 0 };
            volumes.retain(|v| !ports.source.is_skipped(&v.name));
            let local = ports.repo.local_host().clone();
            let fill = Fill { batch_id, trigger, now, capacity: queue.capacity };
            let depth = fill.host(&ports, &*ports.repo, &local, volumes, &mut summary)?;
            queue.set_depth(depth);
            Ok(summary)
        })
        .await??;
        self.queue.wake(self.ports.options.concurrency);
        tracing::info!(%trigger, batch_id = %summary.batch_id, count = summary.count, skipped = summary.skipped, deduplicated = summary.deduplicated, "batch enqueued");
        Ok(summary)
    }

    /// Enqueues one volume; with `ask_source`, a volume not known yet is
    /// looked up in the source (otherwise it is not found).
    pub async fn enqueue(
        &self,
        name: VolumeName,
        trigger: Trigger,
        ask_source: bool,
    ) -> Result<Enqueued, SchedulerError> {
        if self.ports.source.is_skipped(&name) {
            return Err(SchedulerError::Forbidden(name));
        }
        let this = self.clone();
        let now = self.ports.clock.now();
        let enqueued = blocking(move || -> Result<Enqueued, SchedulerError> {
            let (repo, capacity) = (&this.ports.repo, this.queue.capacity);
            let known = matches!(repo.volume(&name)?, Some(volume) if volume.removed_at.is_none());
            if !known {
                if !ask_source {
                    return Err(SchedulerError::VolumeNotFound(name));
                }
                // Perhaps created since the last reconcile: ask the source.
                let found = this.ports.source.volumes()?.into_iter().find(|v| v.name == name);
                match found {
                    Some(volume) => {
                        repo.upsert_volume(&volume, now)?;
                        this.ledger.touched();
                    }
                    None => return Err(SchedulerError::VolumeNotFound(name)),
                }
            }
            if let Some(active) = repo.active_run(&name)? {
                return Ok(Enqueued { run: active, deduplicated: true });
            }
            let depth = repo.count_runs(&RunFilter::with_status(ScanStatus::Queued))?;
            if depth >= capacity {
                return Err(SchedulerError::QueueFull { capacity });
            }
            let enqueued = repo.enqueue(NewScanRun {
                scan_id: ScanId::new(),
                host: repo.local_host().clone(),
                volume: name,
                batch_id: None,
                trigger,
                queued_at: now,
            })?;
            this.queue.set_depth(depth + u64::from(!enqueued.deduplicated));
            Ok(enqueued)
        })
        .await??;
        if !enqueued.deduplicated {
            self.queue.wake(1);
        }
        Ok(enqueued)
    }
}

impl Admission {
    /// Queues a run of `name` for `host`, another host sharing the database,
    /// whose workers will run it (woken by its work signal). Its source is
    /// not reachable from here, so the volume must be known in the database;
    /// the capacity counted is `host`'s queue.
    pub async fn enqueue_remote(
        &self,
        host: HostId,
        name: VolumeName,
        trigger: Trigger,
    ) -> Result<Enqueued, SchedulerError> {
        let (ports, capacity) = (Arc::clone(&self.ports), self.queue.capacity);
        let now = self.ports.clock.now();
        blocking(move || -> Result<Enqueued, SchedulerError> {
            let repo = &ports.repo;
            let view = repo.scoped(HostScope::One(host.clone()));
            if !repo.hosts()?.iter().any(|h| h.info.id == host) {
                return Err(SchedulerError::HostNotFound(host));
            }
            let known = matches!(view.volume(&name)?, Some(volume) if volume.removed_at.is_none());
            if !known {
                return Err(SchedulerError::VolumeNotFound(name));
            }
            if let Some(active) = view.active_run(&name)? {
                return Ok(Enqueued { run: active, deduplicated: true });
            }
            let depth = view.count_runs(&RunFilter::with_status(ScanStatus::Queued))?;
            if depth >= capacity {
                return Err(SchedulerError::QueueFull { capacity });
            }
            let run = NewScanRun {
                scan_id: ScanId::new(),
                host,
                volume: name,
                batch_id: None,
                trigger,
                queued_at: now,
            };
            Ok(repo.enqueue(run)?)
        })
        .await?
    }

    /// Queues, under one batch, every present volume of each host in
    /// `hosts` other than the local one, for that host's workers, as far as
    /// each host's queue has room (stalest first, as for the local batch).
    pub async fn enqueue_remote_batch(
        &self,
        hosts: Vec<HostId>,
        batch_id: BatchId,
        trigger: Trigger,
    ) -> Result<BatchSummary, SchedulerError> {
        let (ports, capacity) = (Arc::clone(&self.ports), self.queue.capacity);
        let now = self.ports.clock.now();
        blocking(move || -> Result<BatchSummary, SchedulerError> {
            let mut summary = BatchSummary { batch_id, count: 0, skipped: 0, deduplicated: 0 };
            let fill = Fill { batch_id, trigger, now, capacity };
            for host in hosts.into_iter().filter(|h| h != ports.repo.local_host()) {
                let view = ports.repo.scoped(HostScope::One(host.clone()));
                let volumes = view.volumes(false)?;
                fill.host(&ports, &*view, &host, volumes, &mut summary)?;
            }
            Ok(summary)
        })
        .await?
    }
}

/// One batch's runs, queued host by host.
struct Fill {
    batch_id: BatchId,
    trigger: Trigger,
    now: Timestamp,
    capacity: u64,
}

impl Fill {
    /// Queues `volumes` of `host` (read through `view`, that host's data),
    /// stalest first (never measured, then the oldest measurement; ties by
    /// name), while the host's queue has room: when it cannot take every
    /// volume, the ones left out are the freshest, and the next batch
    /// reaches them. Counts into `summary`; returns the host's new depth.
    fn host(
        &self,
        ports: &Ports,
        view: &dyn volscan_domain::ReadRepository,
        host: &HostId,
        mut volumes: Vec<volscan_domain::Volume>,
        summary: &mut BatchSummary,
    ) -> Result<u64, SchedulerError> {
        let measured: HashMap<VolumeName, Timestamp> =
            view.latest_stats()?.into_iter().map(|stat| (stat.volume, stat.ts)).collect();
        volumes.sort_by(|a, b| {
            (measured.get(&a.name), &a.name).cmp(&(measured.get(&b.name), &b.name))
        });
        let mut depth = view.count_runs(&RunFilter::with_status(ScanStatus::Queued))?;
        for volume in volumes {
            if depth >= self.capacity {
                // A volume with an active run is not skipped: it will be scanned.
                if view.active_run(&volume.name)?.is_some() {
                    summary.deduplicated += 1;
                } else {
                    summary.skipped += 1;
                }
                continue;
            }
            let run = NewScanRun {
                scan_id: ScanId::new(),
                host: host.clone(),
                volume: volume.name,
                batch_id: Some(self.batch_id),
                trigger: self.trigger,
                queued_at: self.now,
            };
            if ports.repo.enqueue(run)?.deduplicated {
                summary.deduplicated += 1;
            } else {
                summary.count += 1;
                depth += 1;
            }
        }
        Ok(depth)
    }
}

/// The depth task: keeps the queue's depth (and its gauge) in step with the
/// table. Each round:
///
/// 1. count the queued runs and publish the count;
/// 2. wait until the queue may have changed (a claim, an outcome, an
///    enqueue, the work signal), or the longer of `DEPTH_REFRESH` and the
///    idle poll has passed, so that claims, retries and other writers show
///    within a second, or (with a work signal) the idle poll;
/// 3. leave when the scheduler stops.
pub(super) async fn track_depth(ports: Arc<Ports>, queue: Arc<Queue>, mut stop: Stop) {
    loop {
        tokio::select! {
            () = queue.refresh_depth(&ports) => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            () = queue.changed.notified() => {}
            () = tokio::time::sleep(policy::DEPTH_REFRESH.max(queue.idle_poll)) => {}
            _ = stop.changed() => return,
        }
    }
}
