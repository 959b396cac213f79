//! The scheduler's status and health, as plain values for the HTTP layer
//! (`GET /scheduler/status`, `GET /health/scheduler`).

use volscan_domain::{BatchId, Timestamp};

/// A snapshot of the scheduler (SPEC §5 `GET /scheduler/status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerStatus {
    /// Whether it is taking work (false between `stop` and `start`).
    pub running: bool,
    /// When the last periodic or bulk run started.
    pub last_run_at: Option<Timestamp>,
    /// When the next periodic run is due; `None` when periodic runs are off.
    pub next_run_at: Option<Timestamp>,
    /// Scans running now.
    pub active_scans: u64,
    /// Runs waiting (`queued`), as last counted.
    pub queue_depth: u64,
    /// `max(10 × workers, 100)`.
    pub queue_capacity: u64,
    /// Workers.
    pub worker_count: u64,
    /// Runs completed, all time.
    pub total_completed: u64,
    /// Runs failed, all time.
    pub total_failed: u64,
    /// Runs canceled, all time.
    pub total_canceled: u64,
}

/// The scheduler's health state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthState {
    /// Working normally.
    Healthy,
    /// Working, with the problems listed in `reasons`.
    Degraded,
    /// Stopped (by `stop` or shutdown).
    Stopped,
}

impl HealthState {
    /// `healthy`, `degraded` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Stopped => "stopped",
        }
    }
}

/// `GET /health/scheduler`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerHealth {
    /// The verdict.
    pub status: HealthState,
    /// Why it is degraded.
    pub reasons: Vec<String>,
    /// The status it was judged from.
    pub scheduler: SchedulerStatus,
}

/// The answer to a bulk or periodic trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    /// The batch's id; its runs carry it.
    pub batch_id: BatchId,
    /// Runs created for this batch.
    pub count: u64,
    /// Volumes left out because the queue was full.
    pub skipped: u64,
    /// Volumes that already had an active run (not counted in `count`).
    pub deduplicated: u64,
}
