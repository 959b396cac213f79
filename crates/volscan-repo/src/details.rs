//! Queries on what a scan sees besides its totals: `volume_dirs` (the largest
//! directories of each scan) and `filesystem_samples` (the capacity of the
//! filesystem holding a volume), and the size points growth is computed from.
//! Each row carries its host: filesystem ids are only unique within one.

use diesel::prelude::*;
use time::PrimitiveDateTime;
use volscan_domain::{
    DirUsage, FilesystemSample, RepoError, ScanDetails, ScanId, SizePoint, Timestamp, VolumeName,
};

use crate::connection::{AnyConnection, on_backend};
use crate::retry::TxError;
use crate::rows::{from_db_time, parse, to_db_time, to_i64, to_u64};
use crate::schema::{filesystem_samples, volume_dirs};
use crate::volumes;

/// A filesystem sample closer than this to the filesystem's newest stored
/// one is not stored again.
pub(crate) const SAMPLE_SPACING: std::time::Duration = std::time::Duration::from_secs(5 * 60);

#[derive(Insertable)]
#[diesel(table_name = volume_dirs)]
struct NewDirRow {
    host_id: String,
    scan_id: String,
    volume_name: String,
    depth: i16,
    path: String,
    size_bytes: i64,
    file_count: Option<i64>,
    ts: PrimitiveDateTime,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = volume_dirs)]
struct DirRow {
    depth: i16,
    path: String,
    size_bytes: i64,
    file_count: Option<i64>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = filesystem_samples)]
struct SampleRow {
    host_id: String,
    filesystem_id: String,
    mount_point: String,
    fs_type: String,
    total_bytes: i64,
    avail_bytes: i64,
    ts: PrimitiveDateTime,
}

/// Stores a completed scan's directories and filesystem sample; see
/// `Repository::record_details`. Call inside a transaction.
pub(crate) fn record(
    conn: &mut AnyConnection,
    host: &str,
    scan_id: ScanId,
    volume: &VolumeName,
    ts: Timestamp,
    details: &ScanDetails,
) -> Result<(), TxError> {
    let at = to_db_time(ts);
    if let Some(sample) = &details.filesystem {
        volumes::set_filesystem(conn, host, volume, &sample.id)?;
        record_sample(conn, host, sample)?;
    }
    insert_dirs(conn, host, scan_id, volume, at, details)
}

/// Stores a filesystem sample unless one of the same filesystem was stored
/// within `SAMPLE_SPACING` before it: a filesystem holding many volumes is
/// sampled at each of their scans, and one sample per spacing is history
/// enough.
pub(crate) fn record_sample(
    conn: &mut AnyConnection,
    host: &str,
    sample: &FilesystemSample,
) -> Result<(), TxError> {
    let spacing = time::Duration::try_from(SAMPLE_SPACING).unwrap_or(time::Duration::ZERO);
    let recent: i64 = filesystem_samples::table
        .filter(filesystem_samples::host_id.eq(host))
        .filter(filesystem_samples::filesystem_id.eq(&sample.id))
        .filter(filesystem_samples::ts.gt(to_db_time(sample.ts - spacing)))
        .count()
        .get_result(conn)?;
    if recent > 0 {
        return Ok(());
    }
    let row = SampleRow {
        host_id: host.to_owned(),
        filesystem_id: sample.id.clone(),
        mount_point: sample.mount_point.clone(),
        fs_type: sample.fs_type.clone(),
        total_bytes: to_i64(sample.total_bytes),
        avail_bytes: to_i64(sample.avail_bytes),
        ts: to_db_time(sample.ts),
    };
    diesel::insert_into(filesystem_samples::table).values(&row).execute(conn)?;
    Ok(())
}

/// Inserts a scan's directories.
fn insert_dirs(
    conn: &mut AnyConnection,
    host: &str,
    scan_id: ScanId,
    volume: &VolumeName,
    at: PrimitiveDateTime,
    details: &ScanDetails,
) -> Result<(), TxError> {
    let rows: Vec<NewDirRow> = details
        .dirs
        .iter()
        .flatten()
        .map(|dir| NewDirRow {
            host_id: host.to_owned(),
            scan_id: scan_id.to_string(),
            volume_name: volume.as_str().to_owned(),
            depth: i16::from(dir.depth),
            path: dir.path.clone(),
            size_bytes: to_i64(dir.size_bytes),
            file_count: dir.file_count.map(to_i64),
            ts: at,
        })
        .collect();
    // Bounded chunks keep every statement under SQLite's parameter limit.
    for chunk in rows.chunks(500) {
        // A multi-row insert needs the concrete backend (SQLite has no DEFAULT keyword).
        on_backend!(conn, |c| diesel::insert_into(volume_dirs::table).values(chunk).execute(c)?);
    }
    Ok(())
}

/// The scans of `volume` that recorded directories, newest first.
pub(crate) fn dir_scans(
    conn: &mut AnyConnection,
    host: &str,
    volume: &VolumeName,
) -> Result<Vec<(ScanId, Timestamp)>, TxError> {
    let rows: Vec<(String, PrimitiveDateTime)> = volume_dirs::table
        .filter(volume_dirs::host_id.eq(host))
        .filter(volume_dirs::volume_name.eq(volume.as_str()))
        .select((volume_dirs::scan_id, volume_dirs::ts))
        .distinct()
        .order((volume_dirs::ts.desc(), volume_dirs::scan_id.desc()))
        .load(conn)?;
    rows.into_iter()
        .map(|(scan_id, ts)| {
            let scan_id =
                scan_id.parse().map_err(|_| RepoError::Corrupt(format!("scan id {scan_id:?}")))?;
            Ok((scan_id, from_db_time(ts)))
        })
        .collect()
}

/// The directories one scan recorded, by depth, then size (largest first).
pub(crate) fn dirs(conn: &mut AnyConnection, scan_id: ScanId) -> Result<Vec<DirUsage>, TxError> {
    let rows: Vec<DirRow> = volume_dirs::table
        .filter(volume_dirs::scan_id.eq(scan_id.to_string()))
        .order((volume_dirs::depth.asc(), volume_dirs::size_bytes.desc(), volume_dirs::path.asc()))
        .select(DirRow::as_select())
        .load(conn)?;
    rows.into_iter()
        .map(|row| {
            let depth = u8::try_from(row.depth)
                .map_err(|_| RepoError::Corrupt(format!("directory depth {}", row.depth)))?;
            Ok(DirUsage {
                path: row.path,
                depth,
                size_bytes: to_u64("size_bytes", row.size_bytes)?,
                file_count: row.file_count.map(|n| to_u64("file_count", n)).transpose()?,
            })
        })
        .collect()
}

/// Filesystem samples with `ts >= since`, of one filesystem or all, by
/// filesystem, then time.
pub(crate) fn samples(
    conn: &mut AnyConnection,
    host: &str,
    filesystem: Option<&str>,
    since: Timestamp,
) -> Result<Vec<FilesystemSample>, TxError> {
    let mut query = filesystem_samples::table
        .filter(filesystem_samples::host_id.eq(host.to_owned()))
        .filter(filesystem_samples::ts.ge(to_db_time(since)))
        .select(SampleRow::as_select())
        .into_boxed();
    if let Some(id) = filesystem {
        query = query.filter(filesystem_samples::filesystem_id.eq(id.to_owned()));
    }
    let rows = query
        .order((filesystem_samples::filesystem_id.asc(), filesystem_samples::ts.asc()))
        .load(conn)?;
    rows.into_iter()
        .map(|row| {
            Ok(FilesystemSample {
                id: row.filesystem_id,
                mount_point: row.mount_point,
                fs_type: row.fs_type,
                total_bytes: to_u64("total_bytes", row.total_bytes)?,
                avail_bytes: to_u64("avail_bytes", row.avail_bytes)?,
                ts: from_db_time(row.ts),
            })
        })
        .collect()
}

/// One row of the size-points queries.
#[derive(QueryableByName)]
struct PointRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    host_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    volume_name: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    ts: PrimitiveDateTime,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    size_bytes: i64,
}

/// Sizes for growth; see `ReadRepository::size_points`.
pub(crate) fn size_points(
    conn: &mut AnyConnection,
    host: Option<&str>,
    volume: Option<&VolumeName>,
    window: std::time::Duration,
) -> Result<Vec<SizePoint>, TxError> {
    use diesel::sql_types::{Nullable, Text};
    // Per volume: its newest time (one index seek), the stats from there back
    // to the window's start (a range on (volume_name, ts)), and the newest
    // stat before the start (one seek). Only the date arithmetic differs.
    let seconds = window.as_secs();
    let start = |newest: &str, sqlite: bool| {
        if sqlite {
            // Whole seconds, as diesel writes a whole-second time: text with
            // a `.000` would sort after the same second written without one.
            format!("datetime({newest}, '-{seconds} seconds')")
        } else {
            format!("({newest} - interval '{seconds} seconds')")
        }
    };
    let query = |sqlite: bool| {
        let from = start("l.ts", sqlite);
        format!(
            "WITH l AS (SELECT v.host_id, v.name, (SELECT MAX(s0.ts) FROM volume_stats s0 \
               WHERE s0.host_id = v.host_id AND s0.volume_name = v.name) AS ts \
               FROM volumes v WHERE ($1 IS NULL OR v.name = $1) \
               AND ($2 IS NULL OR v.host_id = $2)) \
             SELECT s.host_id, s.volume_name, s.ts, s.size_bytes FROM l JOIN volume_stats s \
               ON s.host_id = l.host_id AND s.volume_name = l.name AND s.ts >= {from} \
             UNION ALL \
             SELECT s.host_id, s.volume_name, s.ts, s.size_bytes FROM l \
               JOIN volume_stats s ON s.id = \
               (SELECT s1.id FROM volume_stats s1 WHERE s1.host_id = l.host_id \
                AND s1.volume_name = l.name \
                AND s1.ts < {from} ORDER BY s1.ts DESC, s1.id DESC LIMIT 1) \
             ORDER BY 2, 1, 3"
        )
    };
    let name = volume.map(|v| v.as_str().to_owned());
    let host = host.map(str::to_owned);
    let rows: Vec<PointRow> = match conn {
        AnyConnection::Postgresql(c) => diesel::sql_query(query(false))
            .bind::<Nullable<Text>, _>(name)
            .bind::<Nullable<Text>, _>(host)
            .load(c)?,
        AnyConnection::Sqlite(c) => diesel::sql_query(query(true))
            .bind::<Nullable<Text>, _>(name)
            .bind::<Nullable<Text>, _>(host)
            .load(c)?,
    };
    rows.into_iter()
        .map(|row| {
            Ok(SizePoint {
                host: parse("host id", &row.host_id)?,
                volume: parse("volume name", &row.volume_name)?,
                ts: from_db_time(row.ts),
                size_bytes: to_u64("size_bytes", row.size_bytes)?,
            })
        })
        .collect()
}

/// Deletes at most `batch` rows of `volume_dirs`, then of
/// `filesystem_samples`, with `ts < cutoff`; returns how many.
pub(crate) fn purge_before(
    conn: &mut AnyConnection,
    cutoff: Timestamp,
    batch: u32,
) -> Result<u64, TxError> {
    let cutoff = to_db_time(cutoff);
    let limit = i64::from(batch.max(1));
    let dirs: Vec<i64> = volume_dirs::table
        .filter(volume_dirs::ts.lt(cutoff))
        .select(volume_dirs::id)
        .limit(limit)
        .load(conn)?;
    diesel::delete(volume_dirs::table.filter(volume_dirs::id.eq_any(&dirs))).execute(conn)?;
    let room = limit - dirs.len() as i64;
    if room == 0 {
        return Ok(dirs.len() as u64);
    }
    let samples: Vec<i64> = filesystem_samples::table
        .filter(filesystem_samples::ts.lt(cutoff))
        .select(filesystem_samples::id)
        .limit(room)
        .load(conn)?;
    diesel::delete(filesystem_samples::table.filter(filesystem_samples::id.eq_any(&samples)))
        .execute(conn)?;
    Ok((dirs.len() + samples.len()) as u64)
}
