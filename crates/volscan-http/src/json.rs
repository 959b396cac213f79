//! The API's JSON types, filled by hand from domain values so that a change
//! to a domain type cannot silently change the API. Times are RFC 3339 UTC.
//! The answers of §8 (filesystems, the summary, directories) are in
//! `json/insights.rs`.

mod insights;

use std::collections::BTreeMap;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use volscan_domain::{Growth, ScanRun, StatusCounts, Timestamp, Volume, VolumeStat, VolumeUsers};
use volscan_scheduler::{SchedulerHealth, SchedulerStatus};

pub use insights::{
    DirEntryJson, DirsJson, FailingJson, FilesystemJson, GrowingJson, LargestJson, SummaryJson,
};

/// Formats a time as RFC 3339 (UTC).
pub fn time_text(at: Timestamp) -> String {
    // RFC 3339 formatting only fails for years outside 0..=9999.
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

/// Formats an optional time as RFC 3339 (UTC).
pub fn opt_time(at: Option<Timestamp>) -> Option<String> {
    at.map(time_text)
}

/// A `scan_runs` row (`GET /scans/{scan_id}`).
#[derive(Serialize)]
pub struct RunJson {
    scan_id: String,
    /// The host whose workers run it.
    host: String,
    volume_id: String,
    batch_id: Option<String>,
    trigger: &'static str,
    status: &'static str,
    progress: u8,
    method: Option<&'static str>,
    attempt: u32,
    queued_at: String,
    started_at: Option<String>,
    completed_at: Option<String>,
    error_message: Option<String>,
    /// Milliseconds.
    estimated_duration: Option<u64>,
    /// A queued retry is not attempted before this time.
    not_before: Option<String>,
}

impl From<&ScanRun> for RunJson {
    fn from(run: &ScanRun) -> Self {
        RunJson {
            scan_id: run.scan_id.to_string(),
            host: run.host.to_string(),
            volume_id: run.volume.to_string(),
            batch_id: run.batch_id.map(|b| b.to_string()),
            trigger: run.trigger.as_str(),
            status: run.status.as_str(),
            progress: run.progress,
            method: run.method.map(|m| m.as_str()),
            attempt: run.attempt,
            queued_at: time_text(run.queued_at),
            started_at: opt_time(run.started_at),
            completed_at: opt_time(run.completed_at),
            error_message: run.error_message.clone(),
            estimated_duration: run
                .estimated_duration
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            not_before: opt_time(run.not_before),
        }
    }
}

/// The answer to `POST /volumes/{name}/scan`.
#[derive(Serialize)]
pub struct TriggerJson {
    /// The run's id.
    pub scan_id: String,
    /// The volume.
    pub volume: String,
    /// The run's status now.
    pub status: &'static str,
    /// Whether this is the volume's already active run.
    pub deduplicated: bool,
    /// Where to follow the run.
    pub status_url: String,
}

/// The answer to `POST /scan/now`.
#[derive(Serialize)]
pub struct BatchJson {
    /// The batch's id.
    pub batch_id: String,
    /// Runs created.
    pub count: u64,
    /// Volumes left out because the queue was full.
    pub skipped: u64,
    /// Volumes that already had an active run.
    pub deduplicated: u64,
}

/// `GET /scan/batches/{batch_id}`.
#[derive(Serialize)]
pub struct BatchStatusJson {
    batch_id: String,
    total: u64,
    queued: u64,
    running: u64,
    completed: u64,
    failed: u64,
    canceled: u64,
}

impl BatchStatusJson {
    /// From a batch's counts.
    pub fn new(batch_id: String, counts: &StatusCounts) -> Self {
        BatchStatusJson {
            batch_id,
            total: counts.total(),
            queued: counts.queued,
            running: counts.running,
            completed: counts.completed,
            failed: counts.failed,
            canceled: counts.canceled,
        }
    }
}

/// One `volume_stats` row.
#[derive(Serialize)]
pub struct StatJson {
    size_bytes: u64,
    apparent_bytes: Option<u64>,
    file_count: Option<u64>,
    dir_count: Option<u64>,
    error_count: u64,
    /// Some entries could not be read (`error_count > 0`): the totals are a lower bound.
    partial: bool,
    scan_method: &'static str,
    duration_ms: u64,
    scan_id: String,
    ts: String,
}

impl From<&VolumeStat> for StatJson {
    fn from(stat: &VolumeStat) -> Self {
        StatJson {
            size_bytes: stat.usage.size_bytes,
            apparent_bytes: stat.usage.apparent_bytes,
            file_count: stat.usage.file_count,
            dir_count: stat.usage.dir_count,
            error_count: stat.usage.error_count,
            partial: stat.usage.is_partial(),
            scan_method: stat.method.as_str(),
            duration_ms: u64::try_from(stat.duration.as_millis()).unwrap_or(u64::MAX),
            scan_id: stat.scan_id.to_string(),
            ts: time_text(stat.ts),
        }
    }
}

/// How a volume's size changed (SPEC §8), every figure anchored at `as_of`,
/// the time of its newest stat.
#[derive(Clone, Debug, Serialize)]
pub struct GrowthJson {
    /// Newest size minus the newest size at or before `as_of` − 24 h; null when there is none.
    pub delta_24h: Option<i64>,
    /// As `delta_24h`, over 7 days.
    pub delta_7d: Option<i64>,
    /// As `delta_24h`, over 30 days.
    pub delta_30d: Option<i64>,
    /// Least-squares slope over the 7 days before `as_of`, in bytes a day;
    /// null with fewer than 3 points or a span under an hour.
    pub rate_bytes_per_day: Option<f64>,
    /// `rising`, `falling`, `flat`, `fluctuating` or `unknown`.
    pub trend: &'static str,
    /// The time of the newest stat; null without stats.
    pub as_of: Option<String>,
}

impl From<&Growth> for GrowthJson {
    fn from(growth: &Growth) -> Self {
        GrowthJson {
            delta_24h: growth.delta_24h,
            delta_7d: growth.delta_7d,
            delta_30d: growth.delta_30d,
            rate_bytes_per_day: growth.rate_bytes_per_day,
            trend: growth.trend.as_str(),
            as_of: opt_time(growth.as_of),
        }
    }
}

/// A volume with its latest stats, growth and users (`GET /volumes`).
#[derive(Serialize)]
pub struct VolumeJson {
    /// The Docker host it lives on.
    host: String,
    name: String,
    driver: String,
    mountpoint: String,
    kind: &'static str,
    labels: BTreeMap<String, String>,
    created_at: Option<String>,
    first_seen_at: String,
    last_seen_at: String,
    removed_at: Option<String>,
    /// The latest completed scan, or null before the first one.
    latest: Option<StatJson>,
    /// How its size changed.
    growth: GrowthJson,
    /// Containers that mount it, running or not, as Docker reports them
    /// now; empty when Docker did not answer.
    containers: Vec<String>,
    /// Whether a container, running or stopped, references it, as of the
    /// scheduler's last look at the containers; null before the first look.
    in_use: Option<bool>,
    /// The last time a container was seen referencing it; null when never.
    last_used_at: Option<String>,
    /// Since when no container has been seen referencing it; null while in use or unknown.
    unused_since: Option<String>,
    /// The filesystem holding it at its last scan (`GET /filesystems`); null when unknown.
    filesystem_id: Option<String>,
}

impl VolumeJson {
    /// Joins a volume with its latest stat, its growth and the containers
    /// using it (`None`: none, or Docker did not answer).
    pub fn new(
        volume: &Volume,
        latest: Option<&VolumeStat>,
        growth: &Growth,
        users: Option<&VolumeUsers>,
    ) -> Self {
        VolumeJson {
            host: volume.host.to_string(),
            name: volume.name.to_string(),
            driver: volume.driver.clone(),
            mountpoint: volume.mountpoint.to_string_lossy().into_owned(),
            kind: volume.kind.as_str(),
            labels: volume.labels.clone(),
            created_at: opt_time(volume.created_at),
            first_seen_at: time_text(volume.first_seen_at),
            last_seen_at: time_text(volume.last_seen_at),
            removed_at: opt_time(volume.removed_at),
            latest: latest.map(StatJson::from),
            growth: GrowthJson::from(growth),
            containers: users.map(|u| u.containers.clone()).unwrap_or_default(),
            in_use: volume.in_use,
            last_used_at: opt_time(volume.last_used_at),
            unused_since: opt_time(volume.unused_since),
            filesystem_id: volume.filesystem_id.clone(),
        }
    }

    /// The latest size, for sorting.
    pub fn size(&self) -> u64 {
        self.latest.as_ref().map_or(0, |s| s.size_bytes)
    }

    /// The name, for sorting.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The growth, for sorting.
    pub fn growth(&self) -> &GrowthJson {
        &self.growth
    }
}

/// `GET /volumes/{name}`.
#[derive(Serialize)]
pub struct VolumeDetailJson {
    /// The volume, its latest stats and users.
    #[serde(flatten)]
    pub volume: VolumeJson,
    /// The newest runs first.
    pub runs: Vec<RunJson>,
}

/// `GET /volumes/{name}/history`.
#[derive(Serialize)]
pub struct HistoryJson {
    /// The volume.
    pub volume: String,
    /// Its stats, oldest first.
    pub points: Vec<StatJson>,
}

/// `GET /scheduler/status`.
#[derive(Serialize)]
pub struct StatusJson {
    running: bool,
    last_run_at: Option<String>,
    next_run_at: Option<String>,
    active_scans: u64,
    queue_depth: u64,
    queue_capacity: u64,
    worker_count: u64,
    total_completed: u64,
    total_failed: u64,
    total_canceled: u64,
}

impl From<&SchedulerStatus> for StatusJson {
    fn from(status: &SchedulerStatus) -> Self {
        StatusJson {
            running: status.running,
            last_run_at: opt_time(status.last_run_at),
            next_run_at: opt_time(status.next_run_at),
            active_scans: status.active_scans,
            queue_depth: status.queue_depth,
            queue_capacity: status.queue_capacity,
            worker_count: status.worker_count,
            total_completed: status.total_completed,
            total_failed: status.total_failed,
            total_canceled: status.total_canceled,
        }
    }
}

/// `GET /health/scheduler`.
#[derive(Serialize)]
pub struct SchedulerHealthJson {
    status: &'static str,
    reasons: Vec<String>,
    #[serde(flatten)]
    scheduler: StatusJson,
}

impl From<&SchedulerHealth> for SchedulerHealthJson {
    fn from(health: &SchedulerHealth) -> Self {
        SchedulerHealthJson {
            status: health.status.as_str(),
            reasons: health.reasons.clone(),
            scheduler: StatusJson::from(&health.scheduler),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use volscan_domain::{ScanId, ScanMethod, Usage, VolumeName};

    use super::*;

    fn stat(error_count: u64) -> VolumeStat {
        VolumeStat {
            host: Default::default(),
            id: 1,
            volume: VolumeName::new("data").unwrap(),
            usage: Usage {
                size_bytes: 4096,
                apparent_bytes: None,
                file_count: None,
                dir_count: None,
                error_count,
            },
            method: ScanMethod::Du,
            duration: Duration::from_millis(7),
            scan_id: ScanId::new(),
            ts: Timestamp::UNIX_EPOCH,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn stats_with_errors_are_marked_partial() {
        for (errors, partial) in [(0, false), (3, true)] {
            let json = serde_json::to_value(StatJson::from(&stat(errors))).unwrap();
            assert_eq!(json["partial"], partial, "{json}");
            assert_eq!(json["error_count"], errors);
            assert_eq!(json["apparent_bytes"], serde_json::Value::Null);
        }
    }
}
