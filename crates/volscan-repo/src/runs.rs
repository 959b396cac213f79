//! Queries on `scan_runs`, the durable queue: enqueueing with deduplication,
//! the atomic claim, progress, outcomes (status changes `can_become` allows),
//! start-up recovery, and the filtered listings readers ask for. Every run
//! belongs to a host, and only that host's workers claim or recover it.

use diesel::dsl::count_star;
use diesel::prelude::*;
use time::PrimitiveDateTime;
use volscan_domain::{
    BatchId, Enqueued, IllegalTransition, NewScanRun, RepoError, RunFilter, RunOutcome, ScanId,
    ScanMethod, ScanRun, ScanStatus, StatusCounts, Timestamp, VolumeName,
};

use crate::connection::{AnyConnection, MultiBackend, on_backend};
use crate::retry::{TxError, is_unique_violation};
use crate::rows::{ScanRunRow, to_db_time};
use crate::schema::scan_runs;
use crate::stats;

/// The error message stored on runs that a dead process left `running`.
pub const INTERRUPTED: &str = "interrupted";

/// The statuses of a run that is still to be done: at most one per volume.
fn active_statuses() -> [&'static str; 2] {
    [ScanStatus::Queued.as_str(), ScanStatus::Running.as_str()]
}

/// The statuses a run never leaves.
pub(crate) fn final_statuses() -> [&'static str; 3] {
    [ScanStatus::Completed.as_str(), ScanStatus::Failed.as_str(), ScanStatus::Canceled.as_str()]
}

/// One run.
pub(crate) fn find(conn: &mut AnyConnection, scan_id: ScanId) -> Result<Option<ScanRun>, TxError> {
    let row = scan_runs::table
        .find(scan_id.to_string())
        .select(ScanRunRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(ScanRun::try_from).transpose()?)
}

/// The `queued` or `running` run of the volume on `host` (or on the first
/// host by id that has one).
pub(crate) fn active(
    conn: &mut AnyConnection,
    host: Option<&str>,
    volume: &VolumeName,
) -> Result<Option<ScanRun>, TxError> {
    let mut query = scan_runs::table
        .filter(scan_runs::volume_id.eq(volume.as_str().to_owned()))
        .filter(scan_runs::status.eq_any(active_statuses()))
        .select(ScanRunRow::as_select())
        .into_boxed();
    if let Some(host) = host {
        query = query.filter(scan_runs::host_id.eq(host.to_owned()));
    }
    let row = query.order(scan_runs::host_id.asc()).first(conn).optional()?;
    Ok(row.map(ScanRun::try_from).transpose()?)
}

/// Runs matching `filter`, newest first.
pub(crate) fn list(
    conn: &mut AnyConnection,
    host: Option<&str>,
    filter: &RunFilter,
) -> Result<Vec<ScanRun>, TxError> {
    let mut query = filtered(host, filter).select(ScanRunRow::as_select());
    if let Some(limit) = filter.limit {
        query = query.limit(i64::from(limit));
    }
    let rows = query.order((scan_runs::queued_at.desc(), scan_runs::scan_id.desc())).load(conn)?;
    from_rows(rows)
}

/// How many runs match `filter` (its `limit` ignored).
pub(crate) fn count(
    conn: &mut AnyConnection,
    host: Option<&str>,
    filter: &RunFilter,
) -> Result<u64, TxError> {
    let n: i64 = filtered(host, filter).select(count_star()).first(conn)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A batch's runs by status.
pub(crate) fn batch_counts(
    conn: &mut AnyConnection,
    batch: BatchId,
) -> Result<StatusCounts, TxError> {
    let rows: Vec<(String, i64)> = scan_runs::table
        .filter(scan_runs::batch_id.eq(batch.to_string()))
        .group_by(scan_runs::status)
        .select((scan_runs::status, count_star()))
        .load(conn)?;
    let mut counts = StatusCounts::default();
    for (status, n) in rows {
        let status: ScanStatus =
            status.parse().map_err(|_| RepoError::Corrupt(format!("scan status {status:?}")))?;
        counts.add(status, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// Inserts `run` as `queued`, or returns the volume's active run with
/// `deduplicated: true`. Call outside a transaction: after a refused insert it
/// reads again, which an aborted PostgreSQL transaction would refuse.
pub(crate) fn enqueue(conn: &mut AnyConnection, run: &NewScanRun) -> Result<Enqueued, TxError> {
    // The partial unique index on active runs makes the insert itself the
    // arbiter: when two callers race, one insert fails and that caller
    // returns the winner's run.
    loop {
        let host = run.host.as_str();
        if let Some(active) = active(conn, Some(host), &run.volume)? {
            return Ok(Enqueued { run: active, deduplicated: true });
        }
        let row = new_row(run, stats::last_duration_ms(conn, host, &run.volume)?);
        match diesel::insert_into(scan_runs::table).values(&row).execute(conn) {
            Ok(_) => {
                notify(conn, host)?;
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
}

/// On PostgreSQL, tells the listeners of `WORK_CHANNEL` (`host`'s workers
/// among them) that `host` has new work; SQLite serves one host, whose
/// scheduler already knows.
pub(crate) fn notify(conn: &mut AnyConnection, host: &str) -> Result<(), TxError> {
    if let AnyConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<diesel::sql_types::Text, _>(crate::fleet::WORK_CHANNEL)
            .bind::<diesel::sql_types::Text, _>(host)
            .execute(c)?;
    }
    Ok(())
}

/// Takes `host`'s oldest `queued` run due at `now`, marks it `running` and
/// counts the attempt, in one statement; two callers never get the same run.
pub(crate) fn claim_next(
    conn: &mut AnyConnection,
    host: &str,
    now: Timestamp,
) -> Result<Option<ScanRun>, TxError> {
    let now = to_db_time(now);
    // The subquery reads the same table, so it goes through an alias.
    let queue = diesel::alias!(scan_runs as queue);
    let not_before = queue.field(scan_runs::not_before);
    let due = queue
        .field(scan_runs::status)
        .eq(ScanStatus::Queued.as_str())
        .and(queue.field(scan_runs::host_id).eq(host))
        .and(not_before.is_null().or(not_before.le(now)));
    let oldest_due = queue
        .filter(due)
        .order((queue.field(scan_runs::queued_at).asc(), queue.field(scan_runs::scan_id).asc()))
        .select(queue.field(scan_runs::scan_id))
        .limit(1);
    let claim = (
        scan_runs::status.eq(ScanStatus::Running.as_str()),
        scan_runs::started_at.eq(Some(now)),
        scan_runs::attempt.eq(scan_runs::attempt + 1),
        scan_runs::progress.eq(0),
        scan_runs::not_before.eq(None::<PrimitiveDateTime>),
    );
    // One statement: SQLite runs it under its single write lock, so the
    // subquery needs no lock (and SQLite has no `FOR UPDATE`); PostgreSQL
    // locks the chosen row and lets concurrent claimers skip it.
    let row = on_backend!(conn, |c, next = {
        postgres: oldest_due.for_update().skip_locked(),
        sqlite: oldest_due,
    }| {
        diesel::update(scan_runs::table.filter(scan_runs::scan_id.eq_any(next)))
            .set(claim)
            .returning(ScanRunRow::as_returning())
            .get_result(c)
            .optional()?
    });
    Ok(row.map(ScanRun::try_from).transpose()?)
}

/// Stores progress (capped at 99) and, when given, the method of a `running`
/// run; any other run is left alone.
pub(crate) fn update_progress(
    conn: &mut AnyConnection,
    scan_id: ScanId,
    progress: u8,
    method: Option<ScanMethod>,
) -> Result<(), TxError> {
    // 100 means completed, which only `record_outcome` may say.
    let progress = i16::from(progress.min(99));
    let target = scan_runs::table
        .find(scan_id.to_string())
        .filter(scan_runs::status.eq(ScanStatus::Running.as_str()));
    match method {
        Some(method) => diesel::update(target)
            .set((scan_runs::progress.eq(progress), scan_runs::method.eq(method.as_str())))
            .execute(conn)?,
        None => diesel::update(target).set(scan_runs::progress.eq(progress)).execute(conn)?,
    };
    Ok(())
}

/// Applies how an attempt ended, refusing a change `ScanStatus::can_become`
/// forbids; `Completed` also writes the stat row. Call inside a transaction,
/// so a refusal or a failed insert leaves the run as it was.
pub(crate) fn record_outcome(
    conn: &mut AnyConnection,
    scan_id: ScanId,
    outcome: &RunOutcome,
    now: Timestamp,
) -> Result<ScanRun, TxError> {
    let to = outcome.status();
    let from: Vec<&str> =
        ScanStatus::ALL.iter().filter(|s| s.can_become(to)).map(|s| s.as_str()).collect();
    let at = Some(to_db_time(now));
    let no_time = None::<PrimitiveDateTime>;
    let target = scan_runs::table.find(scan_id.to_string()).filter(scan_runs::status.eq_any(&from));
    let changed = match outcome {
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
    let run = find(conn, scan_id)?.ok_or(RepoError::ScanNotFound(scan_id))?;
    if changed == 0 {
        let source = IllegalTransition { from: run.status, to };
        return Err(RepoError::Transition { scan_id, source }.into());
    }
    if let RunOutcome::Completed { usage, method, duration } = outcome {
        stats::insert(conn, &run.host, &run.volume, scan_id, usage, *method, *duration, now)?;
    }
    Ok(run)
}

/// Fails every `running` run of `host` with `INTERRUPTED` and queues a fresh
/// run for each one's volume; returns the new runs. Call inside a transaction.
pub(crate) fn recover_interrupted(
    conn: &mut AnyConnection,
    host: &str,
    now: Timestamp,
) -> Result<Vec<ScanRun>, TxError> {
    let at = to_db_time(now);
    let running =
        scan_runs::status.eq(ScanStatus::Running.as_str()).and(scan_runs::host_id.eq(host));
    let interrupted: Vec<ScanRunRow> = on_backend!(conn, |c| {
        diesel::update(scan_runs::table.filter(running))
            .set((
                scan_runs::status.eq(ScanStatus::Failed.as_str()),
                scan_runs::completed_at.eq(Some(at)),
                scan_runs::error_message.eq(INTERRUPTED),
            ))
            .returning(ScanRunRow::as_returning())
            .get_results(c)?
    });
    let mut fresh = Vec::with_capacity(interrupted.len());
    for old in from_rows(interrupted)? {
        let new = NewScanRun {
            scan_id: ScanId::new(),
            host: old.host.clone(),
            volume: old.volume.clone(),
            batch_id: old.batch_id,
            trigger: old.trigger,
            queued_at: now,
        };
        let row = new_row(&new, stats::last_duration_ms(conn, host, &new.volume)?);
        diesel::insert_into(scan_runs::table).values(&row).execute(conn)?;
        fresh.push(ScanRun::try_from(row)?);
    }
    Ok(fresh)
}

/// The row of a new `queued` run, with the estimate of its duration.
fn new_row(run: &NewScanRun, estimate_ms: Option<i64>) -> ScanRunRow {
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
        host_id: run.host.as_str().to_owned(),
    }
}

/// `scan_runs` narrowed to `host` (unless `None`) and by `filter`'s volume,
/// status and batch (not its limit).
fn filtered(
    host: Option<&str>,
    filter: &RunFilter,
) -> scan_runs::BoxedQuery<'static, MultiBackend> {
    let mut query = scan_runs::table.into_boxed();
    if let Some(host) = host {
        query = query.filter(scan_runs::host_id.eq(host.to_owned()));
    }
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

/// Converts rows to runs; the first invalid one fails them all.
fn from_rows(rows: Vec<ScanRunRow>) -> Result<Vec<ScanRun>, TxError> {
    Ok(rows.into_iter().map(ScanRun::try_from).collect::<Result<_, _>>()?)
}
