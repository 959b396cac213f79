//! Filesystems holding volumes: a capacity sample taken after a scan, and the
//! port that takes it (`FilesystemProbe`, implemented with `statvfs` and the
//! mount table in `volscan-scan`).

use std::path::{Path, PathBuf};

use crate::Timestamp;

/// The capacity of the filesystem holding a volume, at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesystemSample {
    /// An identity that stays the same across restarts and reboots (derived
    /// from the mount's source, mount point and type, not from device numbers).
    pub id: String,
    /// Where it is mounted, as the host sees it (`SCAN_HOST_PREFIX` removed,
    /// and a bind mount of one of its directories traced back to where the
    /// filesystem itself is mounted).
    pub mount_point: String,
    /// Its type (`ext4`, `xfs`, `overlay`, …).
    pub fs_type: String,
    /// Its size in bytes.
    pub total_bytes: u64,
    /// Bytes an unprivileged user may still write.
    pub avail_bytes: u64,
    /// When it was sampled.
    pub ts: Timestamp,
}

/// Which filesystem holds a directory, and how full it is.
///
/// Blocking; called after a scan of the directory, on the same thread.
pub trait FilesystemProbe: Send + Sync {
    /// Samples the filesystem holding `dir` at `now`.
    fn probe(&self, dir: &Path, now: Timestamp) -> Result<FilesystemSample, ProbeError>;
}

/// Why a filesystem could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// `statvfs` or reading the mount table failed.
    #[error("cannot sample the filesystem of {path}")]
    Io {
        /// The directory asked about.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No mount in the mount table holds the directory.
    #[error("no mount holds {0}")]
    NoMount(PathBuf),
}
