//! `DockerSource`: the `VolumeSource` port over Docker's HTTP API.
//!
//! Each method blocks on a private single-worker tokio runtime, bounds every
//! request with a timeout, and translates `docker-api`'s models and errors at
//! this boundary, so none of them reach the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use docker_api::Docker;
use docker_api::models::ContainerSummary;
use docker_api::opts::{
    ContainerListOpts, EventFilter, EventFilterType, EventsOpts, VolumeListOpts,
};
use futures_util::StreamExt;
use regex::Regex;
use tokio::runtime::Runtime;
use volscan_domain::{
    BoxError, CancelToken, DiscoveredVolume, SourceError, SourceEvent, Timestamp, Volume,
    VolumeKind, VolumeName, VolumeSource, VolumeUsers,
};

use crate::binds::BindResolver;
use crate::host::check_host;
use crate::paths::{self, BindPolicy};
use crate::{DockerError, DockerSourceOptions, events};

/// Docker's API version volscan speaks: the newest Docker 20.10 knows. Newer
/// engines still serve it; the `docker-api` default (1.42) is refused by 20.10.
const API_VERSION: (usize, usize) = (1, 41);

/// The longest a ping (or the `/info` the data root comes from) may take
/// before the daemon counts as unavailable.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a listing may take before the daemon counts as unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `watch` looks at its stop token while no event arrives.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Container states in which a container holds its mounts (`in_use`).
const ACTIVE_STATES: [&str; 3] = ["running", "paused", "restarting"];

/// The Docker Engine as a source of volumes.
///
/// Blocking: every method runs its requests on a private tokio runtime and
/// waits. Calling it from inside an async runtime panics, so async callers
/// go through `spawn_blocking`. Dropping it is fine anywhere.
pub struct DockerSource {
    /// Always `Some` until `drop` takes it to shut it down without blocking.
    runtime: Option<Runtime>,
    pub(crate) docker: Docker,
    /// The endpoint as `check_host` normalised it (read by its tests).
    pub(crate) host: String,
    pub(crate) prefix: Option<PathBuf>,
    skip_pattern: Option<Regex>,
    bind_mounts_enabled: bool,
    binds: BindPolicy,
    /// Docker's data root, once `/info` has given it (see `volumes_dir.rs`).
    pub(crate) data_root: std::sync::OnceLock<PathBuf>,
}

impl DockerSource {
    /// Checks the options (the host URL, every allowlist entry, canonicalised
    /// here once) and builds the client. Does not contact Docker: `ping` does.
    pub fn new(options: DockerSourceOptions) -> Result<DockerSource, DockerError> {
        let DockerSourceOptions {
            host,
            host_prefix,
            skip_pattern,
            bind_mounts_enabled,
            bind_allowlist,
        } = options;
        let host = check_host(&host)?;
        let prefix = paths::normalise_prefix(host_prefix.as_deref());
        let binds = BindPolicy::new(prefix.as_deref(), &bind_allowlist)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("volscan-docker")
            .enable_all()
            .build()
            .map_err(DockerError::Runtime)?;
        let docker = {
            // hyper's client looks for the runtime it will spawn its
            // connection tasks on when it is built.
            let _context = runtime.enter();
            Docker::new_versioned(&host, API_VERSION).map_err(|err| DockerError::BadHost {
                host: host.clone(),
                reason: err.to_string(),
            })?
        };
        Ok(DockerSource {
            runtime: Some(runtime),
            docker,
            host,
            prefix,
            skip_pattern,
            bind_mounts_enabled,
            binds,
            data_root: std::sync::OnceLock::new(),
        })
    }

    /// Runs `future` on the private runtime and waits for it.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        // Only `drop` takes the runtime, and nothing runs after it.
        let runtime = self.runtime.as_ref().expect("the runtime lives until the source is dropped");
        runtime.block_on(future)
    }

    /// Awaits one Docker request, bounded by `timeout`, translating its error.
    pub(crate) async fn call<T>(
        &self,
        what: &'static str,
        timeout: Duration,
        request: impl Future<Output = docker_api::Result<T>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.source_error(what, err)),
            Err(_) => Err(SourceError::Unavailable(Box::new(CallError {
                what,
                host: self.host.clone(),
                source: format!("Docker did not answer within {}s", timeout.as_secs()).into(),
            }))),
        }
    }

    /// Sorts a `docker-api` error: an answer volscan cannot use is `Protocol`,
    /// everything else (no connection, a broken one, a 5xx) is `Unavailable`.
    fn source_error(&self, what: &'static str, err: docker_api::Error) -> SourceError {
        use docker_api::Error as E;
        use docker_api::conn::Error as C;
        let bad_answer = match &err {
            E::Fault { code, .. } | E::Error(C::Fault { code, .. }) => !code.is_server_error(),
            E::SerdeJsonError(_)
            | E::InvalidResponse(_)
            | E::MalformedVersion(_)
            | E::Error(C::SerdeJsonError(_) | C::Encoding(_)) => true,
            _ => false,
        };
        let err = Box::new(CallError { what, host: self.host.clone(), source: Box::new(err) });
        if bad_answer { SourceError::Protocol(err) } else { SourceError::Unavailable(err) }
    }

    async fn list_containers(&self) -> Result<Vec<ContainerSummary>, SourceError> {
        let options = ContainerListOpts::builder().all(true).build();
        self.call("list containers", REQUEST_TIMEOUT, self.docker.containers().list(&options)).await
    }

    fn skipped(&self, name: &VolumeName) -> bool {
        self.skip_pattern.as_ref().is_some_and(|pattern| pattern.is_match(name.as_str()))
    }

    /// The allow-listed bind mounts among `containers`' mounts.
    fn allowed_binds(&self, containers: &[ContainerSummary]) -> BindResolver<'_> {
        let mut resolver = BindResolver::new(&self.binds);
        for container in containers {
            for mount in container.mounts.iter().flatten() {
                resolver.resolve(mount);
            }
        }
        resolver
    }

    fn discovered(&self, volume: docker_api::models::Volume) -> Option<DiscoveredVolume> {
        let name = match VolumeName::new(volume.name.as_str()) {
            Ok(name) => name,
            Err(err) => {
                tracing::warn!(volume = volume.name, "ignoring a Docker volume: {err}");
                return None;
            }
        };
        if self.skipped(&name) {
            tracing::debug!(volume = %name, "skipping a volume matching the skip pattern");
            return None;
        }
        Some(DiscoveredVolume {
            name,
            driver: volume.driver,
            mountpoint: PathBuf::from(volume.mountpoint),
            kind: VolumeKind::Volume,
            labels: volume.labels.into_iter().collect(),
            created_at: volume.created_at.and_then(|created| {
                let nanos = i128::from(created.timestamp()) * 1_000_000_000
                    + i128::from(created.timestamp_subsec_nanos());
                Timestamp::from_unix_timestamp_nanos(nanos).ok()
            }),
        })
    }

    fn volume_scan_root(&self, volume: &Volume) -> Result<PathBuf, String> {
        let mountpoint = &volume.mountpoint;
        if mountpoint.as_os_str().is_empty() {
            return Err(format!(
                "driver {} reports no mountpoint; only volumes with a local mountpoint can be scanned",
                volume.driver
            ));
        }
        if !mountpoint.is_absolute() || paths::has_parent_component(mountpoint) {
            return Err(format!(
                "mountpoint {} is not a plain absolute path",
                mountpoint.display()
            ));
        }
        let root = paths::with_prefix(self.prefix.as_deref(), mountpoint);
        match std::fs::symlink_metadata(&root) {
            Ok(metadata) if metadata.is_dir() => Ok(root),
            Ok(metadata) if metadata.file_type().is_symlink() => Err(format!(
                "mountpoint {} is a symlink, and volscan does not follow symlinks",
                root.display()
            )),
            Ok(_) => Err(format!("mountpoint {} is not a directory", root.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(self.missing_mountpoint_reason(&root, &volume.driver))
            }
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
                "mountpoint {} cannot be read (permission denied); volscan needs read access to \
                 Docker's volumes directory, usually by running as root",
                root.display()
            )),
            Err(err) => Err(format!("mountpoint {} cannot be read: {err}", root.display())),
        }
    }

    fn missing_mountpoint_reason(&self, root: &Path, driver: &str) -> String {
        if driver != "local" {
            return format!(
                "mountpoint {} does not exist; driver {driver} may mount its volumes only while a \
                 container uses them, or keep no local data at all",
                root.display()
            );
        }
        match &self.prefix {
            Some(prefix) => format!(
                "mountpoint {} does not exist; is the host's Docker volumes directory mounted into \
                 volscan's container below {} (SCAN_HOST_PREFIX)?",
                root.display(),
                prefix.display()
            ),
            None => format!(
                "mountpoint {} does not exist; when volscan runs in a container, mount Docker's \
                 volumes directory into it and set SCAN_HOST_PREFIX",
                root.display()
            ),
        }
    }

    fn bind_scan_root(&self, volume: &Volume) -> Result<PathBuf, String> {
        if !self.bind_mounts_enabled {
            return Err(
                "bind mounts are not scanned (SCAN_BIND_MOUNTS_ENABLED is false)".to_owned()
            );
        }
        let resolved = self.binds.resolve(&volume.mountpoint)?;
        if resolved.host != volume.mountpoint {
            // The stored path was canonical when it was discovered, so a
            // different answer now means a symlink was put into it since.
            return Err(format!(
                "bind source {} now resolves to {}; a symlink was put into its path",
                volume.mountpoint.display(),
                resolved.host.display()
            ));
        }
        if !resolved.local.is_dir() {
            return Err(format!("bind source {} is not a directory", resolved.local.display()));
        }
        Ok(resolved.local)
    }

    async fn follow_events(
        &self,
        stop: &CancelToken,
        on_event: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), SourceError> {
        let options = EventsOpts::builder()
            .filter(vec![
                EventFilter::Type(EventFilterType::Volume),
                EventFilter::Type(EventFilterType::Container),
                EventFilter::Event("create".to_owned()),
                EventFilter::Event("destroy".to_owned()),
            ])
            .build();
        let mut stream = self.docker.events(&options);
        let mut poll = tokio::time::interval(STOP_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(message)) => {
                        let kind = message.type_.as_deref().unwrap_or_default();
                        let action = message.action.as_deref().unwrap_or_default();
                        let actor =
                            message.actor.as_ref().and_then(|actor| actor.id.as_deref()).unwrap_or_default();
                        if let Some(event) = events::map_event(kind, action, actor, |name| self.skipped(name)) {
                            on_event(event);
                        }
                    }
                    Some(Err(docker_api::Error::SerdeJsonError(err))) => {
                        tracing::warn!("ignoring a Docker event that cannot be decoded: {err}");
                    }
                    Some(Err(err)) => return Err(SourceError::Unavailable(Box::new(CallError {
                        what: "follow events",
                        host: self.host.clone(),
                        source: Box::new(err),
                    }))),
                    None => return Err(SourceError::Unavailable(Box::new(CallError {
                        what: "follow events",
                        host: self.host.clone(),
                        source: "the event stream ended".into(),
                    }))),
                },
                _ = poll.tick() => {
                    if stop.is_canceled() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

impl VolumeSource for DockerSource {
    fn ping(&self) -> Result<String, SourceError> {
        let version =
            self.block_on(self.call("ask for the version", PING_TIMEOUT, self.docker.version()))?;
        match version.version {
            Some(version) if !version.is_empty() => Ok(version),
            _ => Err(SourceError::Protocol(Box::new(CallError {
                what: "ask for the version",
                host: self.host.clone(),
                source: "the answer has no version".into(),
            }))),
        }
    }

    fn volumes(&self) -> Result<Vec<DiscoveredVolume>, SourceError> {
        let (listing, containers) = self.block_on(async {
            let options = VolumeListOpts::builder().build();
            let listing = self
                .call("list volumes", REQUEST_TIMEOUT, self.docker.volumes().list(&options))
                .await?;
            let containers =
                if self.bind_mounts_enabled { self.list_containers().await? } else { Vec::new() };
            Ok::<_, SourceError>((listing, containers))
        })?;
        let mut found: BTreeMap<VolumeName, DiscoveredVolume> = listing
            .volumes
            .into_iter()
            .flatten()
            .filter_map(|volume| self.discovered(volume))
            .map(|volume| (volume.name.clone(), volume))
            .collect();
        for bind in self.allowed_binds(&containers).into_allowed() {
            let name = paths::bind_name(&bind.host);
            if self.skipped(&name) {
                continue;
            }
            let volume = DiscoveredVolume {
                name: name.clone(),
                driver: "bind".to_owned(),
                mountpoint: bind.host,
                kind: VolumeKind::Bind,
                labels: BTreeMap::new(),
                created_at: None,
            };
            found.entry(name).or_insert(volume);
        }
        Ok(found.into_values().collect())
    }

    fn is_skipped(&self, name: &VolumeName) -> bool {
        self.skipped(name)
    }

    fn scan_root(&self, volume: &Volume) -> Result<PathBuf, SourceError> {
        let root = match volume.kind {
            VolumeKind::Volume => self.volume_scan_root(volume),
            VolumeKind::Bind => self.bind_scan_root(volume),
        };
        root.map_err(|reason| SourceError::Unreachable { name: volume.name.clone(), reason })
    }

    fn users(&self) -> Result<Vec<VolumeUsers>, SourceError> {
        let containers = self.block_on(self.list_containers())?;
        let mut binds = BindResolver::new(&self.binds);
        let mut users: BTreeMap<VolumeName, (BTreeSet<String>, bool)> = BTreeMap::new();
        for container in &containers {
            let name = container_name(container);
            let active =
                container.state.as_deref().is_some_and(|state| ACTIVE_STATES.contains(&state));
            for mount in container.mounts.iter().flatten() {
                let volume = match mount.type_.as_deref() {
                    Some("volume") => {
                        mount.name.as_deref().and_then(|name| VolumeName::new(name).ok())
                    }
                    Some("bind") if self.bind_mounts_enabled => {
                        binds.resolve(mount).map(|bind| paths::bind_name(&bind.host))
                    }
                    _ => None,
                };
                if let Some(volume) = volume {
                    let entry = users.entry(volume).or_default();
                    entry.0.insert(name.clone());
                    entry.1 |= active;
                }
            }
        }
        Ok(users
            .into_iter()
            .map(|(volume, (containers, in_use))| VolumeUsers {
                volume,
                containers: containers.into_iter().collect(),
                in_use,
            })
            .collect())
    }

    fn watch(
        &self,
        stop: &CancelToken,
        on_event: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), SourceError> {
        if stop.is_canceled() {
            return Ok(());
        }
        self.block_on(self.follow_events(stop, on_event))
    }
}

impl Drop for DockerSource {
    fn drop(&mut self) {
        // A plain drop of a runtime blocks, which panics inside an async
        // context; the owner may well drop the source there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for DockerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerSource")
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .field("skip_pattern", &self.skip_pattern.as_ref().map(Regex::as_str))
            .field("bind_mounts_enabled", &self.bind_mounts_enabled)
            .field("binds", &self.binds)
            .finish_non_exhaustive()
    }
}

/// A failed request to Docker, naming what was asked and where.
#[derive(Debug, thiserror::Error)]
#[error("failed to {what} at {host}")]
pub(crate) struct CallError {
    pub(crate) what: &'static str,
    pub(crate) host: String,
    pub(crate) source: BoxError,
}

/// A container's name without Docker's leading `/`, or its short id.
fn container_name(container: &ContainerSummary) -> String {
    let name = container.names.iter().flatten().next().map(|name| name.trim_start_matches('/'));
    match name {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => container.id.as_deref().unwrap_or("unknown").chars().take(12).collect(),
    }
}
