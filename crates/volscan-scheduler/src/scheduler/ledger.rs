//! The ledger: what the scheduler has learned from finished attempts and its
//! own writes. It owns the totals by final status, the last finished statuses
//! (for health), the per-volume and capacity metric series, and the data version readers
//! cache by. Workers and cancels record outcomes here; the source sync and
//! retention touch the series and the version. It does no IO of its own
//! except `load` and `reload_series`, which the caller runs on a blocking
//! thread.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use volscan_domain::{
    RepoError, Repository, RunFilter, RunOutcome, ScanRun, ScanStatus, Timestamp, VolumeName,
};

use crate::capacity::CapacitySeries;
use crate::metrics;
use crate::policy::RECENT;
use crate::running::lock;
use crate::series::VolumeSeries;

/// Totals, recent statuses, series and the data version.
#[derive(Default)]
pub(super) struct Ledger {
    completed: AtomicU64,
    failed: AtomicU64,
    canceled: AtomicU64,
    /// Final statuses of the last finished runs, newest last.
    recent: Mutex<VecDeque<ScanStatus>>,
    /// The per-volume metric series.
    series: VolumeSeries,
    /// The filesystem and unused-volume series.
    capacity: CapacitySeries,
    /// Bumped after every write of volumes or stats, so readers can cache.
    data_version: AtomicU64,
    /// Bumped when stats are deleted (retention), so readers that keep
    /// figures derived from old stats know to derive them all again.
    history_version: AtomicU64,
}

/// The totals of finished runs, all time.
pub(super) struct Totals {
    pub completed: u64,
    pub failed: u64,
    pub canceled: u64,
}

impl Ledger {
    /// Loads the totals, the recent statuses and the series from the
    /// repository (blocking).
    pub fn load(&self, repo: &dyn Repository) -> Result<(), RepoError> {
        let count = |status| repo.count_runs(&RunFilter::with_status(status));
        self.completed.store(count(ScanStatus::Completed)?, Ordering::Relaxed);
        self.failed.store(count(ScanStatus::Failed)?, Ordering::Relaxed);
        self.canceled.store(count(ScanStatus::Canceled)?, Ordering::Relaxed);
        let latest = repo.runs(&RunFilter { limit: Some(100), ..RunFilter::default() })?;
        let finished: Vec<ScanStatus> = latest
            .iter()
            .map(|run| run.status)
            .filter(|status| status.is_final())
            .take(RECENT)
            .collect();
        lock(&self.recent).extend(finished.into_iter().rev());
        self.reload_series(repo)
    }

    /// Loads the per-volume series from the latest stats of the volumes that
    /// are still present (blocking).
    pub fn reload_series(&self, repo: &dyn Repository) -> Result<(), RepoError> {
        let present: HashSet<VolumeName> =
            repo.volumes(false)?.into_iter().map(|v| v.name).collect();
        let latest = repo.latest_stats()?.into_iter().filter(|s| present.contains(&s.volume));
        self.series.replace_all(latest.map(|stat| (stat.volume, stat.usage, stat.ts)));
        Ok(())
    }

    /// Counts a written outcome: totals, the duration histogram, the recent
    /// statuses and, for a completed scan, the volume's series (`now` when
    /// the stored run has no completion time).
    pub fn record(&self, outcome: &RunOutcome, stored: &ScanRun, now: Timestamp) {
        // First, so that whoever sees the counters move also sees the new
        // version (a failure changes what readers show too).
        if stored.status.is_final() {
            self.touched();
        }
        match outcome {
            RunOutcome::Completed { method, duration, .. } => {
                self.completed.fetch_add(1, Ordering::Relaxed);
                metrics::duration(*method, *duration);
            }
            RunOutcome::Failed { .. } => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            RunOutcome::Canceled => {
                self.canceled.fetch_add(1, Ordering::Relaxed);
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
            self.series.set(&stored.volume, usage, stored.completed_at.unwrap_or(now));
            self.capacity.scanned(&stored.volume, usage.size_bytes);
        }
    }

    /// A volume is gone: its series go, and it no longer counts as unused.
    pub fn volume_removed(&self, volume: &VolumeName) {
        self.series.remove(volume);
        self.capacity.removed(volume);
    }

    /// Marks volumes or stats as changed.
    pub fn touched(&self) {
        self.data_version.fetch_add(1, Ordering::Release);
    }

    /// Old stats were deleted: figures derived from them are out of date.
    pub fn history_changed(&self) {
        self.history_version.fetch_add(1, Ordering::Release);
        self.touched();
    }

    /// The history version (see `SchedulerHandle::history_version`).
    pub fn history_version(&self) -> u64 {
        self.history_version.load(Ordering::Acquire)
    }

    /// The data version (see `SchedulerHandle::data_version`).
    pub fn data_version(&self) -> u64 {
        self.data_version.load(Ordering::Acquire)
    }

    /// The totals of finished runs.
    pub fn totals(&self) -> Totals {
        Totals {
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            canceled: self.canceled.load(Ordering::Relaxed),
        }
    }

    /// The last finished statuses, newest last.
    pub fn recent(&self) -> Vec<ScanStatus> {
        lock(&self.recent).iter().copied().collect()
    }

    /// The per-volume series.
    pub fn series(&self) -> &VolumeSeries {
        &self.series
    }

    /// The filesystem and unused-volume series.
    pub fn capacity(&self) -> &CapacitySeries {
        &self.capacity
    }
}
