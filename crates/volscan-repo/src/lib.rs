//! volscan's repository: the `ReadRepository` and `Repository` ports over
//! diesel, for SQLite and PostgreSQL through one code path.
//!
//! Queries are written once against `AnyConnection`, diesel's
//! `MultiConnection` over both backends. The few that must be compiled for a
//! concrete backend (`FOR UPDATE SKIP LOCKED` when claiming, which SQLite
//! lacks, and `RETURNING`) go through the `on_backend!` macro, which compiles
//! one body per backend. diesel's types and errors never leave this crate:
//! rows are converted to domain types here and errors to `RepoError`.
//!
//! Every call blocks; the caller picks the thread. SQLite runs in WAL mode
//! with a busy timeout, and a call that still meets a locked database is
//! retried a few times before it fails.
//!
//! Module map:
//! - this file: `DieselRepository` and the two port impls, each method one
//!   delegation, so they read as the map from port method to query;
//! - `connection`: `AnyConnection`, `Backend` (from the URL), opening and
//!   checking connections, the SQLite settings, migrations, `on_backend!`;
//! - `pool`: the r2d2 pool and the short wait while the database is down;
//! - `retry`: busy retries, transactions, diesel errors → `RepoError`;
//! - `volumes`, `runs`, `stats`, `details` (directories, filesystem samples,
//!   size points), `retention`: the queries, one module per table or
//!   concern, free functions over `&mut AnyConnection`;
//! - `hosts`: the hosts sharing the database, their heartbeats and the
//!   adoption of single-host rows; `fleet`: PostgreSQL's host lease
//!   (advisory lock) and work signal (`LISTEN`/`NOTIFY`);
//! - `rows`: the `*Row` structs and their conversions; `schema`: the tables.

mod connection;
mod details;
mod fleet;
mod hosts;
mod pool;
mod retention;
mod retry;
mod rows;
mod runs;
mod schema;
mod stats;
mod volumes;

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use volscan_domain::{
    BatchId, DirUsage, DiscoveredVolume, Enqueued, FilesystemSample, Host, HostId, HostInfo,
    HostScope, NewScanRun, ReadRepository, RepoError, Repository, RunFilter, RunOutcome,
    ScanDetails, ScanId, ScanMethod, ScanRun, SizePoint, StatusCounts, Timestamp, Volume,
    VolumeName, VolumeStat, VolumeUsers, WorkSignal,
};

pub use connection::{AnyConnection, Backend, UnsupportedUrl};
pub use fleet::{HostLease, LeaseError, PgWorkSignal};
pub use rows::{now_rounded, round_time};
pub use runs::INTERRUPTED;

use pool::Pool;
use retry::TxError;

/// The `Repository` over a pool of SQLite or PostgreSQL connections, for
/// one local host (`for_host`; `HostId::default()` until told), whose data
/// its reads cover unless `scoped` says otherwise.
#[derive(Clone)]
pub struct DieselRepository {
    pool: Pool,
    backend: Arc<Backend>,
    /// The host whose runs this process claims and whose data it writes.
    local: HostId,
    /// The host whose data reads cover; `None` for every host.
    scope: Option<HostId>,
}

impl std::fmt::Debug for DieselRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("DieselRepository")
            .field("backend", &self.backend.name())
            .field("local", &self.local)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why the repository could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names no supported backend.
    #[error(transparent)]
    Url(#[from] UnsupportedUrl),
    /// The first connection failed.
    #[error("failed to connect to the {backend} database")]
    Connect {
        /// `"postgres"` or `"sqlite"`.
        backend: &'static str,
        /// The pool's error, which carries the driver's message.
        source: r2d2::Error,
    },
}

impl DieselRepository {
    /// Opens a pool of at most `max_connections` to `url` (`sqlite://PATH` or
    /// `postgres://…`) and checks that one connection works. A SQLite file is
    /// created when missing. Does not migrate: call `migrate`.
    pub fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        let backend = Backend::from_url(url)?;
        let backend_name = backend.name();
        let pool = Pool::build(backend.clone(), max_connections)
            .map_err(|source| ConnectError::Connect { backend: backend_name, source })?;
        let local = HostId::default();
        Ok(Self { pool, backend: Arc::new(backend), scope: Some(local.clone()), local })
    }

    /// The same pool for the local host `host`: its runs are the ones claimed
    /// and recovered, its volumes the ones written, its data what reads cover.
    #[must_use]
    pub fn for_host(mut self, host: HostId) -> Self {
        self.scope = Some(host.clone());
        self.local = host;
        self
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// How many pooled connections calls have found lost since the pool
    /// opened; it moves when the database restarted, the moment to check
    /// the lease (`HostLease::keep`).
    pub fn connections_lost(&self) -> u64 {
        self.pool.lost()
    }

    /// Takes the local host's lease: on PostgreSQL an advisory lock held on a
    /// connection of its own for the lease's life, so a second live process
    /// with the same host id is refused (and a crashed one's lock is freed by
    /// the server at once). SQLite serves one host and has no lease: `None`.
    pub fn lease(&self) -> Result<Option<HostLease>, LeaseError> {
        match &*self.backend {
            Backend::Postgres(url) => fleet::lease(url, &self.local).map(Some),
            Backend::Sqlite(_) => Ok(None),
        }
    }

    /// The local host's work signal: on PostgreSQL, `LISTEN` on a connection
    /// of its own; SQLite serves one host, whose scheduler knows its own
    /// work: `None`.
    pub fn work_signal(&self) -> Option<Box<dyn WorkSignal>> {
        match &*self.backend {
            Backend::Postgres(url) => Some(Box::new(PgWorkSignal::new(url, self.local.clone()))),
            Backend::Sqlite(_) => None,
        }
    }

    /// The host reads cover, as a filter: `None` for every host.
    fn read_host(&self) -> Option<&str> {
        self.scope.as_ref().map(HostId::as_str)
    }

    /// The host a single-volume read names: the scope's, or the local one.
    fn one_host(&self) -> &str {
        self.read_host().unwrap_or(self.local.as_str())
    }

    /// Applies every embedded migration not yet applied and returns their
    /// versions; running it again applies nothing.
    pub fn migrate(&self) -> Result<Vec<String>, RepoError> {
        let mut conn = self.pool.get()?;
        connection::run_migrations(&mut conn).map_err(RepoError::Migration)
    }

    /// Runs `f` on a pooled connection, retried while SQLite is busy.
    fn with_conn<T>(
        &self,
        f: impl FnMut(&mut AnyConnection) -> Result<T, TxError>,
    ) -> Result<T, RepoError> {
        retry::with_conn(&self.pool, f)
    }

    /// Like `with_conn`, inside one transaction.
    fn with_tx<T>(
        &self,
        f: impl FnMut(&mut AnyConnection) -> Result<T, TxError>,
    ) -> Result<T, RepoError> {
        retry::with_tx(&self.pool, f)
    }
}

impl ReadRepository for DieselRepository {
    fn ping(&self) -> Result<(), RepoError> {
        self.with_conn(|conn| Ok(conn.batch_execute("SELECT 1")?))
    }

    fn local_host(&self) -> &HostId {
        &self.local
    }

    fn scoped(&self, scope: HostScope) -> Arc<dyn ReadRepository> {
        let mut view = self.clone();
        view.scope = scope.host().cloned();
        Arc::new(view)
    }

    fn hosts(&self) -> Result<Vec<Host>, RepoError> {
        self.with_conn(hosts::list)
    }

    fn volume(&self, name: &VolumeName) -> Result<Option<Volume>, RepoError> {
        self.with_conn(|conn| volumes::find(conn, self.read_host(), name))
    }

    fn volumes(&self, include_removed: bool) -> Result<Vec<Volume>, RepoError> {
        self.with_conn(|conn| volumes::list(conn, self.read_host(), include_removed))
    }

    fn run(&self, scan_id: ScanId) -> Result<Option<ScanRun>, RepoError> {
        self.with_conn(|conn| runs::find(conn, scan_id))
    }

    fn active_run(&self, volume: &VolumeName) -> Result<Option<ScanRun>, RepoError> {
        self.with_conn(|conn| runs::active(conn, self.read_host(), volume))
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<ScanRun>, RepoError> {
        self.with_conn(|conn| runs::list(conn, self.read_host(), filter))
    }

    fn count_runs(&self, filter: &RunFilter) -> Result<u64, RepoError> {
        self.with_conn(|conn| runs::count(conn, self.read_host(), filter))
    }

    fn batch_counts(&self, batch: BatchId) -> Result<StatusCounts, RepoError> {
        self.with_conn(|conn| runs::batch_counts(conn, batch))
    }

    fn latest_stats(&self) -> Result<Vec<VolumeStat>, RepoError> {
        self.with_conn(|conn| stats::latest_per_volume(conn, self.read_host()))
    }

    fn latest_stat(&self, volume: &VolumeName) -> Result<Option<VolumeStat>, RepoError> {
        self.with_conn(|conn| stats::latest(conn, self.read_host(), volume))
    }

    fn history(
        &self,
        volume: &VolumeName,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<VolumeStat>, RepoError> {
        self.with_conn(|conn| stats::history(conn, self.read_host(), volume, since, until, limit))
    }

    fn size_points(
        &self,
        volume: Option<&VolumeName>,
        window: std::time::Duration,
    ) -> Result<Vec<SizePoint>, RepoError> {
        self.with_conn(|conn| details::size_points(conn, self.read_host(), volume, window))
    }

    fn filesystem_samples(
        &self,
        filesystem: Option<&str>,
        since: Timestamp,
    ) -> Result<Vec<FilesystemSample>, RepoError> {
        self.with_conn(|conn| details::samples(conn, self.one_host(), filesystem, since))
    }

    fn dir_scans(&self, volume: &VolumeName) -> Result<Vec<(ScanId, Timestamp)>, RepoError> {
        self.with_conn(|conn| details::dir_scans(conn, self.one_host(), volume))
    }

    fn dirs(&self, scan_id: ScanId) -> Result<Vec<DirUsage>, RepoError> {
        self.with_conn(|conn| details::dirs(conn, scan_id))
    }
}

impl Repository for DieselRepository {
    fn upsert_volume(
        &self,
        volume: &DiscoveredVolume,
        now: Timestamp,
    ) -> Result<Volume, RepoError> {
        self.with_tx(|conn| volumes::upsert(conn, self.local.as_str(), volume, now))
    }

    fn mark_volume_removed(&self, name: &VolumeName, now: Timestamp) -> Result<bool, RepoError> {
        self.with_conn(|conn| volumes::mark_removed(conn, self.local.as_str(), name, now))
    }

    fn touch_host(
        &self,
        info: &HostInfo,
        local_now: Timestamp,
        starting: bool,
    ) -> Result<Host, RepoError> {
        if starting {
            self.with_tx(|conn| hosts::touch(conn, info, local_now, true))
        } else {
            self.with_conn(|conn| hosts::touch(conn, info, local_now, false))
        }
    }

    fn enqueue(&self, run: NewScanRun) -> Result<Enqueued, RepoError> {
        self.with_conn(|conn| runs::enqueue(conn, &run))
    }

    fn claim_next(&self, now: Timestamp) -> Result<Option<ScanRun>, RepoError> {
        self.with_conn(|conn| runs::claim_next(conn, self.local.as_str(), now))
    }

    fn update_progress(
        &self,
        scan_id: ScanId,
        progress: u8,
        method: Option<ScanMethod>,
    ) -> Result<(), RepoError> {
        self.with_conn(|conn| runs::update_progress(conn, scan_id, progress, method))
    }

    fn record_outcome(
        &self,
        scan_id: ScanId,
        outcome: RunOutcome,
        now: Timestamp,
    ) -> Result<ScanRun, RepoError> {
        self.with_tx(|conn| runs::record_outcome(conn, scan_id, &outcome, now))
    }

    fn recover_interrupted(&self, now: Timestamp) -> Result<Vec<ScanRun>, RepoError> {
        self.with_tx(|conn| runs::recover_interrupted(conn, self.local.as_str(), now))
    }

    fn purge_stats_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError> {
        self.with_conn(|conn| retention::purge_stats_before(conn, cutoff, batch))
    }

    fn purge_runs_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError> {
        self.with_conn(|conn| retention::purge_runs_before(conn, cutoff, batch))
    }

    fn record_details(
        &self,
        scan_id: ScanId,
        volume: &VolumeName,
        ts: Timestamp,
        details: &ScanDetails,
    ) -> Result<(), RepoError> {
        self.with_tx(|conn| {
            details::record(conn, self.local.as_str(), scan_id, volume, ts, details)
        })
    }

    fn record_filesystem(&self, sample: &FilesystemSample) -> Result<(), RepoError> {
        self.with_tx(|conn| details::record_sample(conn, self.local.as_str(), sample))
    }

    fn record_users(&self, users: &[VolumeUsers], now: Timestamp) -> Result<(), RepoError> {
        let used: Vec<&str> =
            users.iter().filter(|u| !u.containers.is_empty()).map(|u| u.volume.as_str()).collect();
        self.with_tx(|conn| volumes::record_users(conn, self.local.as_str(), &used, now))
    }

    fn purge_details_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError> {
        self.with_conn(|conn| details::purge_before(conn, cutoff, batch))
    }
}

#[cfg(test)]
mod tests;
