//! volscan's repository: the `Repository` port over diesel, for SQLite and
//! PostgreSQL through one code path.
//!
//! Queries are written once against `AnyConnection`, diesel's
//! `MultiConnection` over both backends. Only the few statements whose SQL
//! must differ (`FOR UPDATE SKIP LOCKED` when claiming, `RETURNING`) are
//! written per backend, in the `on_backend!` macro, which compiles one body
//! for each. diesel's types and errors never leave this crate: rows are
//! converted to domain types here and errors to `RepoError`.
//!
//! Every call blocks; the caller picks the thread. SQLite runs in WAL mode
//! with a busy timeout, and a call that still meets a locked database is
//! retried a few times before it fails.

mod connection;
mod rows;
mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use time::PrimitiveDateTime;
use volscan_domain::{
    BatchId, DiscoveredVolume, Enqueued, NewScanRun, RepoError, Repository, RunFilter, RunOutcome,
    ScanId, ScanMethod, ScanRun, ScanStatus, StatusCounts, Timestamp, Volume, VolumeName,
    VolumeStat,
};

pub use connection::{AnyConnection, Backend, UnsupportedUrl};
pub use rows::{now_rounded, round_time};

use connection::Manager;
use rows::{NewVolumeStatRow, ScanRunRow, VolumeRow, VolumeStatRow, labels_json, to_db_time};
use schema::{scan_runs, volume_stats, volumes};

/// The error message stored on runs that a dead process left `running`.
pub const INTERRUPTED: &str = "interrupted";

/// How often a call that meets a locked SQLite database is tried in all.
const BUSY_ATTEMPTS: u32 = 5;

/// How long a call waits for a pooled connection while the database answers.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long it waits once the last attempt found the database unreachable:
/// during an outage callers get their error quickly. The pool keeps trying to
/// connect in the background, so the first call after the database returns
/// finds a connection ready.
const POOL_TIMEOUT_WHILE_DOWN: Duration = Duration::from_millis(250);

/// Runs `$body` with `$c` bound to the concrete connection, compiled once per backend.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            AnyConnection::Postgresql($c) => $body,
            AnyConnection::Sqlite($c) => $body,
        }
    };
}

/// An error inside a transaction: diesel's, or a domain refusal that rolls it back.
enum TxError {
    Diesel(DieselError),
    Repo(RepoError),
}

impl From<DieselError> for TxError {
    fn from(err: DieselError) -> Self {
        TxError::Diesel(err)
    }
}

impl From<RepoError> for TxError {
    fn from(err: RepoError) -> Self {
        TxError::Repo(err)
    }
}

/// Whether SQLite reports its lock as held by another connection.
fn is_busy(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("database is busy")
        }
        _ => false,
    }
}

impl TxError {
    fn is_busy(&self) -> bool {
        matches!(self, TxError::Diesel(err) if is_busy(err))
    }

    fn into_repo(self) -> RepoError {
        match self {
            TxError::Repo(err) => err,
            // A closed connection, or a lock held past every retry: the
            // database is not usable now, which callers (and the API's 503)
            // treat as unavailable.
            TxError::Diesel(
                err @ DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _),
            ) => RepoError::Unavailable(err.into()),
            TxError::Diesel(err) if is_busy(&err) => RepoError::Unavailable(err.into()),
            TxError::Diesel(err) => RepoError::Query(err.into()),
        }
    }
}

/// The `Repository` over a pool of SQLite or PostgreSQL connections.
#[derive(Clone)]
pub struct DieselRepository {
    pool: r2d2::Pool<Manager>,
    backend_name: &'static str,
    /// Set when the last wait for a connection failed; shared by clones.
    down: Arc<AtomicBool>,
}

impl std::fmt::Debug for DieselRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselRepository").field("backend", &self.backend_name).finish()
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
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(POOL_TIMEOUT)
            .build(Manager { backend })
            .map_err(|source| ConnectError::Connect { backend: backend_name, source })?;
        Ok(Self { pool, backend_name, down: Arc::new(AtomicBool::new(false)) })
    }

    /// A pooled connection; waits `POOL_TIMEOUT` for one, or only
    /// `POOL_TIMEOUT_WHILE_DOWN` while the database is known to be unreachable.
    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>, RepoError> {
        let timeout =
            if self.down.load(Ordering::Relaxed) { POOL_TIMEOUT_WHILE_DOWN } else { POOL_TIMEOUT };
        match self.pool.get_timeout(timeout) {
            Ok(conn) => {
                self.down.store(false, Ordering::Relaxed);
                Ok(conn)
            }
            Err(err) => {
                self.down.store(true, Ordering::Relaxed);
                Err(RepoError::Unavailable(err.into()))
            }
        }
    }

    /// `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    /// Applies every embedded migration not yet applied and returns their
    /// versions; running it again applies nothing.
    pub fn migrate(&self) -> Result<Vec<String>, RepoError> {
        let mut conn = self.connection()?;
        connection::run_migrations(&mut conn).map_err(RepoError::Migration)
    }

    /// Runs `f` on a pooled connection, retrying when SQLite reports a lock
    /// that outlasted its busy timeout.
    fn with_conn<T>(
        &self,
        mut f: impl FnMut(&mut AnyConnection) -> Result<T, TxError>,
    ) -> Result<T, RepoError> {
        let mut conn = self.connection()?;
        let mut attempt = 1;
        loop {
            match f(&mut conn) {
                Ok(value) => return Ok(value),
                Err(err) if err.is_busy() && attempt < BUSY_ATTEMPTS => {
                    thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
                    attempt += 1;
                }
                Err(err) => return Err(err.into_repo()),
            }
        }
    }

    /// Like `with_conn`, inside one transaction.
    fn with_tx<T>(
        &self,
        mut f: impl FnMut(&mut AnyConnection) -> Result<T, TxError>,
    ) -> Result<T, RepoError> {
        self.with_conn(|conn| conn.transaction(|conn| f(conn)))
    }
}

fn active_statuses() -> [&'static str; 2] {
    [ScanStatus::Queued.as_str(), ScanStatus::Running.as_str()]
}

fn final_statuses() -> [&'static str; 3] {
    [ScanStatus::Completed.as_str(), ScanStatus::Failed.as_str(), ScanStatus::Canceled.as_str()]
}

fn load_run(conn: &mut AnyConnection, scan_id: &str) -> Result<Option<ScanRun>, TxError> {
    let row =
        scan_runs::table.find(scan_id).select(ScanRunRow::as_select()).first(conn).optional()?;
    Ok(row.map(ScanRun::try_from).transpose()?)
}

fn load_active_run(
    conn: &mut AnyConnection,
    volume: &VolumeName,
) -> Result<Option<ScanRun>, TxError> {
    let row = scan_runs::table
        .filter(scan_runs::volume_id.eq(volume.as_str()))
        .filter(scan_runs::status.eq_any(active_statuses()))
        .select(ScanRunRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(ScanRun::try_from).transpose()?)
}

/// The duration of the volume's newest completed scan, the estimate for the next one.
fn last_duration_ms(conn: &mut AnyConnection, volume: &VolumeName) -> Result<Option<i64>, TxError> {
    Ok(volume_stats::table
        .filter(volume_stats::volume_name.eq(volume.as_str()))
        .order((volume_stats::ts.desc(), volume_stats::id.desc()))
        .select(volume_stats::duration_ms)
        .first(conn)
        .optional()?)
}

fn new_run_row(run: &NewScanRun, estimate_ms: Option<i64>) -> ScanRunRow {
    ScanRunRow {
        scan_id: run.scan_id.to_string(),
        volume_id: run.volume.as_str().to_owned(),
        batch_id: run.batch_id.map(|b| b.to_string()),
        trigger: run.trigger.as_str().to_owned(),
        status: ScanStatus::Queued.as_str().to_owned(),
        progress: 0,
        method: None,
        attempt: 0,
        queued_at: to_db_time(run.queued_at),
        started_at: None,
        completed_at: None,
        error_message: None,
        estimated_duration: estimate_ms,
        not_before: None,
    }
}

/// `scan_runs` narrowed by `filter`'s volume, status and batch (not its limit).
fn filtered_runs(filter: &RunFilter) -> scan_runs::BoxedQuery<'static, connection::MultiBackend> {
    let mut query = scan_runs::table.into_boxed();
    if let Some(volume) = &filter.volume {
        query = query.filter(scan_runs::volume_id.eq(volume.as_str().to_owned()));
    }
    if let Some(status) = filter.status {
        query = query.filter(scan_runs::status.eq(status.as_str()));
    }
    if let Some(batch) = filter.batch {
        query = query.filter(scan_runs::batch_id.eq(batch.to_string()));
    }
    query
}

fn is_unique_violation(err: &TxError) -> bool {
    matches!(
        err,
        TxError::Diesel(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
    )
}

fn stats_from_rows(rows: Vec<VolumeStatRow>) -> Result<Vec<VolumeStat>, TxError> {
    Ok(rows.into_iter().map(VolumeStat::try_from).collect::<Result<_, _>>()?)
}

fn runs_from_rows(rows: Vec<ScanRunRow>) -> Result<Vec<ScanRun>, TxError> {
    Ok(rows.into_iter().map(ScanRun::try_from).collect::<Result<_, _>>()?)
}

impl Repository for DieselRepository {
    fn ping(&self) -> Result<(), RepoError> {
        self.with_conn(|conn| Ok(conn.batch_execute("SELECT 1")?))
    }

    fn upsert_volume(
        &self,
        volume: &DiscoveredVolume,
        now: Timestamp,
    ) -> Result<Volume, RepoError> {
        let now = to_db_time(now);
        let row = VolumeRow {
            name: volume.name.as_str().to_owned(),
            driver: volume.driver.clone(),
            mountpoint: volume.mountpoint.to_string_lossy().into_owned(),
            kind: volume.kind.as_str().to_owned(),
            labels: labels_json(&volume.labels),
            created_at: volume.created_at.map(to_db_time),
            first_seen_at: now,
            last_seen_at: now,
            removed_at: None,
        };
        self.with_tx(|conn| {
            // Update first, so the transaction starts with a write (SQLite then takes
            // the write lock up front instead of failing to upgrade a read).
            let updated = diesel::update(volumes::table.find(&row.name))
                .set((
                    volumes::driver.eq(&row.driver),
                    volumes::mountpoint.eq(&row.mountpoint),
                    volumes::kind.eq(&row.kind),
                    volumes::labels.eq(&row.labels),
                    volumes::created_at.eq(row.created_at),
                    volumes::last_seen_at.eq(now),
                    volumes::removed_at.eq(None::<PrimitiveDateTime>),
                ))
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(volumes::table).values(&row).execute(conn)?;
            }
            let stored =
                volumes::table.find(&row.name).select(VolumeRow::as_select()).first(conn)?;
            Ok(Volume::try_from(stored)?)
        })
    }

    fn mark_volume_removed(&self, name: &VolumeName, now: Timestamp) -> Result<bool, RepoError> {
        self.with_conn(|conn| {
            let n = diesel::update(
                volumes::table.find(name.as_str()).filter(volumes::removed_at.is_null()),
            )
            .set(volumes::removed_at.eq(Some(to_db_time(now))))
            .execute(conn)?;
            Ok(n > 0)
        })
    }

    fn volume(&self, name: &VolumeName) -> Result<Option<Volume>, RepoError> {
        self.with_conn(|conn| {
            let row = volumes::table
                .find(name.as_str())
                .select(VolumeRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(Volume::try_from).transpose()?)
        })
    }

    fn volumes(&self, include_removed: bool) -> Result<Vec<Volume>, RepoError> {
        self.with_conn(|conn| {
            let mut query = volumes::table.select(VolumeRow::as_select()).into_boxed();
            if !include_removed {
                query = query.filter(volumes::removed_at.is_null());
            }
            let rows = query.order(volumes::name.asc()).load(conn)?;
            Ok(rows.into_iter().map(Volume::try_from).collect::<Result<_, _>>()?)
        })
    }

    fn enqueue(&self, run: NewScanRun) -> Result<Enqueued, RepoError> {
        self.with_conn(|conn| {
            // The partial unique index on active runs makes the insert itself the
            // arbiter: when two callers race, one insert fails and that caller
            // returns the winner's run.
            loop {
                if let Some(active) = load_active_run(conn, &run.volume)? {
                    return Ok(Enqueued { run: active, deduplicated: true });
                }
                let row = new_run_row(&run, last_duration_ms(conn, &run.volume)?);
                match diesel::insert_into(scan_runs::table).values(&row).execute(conn) {
                    Ok(_) => {
                        return Ok(Enqueued { run: ScanRun::try_from(row)?, deduplicated: false });
                    }
                    Err(err) => {
                        let err = TxError::from(err);
                        if !is_unique_violation(&err) {
                            return Err(err);
                        }
                    }
                }
            }
        })
    }

    fn claim_next(&self, now: Timestamp) -> Result<Option<ScanRun>, RepoError> {
        let now = to_db_time(now);
        self.with_conn(|conn| {
            // The subquery reads the same table, so it goes through an alias.
            let queue = diesel::alias!(scan_runs as queue);
            let not_before = queue.field(scan_runs::not_before);
            let due = queue
                .field(scan_runs::status)
                .eq(ScanStatus::Queued.as_str())
                .and(not_before.is_null().or(not_before.le(now)));
            let next = queue
                .filter(due)
                .order((
                    queue.field(scan_runs::queued_at).asc(),
                    queue.field(scan_runs::scan_id).asc(),
                ))
                .select(queue.field(scan_runs::scan_id))
                .limit(1);
            let claim = (
                scan_runs::status.eq(ScanStatus::Running.as_str()),
                scan_runs::started_at.eq(Some(now)),
                scan_runs::attempt.eq(scan_runs::attempt + 1),
                scan_runs::progress.eq(0),
                scan_runs::not_before.eq(None::<PrimitiveDateTime>),
            );
            // One statement: SQLite runs it under its single write lock; PostgreSQL
            // locks the chosen row and lets concurrent claimers skip it.
            let row = match conn {
                AnyConnection::Postgresql(c) => diesel::update(
                    scan_runs::table
                        .filter(scan_runs::scan_id.eq_any(next.for_update().skip_locked())),
                )
                .set(claim)
                .returning(ScanRunRow::as_returning())
                .get_result(c)
                .optional()?,
                AnyConnection::Sqlite(c) => {
                    diesel::update(scan_runs::table.filter(scan_runs::scan_id.eq_any(next)))
                        .set(claim)
                        .returning(ScanRunRow::as_returning())
                        .get_result(c)
                        .optional()?
                }
            };
            Ok(row.map(ScanRun::try_from).transpose()?)
        })
    }

    fn update_progress(
        &self,
        scan_id: ScanId,
        progress: u8,
        method: Option<ScanMethod>,
    ) -> Result<(), RepoError> {
        let id = scan_id.to_string();
        // 100 means completed, which only `record_outcome` may say.
        let progress = i16::from(progress.min(99));
        self.with_conn(|conn| {
            let target = scan_runs::table
                .find(&id)
                .filter(scan_runs::status.eq(ScanStatus::Running.as_str()));
            match method {
                Some(method) => diesel::update(target)
                    .set((scan_runs::progress.eq(progress), scan_runs::method.eq(method.as_str())))
                    .execute(conn)?,
                None => {
                    diesel::update(target).set(scan_runs::progress.eq(progress)).execute(conn)?
                }
            };
            Ok(())
        })
    }

    fn record_outcome(
        &self,
        scan_id: ScanId,
        outcome: RunOutcome,
        now: Timestamp,
    ) -> Result<ScanRun, RepoError> {
        let id = scan_id.to_string();
        let to = outcome.status();
        let from: Vec<&str> =
            ScanStatus::ALL.iter().filter(|s| s.can_become(to)).map(|s| s.as_str()).collect();
        let at = Some(to_db_time(now));
        let no_time = None::<PrimitiveDateTime>;
        self.with_tx(|conn| {
            let target = scan_runs::table.find(&id).filter(scan_runs::status.eq_any(&from));
            let changed = match &outcome {
                // A failed earlier attempt's message does not survive on a
                // completed run; a partial scan says so instead.
                RunOutcome::Completed { method, usage, .. } => diesel::update(target)
                    .set((
                        scan_runs::status.eq(to.as_str()),
                        scan_runs::progress.eq(100),
                        scan_runs::method.eq(method.as_str()),
                        scan_runs::completed_at.eq(at),
                        scan_runs::not_before.eq(no_time),
                        scan_runs::error_message.eq(usage.partial_note()),
                    ))
                    .execute(conn)?,
                RunOutcome::Failed { reason } => diesel::update(target)
                    .set((
                        scan_runs::status.eq(to.as_str()),
                        scan_runs::completed_at.eq(at),
                        scan_runs::error_message.eq(reason),
                        scan_runs::not_before.eq(no_time),
                    ))
                    .execute(conn)?,
                RunOutcome::Canceled => diesel::update(target)
                    .set((
                        scan_runs::status.eq(to.as_str()),
                        scan_runs::completed_at.eq(at),
                        scan_runs::not_before.eq(no_time),
                    ))
                    .execute(conn)?,
                RunOutcome::Retry { not_before, reason } => diesel::update(target)
                    .set((
                        scan_runs::status.eq(to.as_str()),
                        scan_runs::progress.eq(0),
                        scan_runs::error_message.eq(reason),
                        scan_runs::not_before.eq(Some(to_db_time(*not_before))),
                    ))
                    .execute(conn)?,
                RunOutcome::Requeue => diesel::update(target)
                    .set((
                        scan_runs::status.eq(to.as_str()),
                        scan_runs::progress.eq(0),
                        scan_runs::attempt.eq(scan_runs::attempt - 1),
                        scan_runs::not_before.eq(no_time),
                    ))
                    .execute(conn)?,
            };
            let run = load_run(conn, &id)?.ok_or(RepoError::ScanNotFound(scan_id))?;
            if changed == 0 {
                let source = volscan_domain::IllegalTransition { from: run.status, to };
                return Err(RepoError::Transition { scan_id, source }.into());
            }
            if let RunOutcome::Completed { usage, method, duration } = &outcome {
                let row =
                    NewVolumeStatRow::new(&run.volume, scan_id, usage, *method, *duration, now);
                diesel::insert_into(volume_stats::table).values(&row).execute(conn)?;
            }
            Ok(run)
        })
    }

    fn run(&self, scan_id: ScanId) -> Result<Option<ScanRun>, RepoError> {
        let id = scan_id.to_string();
        self.with_conn(|conn| load_run(conn, &id))
    }

    fn active_run(&self, volume: &VolumeName) -> Result<Option<ScanRun>, RepoError> {
        self.with_conn(|conn| load_active_run(conn, volume))
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<ScanRun>, RepoError> {
        self.with_conn(|conn| {
            let mut query = filtered_runs(filter).select(ScanRunRow::as_select());
            if let Some(limit) = filter.limit {
                query = query.limit(i64::from(limit));
            }
            let rows =
                query.order((scan_runs::queued_at.desc(), scan_runs::scan_id.desc())).load(conn)?;
            runs_from_rows(rows)
        })
    }

    fn count_runs(&self, filter: &RunFilter) -> Result<u64, RepoError> {
        self.with_conn(|conn| {
            let n: i64 = filtered_runs(filter).select(count_star()).first(conn)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn batch_counts(&self, batch: BatchId) -> Result<StatusCounts, RepoError> {
        let batch = batch.to_string();
        self.with_conn(|conn| {
            let rows: Vec<(String, i64)> = scan_runs::table
                .filter(scan_runs::batch_id.eq(&batch))
                .group_by(scan_runs::status)
                .select((scan_runs::status, count_star()))
                .load(conn)?;
            let mut counts = StatusCounts::default();
            for (status, n) in rows {
                let status: ScanStatus = status
                    .parse()
                    .map_err(|_| RepoError::Corrupt(format!("scan status {status:?}")))?;
                counts.add(status, u64::try_from(n).unwrap_or(0));
            }
            Ok(counts)
        })
    }

    fn latest_stats(&self) -> Result<Vec<VolumeStat>, RepoError> {
        // One index seek on (volume_name, ts) per known volume; a GROUP BY over
        // the whole table would read every row on each call.
        const LATEST: &str = "SELECT s.* FROM volumes v JOIN volume_stats s ON s.id = \
            (SELECT s2.id FROM volume_stats s2 WHERE s2.volume_name = v.name \
             ORDER BY s2.ts DESC, s2.id DESC LIMIT 1) ORDER BY v.name";
        self.with_conn(|conn| {
            let rows: Vec<VolumeStatRow> =
                on_backend!(conn, |c| diesel::sql_query(LATEST).load(c)?);
            stats_from_rows(rows)
        })
    }

    fn latest_stat(&self, volume: &VolumeName) -> Result<Option<VolumeStat>, RepoError> {
        self.with_conn(|conn| {
            let row = volume_stats::table
                .filter(volume_stats::volume_name.eq(volume.as_str()))
                .order((volume_stats::ts.desc(), volume_stats::id.desc()))
                .select(VolumeStatRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(VolumeStat::try_from).transpose()?)
        })
    }

    fn history(
        &self,
        volume: &VolumeName,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<VolumeStat>, RepoError> {
        self.with_conn(|conn| {
            let mut query = volume_stats::table
                .filter(volume_stats::volume_name.eq(volume.as_str().to_owned()))
                .select(VolumeStatRow::as_select())
                .into_boxed();
            if let Some(since) = since {
                query = query.filter(volume_stats::ts.ge(to_db_time(since)));
            }
            if let Some(until) = until {
                query = query.filter(volume_stats::ts.lt(to_db_time(until)));
            }
            // The newest `limit` rows of the window, returned oldest first.
            let mut rows = query
                .order((volume_stats::ts.desc(), volume_stats::id.desc()))
                .limit(i64::from(limit))
                .load(conn)?;
            rows.reverse();
            stats_from_rows(rows)
        })
    }

    fn recover_interrupted(&self, now: Timestamp) -> Result<Vec<ScanRun>, RepoError> {
        let at = to_db_time(now);
        self.with_tx(|conn| {
            let interrupted: Vec<ScanRunRow> = on_backend!(conn, |c| {
                diesel::update(
                    scan_runs::table.filter(scan_runs::status.eq(ScanStatus::Running.as_str())),
                )
                .set((
                    scan_runs::status.eq(ScanStatus::Failed.as_str()),
                    scan_runs::completed_at.eq(Some(at)),
                    scan_runs::error_message.eq(INTERRUPTED),
                ))
                .returning(ScanRunRow::as_returning())
                .get_results(c)?
            });
            let mut fresh = Vec::with_capacity(interrupted.len());
            for old in runs_from_rows(interrupted)? {
                let new = NewScanRun {
                    scan_id: ScanId::new(),
                    volume: old.volume.clone(),
                    batch_id: old.batch_id,
                    trigger: old.trigger,
                    queued_at: now,
                };
                let row = new_run_row(&new, last_duration_ms(conn, &new.volume)?);
                diesel::insert_into(scan_runs::table).values(&row).execute(conn)?;
                fresh.push(ScanRun::try_from(row)?);
            }
            Ok(fresh)
        })
    }

    fn purge_stats_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError> {
        let cutoff = to_db_time(cutoff);
        self.delete_one_batch(batch, |conn, limit| {
            let doomed: Vec<i64> = volume_stats::table
                .filter(volume_stats::ts.lt(cutoff))
                .select(volume_stats::id)
                .limit(limit)
                .load(conn)?;
            diesel::delete(volume_stats::table.filter(volume_stats::id.eq_any(&doomed)))
                .execute(conn)?;
            Ok(doomed.len())
        })
    }

    fn purge_runs_before(&self, cutoff: Timestamp, batch: u32) -> Result<u64, RepoError> {
        let cutoff = to_db_time(cutoff);
        self.delete_one_batch(batch, |conn, limit| {
            let doomed: Vec<String> = scan_runs::table
                .filter(scan_runs::status.eq_any(final_statuses()))
                .filter(scan_runs::completed_at.lt(cutoff))
                .select(scan_runs::scan_id)
                .limit(limit)
                .load(conn)?;
            // The status condition is repeated on the delete itself; final states never
            // change, but the delete must never be able to touch an active run.
            diesel::delete(
                scan_runs::table
                    .filter(scan_runs::scan_id.eq_any(&doomed))
                    .filter(scan_runs::status.eq_any(final_statuses())),
            )
            .execute(conn)?;
            Ok(doomed.len())
        })
    }
}

impl DieselRepository {
    /// Runs `one_batch` (which deletes at most `limit` rows and returns how
    /// many it chose) once, in one short statement pair, so a large purge never
    /// holds a long lock and its caller can stop between batches.
    fn delete_one_batch(
        &self,
        batch: u32,
        mut one_batch: impl FnMut(&mut AnyConnection, i64) -> Result<usize, TxError>,
    ) -> Result<u64, RepoError> {
        let batch = batch.max(1);
        let chosen = self.with_conn(|conn| one_batch(conn, i64::from(batch)))?;
        Ok(chosen as u64)
    }
}

#[cfg(test)]
mod tests;
