//! Queries on `volumes`: every volume volscan has seen, refreshed when seen
//! again and marked (never deleted) when removed, so its history survives.
//! A volume is `(host_id, name)`; writes are the local host's, reads take
//! a host or `None` for every host.

use diesel::prelude::*;
use time::PrimitiveDateTime;
use volscan_domain::{DiscoveredVolume, Timestamp, Volume, VolumeName};

use crate::connection::AnyConnection;
use crate::retry::TxError;
use crate::rows::{VolumeRow, labels_json, to_db_time};
use crate::schema::volumes;

/// Inserts `volume` or refreshes its stored row as seen at `now` (clearing
/// `removed_at`; `first_seen_at` is kept). Call inside a transaction.
pub(crate) fn upsert(
    conn: &mut AnyConnection,
    host: &str,
    volume: &DiscoveredVolume,
    now: Timestamp,
) -> Result<Volume, TxError> {
    let now = to_db_time(now);
    let row = VolumeRow {
        host_id: host.to_owned(),
        name: volume.name.as_str().to_owned(),
        driver: volume.driver.clone(),
        mountpoint: volume.mountpoint.to_string_lossy().into_owned(),
        kind: volume.kind.as_str().to_owned(),
        labels: labels_json(&volume.labels),
        created_at: volume.created_at.map(to_db_time),
        first_seen_at: now,
        last_seen_at: now,
        removed_at: None,
        in_use: None,
        last_used_at: None,
        unused_since: None,
        filesystem_id: None,
    };
    // Update first, so the transaction starts with a write (SQLite then takes
    // the write lock up front instead of failing to upgrade a read).
    let updated = diesel::update(volumes::table.find((&row.host_id, &row.name)))
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
    let stored = volumes::table
        .find((&row.host_id, &row.name))
        .select(VolumeRow::as_select())
        .first(conn)?;
    Ok(Volume::try_from(stored)?)
}

/// Sets `removed_at`; `false` when the volume is unknown or already removed.
pub(crate) fn mark_removed(
    conn: &mut AnyConnection,
    host: &str,
    name: &VolumeName,
    now: Timestamp,
) -> Result<bool, TxError> {
    let target = volumes::table.find((host, name.as_str())).filter(volumes::removed_at.is_null());
    let n =
        diesel::update(target).set(volumes::removed_at.eq(Some(to_db_time(now)))).execute(conn)?;
    Ok(n > 0)
}

/// One volume of `host` (or of the first host by id that has one), removed or not.
pub(crate) fn find(
    conn: &mut AnyConnection,
    host: Option<&str>,
    name: &VolumeName,
) -> Result<Option<Volume>, TxError> {
    let mut query = volumes::table
        .filter(volumes::name.eq(name.as_str().to_owned()))
        .select(VolumeRow::as_select())
        .into_boxed();
    if let Some(host) = host {
        query = query.filter(volumes::host_id.eq(host.to_owned()));
    }
    let row = query.order(volumes::host_id.asc()).first(conn).optional()?;
    Ok(row.map(Volume::try_from).transpose()?)
}

/// Every volume of `host` (or of every host) by name, then host; removed
/// ones only when `include_removed`.
pub(crate) fn list(
    conn: &mut AnyConnection,
    host: Option<&str>,
    include_removed: bool,
) -> Result<Vec<Volume>, TxError> {
    let mut query = volumes::table.select(VolumeRow::as_select()).into_boxed();
    if let Some(host) = host {
        query = query.filter(volumes::host_id.eq(host.to_owned()));
    }
    if !include_removed {
        query = query.filter(volumes::removed_at.is_null());
    }
    let rows = query.order((volumes::name.asc(), volumes::host_id.asc())).load(conn)?;
    Ok(rows.into_iter().map(Volume::try_from).collect::<Result<_, _>>()?)
}

/// Records which present volumes containers reference at `now`; see
/// `Repository::record_users`. Call inside a transaction.
pub(crate) fn record_users(
    conn: &mut AnyConnection,
    host: &str,
    used: &[&str],
    now: Timestamp,
) -> Result<(), TxError> {
    let now = to_db_time(now);
    let present = volumes::removed_at.is_null().and(volumes::host_id.eq(host));
    diesel::update(volumes::table.filter(present).filter(volumes::name.eq_any(used)))
        .set((
            volumes::in_use.eq(Some(true)),
            volumes::last_used_at.eq(Some(now)),
            volumes::unused_since.eq(None::<PrimitiveDateTime>),
        ))
        .execute(conn)?;
    let unused = || volumes::table.filter(present).filter(volumes::name.ne_all(used));
    diesel::update(unused().filter(volumes::unused_since.is_null()))
        .set(volumes::unused_since.eq(Some(now)))
        .execute(conn)?;
    diesel::update(unused()).set(volumes::in_use.eq(Some(false))).execute(conn)?;
    Ok(())
}

/// Remembers the filesystem that held `volume` at its last scan.
pub(crate) fn set_filesystem(
    conn: &mut AnyConnection,
    host: &str,
    volume: &VolumeName,
    filesystem_id: &str,
) -> Result<(), TxError> {
    diesel::update(volumes::table.find((host, volume.as_str())))
        .set(volumes::filesystem_id.eq(Some(filesystem_id)))
        .execute(conn)?;
    Ok(())
}
