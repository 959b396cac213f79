//! The Docker Engine as a `VolumeSource`: named volumes, allow-listed bind
//! mounts, which containers use them, and Docker's volume and container events.
//!
//! `DockerSource` speaks Docker's HTTP API (pinned to version 1.41, so Docker
//! 20.10 and every newer engine answer) through the `docker-api` crate, whose
//! types never leave this crate. The port is blocking: `DockerSource` owns a
//! small private tokio runtime and blocks on it inside each method, so call it
//! from blocking threads (`spawn_blocking`), never from async code.
//!
//! It does not measure anything, keep state between calls, or decide what to
//! scan when; it only tells the scheduler what exists, where its data lives on
//! this machine (`SCAN_HOST_PREFIX` applied), and what changed.
//! For a volscan in a container, `DockerSource::volumes_dir_problem` says
//! whether Docker's volumes directory is visible and readable below the host
//! prefix, and if not, which mount or capability is missing (`volumes_dir.rs`).

mod binds;
mod events;
mod host;
mod paths;
mod source;
mod volumes_dir;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use source::DockerSource;

/// The Docker endpoint `DockerSourceOptions::default` uses.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// How to reach Docker and what to report; built by the composition root from the configuration.
#[derive(Clone, Debug)]
pub struct DockerSourceOptions {
    /// The Docker Engine endpoint (`DOCKER_HOST`): `unix:///var/run/docker.sock`,
    /// `tcp://host:port` or `http://host:port` (plain HTTP; TLS, `https://`, is
    /// not supported). The scheme is case-insensitive.
    pub host: String,
    /// Put before every host path Docker reports, as text, when volscan runs
    /// in a container that sees the host's files below this directory (`/host`).
    pub host_prefix: Option<PathBuf>,
    /// Volumes whose name matches are never reported nor scanned.
    pub skip_pattern: Option<regex::Regex>,
    /// Whether containers' bind mounts under `bind_allowlist` are reported too.
    pub bind_mounts_enabled: bool,
    /// Host directories under which bind mounts may be scanned; canonicalised
    /// (under `host_prefix`) once by `DockerSource::new`.
    pub bind_allowlist: Vec<PathBuf>,
}

impl Default for DockerSourceOptions {
    /// The local socket, no prefix, no skip pattern, bind mounts off.
    fn default() -> Self {
        DockerSourceOptions {
            host: DEFAULT_DOCKER_HOST.to_owned(),
            host_prefix: None,
            skip_pattern: None,
            bind_mounts_enabled: false,
            bind_allowlist: Vec::new(),
        }
    }
}

/// Why a `DockerSource` could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The Docker host is not a usable endpoint.
    #[error("invalid Docker host {host:?}: {reason}")]
    BadHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bind allowlist entry cannot be canonicalised (it does not exist, or is unreadable).
    #[error("bind allowlist entry {} cannot be resolved (looked at {})", entry.display(), path.display())]
    AllowlistUnresolvable {
        /// The entry as given.
        entry: PathBuf,
        /// The path looked at, host prefix included.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bind allowlist entry may not be used.
    #[error("bind allowlist entry {} is refused: {reason}", entry.display())]
    AllowlistRefused {
        /// The entry as given.
        entry: PathBuf,
        /// Why (`/`, `/proc`, `/sys`, `/dev`, not a directory, outside the host prefix).
        reason: String,
    },
    /// The private runtime could not be started.
    #[error("failed to start the Docker client's runtime")]
    Runtime(#[source] std::io::Error),
}
