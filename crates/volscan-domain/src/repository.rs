//! The repository port: durable storage of volumes, runs and stats (the
//! queue's source of truth), split by caller: `ReadRepository` answers the
//! questions readers (the HTTP API) ask, and `Repository` adds the writes of
//! the scheduler. Also the data types of its calls and its error.
//!
//! Every method blocks; times are passed in by the caller, never read from a
//! clock here, so the scheduler's tests can step time by hand.

use std::sync::Arc;
use std::time::Duration;

use crate::{
    BatchId, BoxError, DirUsage, DiscoveredVolume, FilesystemSample, Host, HostId, HostInfo,
    HostScope, IllegalTransition, RunOutcome, ScanId, ScanMethod, ScanRun, ScanStatus, Timestamp,
    Trigger, Volume, VolumeName, VolumeStat, VolumeUsers,
};

/// A run to insert as `queued`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewScanRun {
    /// Its id, chosen by the caller so it can be returned before the insert.
    pub scan_id: ScanId,
    /// The host whose workers are to run it.
    pub host: HostId,
    /// The volume to measure.
    pub volume: VolumeName,
    /// The bulk or periodic batch it belongs to.
    pub batch_id: Option<BatchId>,
    /// What asked for it.
    pub trigger: Trigger,
    /// When it was accepted.
    pub queued_at: Timestamp,
}

/// The answer to `Repository::enqueue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The new run, or the volume's run that was already active.
    pub run: ScanRun,
    /// `true` when `run` is the existing active run and nothing was inserted.
    pub deduplicated: bool,
}
/// Which runs `ReadRepository::runs` and `count_runs` return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this volume's runs.
    pub volume: Option<VolumeName>,
    /// Only runs in this status.
    pub status: Option<ScanStatus>,
    /// Only runs of this batch.
    pub batch: Option<BatchId>,
    /// At most this many (ignored by `count_runs`).
    pub limit: Option<u32>,
}

impl RunFilter {
    /// Every run in `status`.
    pub fn with_status(status: ScanStatus) -> Self {
        RunFilter { status: Some(status), ..RunFilter::default() }
    }
}

/// One stored size of a volume, for growth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizePoint {
    /// The volume's host.
    pub host: HostId,
    /// The volume.
    pub volume: VolumeName,
    /// When it was measured.
    pub ts: Timestamp,
    /// `size_bytes` of that stat.
    pub size_bytes: u64,
}

/// What a completed scan saw besides its totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanDetails {
    /// The largest directories at depth 1 and 2; `None` when the method
    /// cannot tell (diskus).
    pub dirs: Option<Vec<DirUsage>>,
    /// The filesystem holding the volume, sampled after the scan.
    pub filesystem: Option<FilesystemSample>,
}

/// Runs of a batch by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// `queued` runs.
    pub queued: u64,
    /// `running` runs.
    pub running: u64,
    /// `completed` runs.
    pub completed: u64,
    /// `failed` runs.
    pub failed: u64,
    /// `canceled` runs.
    pub canceled: u64,
}

impl StatusCounts {
    /// All runs counted.
    pub fn total(&self) -> u64 {
        self.queued + self.running + self.completed + self.failed + self.canceled
    }

    /// Adds `n` runs of `status`.
    pub fn add(&mut self, status: ScanStatus, n: u64) {
        let slot = match status {
            ScanStatus::Queued => &mut self.queued,
            ScanStatus::Running => &mut self.running,
            ScanStatus::Completed => &mut self.completed,
            ScanStatus::Failed => &mut self.failed,
            ScanStatus::Canceled => &mut self.canceled,
        };
        *slot += n;
    }
}

/// What readers ask of the stored volumes, runs and stats (the HTTP API
/// needs nothing more).
///
/// A repository reads one host's data (its scope; at first the local host's)
/// or every host's; `scoped` gives a view with another scope. Runs and
/// batches are found by id whatever the scope: their ids are unique across
/// hosts.
///
/// Every method blocks.
pub trait ReadRepository: Send + Sync {
    /// Checks that the database answers.
    fn ping(&self) -> Result<(), RepoError>;

    /// The host whose data a read without a scope covers (the local host).
    fn local_host(&self) -> &HostId;

    /// The same repository reading `scope`'s data.
    fn scoped(&self, scope: HostScope) -> Arc<dyn ReadRepository>;

    /// Every host that shares the database, by id, with the database's time
    /// of the read.
    fn hosts(&self) -> Result<Vec<Host>, RepoError>;

    /// One volume, removed or not.
    fn volume(&self, name: &VolumeName) -> Result<Option<Volume>, RepoError>;

    /// Every volume by name; removed ones only when `include_removed`.
    fn volumes(&self, include_removed: bool) -> Result<Vec<Volume>, RepoError>;

    /// One run.
    fn run(&self, scan_id: ScanId) -> Result<Option<ScanRun>, RepoError>;

    /// The volume's `queued` or `running` run.
    fn active_run(&self, volume: &VolumeName) -> Result<Option<ScanRun>, RepoError>;

    /// Runs matching `filter`, newest first.
    fn runs(&self, filter: &RunFilter) -> Result<Vec<ScanRun>, RepoError>;

    /// How many runs match `filter` (its `limit` ignored).
    fn count_runs(&self, filter: &RunFilter) -> Result<u64, RepoError>;

    /// A batch's runs by status.
    fn batch_counts(&self, batch: BatchId) -> Result<StatusCounts, RepoError>;

    /// The newest stat of every known volume that has one, by volume name.
    fn latest_stats(&self) -> Result<Vec<VolumeStat>, RepoError>;

    /// The newest stat of one volume.
    fn latest_stat(&self, volume: &VolumeName) -> Result<Option<VolumeStat>, RepoError>;

    /// Stats of one volume with `since <= ts < until`, oldest first, at most `limit`.
    fn history(
        &self,
        volume: &VolumeName,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<VolumeStat>, RepoError>;

    /// Sizes for growth, of `volume` or of every volume: each volume's stats
    /// within `window` before its own newest stat, plus the newest one before
    /// that (the baseline of a delta over the whole window). Ordered by
    /// volume, then time.
    fn size_points(
        &self,
        volume: Option<&VolumeName>,
        window: std::time::Duration,
    ) -> Result<Vec<SizePoint>, RepoError>;

    /// Filesystem samples with `ts >= since` (of one filesystem, or of
    /// every one), ordered by filesystem, then time.
    fn filesystem_samples(
        &self,
        filesystem: Option<&str>,
        since: Timestamp,
    ) -> Result<Vec<FilesystemSample>, RepoError>;

    /// The scans of a volume that recorded directories, newest first, with
    /// their times.
    fn dir_scans(&self, volume: &VolumeName) -> Result<Vec<(ScanId, Timestamp)>, RepoError>;

    /// The directories one scan recorded, by depth, then size (largest first).
    fn dirs(&self, scan_id: ScanId) -> Result<Vec<DirUsage>, RepoError>;
}

/// Durable storage of volumes, runs and stats; the queue's source of truth.
/// Adds to the reads the writes the scheduler makes.
///
/// Every method blocks. Each write is atomic: a caller never sees half of one.
pub trait Repository: ReadRepository {
    /// Inserts or refreshes a volume seen at `now` (clearing `removed_at`).
    fn upsert_volume(&self, volume: &DiscoveredVolume, now: Timestamp)
    -> Result<Volume, RepoError>;

    /// Sets `removed_at`; `false` when the volume is unknown or already removed.
    fn mark_volume_removed(&self, name: &VolumeName, now: Timestamp) -> Result<bool, RepoError>;

    /// Inserts a `queued` run, unless the volume already has an active run:
    /// then that run is returned with `deduplicated: true`. `estimated_duration`
    /// is filled from the volume's last completed scan.
    fn enqueue(&self, run: NewScanRun) -> Result<Enqueued, RepoError>;

    /// Writes the local host's row at the database's clock: at start-up
    /// (`starting`: `started_at` too, and rows of the single-host schema that
    /// belong to no host yet become the local host's) and as its heartbeat.
    /// `local_now` is the host's clock, to measure the skew.
    fn touch_host(
        &self,
        info: &HostInfo,
        local_now: Timestamp,
        starting: bool,
    ) -> Result<Host, RepoError>;

    /// Atomically takes the local host's oldest `queued` run that is due at
    /// `now`, marks it `running` and counts the attempt. Two callers never get
    /// the same run, and no host claims another's.
    fn claim_next(&self, now: Timestamp) -> Result<Option<ScanRun>, RepoError>;

    /// Stores progress (0–99) and, once chosen, the method of a `running` run.
    fn update_progress(
        &self,
        scan_id: ScanId,
        progress: u8,
        method: Option<ScanMethod>,
    ) -> Result<(), RepoError>;

    /// Applies how an attempt ended; refuses a change `ScanStatus::can_become`
    /// forbids. `Completed` writes the `volume_stats` row in the same transaction.
    fn record_outcome(
        &self,
        scan_id: ScanId,
        outcome: RunOutcome,
        now: Timestamp,
    ) -> Result<ScanRun, RepoError>;

    /// Start-up recovery: every `running` run of the local host (left by its dead process) becomes
    /// `failed` with reason `interrupted`, and a fresh `queued` run is created
    /// for its volume. Returns the new runs.
    fn recover_interrupted(&self, now: Timestamp) -> Result<Vec<ScanRun>, RepoError>;

    /// Deletes at most `batch` `volume_stats` rows with `ts < cutoff`.
    /// Returns how many were deleted; fewer than `batch` means none are left.
    fn purge_stats_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError>;

    /// Deletes at most `batch` finished runs (`completed`, `failed`,
    /// `canceled`) completed before `cutoff`; active runs are never touched.
    /// Returns how many were deleted; fewer than `batch` means none are left.
    fn purge_runs_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError>;

    /// Stores what a completed scan (`scan_id`, of `volume`, at `ts`) saw
    /// besides its totals: its directories, and its filesystem's sample,
    /// which also becomes the volume's `filesystem_id` (a sample within five
    /// minutes of the filesystem's newest stored one is not stored again: a
    /// filesystem holding many volumes is sampled at each of their scans).
    /// In one transaction.
    fn record_details(
        &self,
        scan_id: ScanId,
        volume: &VolumeName,
        ts: Timestamp,
        details: &ScanDetails,
    ) -> Result<(), RepoError>;

    /// Stores a filesystem sample taken between scans, unless one of the
    /// same filesystem was stored within five minutes before it.
    fn record_filesystem(&self, sample: &FilesystemSample) -> Result<(), RepoError>;

    /// Records which volumes containers reference at `now` (`users`, from
    /// the source): a referenced volume is `in_use` with `last_used_at = now`
    /// and no `unused_since`; any other present volume is not in use, and
    /// `unused_since` is set to `now` unless it was set already.
    fn record_users(&self, users: &[VolumeUsers], now: Timestamp) -> Result<(), RepoError>;

    /// Deletes at most `batch` rows of directories and filesystem samples
    /// with `ts < cutoff`. Returns how many; fewer than `batch` means none are
    /// left.
    fn purge_details_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError>;
}

/// Wakes a host's workers when another process queues work for it (on
/// PostgreSQL, `LISTEN`/`NOTIFY`), so an idle host need not poll.
pub trait WorkSignal: Send {
    /// Waits at most `timeout` for work queued for this host; `true` when
    /// some was (at least once since the last call), `false` on timeout.
    /// An error means the signal is lost until it reconnects: poll meanwhile.
    fn wait(&mut self, timeout: Duration) -> Result<bool, RepoError>;
}

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No connection could be had: the database is down or unreachable.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// No run has this id.
    #[error("scan run {0} does not exist")]
    ScanNotFound(ScanId),
    /// The status change is not allowed (for example cancelling a finished run).
    #[error("scan run {scan_id}: {source}")]
    Transition {
        /// The run.
        scan_id: ScanId,
        /// The refused change.
        source: IllegalTransition,
    },
    /// A stored value does not fit the domain (a bad name, a negative size).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Applying the schema migrations failed.
    #[error("failed to migrate the database")]
    Migration(#[source] BoxError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[source] BoxError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_add_up() {
        let mut counts = StatusCounts::default();
        counts.add(ScanStatus::Queued, 2);
        counts.add(ScanStatus::Failed, 3);
        assert_eq!((counts.queued, counts.failed, counts.total()), (2, 3, 5));
    }
}
