//! Fleet: what a scheduler does for the other hosts sharing its database.
//! It owns nothing; its two tasks are given the ports and the queue. The
//! builder's and the handle's methods for many hosts are here too.
//!
//! `heartbeat` writes the local host's row (`Repository::touch_host`, the
//! database's clock) every `heartbeat_interval`, so every node can tell
//! whether this host is online. `listen` waits on the work signal on a
//! blocking thread and wakes idle workers (and the depth task) when another
//! node queued a run for this host, so an idle host sends no statement to
//! look for work more often than `idle_poll_interval`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use volscan_domain::{Enqueued, HostId, HostInfo, Trigger, VolumeName, WorkSignal, error_chain};

use super::admission::{Queue, Targets};
use super::{Ports, SchedulerBuilder, SchedulerHandle, Stop, blocking, is_stopping};
use crate::error::SchedulerError;
use crate::running::lock;
use crate::status::BatchSummary;

impl SchedulerBuilder {
    /// Registers the local host (`info.id` must be the repository's local
    /// host) in the shared database at start-up, adopting the rows of a
    /// single-host database, and writes its heartbeat every
    /// `heartbeat_interval`; without it, no `hosts` row is written.
    pub fn host(mut self, info: HostInfo) -> Self {
        self.host = Some(info);
        self
    }

    /// Wakes idle workers through `signal` when another process queues work
    /// for this host; idle workers then poll only every
    /// `idle_poll_interval` instead of every `poll_interval`.
    pub fn work_signal(mut self, signal: Box<dyn WorkSignal>) -> Self {
        self.signal = Some(signal);
        self
    }
}

impl SchedulerHandle {
    /// Queues a scan of one volume of `host` (`?host=`): the local host's as
    /// `scan_volume`; another host's for that host's workers, when the
    /// volume is known in the database.
    pub async fn scan_volume_on(
        &self,
        host: &HostId,
        name: VolumeName,
    ) -> Result<Enqueued, SchedulerError> {
        if host == self.core.ports.repo.local_host() {
            return self.scan_volume(name).await;
        }
        self.core.admission().enqueue_remote(host.clone(), name, Trigger::Manual).await
    }

    /// Queues every volume of the hosts `targets` names, each host's for its
    /// own workers, under one batch and this process's cooldown.
    pub async fn scan_all_on(&self, targets: Targets) -> Result<BatchSummary, SchedulerError> {
        let targets = match targets {
            Targets::Remote(host) if &host == self.core.ports.repo.local_host() => Targets::Local,
            other => other,
        };
        self.core.admission().batch_on(Trigger::Bulk, targets).await
    }

    /// The local host's id.
    pub fn host_id(&self) -> &HostId {
        self.core.ports.repo.local_host()
    }

    /// How often this host writes its heartbeat; the fleet shares it, so it
    /// also sets the limits by which this node judges other hosts' liveness.
    pub fn heartbeat_interval(&self) -> Duration {
        self.core.ports.options.heartbeat_interval
    }
}

/// How long one wait on the work signal lasts before the stop is checked.
const SIGNAL_WAIT: Duration = Duration::from_millis(500);

/// How long the listener rests after the signal failed (the database is
/// away); the idle poll covers the gap.
const SIGNAL_RETRY: Duration = Duration::from_secs(5);

/// The heartbeat task. Each round:
///
/// 1. write the host's row with the database's clock (and the clock skew);
///    a failure is logged once until a write succeeds again;
/// 2. wait `heartbeat_interval`, or leave when the scheduler stops.
pub(super) async fn heartbeat(ports: Arc<Ports>, info: HostInfo, mut stop: Stop) {
    let mut failing = false;
    loop {
        let (repo, info_now, now) = (Arc::clone(&ports.repo), info.clone(), ports.clock.now());
        match blocking(move || repo.touch_host(&info_now, now, false)).await {
            Ok(Ok(_)) => failing = false,
            Ok(Err(err)) => {
                if !failing {
                    tracing::warn!(host = %info.id, error = %error_chain(&err), "failed to write this host's heartbeat; other nodes will see it as stale");
                }
                failing = true;
            }
            Err(_) => return,
        }
        tokio::select! {
            () = tokio::time::sleep(ports.options.heartbeat_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The listener task: on a blocking thread, waits on `signal` in slices of
/// `SIGNAL_WAIT` and, when work was queued for this host, wakes every idle
/// worker and the depth task; after a failure it rests `SIGNAL_RETRY`.
/// Leaves when the scheduler stops.
pub(super) async fn listen(
    ports: Arc<Ports>,
    queue: Arc<Queue>,
    signal: Arc<Mutex<Box<dyn WorkSignal>>>,
    stop: Stop,
) {
    let workers = ports.options.concurrency.max(1);
    let _ = blocking(move || {
        let mut signal = lock(&signal);
        let mut failing = false;
        while !is_stopping(&stop) {
            match signal.wait(SIGNAL_WAIT) {
                Ok(true) => {
                    failing = false;
                    queue.wake(workers);
                    queue.changed();
                }
                Ok(false) => failing = false,
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %error_chain(&err), "lost the work signal; polling every idle interval until it is back");
                    }
                    failing = true;
                    std::thread::sleep(SIGNAL_RETRY);
                }
            }
        }
    })
    .await;
}
