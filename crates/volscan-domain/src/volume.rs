//! Volumes as volscan knows them: what a source reports (`DiscoveredVolume`)
//! and what the repository keeps (`Volume`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{HostId, ParseEnumError, Timestamp, VolumeName};

/// A named Docker volume or an allow-listed bind mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VolumeKind {
    /// A Docker named volume.
    Volume,
    /// A container's bind mount under `SCAN_BIND_ALLOWLIST`.
    Bind,
}

impl VolumeKind {
    /// The stable text form stored in `volumes.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeKind::Volume => "volume",
            VolumeKind::Bind => "bind",
        }
    }
}

impl fmt::Display for VolumeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VolumeKind {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "volume" => Ok(VolumeKind::Volume),
            "bind" => Ok(VolumeKind::Bind),
            _ => Err(ParseEnumError {
                kind: "volume kind",
                value: s.to_owned(),
                expected: &["volume", "bind"],
            }),
        }
    }
}

/// A volume as a `VolumeSource` reports it right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredVolume {
    /// Docker's name.
    pub name: VolumeName,
    /// Docker's volume driver (`local`).
    pub driver: String,
    /// Where the data lives, as Docker reports it (before any host prefix).
    pub mountpoint: PathBuf,
    /// Volume or bind mount.
    pub kind: VolumeKind,
    /// Docker labels.
    pub labels: BTreeMap<String, String>,
    /// Docker's creation time, when it reports one.
    pub created_at: Option<Timestamp>,
}

/// A row of `volumes`: a volume volscan has seen, possibly removed since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// The Docker host it lives on; a volume is `(host, name)`.
    pub host: HostId,
    /// Docker's name.
    pub name: VolumeName,
    /// Docker's volume driver.
    pub driver: String,
    /// Where the data lives, as Docker reports it.
    pub mountpoint: PathBuf,
    /// Volume or bind mount.
    pub kind: VolumeKind,
    /// Docker labels.
    pub labels: BTreeMap<String, String>,
    /// Docker's creation time, when known.
    pub created_at: Option<Timestamp>,
    /// When volscan first saw it.
    pub first_seen_at: Timestamp,
    /// When volscan last saw it in Docker's list.
    pub last_seen_at: Timestamp,
    /// When Docker stopped reporting it; its history is kept.
    pub removed_at: Option<Timestamp>,
    /// Whether a container, running or stopped, references it, as of volscan's
    /// last look at the containers; `None` before the first look.
    pub in_use: Option<bool>,
    /// The last time volscan saw a container reference it; `None` when never.
    pub last_used_at: Option<Timestamp>,
    /// Since when volscan has seen no container reference it (the first look
    /// that found it unused); `None` while in use or unknown.
    pub unused_since: Option<Timestamp>,
    /// The filesystem holding it at its last scan (`FilesystemSample::id`).
    pub filesystem_id: Option<String>,
}
