//! The nouns and ports of volscan, free of IO.
//!
//! This crate says what a volume, a scan run and a measured `Usage` are, which
//! state changes a run may make, and which traits the adapters implement
//! (`ScanEngine`, `Repository`, `VolumeSource`). It depends on no database,
//! HTTP or async runtime crate and touches neither the file system nor the
//! network; `xtask`'s tidy tests check that.

mod ids;
mod name;
mod ports;
mod run;
mod usage;
mod volume;

pub use ids::{BatchId, ScanId};
pub use name::{InvalidVolumeName, VolumeName};
pub use ports::{
    BoxError, CancelReason, CancelToken, EngineChain, Enqueued, NewScanRun, RepoError, Repository,
    RunFilter, RunOutcome, ScanContext, ScanEngine, ScanError, SourceError, SourceEvent,
    StatusCounts, VolumeSource, VolumeUsers,
};
pub use run::{IllegalTransition, ParseEnumError, ScanMethod, ScanRun, ScanStatus, Trigger};
pub use usage::{Usage, VolumeStat};
pub use volume::{DiscoveredVolume, Volume, VolumeKind};

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
