//! What one scan measures (`Usage`) and the stored result of one completed run
//! (`VolumeStat`).

use std::time::Duration;

use crate::{HostId, ScanId, ScanMethod, Timestamp, VolumeName};

/// The measurement of one directory tree (SPEC §1).
///
/// Only `size_bytes` and `error_count` are known to every method; `diskus`
/// and `du` leave the other fields `None` rather than guessing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Allocated blocks × 512, as `du -sB1 -x`; a hard-linked inode counted once.
    pub size_bytes: u64,
    /// Sum of `st_size`, as `du -sb -x`; hard links once.
    pub apparent_bytes: Option<u64>,
    /// Distinct non-directory inodes.
    pub file_count: Option<u64>,
    /// Directories, the root included.
    pub dir_count: Option<u64>,
    /// Entries that could not be read.
    pub error_count: u64,
}

impl Usage {
    /// A scan with unreadable entries is partial, never silently complete.
    pub fn is_partial(&self) -> bool {
        self.error_count > 0
    }

    /// What a completed run says about a partial scan in its `error_message`;
    /// `None` for a complete one.
    pub fn partial_note(&self) -> Option<String> {
        self.is_partial().then(|| {
            format!(
                "partial: {} entries could not be read, so the sizes are a lower bound",
                self.error_count
            )
        })
    }

    /// `file_count + dir_count`, the number `du --inodes` prints, when known.
    pub fn entries(&self) -> Option<u64> {
        Some(self.file_count? + self.dir_count?)
    }
}

/// One row of `volume_stats`: the `Usage` a completed run measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeStat {
    /// Database id.
    pub id: i64,
    /// The host of the volume.
    pub host: HostId,
    /// The volume measured.
    pub volume: VolumeName,
    /// What was measured.
    pub usage: Usage,
    /// Which engine measured it.
    pub method: ScanMethod,
    /// How long the engine took.
    pub duration: Duration,
    /// The run that produced it; unique across the table.
    pub scan_id: ScanId,
    /// When the measurement was taken (the run's completion).
    pub ts: Timestamp,
    /// When the row was written.
    pub created_at: Timestamp,
    /// When the row was last changed.
    pub updated_at: Timestamp,
}
