//! Cancellation: the shared flag a running scan polls, and why it was set.
//!
//! The scheduler sets it (a user cancel, the timeout, a shutdown); engines and
//! the volume source's event watch read it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Why a scan was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// A user canceled the run.
    User,
    /// `SCAN_TIMEOUT_PER_VOLUME` ran out.
    Timeout,
    /// The scheduler is stopping; the run goes back to `queued`.
    Shutdown,
}

/// A shared flag an engine polls to stop early; cheap to clone.
///
/// The first reason set wins, so a timeout that races a user cancel is
/// reported as whichever came first.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicU8>);

impl CancelToken {
    /// A token nobody has canceled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the scan to stop for `reason`; later calls change nothing.
    pub fn cancel(&self, reason: CancelReason) {
        let code = match reason {
            CancelReason::User => 1,
            CancelReason::Timeout => 2,
            CancelReason::Shutdown => 3,
        };
        let _ = self.0.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the scan should stop, or `None` while it may go on.
    pub fn reason(&self) -> Option<CancelReason> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(CancelReason::User),
            2 => Some(CancelReason::Timeout),
            3 => Some(CancelReason::Shutdown),
            _ => None,
        }
    }

    /// Whether the scan should stop.
    pub fn is_canceled(&self) -> bool {
        self.reason().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_cancel_reason_wins() {
        let token = CancelToken::new();
        assert_eq!(token.reason(), None);
        let clone = token.clone();
        clone.cancel(CancelReason::Timeout);
        token.cancel(CancelReason::User);
        assert_eq!(token.reason(), Some(CancelReason::Timeout));
        assert!(token.is_canceled());
    }
}
