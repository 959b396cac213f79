//! The scheduler's decisions as pure functions of their inputs, and every
//! timing rule it follows: retry delays (of a scan, of an outcome write, of
//! the event stream, of a periodic run), progress, cooldown and health.
//! Nothing here reads a clock or does IO, so the tests below pin every rule
//! with explicit times. Durations an operator may change are in
//! `SchedulerOptions`; the fixed ones are the constants below.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use volscan_domain::{ScanMethod, ScanStatus};

use crate::status::{HealthState, SchedulerHealth, SchedulerStatus};

/// Retry delay before attempt `attempt + 1`, after `attempt` failed ones
/// (`attempt` ≥ 1): full jitter over `min(cap, base × 2^(attempt-1))`.
/// `unit` is a uniform random number in `[0, 1)`.
pub fn retry_delay(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let ceiling = base.saturating_mul(1u32 << exponent.min(31)).min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// A small, lock-free pseudo-random source for jitter (xorshift64*); not for secrets.
#[derive(Debug)]
pub struct Jitter(AtomicU64);

impl Jitter {
    /// Seeded from `seed` (any value; 0 is replaced).
    pub fn new(seed: u64) -> Self {
        Jitter(AtomicU64::new(seed.max(1)))
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.store(x, Ordering::Relaxed);
        let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }
}

/// Progress of a running scan, 0–99 (100 is only for a completed run).
///
/// The native engine reports entries seen, compared with the previous scan's
/// entry count; the external tools report elapsed time against the estimated
/// duration; with nothing to compare against, 0.
pub fn progress(
    method: ScanMethod,
    entries_seen: u64,
    previous_entries: Option<u64>,
    elapsed: Duration,
    estimate: Option<Duration>,
) -> u8 {
    let fraction = match method {
        ScanMethod::Native => match previous_entries {
            Some(total) if total > 0 => entries_seen as f64 / total as f64,
            _ => 0.0,
        },
        ScanMethod::Du | ScanMethod::Diskus => match estimate {
            Some(estimate) if !estimate.is_zero() => elapsed.as_secs_f64() / estimate.as_secs_f64(),
            _ => 0.0,
        },
    };
    (fraction * 100.0).clamp(0.0, 99.0) as u8
}

/// How long until a new bulk or periodic run is allowed, or `None` when it is.
/// `since_last` is the time since the last batch started, on a monotonic
/// clock (a wall clock stepping back must not block bulk scans).
pub fn cooldown_remaining(since_last: Option<Duration>, cooldown: Duration) -> Option<Duration> {
    let remaining = cooldown.saturating_sub(since_last?);
    (!remaining.is_zero()).then_some(remaining)
}

/// The first wait before a periodic run that failed is tried again.
pub const PERIODIC_RETRY_BASE: Duration = Duration::from_secs(30);

/// The wait before trying a failed periodic run again: 30 s, then doubling
/// after each further failure, never more than the interval.
pub fn periodic_retry_delay(previous: Option<Duration>, interval: Duration) -> Duration {
    match previous {
        None => PERIODIC_RETRY_BASE,
        Some(previous) => previous.saturating_mul(2),
    }
    .min(interval)
}

/// The first wait before writing a scan's outcome again when the database
/// refused it (it may be restarting).
pub const OUTCOME_WRITE_RETRY_FIRST: Duration = Duration::from_millis(500);

/// The longest wait between attempts to write a scan's outcome.
pub const OUTCOME_WRITE_RETRY_MAX: Duration = Duration::from_secs(30);

/// The wait before writing an outcome again: 500 ms, then doubling after each
/// further failure, never more than 30 s.
pub fn outcome_write_retry_delay(previous: Option<Duration>) -> Duration {
    match previous {
        None => OUTCOME_WRITE_RETRY_FIRST,
        Some(previous) => previous.saturating_mul(2).min(OUTCOME_WRITE_RETRY_MAX),
    }
}

/// The first wait before reconnecting a lost event stream.
pub const EVENT_RECONNECT_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between attempts to reconnect the event stream.
pub const EVENT_RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A stream that ran this long before it was lost counts as having worked:
/// the next reconnect waits `EVENT_RECONNECT_FIRST` again.
pub const EVENT_STREAM_STABLE: Duration = Duration::from_secs(60);

/// The wait before reconnecting the event stream, which ran for `ran_for`
/// before it was lost: 1 s, then doubling after each further loss up to 30 s,
/// and 1 s again after a stream that ran over a minute.
pub fn event_reconnect_delay(previous: Option<Duration>, ran_for: Duration) -> Duration {
    match previous {
        Some(previous) if ran_for <= EVENT_STREAM_STABLE => {
            previous.saturating_mul(2).min(EVENT_RECONNECT_MAX)
        }
        _ => EVENT_RECONNECT_FIRST,
    }
}

/// How long a reconnected event stream runs before the first catch-up
/// reconcile; the second follows `4 ×` this later, so a volume created around
/// the reconnect is seen by one or the other.
pub const CATCH_UP_DELAY: Duration = Duration::from_secs(1);

/// How long the event consumer lets a burst gather before handling it, so a
/// burst of `create` events costs one listing of the source, not one each.
pub const EVENT_COALESCE: Duration = Duration::from_millis(100);

/// The queue depth is counted again at least this often (SPEC §6: the gauge
/// agrees with the table within a second).
pub const DEPTH_REFRESH: Duration = Duration::from_millis(500);

/// How long a cancel waits for a running scan to stop and write its outcome
/// before settling the run itself.
pub const CANCEL_WAIT: Duration = Duration::from_secs(1);

/// How often the filesystems holding scanned volumes are sampled between
/// scans, so their free space is current (alert rules predict from it).
pub const FILESYSTEM_SAMPLE_INTERVAL: Duration = Duration::from_secs(60);

/// How often one of those samples is stored (and the forecast read again);
/// the repository keeps one sample per five minutes too.
pub const FILESYSTEM_STORE_SPACING: Duration = Duration::from_secs(5 * 60);

/// How long a forced stop waits for claims in flight to register their runs.
pub const CLAIM_SETTLE: Duration = Duration::from_secs(2);

/// The last finished runs' statuses, newest last, at most `RECENT` of them.
pub const RECENT: usize = 20;

/// `GET /health/scheduler`: stopped when not running; degraded when the queue
/// is over 80 % full, when over half of the last 20 finished runs failed, or
/// when a periodic run is overdue by more than one interval. `overdue` is
/// how long past its due time the next periodic run is, on a monotonic clock.
pub fn health(
    status: &SchedulerStatus,
    recent: &[ScanStatus],
    periodic: bool,
    interval: Duration,
    overdue: Option<Duration>,
) -> SchedulerHealth {
    let mut reasons = Vec::new();
    if !status.running {
        return SchedulerHealth {
            status: HealthState::Stopped,
            reasons,
            scheduler: status.clone(),
        };
    }
    if status.queue_depth * 10 > status.queue_capacity * 8 {
        reasons.push(format!("queue is {} of {} full", status.queue_depth, status.queue_capacity));
    }
    let failed = recent.iter().filter(|s| **s == ScanStatus::Failed).count();
    if failed * 2 > recent.len() && !recent.is_empty() {
        reasons.push(format!("{failed} of the last {} finished runs failed", recent.len()));
    }
    if periodic
        && let Some(overdue) = overdue
        && overdue > interval
    {
        let due = status.next_run_at.map(|next| format!(" due at {next}")).unwrap_or_default();
        reasons.push(format!("the periodic run{due} is overdue by more than one interval"));
    }
    let state = if reasons.is_empty() { HealthState::Healthy } else { HealthState::Degraded };
    SchedulerHealth { status: state, reasons, scheduler: status.clone() }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const BASE: Duration = Duration::from_secs(30);
    const CAP: Duration = Duration::from_secs(1800);

    #[test]
    fn retry_delays_double_up_to_the_cap_with_full_jitter() {
        let ceilings = [30, 60, 120, 240, 480, 960, 1800, 1800, 1800];
        for (i, ceiling) in ceilings.into_iter().enumerate() {
            let attempt = i as u32 + 1;
            assert_eq!(retry_delay(attempt, BASE, CAP, 0.0), Duration::ZERO, "attempt {attempt}");
            assert_eq!(retry_delay(attempt, BASE, CAP, 0.5), Duration::from_secs(ceiling) / 2);
            assert!(retry_delay(attempt, BASE, CAP, 0.999_999) < Duration::from_secs(ceiling));
        }
        assert_eq!(retry_delay(1000, BASE, CAP, 0.5), CAP / 2, "no overflow for huge attempts");
    }

    #[test]
    fn jitter_is_uniform_enough_and_stays_in_bounds() {
        let jitter = Jitter::new(42);
        let samples: Vec<f64> = (0..10_000).map(|_| jitter.unit()).collect();
        assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
        let low = samples.iter().filter(|u| **u < 0.1).count();
        assert!((800..1200).contains(&low), "{low} of 10000 below 0.1");
    }

    #[test]
    fn progress_follows_entries_or_elapsed_time_and_stays_below_100() {
        use ScanMethod::*;
        let s = Duration::from_secs;
        assert_eq!(progress(Native, 500, Some(1000), s(0), None), 50);
        assert_eq!(progress(Native, 5000, Some(1000), s(0), None), 99, "capped until done");
        assert_eq!(progress(Native, 500, None, s(10), Some(s(20))), 0, "nothing to compare with");
        assert_eq!(progress(Du, 0, Some(1000), s(10), Some(s(40))), 25);
        assert_eq!(progress(Diskus, 0, None, s(100), Some(s(40))), 99);
        assert_eq!(progress(Diskus, 0, None, s(100), None), 0);
        assert_eq!(progress(Du, 0, None, s(1), Some(Duration::ZERO)), 0);
    }

    #[test]
    fn the_cooldown_counts_from_the_last_batch() {
        let s = Duration::from_secs;
        let cooldown = s(60);
        assert_eq!(cooldown_remaining(None, cooldown), None);
        assert_eq!(cooldown_remaining(Some(s(15)), cooldown), Some(s(45)));
        assert_eq!(cooldown_remaining(Some(s(60)), cooldown), None);
        assert_eq!(cooldown_remaining(Some(s(3600)), cooldown), None);
    }

    #[test]
    fn outcome_writes_are_retried_from_500_ms_doubling_to_30_s() {
        let mut delays = Vec::new();
        let mut previous = None;
        for _ in 0..9 {
            let delay = outcome_write_retry_delay(previous);
            delays.push(delay.as_millis());
            previous = Some(delay);
        }
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    }

    #[test]
    fn the_event_stream_reconnects_with_backoff_reset_by_a_stream_that_worked() {
        let secs = Duration::from_secs;
        assert_eq!(event_reconnect_delay(None, secs(0)), secs(1));
        assert_eq!(event_reconnect_delay(Some(secs(1)), secs(0)), secs(2));
        assert_eq!(event_reconnect_delay(Some(secs(16)), secs(5)), secs(30));
        assert_eq!(event_reconnect_delay(Some(secs(30)), secs(60)), secs(30));
        assert_eq!(event_reconnect_delay(Some(secs(30)), secs(61)), secs(1));
    }

    #[test]
    fn a_failed_periodic_run_is_retried_with_backoff_up_to_the_interval() {
        let s = Duration::from_secs;
        let hour = s(3600);
        let mut delays = Vec::new();
        let mut previous = None;
        for _ in 0..9 {
            let delay = periodic_retry_delay(previous, hour);
            delays.push(delay.as_secs());
            previous = Some(delay);
        }
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(periodic_retry_delay(None, s(10)), s(10), "never longer than the interval");
    }

    fn status(
        running: bool,
        depth: u64,
        next: Option<volscan_domain::Timestamp>,
    ) -> SchedulerStatus {
        SchedulerStatus {
            running,
            last_run_at: None,
            next_run_at: next,
            active_scans: 0,
            queue_depth: depth,
            queue_capacity: 100,
            worker_count: 2,
            total_completed: 0,
            total_failed: 0,
            total_canceled: 0,
        }
    }

    #[track_caller]
    fn check_health(
        status: SchedulerStatus,
        recent: &[ScanStatus],
        overdue: Option<Duration>,
        expected: HealthState,
        reasons: usize,
    ) {
        let health = health(&status, recent, true, Duration::from_secs(3600), overdue);
        assert_eq!(
            (health.status, health.reasons.len()),
            (expected, reasons),
            "{:?}",
            health.reasons
        );
    }

    #[test]
    fn health_moves_between_healthy_degraded_and_stopped() {
        use ScanStatus::*;
        let t0 = datetime!(2026-01-01 00:00:00 UTC);
        let hour = Duration::from_secs(3600);
        let on_time = Some(Duration::ZERO);
        check_health(status(true, 0, Some(t0)), &[], on_time, HealthState::Healthy, 0);
        check_health(status(false, 0, Some(t0)), &[], on_time, HealthState::Stopped, 0);
        check_health(status(true, 80, Some(t0)), &[], on_time, HealthState::Healthy, 0);
        check_health(status(true, 81, Some(t0)), &[], on_time, HealthState::Degraded, 1);
        let half = [Failed, Completed, Failed, Completed];
        check_health(status(true, 0, Some(t0)), &half, on_time, HealthState::Healthy, 0);
        let most = [Failed, Completed, Failed, Failed];
        check_health(status(true, 0, Some(t0)), &most, on_time, HealthState::Degraded, 1);
        check_health(status(true, 0, Some(t0)), &[], Some(hour), HealthState::Healthy, 0);
        let late = Some(hour + Duration::from_secs(1));
        check_health(status(true, 0, Some(t0)), &[], late, HealthState::Degraded, 1);
        check_health(status(true, 0, None), &[], None, HealthState::Healthy, 0);
        check_health(status(true, 99, Some(t0)), &most, Some(2 * hour), HealthState::Degraded, 3);
    }
}
