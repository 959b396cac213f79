//! Retention: deleting old `volume_stats` rows and finished `scan_runs` in
//! bounded batches.
//!
//! Each call deletes at most one batch, in one short select-then-delete pair,
//! so a large purge never holds a long lock and its caller (the scheduler's
//! retention task) can stop between batches.

use diesel::prelude::*;
use volscan_domain::Timestamp;

use crate::connection::AnyConnection;
use crate::retry::TxError;
use crate::rows::to_db_time;
use crate::runs::final_statuses;
use crate::schema::{scan_runs, volume_stats};

/// Deletes at most `batch` `volume_stats` rows with `ts < cutoff`; returns
/// how many.
pub(crate) fn purge_stats_before(
    conn: &mut AnyConnection,
    cutoff: Timestamp,
    batch: u32,
) -> Result<u64, TxError> {
    let doomed: Vec<i64> = volume_stats::table
        .filter(volume_stats::ts.lt(to_db_time(cutoff)))
        .select(volume_stats::id)
        .limit(limit(batch))
        .load(conn)?;
    diesel::delete(volume_stats::table.filter(volume_stats::id.eq_any(&doomed))).execute(conn)?;
    Ok(doomed.len() as u64)
}

/// Deletes at most `batch` finished runs completed before `cutoff`; returns
/// how many.
pub(crate) fn purge_runs_before(
    conn: &mut AnyConnection,
    cutoff: Timestamp,
    batch: u32,
) -> Result<u64, TxError> {
    let doomed: Vec<String> = scan_runs::table
        .filter(scan_runs::status.eq_any(final_statuses()))
        .filter(scan_runs::completed_at.lt(to_db_time(cutoff)))
        .select(scan_runs::scan_id)
        .limit(limit(batch))
        .load(conn)?;
    // The status condition is repeated on the delete itself; final states never
    // change, but the delete must never be able to touch an active run.
    diesel::delete(
        scan_runs::table
            .filter(scan_runs::scan_id.eq_any(&doomed))
            .filter(scan_runs::status.eq_any(final_statuses())),
    )
    .execute(conn)?;
    Ok(doomed.len() as u64)
}

/// The rows one batch may delete: `batch`, but at least one.
fn limit(batch: u32) -> i64 {
    i64::from(batch.max(1))
}
