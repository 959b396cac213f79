//! The `*Row` structs diesel reads and writes, and their conversion to and
//! from domain types. Nothing here leaves the crate.
//!
//! Conversions from rows are fallible: a value the domain would reject
//! (a bad name, a negative size, an unknown status) becomes
//! `RepoError::Corrupt` instead of a panic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use diesel::prelude::*;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use volscan_domain::{
    HostId, RepoError, ScanId, ScanRun, Timestamp, Usage, Volume, VolumeName, VolumeStat,
};

use crate::schema::{scan_runs, volume_stats, volumes};

/// Converts a domain time to the stored form: UTC without offset, whole microseconds
/// (PostgreSQL's precision), so a value reads back equal on both backends.
pub(crate) fn to_db_time(at: Timestamp) -> PrimitiveDateTime {
    let utc = at.to_offset(UtcOffset::UTC);
    let micros = utc.microsecond();
    // A microsecond count below one million always makes a valid time.
    let utc = utc.replace_microsecond(micros).unwrap_or(utc);
    PrimitiveDateTime::new(utc.date(), utc.time())
}

/// Converts a stored time back to the domain's UTC `OffsetDateTime`.
pub(crate) fn from_db_time(at: PrimitiveDateTime) -> Timestamp {
    at.assume_utc()
}

/// Rounds a domain time the way the database will store it.
pub fn round_time(at: Timestamp) -> Timestamp {
    from_db_time(to_db_time(at))
}

fn corrupt(what: &str, value: impl std::fmt::Display) -> RepoError {
    RepoError::Corrupt(format!("{what} {value}"))
}

pub(crate) fn parse<T: FromStr>(what: &str, value: &str) -> Result<T, RepoError> {
    value.parse().map_err(|_| corrupt(what, format!("{value:?}")))
}

pub(crate) fn to_u64(what: &str, value: i64) -> Result<u64, RepoError> {
    u64::try_from(value).map_err(|_| corrupt(what, value))
}

/// Stores a `u64` as `BIGINT`; sizes beyond 2^63 bytes (8 EiB) are clamped.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = volumes)]
pub(crate) struct VolumeRow {
    pub host_id: String,
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub kind: String,
    pub labels: String,
    pub created_at: Option<PrimitiveDateTime>,
    pub first_seen_at: PrimitiveDateTime,
    pub last_seen_at: PrimitiveDateTime,
    pub removed_at: Option<PrimitiveDateTime>,
    pub in_use: Option<bool>,
    pub last_used_at: Option<PrimitiveDateTime>,
    pub unused_since: Option<PrimitiveDateTime>,
    pub filesystem_id: Option<String>,
}

impl TryFrom<VolumeRow> for Volume {
    type Error = RepoError;

    fn try_from(row: VolumeRow) -> Result<Self, RepoError> {
        let labels: BTreeMap<String, String> = serde_json::from_str(&row.labels)
            .map_err(|_| corrupt("volume labels", format!("{:?}", row.labels)))?;
        Ok(Volume {
            host: parse("host id", &row.host_id)?,
            name: parse("volume name", &row.name)?,
            driver: row.driver,
            mountpoint: PathBuf::from(row.mountpoint),
            kind: parse("volume kind", &row.kind)?,
            labels,
            created_at: row.created_at.map(from_db_time),
            first_seen_at: from_db_time(row.first_seen_at),
            last_seen_at: from_db_time(row.last_seen_at),
            removed_at: row.removed_at.map(from_db_time),
            in_use: row.in_use,
            last_used_at: row.last_used_at.map(from_db_time),
            unused_since: row.unused_since.map(from_db_time),
            filesystem_id: row.filesystem_id,
        })
    }
}

/// Labels as stored: a JSON object of strings.
pub(crate) fn labels_json(labels: &BTreeMap<String, String>) -> String {
    // Serialising a map of strings cannot fail.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = scan_runs)]
pub(crate) struct ScanRunRow {
    pub scan_id: String,
    pub volume_id: String,
    pub batch_id: Option<String>,
    pub trigger: String,
    pub status: String,
    pub progress: i16,
    pub method: Option<String>,
    pub attempt: i32,
    pub queued_at: PrimitiveDateTime,
    pub started_at: Option<PrimitiveDateTime>,
    pub completed_at: Option<PrimitiveDateTime>,
    pub error_message: Option<String>,
    pub estimated_duration: Option<i64>,
    pub not_before: Option<PrimitiveDateTime>,
    pub host_id: String,
}

impl TryFrom<ScanRunRow> for ScanRun {
    type Error = RepoError;

    fn try_from(row: ScanRunRow) -> Result<Self, RepoError> {
        let progress = u8::try_from(row.progress)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| corrupt("run progress", row.progress))?;
        Ok(ScanRun {
            scan_id: parse("scan id", &row.scan_id)?,
            host: parse("host id", &row.host_id)?,
            volume: parse("volume name", &row.volume_id)?,
            batch_id: row.batch_id.as_deref().map(|b| parse("batch id", b)).transpose()?,
            trigger: parse("trigger", &row.trigger)?,
            status: parse("scan status", &row.status)?,
            progress,
            method: row.method.as_deref().map(|m| parse("scan method", m)).transpose()?,
            attempt: u32::try_from(row.attempt).map_err(|_| corrupt("attempt", row.attempt))?,
            queued_at: from_db_time(row.queued_at),
            started_at: row.started_at.map(from_db_time),
            completed_at: row.completed_at.map(from_db_time),
            error_message: row.error_message,
            estimated_duration: row
                .estimated_duration
                .map(|ms| to_u64("estimated duration", ms).map(Duration::from_millis))
                .transpose()?,
            not_before: row.not_before.map(from_db_time),
        })
    }
}

impl From<&ScanRun> for ScanRunRow {
    fn from(run: &ScanRun) -> Self {
        ScanRunRow {
            scan_id: run.scan_id.to_string(),
            volume_id: run.volume.as_str().to_owned(),
            batch_id: run.batch_id.map(|b| b.to_string()),
            trigger: run.trigger.as_str().to_owned(),
            status: run.status.as_str().to_owned(),
            progress: i16::from(run.progress),
            method: run.method.map(|m| m.as_str().to_owned()),
            attempt: i32::try_from(run.attempt).unwrap_or(i32::MAX),
            queued_at: to_db_time(run.queued_at),
            started_at: run.started_at.map(to_db_time),
            completed_at: run.completed_at.map(to_db_time),
            error_message: run.error_message.clone(),
            estimated_duration: run.estimated_duration.map(duration_ms),
            not_before: run.not_before.map(to_db_time),
            host_id: run.host.as_str().to_owned(),
        }
    }
}

#[derive(Queryable, Selectable, QueryableByName)]
#[diesel(table_name = volume_stats)]
pub(crate) struct VolumeStatRow {
    pub id: i64,
    pub volume_name: String,
    pub size_bytes: i64,
    pub apparent_bytes: Option<i64>,
    pub file_count: Option<i64>,
    pub dir_count: Option<i64>,
    pub error_count: i64,
    pub scan_method: String,
    pub duration_ms: i64,
    pub scan_id: String,
    pub ts: PrimitiveDateTime,
    pub created_at: PrimitiveDateTime,
    pub updated_at: PrimitiveDateTime,
    pub host_id: String,
}

#[derive(Insertable)]
#[diesel(table_name = volume_stats)]
pub(crate) struct NewVolumeStatRow {
    pub volume_name: String,
    pub size_bytes: i64,
    pub apparent_bytes: Option<i64>,
    pub file_count: Option<i64>,
    pub dir_count: Option<i64>,
    pub error_count: i64,
    pub scan_method: String,
    pub duration_ms: i64,
    pub scan_id: String,
    pub ts: PrimitiveDateTime,
    pub created_at: PrimitiveDateTime,
    pub updated_at: PrimitiveDateTime,
    pub host_id: String,
}

impl NewVolumeStatRow {
    pub(crate) fn new(
        host: &HostId,
        volume: &VolumeName,
        scan_id: ScanId,
        usage: &Usage,
        method: volscan_domain::ScanMethod,
        duration: Duration,
        now: Timestamp,
    ) -> Self {
        let now = to_db_time(now);
        NewVolumeStatRow {
            volume_name: volume.as_str().to_owned(),
            size_bytes: to_i64(usage.size_bytes),
            apparent_bytes: usage.apparent_bytes.map(to_i64),
            file_count: usage.file_count.map(to_i64),
            dir_count: usage.dir_count.map(to_i64),
            error_count: to_i64(usage.error_count),
            scan_method: method.as_str().to_owned(),
            duration_ms: duration_ms(duration),
            scan_id: scan_id.to_string(),
            ts: now,
            created_at: now,
            updated_at: now,
            host_id: host.as_str().to_owned(),
        }
    }
}

impl TryFrom<VolumeStatRow> for VolumeStat {
    type Error = RepoError;

    fn try_from(row: VolumeStatRow) -> Result<Self, RepoError> {
        let opt = |what: &str, v: Option<i64>| v.map(|v| to_u64(what, v)).transpose();
        Ok(VolumeStat {
            id: row.id,
            host: parse("host id", &row.host_id)?,
            volume: parse("volume name", &row.volume_name)?,
            usage: Usage {
                size_bytes: to_u64("size_bytes", row.size_bytes)?,
                apparent_bytes: opt("apparent_bytes", row.apparent_bytes)?,
                file_count: opt("file_count", row.file_count)?,
                dir_count: opt("dir_count", row.dir_count)?,
                error_count: to_u64("error_count", row.error_count)?,
            },
            method: parse("scan method", &row.scan_method)?,
            duration: Duration::from_millis(to_u64("duration_ms", row.duration_ms)?),
            scan_id: parse("scan id", &row.scan_id)?,
            ts: from_db_time(row.ts),
            created_at: from_db_time(row.created_at),
            updated_at: from_db_time(row.updated_at),
        })
    }
}

/// `OffsetDateTime::now_utc` rounded to what the database stores; for tests and callers
/// that want to compare a written time with the one read back.
pub fn now_rounded() -> Timestamp {
    round_time(OffsetDateTime::now_utc())
}
