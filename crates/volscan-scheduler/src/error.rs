//! `SchedulerError`: why a request to the scheduler was refused.

use std::time::Duration;

use volscan_domain::{HostId, RepoError, ScanId, ScanStatus, SourceError, VolumeName};

/// Why the scheduler refused or could not carry out a request.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The volume is not known to the source or the database.
    #[error("volume {0} does not exist")]
    VolumeNotFound(VolumeName),
    /// The volume matches the skip pattern and is never scanned.
    #[error("volume {0} matches the skip pattern and is never scanned")]
    Forbidden(VolumeName),
    /// The queue holds its capacity of runs.
    #[error("the scan queue is full ({capacity} runs)")]
    QueueFull {
        /// The capacity.
        capacity: u64,
    },
    /// A bulk run came inside the cooldown of the last bulk or periodic run.
    #[error("a bulk scan ran less than the cooldown ago; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// Time until a bulk run is allowed again.
        retry_after: Duration,
    },
    /// No host with this id shares the database.
    #[error("host {0} is not known to the database")]
    HostNotFound(HostId),
    /// The run is running on another host, whose process alone can stop it.
    #[error("scan run {scan_id} is running on host {host}; cancel it through that host's server")]
    RunningElsewhere {
        /// The run.
        scan_id: ScanId,
        /// The host running it.
        host: HostId,
    },
    /// No run has this id.
    #[error("scan run {0} does not exist")]
    ScanNotFound(ScanId),
    /// The run already finished; it cannot be canceled.
    #[error("scan run {scan_id} is already {status}")]
    ScanFinished {
        /// The run.
        scan_id: ScanId,
        /// Its final status.
        status: ScanStatus,
    },
    /// The database failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The volume source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A blocking task did not finish (the runtime is shutting down).
    #[error("a background task was interrupted")]
    Interrupted,
}
