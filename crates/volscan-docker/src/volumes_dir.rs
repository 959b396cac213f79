//! The check a containerised volscan needs at start-up: is Docker's volumes
//! directory (`<data root>/volumes`, the data root from `/info`) there and
//! readable below `SCAN_HOST_PREFIX`? A problem is put in words that name the
//! path and the mount or capability that fixes it.
//!
//! It looks at that one directory only; each volume's own directory is still
//! checked when it is scanned (`DockerSource::scan_root`), and a volume whose
//! directory is missing or unreadable fails its run rather than reading as 0 bytes.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use volscan_domain::SourceError;

use crate::source::{CallError, PING_TIMEOUT};
use crate::{DockerSource, paths};

impl DockerSource {
    /// Docker's data root on the host (`DockerRootDir` from `/info`), such as
    /// `/var/lib/docker`. Asked once; later calls answer from memory, since a
    /// daemon cannot change it without a restart.
    pub fn data_root(&self) -> Result<PathBuf, SourceError> {
        if let Some(root) = self.data_root.get() {
            return Ok(root.clone());
        }
        let info =
            self.block_on(self.call("ask for the data root", PING_TIMEOUT, self.docker.info()))?;
        match info.docker_root_dir {
            Some(root) if root.starts_with('/') => {
                Ok(self.data_root.get_or_init(|| PathBuf::from(root)).clone())
            }
            _ => Err(SourceError::Protocol(Box::new(CallError {
                what: "ask for the data root",
                host: self.host.clone(),
                source: "the answer has no absolute DockerRootDir".into(),
            }))),
        }
    }

    /// The daemon's identity for the `hosts` table: its `ID` and its server
    /// version from `/info`, each `None` when the daemon does not say.
    pub fn engine_identity(&self) -> Result<(Option<String>, Option<String>), SourceError> {
        let info = self.block_on(self.call(
            "ask for the engine's identity",
            PING_TIMEOUT,
            self.docker.info(),
        ))?;
        Ok((info.id, info.server_version))
    }

    /// With `SCAN_HOST_PREFIX` set, what is wrong with Docker's volumes
    /// directory below it (missing, not a directory, unreadable), in words that
    /// say which mount or capability fixes it. `None` when it can be listed,
    /// without a prefix, and while Docker does not answer (its ping says so).
    ///
    /// Blocking, like the port's methods: it may ask Docker's `/info`.
    pub fn volumes_dir_problem(&self) -> Option<String> {
        let prefix = self.prefix.as_deref()?;
        match self.data_root() {
            Ok(root) => problem(prefix, &root),
            Err(err) => {
                // Asked again at the next call; Docker's own health reports the failure.
                tracing::debug!(error = %err, "cannot check Docker's volumes directory yet");
                None
            }
        }
    }
}

/// What is wrong with Docker's volumes directory as seen below `prefix`, when
/// Docker keeps its data in `data_root` on the host; `None` when it can be listed.
pub(crate) fn problem(prefix: &Path, data_root: &Path) -> Option<String> {
    let host = data_root.join("volumes");
    let local = paths::with_prefix(Some(prefix), &host);
    let mount = format!("mount the host's {} at {} (read-only)", host.display(), local.display());
    match std::fs::metadata(&local) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Some(format!("{} is not a directory: {mount}", local.display())),
        Err(err) if matches!(err.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Some(format!(
                "{} is missing: {mount}, or set SCAN_HOST_PREFIX to where the host's directories \
                 are mounted",
                local.display()
            ));
        }
        Err(err) => return Some(unreadable(&local, &err)),
    }
    // Docker makes it 0701 and the volumes' own directories 0701 and root's:
    // listing and entering them as another user takes `CAP_DAC_READ_SEARCH`.
    match std::fs::read_dir(&local) {
        Ok(_) => None,
        Err(err) => Some(unreadable(&local, &err)),
    }
}

/// The message for a directory that exists but cannot be listed.
fn unreadable(local: &Path, err: &std::io::Error) -> String {
    if err.kind() == ErrorKind::PermissionDenied {
        format!(
            "{} cannot be read (permission denied): a non-root volscan needs the capability \
             DAC_READ_SEARCH to read Docker's root-owned directories (docker run --cap-add \
             DAC_READ_SEARCH, compose cap_add; without no-new-privileges, which keeps the \
             binary from receiving its file capability)",
            local.display()
        )
    } else {
        format!("{} cannot be read: {err}", local.display())
    }
}
