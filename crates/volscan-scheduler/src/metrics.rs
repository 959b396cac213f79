//! The scheduler's Prometheus metrics (SPEC §6), recorded through the
//! `metrics` facade; the binary installs the exporter.
//!
//! No per-file or per-path labels: `volume` is the only per-object label. The
//! per-volume series are not recorded here but kept as state (`series.rs`),
//! because the facade cannot remove a series once a volume is gone.

use std::time::Duration;

use volscan_domain::{ScanMethod, ScanStatus, Timestamp};

/// Queued runs.
pub const QUEUE_DEPTH: &str = "volscan_scan_queue_depth";
/// Scans running now.
pub const SCANS_ACTIVE: &str = "volscan_scans_active";
/// Finished runs by final status.
pub const SCANS_TOTAL: &str = "volscan_scans_total";
/// Engine wall time of completed scans, by method.
pub const SCAN_DURATION: &str = "volscan_scan_duration_seconds";
/// Failed attempts by reason.
pub const SCAN_ERRORS: &str = "volscan_scan_errors_total";
/// Busy workers over all workers.
pub const WORKER_UTILIZATION: &str = "volscan_worker_utilization";
/// Latest `size_bytes` per volume.
pub const VOLUME_SIZE: &str = "volscan_volume_size_bytes";
/// Latest `apparent_bytes` per volume.
pub const VOLUME_APPARENT: &str = "volscan_volume_apparent_bytes";
/// Latest `file_count` per volume.
pub const VOLUME_FILES: &str = "volscan_volume_files";
/// When each volume was last scanned.
pub const VOLUME_LAST_SCAN: &str = "volscan_volume_last_scan_timestamp_seconds";
/// 1 when a volume's latest completed scan met unreadable entries.
pub const VOLUME_PARTIAL: &str = "volscan_volume_scan_partial";
/// When the last periodic or bulk run started.
pub const LAST_RUN: &str = "volscan_scheduler_last_run_timestamp_seconds";
/// Each volume's growth rate over 7 days, bytes a day (absent when unknown).
pub const VOLUME_GROWTH: &str = "volscan_volume_growth_bytes_per_day";
/// Size of each filesystem holding scanned volumes.
pub const FILESYSTEM_SIZE: &str = "volscan_filesystem_size_bytes";
/// Bytes available on each filesystem holding scanned volumes.
pub const FILESYSTEM_AVAIL: &str = "volscan_filesystem_avail_bytes";
/// Seconds until a filesystem is full at its trend (absent without a forecast).
pub const FILESYSTEM_FULL_IN: &str = "volscan_filesystem_full_in_seconds";
/// Present volumes no container references.
pub const VOLUMES_UNUSED: &str = "volscan_volumes_unused";
/// The sum of the latest sizes of the unused volumes.
pub const RECLAIMABLE_BYTES: &str = "volscan_reclaimable_bytes";
/// 1 while the scheduler runs, 0 while it is stopped.
pub const SCHEDULER_RUNNING: &str = "volscan_scheduler_running";

fn seconds(at: Timestamp) -> f64 {
    at.unix_timestamp_nanos() as f64 / 1e9
}

pub(crate) fn queue_depth(depth: u64) {
    metrics::gauge!(QUEUE_DEPTH).set(depth as f64);
}

pub(crate) fn active(active: usize, workers: usize) {
    metrics::gauge!(SCANS_ACTIVE).set(active as f64);
    metrics::gauge!(WORKER_UTILIZATION).set(active as f64 / workers.max(1) as f64);
}

pub(crate) fn finished(status: ScanStatus) {
    metrics::counter!(SCANS_TOTAL, "status" => status.as_str()).increment(1);
}

pub(crate) fn duration(method: ScanMethod, duration: Duration) {
    metrics::histogram!(SCAN_DURATION, "method" => method.as_str()).record(duration.as_secs_f64());
}

/// Why an attempt failed: the `reason` label of `volscan_scan_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReason {
    /// The volume's data cannot be reached (missing, not a directory, unreadable).
    Unreachable,
    /// No engine of the chain is available.
    NoEngine,
    /// An external tool failed to start, failed, or printed nonsense.
    ToolFailed,
    /// The scan was canceled.
    Canceled,
    /// Reading the tree failed.
    Io,
    /// The database failed.
    Database,
    /// The volume was removed or is unknown.
    Removed,
    /// The volume source did not answer.
    Source,
    /// The blocking task was interrupted (the runtime is stopping).
    Interrupted,
    /// The scan thread panicked.
    Panic,
    /// `SCAN_TIMEOUT_PER_VOLUME` ran out.
    Timeout,
}

impl ErrorReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Unreachable => "unreachable",
            ErrorReason::NoEngine => "no_engine",
            ErrorReason::ToolFailed => "tool_failed",
            ErrorReason::Canceled => "canceled",
            ErrorReason::Io => "io",
            ErrorReason::Database => "database",
            ErrorReason::Removed => "removed",
            ErrorReason::Source => "source",
            ErrorReason::Interrupted => "interrupted",
            ErrorReason::Panic => "panic",
            ErrorReason::Timeout => "timeout",
        }
    }
}

pub(crate) fn error(reason: ErrorReason) {
    metrics::counter!(SCAN_ERRORS, "reason" => reason.as_str()).increment(1);
}

pub(crate) fn scheduler_running(running: bool) {
    metrics::gauge!(SCHEDULER_RUNNING).set(if running { 1.0 } else { 0.0 });
}

pub(crate) fn last_run(at: Timestamp) {
    metrics::gauge!(LAST_RUN).set(seconds(at));
}

/// Describes every metric once, for `# HELP` lines.
pub fn describe() {
    metrics::describe_gauge!(QUEUE_DEPTH, "Scan runs waiting in the queue");
    metrics::describe_gauge!(SCANS_ACTIVE, "Scans running now");
    metrics::describe_counter!(SCANS_TOTAL, "Scan runs finished, by final status");
    metrics::describe_histogram!(SCAN_DURATION, "Engine wall time of completed scans, by method");
    metrics::describe_counter!(SCAN_ERRORS, "Failed scan attempts, by reason");
    metrics::describe_gauge!(WORKER_UTILIZATION, "Busy scan workers over all workers (0-1)");
    metrics::describe_gauge!(LAST_RUN, "Unix time the last periodic or bulk run started");
    metrics::describe_gauge!(
        SCHEDULER_RUNNING,
        "1 while the scheduler runs, 0 while it is stopped"
    );
}
