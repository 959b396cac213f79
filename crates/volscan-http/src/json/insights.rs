//! The JSON answers of SPEC §8 beyond a volume's growth: the filesystems
//! holding volumes (`GET /filesystems`), the summary (`GET /summary`) and
//! the directories inside a volume (`GET /volumes/{name}/dirs`). Every
//! figure carries the time it dates from.

use serde::Serialize;
use volscan_domain::{DirUsage, FilesystemSample, Forecast};

use super::{opt_time, time_text};

/// A filesystem holding present volumes (`GET /filesystems`).
#[derive(Clone, Debug, Serialize)]
pub struct FilesystemJson {
    id: String,
    mount_point: String,
    fs_type: String,
    total_bytes: u64,
    avail_bytes: u64,
    /// Present volumes on it.
    volume_count: u64,
    /// The sum of their latest sizes.
    volumes_bytes: u64,
    /// Growth of used space, in bytes a day, over the week before `sampled_at`.
    rate_bytes_per_day: Option<f64>,
    /// When `avail_bytes` reaches 0 at that rate; null unless used space is
    /// rising steadily over enough samples.
    full_at: Option<String>,
    trend: &'static str,
    /// The time of its newest sample, which every figure dates from.
    sampled_at: String,
}

impl FilesystemJson {
    /// From its newest sample, its forecast and the present volumes on it.
    pub fn new(
        newest: &FilesystemSample,
        forecast: &Forecast,
        volume_count: u64,
        volumes_bytes: u64,
    ) -> Self {
        FilesystemJson {
            id: newest.id.clone(),
            mount_point: newest.mount_point.clone(),
            fs_type: newest.fs_type.clone(),
            total_bytes: newest.total_bytes,
            avail_bytes: newest.avail_bytes,
            volume_count,
            volumes_bytes,
            rate_bytes_per_day: forecast.rate_bytes_per_day,
            full_at: opt_time(forecast.full_at),
            trend: forecast.trend.as_str(),
            sampled_at: time_text(newest.ts),
        }
    }
}

/// One of the largest volumes (`GET /summary`).
#[derive(Clone, Debug, Serialize)]
pub struct LargestJson {
    /// The volume.
    pub name: String,
    /// Its latest size.
    pub size_bytes: u64,
    /// When that size was measured.
    pub scanned_at: String,
}

/// One of the fastest growing volumes (`GET /summary`).
#[derive(Clone, Debug, Serialize)]
pub struct GrowingJson {
    /// The volume.
    pub name: String,
    /// Its growth rate in bytes a day (positive).
    pub rate_bytes_per_day: f64,
    /// Its change over the last 24 hours, when known.
    pub delta_24h: Option<i64>,
    /// Its trend.
    pub trend: &'static str,
    /// The time of its newest stat, which the figures date from.
    pub as_of: String,
}

/// A volume whose last measurement failed (`GET /summary`).
#[derive(Clone, Debug, Serialize)]
pub struct FailingJson {
    /// The volume.
    pub name: String,
    /// The failed run.
    pub scan_id: String,
    /// Why it failed.
    pub error_message: Option<String>,
    /// When it failed.
    pub completed_at: Option<String>,
}

/// `GET /summary`: what the dashboard's first screen needs.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryJson {
    /// Present volumes.
    pub volume_count: u64,
    /// The sum of their latest sizes.
    pub total_bytes: u64,
    /// Present volumes no container references.
    pub unused_count: u64,
    /// The sum of their latest sizes.
    pub reclaimable_bytes: u64,
    /// The 5 largest by latest size.
    pub largest: Vec<LargestJson>,
    /// The 5 with the highest positive growth rate.
    pub fastest_growing: Vec<GrowingJson>,
    /// Filesystems with a `full_at`, soonest first.
    pub filesystems_filling: Vec<FilesystemJson>,
    /// Volumes whose last measurement failed, most recent failure first.
    pub failing: Vec<FailingJson>,
    /// The newest of the latest scans summed in `total_bytes`.
    pub last_scan_at: Option<String>,
    /// The oldest of them: `total_bytes` sums sizes measured between the two.
    pub oldest_scan_at: Option<String>,
}

/// One directory of `GET /volumes/{name}/dirs`.
#[derive(Clone, Debug, Serialize)]
pub struct DirEntryJson {
    path: String,
    size_bytes: u64,
    file_count: Option<u64>,
    /// `size_bytes` minus the compared scan's size of the same path.
    delta_bytes: Option<i64>,
}

impl DirEntryJson {
    /// A directory and its change since the compared scan (`None`: no such
    /// scan, or the path is absent there).
    pub fn new(dir: &DirUsage, delta_bytes: Option<i64>) -> Self {
        DirEntryJson {
            path: dir.path.clone(),
            size_bytes: dir.size_bytes,
            file_count: dir.file_count,
            delta_bytes,
        }
    }
}

/// `GET /volumes/{name}/dirs`.
#[derive(Clone, Debug, Serialize)]
pub struct DirsJson {
    /// The volume.
    pub volume: String,
    /// The newest scan that recorded directories; null when none did.
    pub scan_id: Option<String>,
    /// Its time.
    pub ts: Option<String>,
    /// The time of the compared scan; null without `compare` or such a scan.
    pub compare_ts: Option<String>,
    /// The directories at the asked depth, largest first.
    pub entries: Vec<DirEntryJson>,
}
