//! volscan's scheduler: when to scan what, and the concurrency that does it.
//!
//! It owns a durable queue (the repository's `scan_runs` table), a pool of
//! workers, periodic runs with a shared cooldown, jittered retries, a
//! per-volume timeout, cancel, progress, the source's events, reconciles and
//! retention (SPEC §4). It sees engines, storage and volumes only through the
//! domain's ports (`EngineChain`, `dyn Repository`, `dyn VolumeSource`), and
//! it depends on neither actix-web nor docker-api, so another service can
//! embed it (`examples/embed.rs`).
//!
//! Threading: the scheduler runs on the caller's tokio runtime; every port
//! call goes through `spawn_blocking`.

mod capacity;
mod clock;
mod error;
pub mod metrics;
mod options;
pub mod policy;
mod running;
mod scheduler;
mod series;
mod static_source;
mod status;

pub use clock::{Clock, SystemClock, TokioClock};
pub use error::SchedulerError;
pub use options::{RetentionOptions, SchedulerOptions};
pub use scheduler::{SchedulerBuilder, SchedulerHandle, Targets};
pub use static_source::StaticSource;
pub use status::{BatchSummary, HealthState, SchedulerHealth, SchedulerStatus};

#[cfg(test)]
mod tests;
