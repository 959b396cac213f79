//! The ports: traits the adapters implement and the scheduler calls, with the
//! error type of each.
//!
//! Every port is blocking and runtime-agnostic: the caller decides which
//! thread runs it (the scheduler uses blocking worker threads). Times are
//! passed in by the caller, never read from a clock here, so the scheduler's
//! tests can step time by hand.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::{
    BatchId, DiscoveredVolume, IllegalTransition, ScanId, ScanMethod, ScanRun, ScanStatus,
    Timestamp, Trigger, Usage, Volume, VolumeName, VolumeStat,
};

/// A boxed cause carried by an error variant.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

// ---------------------------------------------------------------------------
// Scan engines
// ---------------------------------------------------------------------------

/// Why a scan was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// A user canceled the run.
    User,
    /// `SCAN_TIMEOUT_PER_VOLUME` ran out.
    Timeout,
    /// The scheduler is stopping; the run goes back to `queued`.
    Shutdown,
}

/// A shared flag an engine polls to stop early; cheap to clone.
///
/// The first reason set wins, so a timeout that races a user cancel is
/// reported as whichever came first.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicU8>);

impl CancelToken {
    /// A token nobody has canceled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the scan to stop for `reason`; later calls change nothing.
    pub fn cancel(&self, reason: CancelReason) {
        let code = match reason {
            CancelReason::User => 1,
            CancelReason::Timeout => 2,
            CancelReason::Shutdown => 3,
        };
        let _ = self.0.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the scan should stop, or `None` while it may go on.
    pub fn reason(&self) -> Option<CancelReason> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(CancelReason::User),
            2 => Some(CancelReason::Timeout),
            3 => Some(CancelReason::Shutdown),
            _ => None,
        }
    }

    /// Whether the scan should stop.
    pub fn is_canceled(&self) -> bool {
        self.reason().is_some()
    }
}

/// What an engine gets besides the root: the cancel flag and a progress sink.
pub struct ScanContext<'a> {
    /// Polled by the engine; a canceled scan returns `ScanError::Canceled` promptly.
    pub cancel: &'a CancelToken,
    /// Called now and then with the number of entries seen so far.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// Computes the disk usage of a directory tree (SPEC §1).
///
/// Implementations block and depend on no async runtime. Given the same
/// tree, every engine reports the same `size_bytes`; the conformance suite
/// checks this against `du`.
pub trait ScanEngine: Send + Sync {
    /// Which method this is; stored with every result.
    fn method(&self) -> ScanMethod;

    /// Whether this engine can measure `root` at all (its binary exists, and
    /// for `diskus` no other mount lies below `root`). An unavailable engine
    /// is skipped in favour of the next; a failing one is not.
    fn availability(&self, root: &Path) -> Result<(), ScanError>;

    /// Measures `root` without following symlinks or leaving its filesystem.
    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError>;
}

/// The engines to try, in the order of `SCAN_METHODS_ORDER`.
///
/// `select` falls back to the next engine only when one is *unavailable*
/// (its binary is missing, or diskus meets a mount below the root); an
/// engine that fails or times out is not replaced by another.
#[derive(Clone)]
pub struct EngineChain {
    engines: Vec<Arc<dyn ScanEngine>>,
}

impl EngineChain {
    /// A chain trying `engines` in order.
    pub fn new(engines: Vec<Arc<dyn ScanEngine>>) -> Self {
        Self { engines }
    }

    /// The engines, in order.
    pub fn engines(&self) -> &[Arc<dyn ScanEngine>] {
        &self.engines
    }

    /// The first engine available for `root`, or `NoEngine` with every reason.
    pub fn select(&self, root: &Path) -> Result<Arc<dyn ScanEngine>, ScanError> {
        let mut reasons = Vec::new();
        for engine in &self.engines {
            match engine.availability(root) {
                Ok(()) => return Ok(Arc::clone(engine)),
                Err(ScanError::Unavailable { method, reason }) => {
                    reasons.push(format!("{method}: {reason}"));
                }
                Err(other) => return Err(other),
            }
        }
        Err(ScanError::NoEngine { reasons: reasons.join("; ") })
    }
}

impl std::fmt::Debug for EngineChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.engines.iter().map(|engine| engine.method())).finish()
    }
}

/// Why a scan produced no `Usage`.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The root does not exist.
    #[error("scan root {path} does not exist")]
    RootMissing {
        /// The root asked for.
        path: PathBuf,
    },
    /// The root exists but this process may not list or enter it (a
    /// non-root volscan, NFS `root_squash`): nothing of it can be measured, so
    /// the attempt fails instead of reporting the root's own few KiB.
    #[error("scan root {path} cannot be read")]
    RootUnreadable {
        /// The root asked for.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The root exists but is not a directory.
    #[error("scan root {path} is not a directory")]
    NotADirectory {
        /// The root asked for.
        path: PathBuf,
    },
    /// The method cannot be used here; the chain falls back to the next one.
    #[error("{method} is unavailable: {reason}")]
    Unavailable {
        /// The method.
        method: ScanMethod,
        /// Why, for the log.
        reason: String,
    },
    /// No engine of the chain is available for this root.
    #[error("no scan method is available: {reasons}")]
    NoEngine {
        /// Each engine's reason, `method: reason; …`.
        reasons: String,
    },
    /// An external tool could not be started.
    #[error("failed to start `{tool}`")]
    Spawn {
        /// The program.
        tool: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// An external tool exited unsuccessfully.
    #[error("`{tool}` exited with {status}: {stderr}")]
    ToolFailed {
        /// The program.
        tool: &'static str,
        /// Its exit status as text.
        status: String,
        /// The end of its standard error, bounded.
        stderr: String,
    },
    /// An external tool printed something that is not a size.
    #[error("`{tool}` printed unexpected output: {output:?}")]
    BadOutput {
        /// The program.
        tool: &'static str,
        /// What it printed, bounded.
        output: String,
    },
    /// The scan stopped because its `CancelToken` was set.
    #[error("scan stopped: {}", match .0 { CancelReason::User => "canceled", CancelReason::Timeout => "timeout", CancelReason::Shutdown => "shutting down" })]
    Canceled(CancelReason),
    /// Reading the root itself failed.
    #[error("failed to read {path}")]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------------------
// Repository
// ---------------------------------------------------------------------------

/// A run to insert as `queued`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewScanRun {
    /// Its id, chosen by the caller so it can be returned before the insert.
    pub scan_id: ScanId,
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

/// How an attempt ended; applied by `Repository::record_outcome`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Measured: the run becomes `completed` and its `volume_stats` row is written,
    /// both in one transaction.
    Completed {
        /// The measurement.
        usage: Usage,
        /// The engine that made it.
        method: ScanMethod,
        /// How long the engine took.
        duration: Duration,
    },
    /// Given up: the run becomes `failed` with this reason.
    Failed {
        /// Stored in `error_message`.
        reason: String,
    },
    /// The run becomes `canceled` (from `queued` or `running`).
    Canceled,
    /// The attempt failed and another follows: the run goes back to `queued`
    /// and is not claimed before `not_before`.
    Retry {
        /// Earliest time of the next attempt.
        not_before: Timestamp,
        /// Why this attempt failed, kept in `error_message`.
        reason: String,
    },
    /// Put back to `queued` as it was (shutdown); the attempt does not count.
    Requeue,
}

impl RunOutcome {
    /// The status the run takes.
    pub fn status(&self) -> ScanStatus {
        match self {
            RunOutcome::Completed { .. } => ScanStatus::Completed,
            RunOutcome::Failed { .. } => ScanStatus::Failed,
            RunOutcome::Canceled => ScanStatus::Canceled,
            RunOutcome::Retry { .. } | RunOutcome::Requeue => ScanStatus::Queued,
        }
    }
}

/// Which runs `Repository::runs` and `count_runs` return.
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

/// Durable storage of volumes, runs and stats; the queue's source of truth.
///
/// Every method blocks. Each write is atomic: a caller never sees half of one.
pub trait Repository: Send + Sync {
    /// Checks that the database answers.
    fn ping(&self) -> Result<(), RepoError>;

    /// Inserts or refreshes a volume seen at `now` (clearing `removed_at`).
    fn upsert_volume(&self, volume: &DiscoveredVolume, now: Timestamp)
    -> Result<Volume, RepoError>;

    /// Sets `removed_at`; `false` when the volume is unknown or already removed.
    fn mark_volume_removed(&self, name: &VolumeName, now: Timestamp) -> Result<bool, RepoError>;

    /// One volume, removed or not.
    fn volume(&self, name: &VolumeName) -> Result<Option<Volume>, RepoError>;

    /// Every volume by name; removed ones only when `include_removed`.
    fn volumes(&self, include_removed: bool) -> Result<Vec<Volume>, RepoError>;

    /// Inserts a `queued` run, unless the volume already has an active run:
    /// then that run is returned with `deduplicated: true`. `estimated_duration`
    /// is filled from the volume's last completed scan.
    fn enqueue(&self, run: NewScanRun) -> Result<Enqueued, RepoError>;

    /// Atomically takes the oldest `queued` run that is due at `now`, marks it
    /// `running` and counts the attempt. Two callers never get the same run.
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

    /// Start-up recovery: every `running` run (left by a dead process) becomes
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

// ---------------------------------------------------------------------------
// Volume source
// ---------------------------------------------------------------------------

/// Where volumes come from: the Docker Engine, or a static list when embedded.
///
/// Every method blocks; call them from blocking threads.
pub trait VolumeSource: Send + Sync {
    /// Checks that the source answers; returns a version string for the log.
    fn ping(&self) -> Result<String, SourceError>;

    /// Every volume the source has now that may be scanned: named volumes
    /// whose name does not match the skip pattern, and, when enabled, bind
    /// mounts under the allowlist.
    fn volumes(&self) -> Result<Vec<DiscoveredVolume>, SourceError>;

    /// Whether `name` matches the skip pattern (such a volume is never scanned).
    fn is_skipped(&self, name: &VolumeName) -> bool;

    /// The directory to measure for a volume, host prefix applied. A volume
    /// whose data cannot be reached is an `Unreachable` error with a reason,
    /// never 0 bytes.
    fn scan_root(&self, volume: &Volume) -> Result<PathBuf, SourceError>;

    /// Which containers use which volume, right now.
    fn users(&self) -> Result<Vec<VolumeUsers>, SourceError>;

    /// Follows the source's events, calling `on_event` for each, until `stop`
    /// is canceled (then `Ok`) or the connection fails (then `Err`; the caller
    /// reconnects with backoff). A source without events returns `Ok` once
    /// `stop` is canceled.
    fn watch(
        &self,
        stop: &CancelToken,
        on_event: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), SourceError>;
}

/// Something that happened at the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceEvent {
    /// A volume was created (already filtered by the skip pattern).
    VolumeCreated(VolumeName),
    /// A volume was removed.
    VolumeDestroyed(VolumeName),
    /// A container was created or removed, so volume users may have changed.
    ContainersChanged,
}

/// The containers using one volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeUsers {
    /// The volume (for a bind mount, its volscan name).
    pub volume: VolumeName,
    /// Names of the containers that mount it, running or not.
    pub containers: Vec<String>,
    /// Whether a running container mounts it.
    pub in_use: bool,
}

/// Why a volume source call failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source (Docker daemon) does not answer.
    #[error("the volume source is unavailable")]
    Unavailable(#[source] BoxError),
    /// The source has no such volume.
    #[error("volume {0} does not exist")]
    VolumeNotFound(VolumeName),
    /// The volume exists but its data cannot be read from here.
    #[error("volume {name} cannot be scanned: {reason}")]
    Unreachable {
        /// The volume.
        name: VolumeName,
        /// Why (mountpoint missing, outside the allowlist, not local).
        reason: String,
    },
    /// The source answered something volscan cannot use.
    #[error("the volume source answered badly")]
    Protocol(#[source] BoxError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_cancel_reason_wins() {
        let token = CancelToken::new();
        assert_eq!(token.reason(), None);
        let clone = token.clone();
        clone.cancel(CancelReason::Timeout);
        token.cancel(CancelReason::User);
        assert_eq!(token.reason(), Some(CancelReason::Timeout));
        assert!(token.is_canceled());
    }

    /// An engine whose availability is fixed, for the chain tests.
    struct Fixed(ScanMethod, Option<&'static str>);

    impl ScanEngine for Fixed {
        fn method(&self) -> ScanMethod {
            self.0
        }

        fn availability(&self, _root: &Path) -> Result<(), ScanError> {
            match self.1 {
                None => Ok(()),
                Some("missing-root") => Err(ScanError::RootMissing { path: "/x".into() }),
                Some(reason) => {
                    Err(ScanError::Unavailable { method: self.0, reason: reason.into() })
                }
            }
        }

        fn scan(&self, _root: &Path, _context: &ScanContext<'_>) -> Result<Usage, ScanError> {
            Ok(Usage::default())
        }
    }

    #[track_caller]
    fn check_chain(engines: Vec<Fixed>, expected: Result<ScanMethod, &str>) {
        let chain = EngineChain::new(
            engines.into_iter().map(|e| Arc::new(e) as Arc<dyn ScanEngine>).collect(),
        );
        let picked = chain
            .select(Path::new("/x"))
            .map(|engine| engine.method())
            .map_err(|err| err.to_string());
        assert_eq!(picked, expected.map_err(str::to_owned));
    }

    #[test]
    fn the_chain_falls_back_only_when_unavailable() {
        use ScanMethod::*;
        check_chain(vec![Fixed(Diskus, None), Fixed(Du, None)], Ok(Diskus));
        check_chain(vec![Fixed(Diskus, Some("not on PATH")), Fixed(Du, None)], Ok(Du));
        check_chain(
            vec![Fixed(Diskus, Some("not on PATH")), Fixed(Du, Some("not on PATH"))],
            Err("no scan method is available: diskus: not on PATH; du: not on PATH"),
        );
        // Any other error stops the chain: it is not a reason to try another method.
        check_chain(
            vec![Fixed(Diskus, Some("missing-root")), Fixed(Du, None)],
            Err("scan root /x does not exist"),
        );
    }

    #[test]
    fn status_counts_add_up() {
        let mut counts = StatusCounts::default();
        counts.add(ScanStatus::Queued, 2);
        counts.add(ScanStatus::Failed, 3);
        assert_eq!((counts.queued, counts.failed, counts.total()), (2, 3, 5));
    }
}
