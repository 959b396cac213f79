//! Queries on `volume_stats`: writing a completed run's measurement, and
//! reading the newest stats, a volume's history and the estimate for its next
//! scan.

use std::time::Duration;

use diesel::prelude::*;
use volscan_domain::{HostId, ScanId, ScanMethod, Timestamp, Usage, VolumeName, VolumeStat};

use crate::connection::{AnyConnection, on_backend};
use crate::retry::TxError;
use crate::rows::{NewVolumeStatRow, VolumeStatRow, to_db_time};
use crate::schema::volume_stats;

/// Writes the stat row of a run completed at `now`. Call in the transaction
/// that completes the run.
#[allow(clippy::too_many_arguments)] // one per column group of the row
pub(crate) fn insert(
    conn: &mut AnyConnection,
    host: &HostId,
    volume: &VolumeName,
    scan_id: ScanId,
    usage: &Usage,
    method: ScanMethod,
    duration: Duration,
    now: Timestamp,
) -> Result<(), TxError> {
    let row = NewVolumeStatRow::new(host, volume, scan_id, usage, method, duration, now);
    diesel::insert_into(volume_stats::table).values(&row).execute(conn)?;
    Ok(())
}

/// The newest stat of every known volume of `host` (or of every host) that
/// has one, by volume name, then host.
pub(crate) fn latest_per_volume(
    conn: &mut AnyConnection,
    host: Option<&str>,
) -> Result<Vec<VolumeStat>, TxError> {
    // One index seek on (host_id, volume_name, ts) per known volume; a GROUP
    // BY over the whole table would read every row on each call.
    const LATEST: &str = "SELECT s.* FROM volumes v JOIN volume_stats s ON s.id = \
        (SELECT s2.id FROM volume_stats s2 WHERE s2.host_id = v.host_id \
         AND s2.volume_name = v.name ORDER BY s2.ts DESC, s2.id DESC LIMIT 1) \
        WHERE $1 IS NULL OR v.host_id = $1 ORDER BY v.name, v.host_id";
    let host = host.map(str::to_owned);
    let rows: Vec<VolumeStatRow> = on_backend!(conn, |c| {
        diesel::sql_query(LATEST)
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(host.clone())
            .load(c)?
    });
    from_rows(rows)
}

/// The newest stat of one volume of `host` (or of any host).
pub(crate) fn latest(
    conn: &mut AnyConnection,
    host: Option<&str>,
    volume: &VolumeName,
) -> Result<Option<VolumeStat>, TxError> {
    let mut query = volume_stats::table
        .filter(volume_stats::volume_name.eq(volume.as_str().to_owned()))
        .select(VolumeStatRow::as_select())
        .into_boxed();
    if let Some(host) = host {
        query = query.filter(volume_stats::host_id.eq(host.to_owned()));
    }
    let row =
        query.order((volume_stats::ts.desc(), volume_stats::id.desc())).first(conn).optional()?;
    Ok(row.map(VolumeStat::try_from).transpose()?)
}

/// Stats of one volume with `since <= ts < until`: the newest `limit` of
/// them, returned oldest first.
pub(crate) fn history(
    conn: &mut AnyConnection,
    host: Option<&str>,
    volume: &VolumeName,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    limit: u32,
) -> Result<Vec<VolumeStat>, TxError> {
    let mut query = volume_stats::table
        .filter(volume_stats::volume_name.eq(volume.as_str().to_owned()))
        .select(VolumeStatRow::as_select())
        .into_boxed();
    if let Some(host) = host {
        query = query.filter(volume_stats::host_id.eq(host.to_owned()));
    }
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
    from_rows(rows)
}

/// The duration of the volume's newest completed scan, the estimate for the next one.
pub(crate) fn last_duration_ms(
    conn: &mut AnyConnection,
    host: &str,
    volume: &VolumeName,
) -> Result<Option<i64>, TxError> {
    Ok(volume_stats::table
        .filter(volume_stats::host_id.eq(host))
        .filter(volume_stats::volume_name.eq(volume.as_str()))
        .order((volume_stats::ts.desc(), volume_stats::id.desc()))
        .select(volume_stats::duration_ms)
        .first(conn)
        .optional()?)
}

/// Converts rows to stats; the first invalid one fails them all.
fn from_rows(rows: Vec<VolumeStatRow>) -> Result<Vec<VolumeStat>, TxError> {
    Ok(rows.into_iter().map(VolumeStat::try_from).collect::<Result<_, _>>()?)
}
