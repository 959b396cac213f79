//! `SchedulerOptions`: everything the scheduler is told, as plain values.
//!
//! The scheduler reads no environment or file; the binary fills this from
//! `volscan-config`, an embedding service from wherever it likes.

use std::time::Duration;

/// How the scheduler behaves (SPEC §4).
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Whether periodic runs are scheduled (manual triggers work either way).
    pub periodic: bool,
    /// Time between periodic runs, and between reconciles with the source.
    pub interval: Duration,
    /// Delay before the first periodic run after start.
    pub first_run_delay: Duration,
    /// Worker count (`SCAN_CONCURRENCY`).
    pub concurrency: usize,
    /// Hard limit for one scan; the run then fails with reason `timeout`.
    pub timeout_per_volume: Duration,
    /// Retries after a failed attempt (`SCAN_MAX_RETRIES`).
    pub max_retries: u32,
    /// First retry delay before jitter; doubles per attempt.
    pub retry_base: Duration,
    /// Largest retry delay before jitter.
    pub retry_cap: Duration,
    /// Bulk and periodic runs share this cooldown.
    pub cooldown: Duration,
    /// How often an idle worker looks for due runs (retries come due without a wake-up).
    pub poll_interval: Duration,
    /// With a work signal (`SchedulerBuilder::work_signal`), how often an
    /// idle worker looks for due runs anyway: a safety net, since the signal
    /// and this process's own retries wake it.
    pub idle_poll_interval: Duration,
    /// How often a registered host (`SchedulerBuilder::host`) writes its
    /// heartbeat.
    pub heartbeat_interval: Duration,
    /// How often progress of a running scan is written, at most.
    pub progress_interval: Duration,
    /// How long `stop` waits for running scans to wind down before putting
    /// their runs back to `queued` itself.
    pub shutdown_grace: Duration,
    /// The retention loop, or `None` to keep everything.
    pub retention: Option<RetentionOptions>,
}

/// The retention loop (`LIFECYCLE_*`, `SIZES_TTL_DAYS`).
#[derive(Clone, Debug)]
pub struct RetentionOptions {
    /// Rows older than this are deleted.
    pub ttl: Duration,
    /// Time between passes.
    pub interval: Duration,
    /// Delay before the first pass after start.
    pub first_pass_delay: Duration,
    /// Rows deleted per statement.
    pub batch: u32,
}

impl Default for SchedulerOptions {
    /// SPEC §2 and §4 defaults.
    fn default() -> Self {
        SchedulerOptions {
            periodic: true,
            interval: Duration::from_secs(6 * 3600),
            first_run_delay: Duration::from_secs(10),
            concurrency: 2,
            timeout_per_volume: Duration::from_secs(120),
            max_retries: 3,
            retry_base: Duration::from_secs(30),
            retry_cap: Duration::from_secs(30 * 60),
            cooldown: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            idle_poll_interval: Duration::from_secs(60),
            heartbeat_interval: volscan_domain::HEARTBEAT_EVERY,
            progress_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(8),
            retention: Some(RetentionOptions::default()),
        }
    }
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions {
            ttl: Duration::from_secs(30 * 24 * 3600),
            interval: Duration::from_secs(24 * 3600),
            first_pass_delay: Duration::from_secs(60),
            batch: 1000,
        }
    }
}

impl SchedulerOptions {
    /// The queue's capacity: `max(10 × concurrency, 100)`.
    pub fn queue_capacity(&self) -> u64 {
        (10 * self.concurrency as u64).max(100)
    }
}
