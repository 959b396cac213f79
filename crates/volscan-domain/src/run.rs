//! Scan runs: their status machine, how an attempt ends (`RunOutcome`), the
//! method that measured them and what triggered them.
//!
//! `ScanStatus::can_become` is the one place that says which status changes
//! are legal; the repository refuses every other change.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{BatchId, HostId, ScanId, Timestamp, Usage, VolumeName};

/// A text did not name a known variant of one of this module's enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}, expected one of: {}", expected.join(", "))]
pub struct ParseEnumError {
    /// What was being parsed (`"scan status"`).
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

/// Declares a fieldless enum with a stable lowercase text form used in the
/// database, the API and metrics.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable text form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseEnumError {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// Where a run is in its life.
    ScanStatus, "scan status" {
        /// Waiting for a worker (also between retry attempts).
        Queued => "queued",
        /// A worker is measuring it.
        Running => "running",
        /// Measured; its `volume_stats` row exists.
        Completed => "completed",
        /// Gave up: retries exhausted, timeout, interrupted, or the volume is gone.
        Failed => "failed",
        /// Canceled by a user.
        Canceled => "canceled",
    }
);

text_enum!(
    /// How a `Usage` was measured; stored with every row so units never change silently.
    ScanMethod, "scan method" {
        /// The external `diskus` binary: `size_bytes` only.
        Diskus => "diskus",
        /// GNU `du -s -x -B1`: `size_bytes` only.
        Du => "du",
        /// The in-process parallel walker: every field.
        Native => "native",
    }
);

text_enum!(
    /// What asked for a run.
    Trigger, "trigger" {
        /// The periodic cycle.
        Schedule => "schedule",
        /// `POST /volumes/{name}/scan`.
        Manual => "manual",
        /// `POST /scan/now`.
        Bulk => "bulk",
        /// A Docker event (a volume was created).
        Event => "event",
    }
);

/// A status change that `ScanStatus::can_become` does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} run cannot become {to}")]
pub struct IllegalTransition {
    /// The run's current status.
    pub from: ScanStatus,
    /// The status that was asked for.
    pub to: ScanStatus,
}

impl ScanStatus {
    /// `queued` or `running`: at most one such run exists per volume.
    pub fn is_active(self) -> bool {
        matches!(self, ScanStatus::Queued | ScanStatus::Running)
    }

    /// `completed`, `failed` or `canceled`: nothing changes it any more.
    pub fn is_final(self) -> bool {
        !self.is_active()
    }

    /// Whether a run may go from `self` to `to`.
    ///
    /// queued → running (claimed), canceled, failed (its volume vanished);
    /// running → completed, failed, canceled, queued (a retry, or put back at shutdown).
    /// Final states never change.
    pub fn can_become(self, to: ScanStatus) -> bool {
        use ScanStatus::*;
        matches!(
            (self, to),
            (Queued, Running | Canceled | Failed)
                | (Running, Completed | Failed | Canceled | Queued)
        )
    }

    /// `Ok` when the change is legal, else the error naming both ends.
    pub fn check_transition(self, to: ScanStatus) -> Result<(), IllegalTransition> {
        if self.can_become(to) { Ok(()) } else { Err(IllegalTransition { from: self, to }) }
    }
}

/// One row of `scan_runs`: a request to measure one volume, and its fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRun {
    /// Primary key, also the `scan_id` of the resulting `volume_stats` row.
    pub scan_id: ScanId,
    /// The host whose workers run it.
    pub host: HostId,
    /// The volume measured (`scan_runs.volume_id`).
    pub volume: VolumeName,
    /// Set when the run came from a bulk or periodic trigger.
    pub batch_id: Option<BatchId>,
    /// What asked for it.
    pub trigger: Trigger,
    /// Where it is in its life.
    pub status: ScanStatus,
    /// 0–100; 100 only when completed.
    pub progress: u8,
    /// The engine that measured it; `None` until one is chosen.
    pub method: Option<ScanMethod>,
    /// Attempts started so far (0 while it waits for its first worker).
    pub attempt: u32,
    /// When it was accepted.
    pub queued_at: Timestamp,
    /// When the current or last attempt started.
    pub started_at: Option<Timestamp>,
    /// When it reached a final state.
    pub completed_at: Option<Timestamp>,
    /// Why the last attempt failed, or why the run was failed or canceled.
    pub error_message: Option<String>,
    /// Expected duration, from the volume's earlier scans; `None` when unknown.
    pub estimated_duration: Option<Duration>,
    /// A queued run is not claimed before this time (retry backoff); `None` means at once.
    pub not_before: Option<Timestamp>,
}

/// How an attempt ended; applied by `Repository::record_outcome`, which checks it with `ScanStatus::can_become`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Measured: the run becomes `completed` and its `volume_stats` row is written,
    /// both in one transaction.
    Completed {
        /// The measurement.
        usage: Usage,
        /// The engine that made it.
        method: ScanMethod,
        /// How long the engine took.
        duration: Duration,
    },
    /// Given up: the run becomes `failed` with this reason.
    Failed {
        /// Stored in `error_message`.
        reason: String,
    },
    /// The run becomes `canceled` (from `queued` or `running`).
    Canceled,
    /// The attempt failed and another follows: the run goes back to `queued`
    /// and is not claimed before `not_before`.
    Retry {
        /// Earliest time of the next attempt.
        not_before: Timestamp,
        /// Why this attempt failed, kept in `error_message`.
        reason: String,
    },
    /// Put back to `queued` as it was (shutdown); the attempt does not count.
    Requeue,
}

impl RunOutcome {
    /// The status the run takes.
    pub fn status(&self) -> ScanStatus {
        match self {
            RunOutcome::Completed { .. } => ScanStatus::Completed,
            RunOutcome::Failed { .. } => ScanStatus::Failed,
            RunOutcome::Canceled => ScanStatus::Canceled,
            RunOutcome::Retry { .. } | RunOutcome::Requeue => ScanStatus::Queued,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_transitions_are_legal() {
        use ScanStatus::*;
        let legal = [
            (Queued, Running),
            (Queued, Canceled),
            (Queued, Failed),
            (Running, Completed),
            (Running, Failed),
            (Running, Canceled),
            (Running, Queued),
        ];
        for &from in ScanStatus::ALL {
            for &to in ScanStatus::ALL {
                let expected = legal.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                assert_eq!(from.check_transition(to).is_ok(), expected);
            }
        }
    }

    #[test]
    fn enums_round_trip_through_text() {
        for &status in ScanStatus::ALL {
            assert_eq!(status.as_str().parse::<ScanStatus>(), Ok(status));
        }
        for &method in ScanMethod::ALL {
            assert_eq!(method.to_string().parse::<ScanMethod>(), Ok(method));
        }
        for &trigger in Trigger::ALL {
            assert_eq!(trigger.as_str().parse::<Trigger>(), Ok(trigger));
        }
        let err = "DU".parse::<ScanMethod>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown scan method \"DU\", expected one of: diskus, du, native"
        );
    }
}
