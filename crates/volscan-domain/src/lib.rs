//! The nouns and ports of volscan, free of IO.
//!
//! This crate says what a volume, a scan run and a measured `Usage` are, which
//! state changes a run may make (`run.rs`), and which ports the adapters
//! implement, one module each: scan engines and their chain (`engine.rs`),
//! the repository (`repository.rs`, `ReadRepository` for readers and
//! `Repository` for the scheduler's writes), the volume source (`source.rs`),
//! and the cancellation flag they share (`cancel.rs`); hosts sharing one
//! database and their liveness are `host.rs`. Ports block and take
//! the current time as an argument. It depends on no database,
//! HTTP or async runtime crate and touches neither the file system nor the
//! network; `xtask`'s tidy tests check that.

mod cancel;
mod dirs;
mod engine;
mod filesystem;
mod growth;
mod host;
mod ids;
mod name;
mod repository;
mod run;
mod source;
mod usage;
mod volume;

pub use cancel::{CancelReason, CancelToken};
pub use dirs::{DIR_LIMIT, DirUsage, OTHER, escape_component, keep_largest};
pub use engine::{EngineChain, ScanContext, ScanEngine, ScanError};
pub use filesystem::{FilesystemProbe, FilesystemSample, ProbeError};
pub use growth::{
    FLAT_FRACTION_PER_DAY, FLAT_MIN_BYTES_PER_DAY, FORECAST_WINDOW, Forecast, Growth, LinearFit,
    MIN_FORECAST_POINTS, MIN_FORECAST_SPAN, MIN_R_SQUARED, MIN_RATE_POINTS, MIN_RATE_SPAN,
    RATE_WINDOW, Trend, fit, forecast, growth,
};
pub use host::{
    HEARTBEAT_EVERY, Host, HostId, HostInfo, HostScope, InvalidHostId, Liveness, ONLINE_BEATS,
    STALE_BEATS,
};
pub use ids::{BatchId, ScanId};
pub use name::{InvalidVolumeName, VolumeName};
pub use repository::{
    Enqueued, NewScanRun, ReadRepository, RepoError, Repository, RunFilter, ScanDetails, SizePoint,
    StatusCounts, WorkSignal,
};
pub use run::{
    IllegalTransition, ParseEnumError, RunOutcome, ScanMethod, ScanRun, ScanStatus, Trigger,
};
pub use source::{SourceError, SourceEvent, VolumeSource, VolumeUsers};
pub use usage::{Usage, VolumeStat};
pub use volume::{DiscoveredVolume, Volume, VolumeKind};

/// A boxed cause carried by an error variant.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A point in time, always in UTC.
pub type Timestamp = time::OffsetDateTime;

/// An error and its causes as one line, `outer: inner: …`, for logs and
/// stored failure reasons.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
