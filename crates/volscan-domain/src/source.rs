//! The volume source port: where volumes come from (the Docker Engine, or a
//! static list when embedded), its events, and its error.
//!
//! Every method blocks; call them from blocking threads.

use std::path::PathBuf;

use crate::{BoxError, CancelToken, DiscoveredVolume, Volume, VolumeName};

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
