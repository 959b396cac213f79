//! The scheduler's clock: where "now" comes from for timestamps written to
//! the database. Timers use tokio's clock, so tests that pause tokio time and
//! use `TokioClock` control both.

use std::time::SystemTime;

use volscan_domain::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from(SystemTime::now())
    }
}

/// Wall time that advances with tokio's clock from a fixed start, so a test
/// that pauses and advances tokio time moves timestamps in step.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start_wall: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start_wall` now.
    pub fn starting_at(start_wall: Timestamp) -> Self {
        TokioClock { start_wall, start: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.start_wall + self.start.elapsed()
    }
}
