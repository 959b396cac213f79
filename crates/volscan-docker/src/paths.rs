//! Host paths: putting `SCAN_HOST_PREFIX` before Docker's paths, deciding which
//! bind mounts may be scanned (the allowlist), and naming those bind mounts.
//!
//! Everything here is pure path logic plus `canonicalize`/`symlink_metadata`;
//! nothing talks to Docker. Paths come in two namespaces: *host* paths, as
//! Docker reports them, and *local* paths, where volscan sees the same data
//! (the host path with the host prefix put before it as text).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use volscan_domain::VolumeName;

use crate::DockerError;

/// Host directories that are never scanned, nor anything below them (besides `/` itself).
const REFUSED: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Docker's (and `VolumeName`'s) limit on a name, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// The longest sanitised path part of a bind name: the limit minus `bind-`, `-` and 8 hex digits.
const MAX_SANITISED_BYTES: usize = MAX_NAME_BYTES - "bind-".len() - 1 - 8;

/// Whether `host_path` is `/`, `/proc`, `/sys`, `/dev` or below one of those
/// (compared component by component, so `/devices` is not refused), or is
/// not absolute at all.
pub(crate) fn is_refused(host_path: &Path) -> bool {
    !host_path.is_absolute()
        || host_path.parent().is_none()
        || REFUSED.iter().any(|refused| host_path.starts_with(refused))
}

/// The host prefix as given, without trailing slashes; `None` for an empty
/// prefix or `/`, which change nothing.
pub(crate) fn normalise_prefix(prefix: Option<&Path>) -> Option<PathBuf> {
    let bytes = prefix?.as_os_str().as_bytes();
    let end = bytes.iter().rposition(|b| *b != b'/').map_or(0, |last| last + 1);
    (end > 0).then(|| PathBuf::from(OsString::from_vec(bytes[..end].to_vec())))
}

/// `prefix` put before `host_path` as text: `/host` + `/var/lib/x` is
/// `/host/var/lib/x` (`Path::join` would drop the prefix, since the second
/// path is absolute).
pub(crate) fn with_prefix(prefix: Option<&Path>, host_path: &Path) -> PathBuf {
    match prefix {
        None => host_path.to_path_buf(),
        Some(prefix) => {
            let mut joined = prefix.as_os_str().to_os_string();
            if !host_path.as_os_str().as_bytes().starts_with(b"/") {
                joined.push("/");
            }
            joined.push(host_path.as_os_str());
            PathBuf::from(joined)
        }
    }
}

/// Whether `path` has a `..` component, which could lead out of the host prefix.
pub(crate) fn has_parent_component(path: &Path) -> bool {
    path.components().any(|component| component == Component::ParentDir)
}

/// FNV-1a, 64 bits, over `bytes`.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

/// The volscan name of a bind mount whose canonical host path is `host_path`:
/// `bind-<sanitised path>-<8 hex digits>`.
///
/// The sanitised path is `host_path` without its leading `/`, every byte
/// outside `[A-Za-z0-9_.-]` replaced by `_`, cut so the whole name stays
/// within 255 bytes. The hex digits are the low 32 bits of the FNV-1a 64 hash
/// of the path's bytes, so paths that sanitise alike still get distinct names.
pub(crate) fn bind_name(host_path: &Path) -> VolumeName {
    let bytes = host_path.as_os_str().as_bytes();
    let hash = fnv1a_64(bytes) as u32;
    let relative = bytes.strip_prefix(b"/").unwrap_or(bytes);
    let sanitised: String = relative
        .iter()
        .take(MAX_SANITISED_BYTES)
        .map(|byte| {
            let allowed = byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-');
            if allowed { char::from(*byte) } else { '_' }
        })
        .collect();
    let name = format!("bind-{sanitised}-{hash:08x}");
    // Cannot fail: the name starts with `b`, has only `[A-Za-z0-9_.-]`, is at
    // least 14 bytes long and at most 5 + MAX_SANITISED_BYTES + 9 = 255.
    VolumeName::new(name).expect("a bind name always satisfies Docker's volume name rule")
}

/// A bind mount source that passed the allowlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedBind {
    /// Where volscan reads it: canonical, host prefix included.
    pub(crate) local: PathBuf,
    /// The canonical host path (without the host prefix); named and stored.
    pub(crate) host: PathBuf,
}

/// Which bind mounts may be scanned: those whose canonical source lies
/// under one of the canonical allowlist directories.
#[derive(Clone, Debug)]
pub(crate) struct BindPolicy {
    /// The host prefix as text, trailing slashes removed.
    prefix: Option<PathBuf>,
    /// The host prefix canonicalised, when it exists.
    canonical_prefix: Option<PathBuf>,
    /// The allowlist, canonical local paths.
    allowlist: Vec<PathBuf>,
}

impl BindPolicy {
    /// Canonicalises every allowlist entry (a host path) under `prefix`,
    /// refusing entries that do not exist, are not directories, resolve outside
    /// the prefix, or resolve to `/`, `/proc`, `/sys`, `/dev` or below.
    pub(crate) fn new(prefix: Option<&Path>, entries: &[PathBuf]) -> Result<Self, DockerError> {
        let prefix = normalise_prefix(prefix);
        let canonical_prefix = prefix.as_deref().and_then(|prefix| prefix.canonicalize().ok());
        let mut policy = BindPolicy { prefix, canonical_prefix, allowlist: Vec::new() };
        for entry in entries {
            let refused =
                |reason: String| DockerError::AllowlistRefused { entry: entry.clone(), reason };
            if !entry.is_absolute() {
                return Err(refused("it is not an absolute path".to_owned()));
            }
            let local = with_prefix(policy.prefix.as_deref(), entry);
            let canonical = local.canonicalize().map_err(|source| {
                DockerError::AllowlistUnresolvable { entry: entry.clone(), path: local, source }
            })?;
            let host = policy.host_path(&canonical).map_err(refused)?;
            if is_refused(&host) {
                return Err(refused(format!(
                    "it resolves to {}, and /, /proc, /sys and /dev are never scanned",
                    host.display()
                )));
            }
            if !canonical.is_dir() {
                return Err(refused(format!("{} is not a directory", host.display())));
            }
            if !policy.allowlist.contains(&canonical) {
                policy.allowlist.push(canonical);
            }
        }
        Ok(policy)
    }

    /// The host path of a canonical local path: the canonical prefix taken
    /// off again. An error when the path lies outside the prefix.
    fn host_path(&self, canonical: &Path) -> Result<PathBuf, String> {
        let Some(prefix) = &self.prefix else {
            return Ok(canonical.to_path_buf());
        };
        let Some(canonical_prefix) = &self.canonical_prefix else {
            return Err(format!("the host prefix {} cannot be resolved", prefix.display()));
        };
        match canonical.strip_prefix(canonical_prefix) {
            Ok(rest) => Ok(Path::new("/").join(rest)),
            Err(_) => Err(format!(
                "it resolves to {}, outside the host prefix {}",
                canonical.display(),
                prefix.display()
            )),
        }
    }

    /// Resolves a bind source as Docker reports it (a host path) and checks
    /// it against the allowlist; the error is a reason for an operator.
    ///
    /// The whole path is canonicalised, so a symlink anywhere in it (also
    /// one swapped in after the last check) is followed before the check.
    pub(crate) fn resolve(&self, host_source: &Path) -> Result<ResolvedBind, String> {
        if !host_source.is_absolute() || has_parent_component(host_source) {
            return Err(format!(
                "bind source {} is not a plain absolute path",
                host_source.display()
            ));
        }
        let local = with_prefix(self.prefix.as_deref(), host_source);
        let canonical = local
            .canonicalize()
            .map_err(|err| format!("bind source {} cannot be resolved: {err}", local.display()))?;
        let host = self
            .host_path(&canonical)
            .map_err(|reason| format!("bind source {}: {reason}", host_source.display()))?;
        if is_refused(&host) {
            return Err(format!(
                "bind source {} resolves to {}, and /, /proc, /sys and /dev are never scanned",
                host_source.display(),
                host.display()
            ));
        }
        if !self.allowlist.iter().any(|allowed| canonical.starts_with(allowed)) {
            return Err(format!(
                "bind source {} resolves to {}, which is outside the bind allowlist \
                 (SCAN_BIND_ALLOWLIST)",
                host_source.display(),
                host.display()
            ));
        }
        Ok(ResolvedBind { local: canonical, host })
    }

    /// The canonical allowlist directories (local paths).
    #[cfg(test)]
    pub(crate) fn allowlist(&self) -> &[PathBuf] {
        &self.allowlist
    }
}
