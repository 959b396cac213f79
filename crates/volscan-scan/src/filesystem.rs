//! `StatvfsProbe`: the `FilesystemProbe` port over `statvfs` and
//! `/proc/self/mountinfo`. It tells which filesystem holds a volume's
//! directory, how large it is and how much is still available.
//!
//! A filesystem's id is derived from what stays the same across restarts and
//! reboots, its mount source, mount point (as the host sees it) and type,
//! never from device numbers, which the kernel may hand out differently at
//! the next boot.

use std::path::{Path, PathBuf};

use volscan_domain::{FilesystemProbe, FilesystemSample, ProbeError, Timestamp};

use crate::mounts::unescape;

/// Samples filesystems with `statvfs`; mount points are reported without
/// `SCAN_HOST_PREFIX`, as the host sees them.
#[derive(Clone, Debug, Default)]
pub struct StatvfsProbe {
    host_prefix: Option<PathBuf>,
}

impl StatvfsProbe {
    /// A probe for a volscan that sees the host's files under `host_prefix`
    /// (when it runs in a container), or directly (`None`).
    pub fn new(host_prefix: Option<PathBuf>) -> Self {
        StatvfsProbe { host_prefix }
    }
}

impl FilesystemProbe for StatvfsProbe {
    fn probe(&self, dir: &Path, now: Timestamp) -> Result<FilesystemSample, ProbeError> {
        let io = |source| ProbeError::Io { path: dir.to_path_buf(), source };
        let real = dir.canonicalize().map_err(io)?;
        let stats = rustix::fs::statvfs(&real).map_err(|err| io(err.into()))?;
        let table = std::fs::read_to_string("/proc/self/mountinfo").map_err(io)?;
        let mount =
            holding_mount(&table, &real).ok_or_else(|| ProbeError::NoMount(real.clone()))?;
        let mount_point = self.host_view(&mount.point, &mount.root);
        let fragment = stats.f_frsize;
        Ok(FilesystemSample {
            id: identity(&mount.source, &mount_point, &mount.fs_type),
            mount_point,
            fs_type: mount.fs_type,
            total_bytes: stats.f_blocks.saturating_mul(fragment),
            avail_bytes: stats.f_bavail.saturating_mul(fragment),
            ts: now,
        })
    }
}

impl StatvfsProbe {
    /// Where the filesystem is mounted as the host sees it. The mount point
    /// loses the host prefix when it is below it (else it is a mount of the
    /// container's own). A bind mount of a directory of a filesystem (`root`,
    /// the directory within it, is not `/`) is traced back to where that
    /// filesystem itself is mounted when the path ends with that directory:
    /// the host's `/var/lib/docker/volumes` bound into a container at
    /// `/host/var/lib/docker/volumes` is the filesystem mounted at `/`, as
    /// on the host itself, so both report the same filesystem.
    fn host_view(&self, point: &Path, root: &Path) -> String {
        let shown = match &self.host_prefix {
            Some(prefix) => match point.strip_prefix(prefix) {
                Ok(rest) => Path::new("/").join(rest),
                Err(_) => point.to_path_buf(),
            },
            None => point.to_path_buf(),
        };
        let inner = root.strip_prefix("/").unwrap_or(root);
        let traced = if inner.as_os_str().is_empty() {
            None
        } else {
            let (shown_parts, inner_parts) =
                (shown.components().count(), inner.components().count());
            shown.ends_with(inner).then(|| {
                let kept: PathBuf = shown.components().take(shown_parts - inner_parts).collect();
                if kept.as_os_str().is_empty() { PathBuf::from("/") } else { kept }
            })
        };
        traced.unwrap_or(shown).to_string_lossy().into_owned()
    }
}

/// One line of a mountinfo table.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    /// The directory of the filesystem that is mounted (`/` for a whole one).
    root: PathBuf,
    point: PathBuf,
    fs_type: String,
    source: String,
}

/// The mount holding `dir` (canonical): the one with the longest mount point
/// that contains it, the later line winning among equal ones (it was mounted
/// over the earlier).
fn holding_mount(table: &str, dir: &Path) -> Option<Mount> {
    let mut best: Option<Mount> = None;
    for mount in table.lines().filter_map(parse_line) {
        let longer = best
            .as_ref()
            .is_none_or(|b| mount.point.components().count() >= b.point.components().count());
        if dir.starts_with(&mount.point) && longer {
            best = Some(mount);
        }
    }
    best
}

/// Parses `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER`.
fn parse_line(line: &str) -> Option<Mount> {
    let (head, tail) = line.split_once(" - ")?;
    let mut head = head.split(' ');
    let root = head.nth(3)?;
    let point = head.next()?;
    let mut tail = tail.split(' ');
    let fs_type = tail.next()?;
    let source = tail.next()?;
    Some(Mount {
        root: PathBuf::from(unescape(root)),
        point: PathBuf::from(unescape(point)),
        fs_type: unescape(fs_type),
        source: unescape(source),
    })
}

/// A stable id: `fs-` and 16 hex digits of FNV-1a over source, mount point
/// and type (not a secret; only stable and distinct).
fn identity(source: &str, mount_point: &str, fs_type: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in [source, mount_point, fs_type].join("\0").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fs-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /var/lib/docker rw - xfs /dev/sdb1 rw
31 30 0:26 / /var/lib/docker/volumes/with\\040space/_data rw - tmpfs tmpfs rw
32 22 0:27 / /srv rw - tmpfs tmpfs rw
33 22 0:28 / /srv rw - ext4 /dev/sdc1 rw
";

    fn mount_of(dir: &str) -> Mount {
        holding_mount(TABLE, Path::new(dir)).unwrap()
    }

    #[test]
    fn the_deepest_and_latest_mount_holds_a_directory() {
        assert_eq!(mount_of("/var/lib/docker/volumes/a/_data").source, "/dev/sdb1");
        assert_eq!(mount_of("/var/lib/docker/volumes/with space/_data/x").fs_type, "tmpfs");
        assert_eq!(mount_of("/home/user").source, "/dev/sda1");
        // Mounted over: the later line wins.
        assert_eq!(mount_of("/srv/data").source, "/dev/sdc1");
        // Compared by components: /var/lib/dockerfoo is not below /var/lib/docker.
        assert_eq!(mount_of("/var/lib/dockerfoo").source, "/dev/sda1");
    }

    #[test]
    fn mount_points_are_shown_as_the_host_sees_them() {
        let probe = StatvfsProbe::new(Some(PathBuf::from("/host")));
        let whole = Path::new("/");
        let view = |probe: &StatvfsProbe, point: &str, root: &str| {
            probe.host_view(Path::new(point), Path::new(root))
        };
        assert_eq!(probe.host_view(Path::new("/host/var/lib/docker"), whole), "/var/lib/docker");
        assert_eq!(probe.host_view(Path::new("/host"), whole), "/");
        assert_eq!(probe.host_view(Path::new("/etc/hosts"), whole), "/etc/hosts");
        let host = StatvfsProbe::new(None);
        assert_eq!(host.host_view(Path::new("/srv"), whole), "/srv");
        // The host's /var/lib/docker/volumes (on the filesystem mounted at /)
        // bound into a container, and the host's own bind of /var/lib/docker:
        // both are the filesystem mounted at /.
        assert_eq!(view(&probe, "/host/var/lib/docker/volumes", "/var/lib/docker/volumes"), "/");
        assert_eq!(view(&host, "/var/lib/docker", "/var/lib/docker"), "/");
        // The volumes of a filesystem mounted at /var/lib/docker, bound in.
        assert_eq!(view(&probe, "/host/var/lib/docker/volumes", "/volumes"), "/var/lib/docker");
        // A root that is not the end of the path (a btrfs subvolume): as is.
        assert_eq!(view(&host, "/home", "/@home"), "/home");
    }

    #[test]
    fn identities_are_stable_and_distinct() {
        let a = identity("/dev/sda1", "/", "ext4");
        assert_eq!(a, identity("/dev/sda1", "/", "ext4"));
        assert_ne!(a, identity("/dev/sda1", "/srv", "ext4"));
        assert_ne!(identity("ab", "c", "d"), identity("a", "bc", "d"));
        assert!(a.starts_with("fs-") && a.len() == 19, "{a}");
    }

    #[test]
    fn a_real_directory_is_sampled() {
        let dir = std::env::temp_dir();
        let now = Timestamp::UNIX_EPOCH;
        let sample = StatvfsProbe::default().probe(&dir, now).unwrap();
        assert!(sample.total_bytes > 0 && sample.avail_bytes <= sample.total_bytes, "{sample:?}");
        assert!(dir.canonicalize().unwrap().starts_with(&sample.mount_point), "{sample:?}");
        assert_eq!(
            sample,
            StatvfsProbe::default()
                .probe(&dir, now)
                .map(|s| FilesystemSample { avail_bytes: sample.avail_bytes, ..s })
                .unwrap()
        );
    }
}
