//! The background passes: the periodic run (a batch of every volume, or a
//! reconcile when periodic scans are off) and retention. It owns when the
//! next periodic run is due (`Schedule`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use volscan_domain::{Timestamp, Trigger, error_chain};

use super::admission::Admission;
use super::insight;
use super::ledger::Ledger;
use super::sync::SourceSync;
use super::{Ports, Stop, blocking, is_stopping};
use crate::error::SchedulerError;
use crate::policy;
use crate::running::lock;

/// When the next periodic run is due.
#[derive(Default)]
pub(super) struct Schedule {
    next: Mutex<Option<NextRun>>,
}

#[derive(Clone, Copy)]
struct NextRun {
    /// For the status, on the wall clock.
    at: Timestamp,
    /// For health, on the monotonic clock.
    due: Instant,
}

impl Schedule {
    /// The next periodic run is due in `wait`, or never (`periodic` off).
    pub fn set(&self, ports: &Ports, wait: Duration) {
        *lock(&self.next) = ports
            .options
            .periodic
            .then(|| NextRun { at: ports.clock.now() + wait, due: Instant::now() + wait });
    }

    /// No periodic run is due (stopped).
    pub fn clear(&self) {
        *lock(&self.next) = None;
    }

    /// When the next periodic run is due.
    pub fn next_run_at(&self) -> Option<Timestamp> {
        lock(&self.next).map(|next| next.at)
    }

    /// How long past its due time the next periodic run is.
    pub fn overdue(&self) -> Option<Duration> {
        lock(&self.next).map(|next| Instant::now().saturating_duration_since(next.due))
    }
}

/// The periodic task; touches admission (and through it the queue and the
/// ledger) and the schedule. Until the scheduler stops:
///
/// 1. wait until the next run is due (`first_run_delay` after start, then
///    `interval`);
/// 2. run a pass, raced against the stop: a batch of every volume, or only a
///    reconcile when periodic scans are off (a batch refused by the cooldown
///    counts as done);
/// 3. after a failed pass, try again after `policy::periodic_retry_delay`
///    instead of a whole interval; publish when the next run is due.
pub(super) async fn periodic(admission: Admission, schedule: Arc<Schedule>, mut stop: Stop) {
    let options = &admission.ports.options;
    let mut next = Instant::now() + options.first_run_delay;
    let mut retry: Option<Duration> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if is_stopping(&stop) {
            return;
        }
        // Raced against the stop: a source or database that hangs must not
        // hold up shutdown (what was written so far is consistent).
        let ok = tokio::select! {
            ok = periodic_pass(&admission) => ok,
            _ = stop.changed() => return,
        };
        let wait = if ok {
            retry = None;
            options.interval
        } else {
            let delay = policy::periodic_retry_delay(retry, options.interval);
            tracing::info!(retry_in = ?delay, "the periodic run will be tried again");
            retry = Some(delay);
            delay
        };
        next = Instant::now() + wait;
        schedule.set(&admission.ports, wait);
    }
}

/// One periodic pass: a batch of every volume, or a reconcile when periodic
/// scans are off. Returns whether it succeeded.
async fn periodic_pass(admission: &Admission) -> bool {
    if !admission.ports.options.periodic {
        let sync = SourceSync {
            ports: Arc::clone(&admission.ports),
            ledger: Arc::clone(&admission.ledger),
        };
        return match sync.reconcile().await {
            Ok(_) => true,
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "reconcile failed");
                false
            }
        };
    }
    match admission.batch(Trigger::Schedule).await {
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

/// The filesystem sampler (only with a probe); touches the ports and the
/// ledger's capacity series. Every `FILESYSTEM_SAMPLE_INTERVAL` until the
/// scheduler stops:
///
/// 1. sample again every filesystem a scan has seen, through a directory on it;
/// 2. store the sample (at most one per five minutes per filesystem) and
///    publish it with the forecast from the stored history.
pub(super) async fn sample_filesystems(ports: Arc<Ports>, ledger: Arc<Ledger>, mut stop: Stop) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(policy::FILESYSTEM_SAMPLE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
        let (ports, ledger) = (Arc::clone(&ports), Arc::clone(&ledger));
        let sampled = blocking(move || insight::sample_filesystems(&ports, &ledger));
        let sampled = tokio::select! {
            sampled = sampled => sampled,
            _ = stop.changed() => return,
        };
        if let Ok(Err(err)) = sampled {
            insight::warn("failed to store a filesystem sample", &err);
        }
    }
}

/// The retention task; touches the ports and the ledger (series, version).
/// Until the scheduler stops, `first_pass_delay` after start and then every
/// `interval`:
///
/// 1. delete stats, then directories and filesystem samples, then finished
///    runs, older than the TTL, one batch per blocking call, each raced
///    against the stop;
/// 2. reload the series and the derived figures from what is left.
pub(super) async fn retention(ports: Arc<Ports>, ledger: Arc<Ledger>, mut stop: Stop) {
    let Some(options) = ports.options.retention.clone() else { return };
    let mut wait = options.first_pass_delay;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if is_stopping(&stop) {
            return;
        }
        let cutoff = ports.clock.now() - options.ttl;
        // One batch per blocking call, raced against the stop, so a long purge
        // never holds up shutdown.
        let purged = tokio::select! {
            purged = purge(&ports, cutoff, options.batch) => purged,
            _ = stop.changed() => return,
        };
        match purged {
            Ok((stats, runs)) => {
                if stats > 0 {
                    ledger.history_changed();
                } else {
                    ledger.touched();
                }
                let (repo, ledger) = (Arc::clone(&ports.repo), Arc::clone(&ledger));
                let ports_for_reload = Arc::clone(&ports);
                let reloaded = blocking(move || {
                    ledger.reload_series(&*repo)?;
                    insight::load(&ports_for_reload, &ledger)
                });
                if let Ok(Err(err)) = reloaded.await {
                    tracing::warn!(error = %error_chain(&err), "failed to reload the volume series");
                }
                tracing::info!(stats, runs, "retention pass done");
            }
            Err(err) => tracing::warn!(error = %error_chain(&err), "retention pass failed"),
        }
        wait = options.interval;
    }
}

/// Deletes stats (with directories and filesystem samples) and finished runs
/// older than `cutoff`, one batch at a time; returns (stats and details, runs).
async fn purge(ports: &Ports, cutoff: Timestamp, batch: u32) -> Result<(u64, u64), SchedulerError> {
    let mut totals = [0; 3];
    for (table, total) in totals.iter_mut().enumerate() {
        loop {
            let repo = Arc::clone(&ports.repo);
            let deleted = blocking(move || match table {
                0 => repo.purge_stats_before(cutoff, batch),
                1 => repo.purge_details_before(cutoff, batch),
                _ => repo.purge_runs_before(cutoff, batch),
            })
            .await??;
            *total += deleted;
            if deleted < u64::from(batch.max(1)) {
                break;
            }
        }
    }
    Ok((totals[0] + totals[1], totals[2]))
}
