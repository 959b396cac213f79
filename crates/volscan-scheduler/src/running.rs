//! The runs this process is measuring, and the claims in flight.
//!
//! A worker's claim (a database write on a blocking thread) and its
//! registration here happen on the same thread, with nothing in between that
//! can be aborted: once the claim has committed, the run is registered even if
//! the worker's task was aborted meanwhile. A cancel that finds a `running`
//! run not registered yet leaves a mark (`cancel_unclaimed`) under the same
//! lock, so the registration that follows starts with its token already
//! canceled. Together these close the window between a claim and its
//! registration that a cancel or a stop could otherwise fall into.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use volscan_domain::{CancelReason, CancelToken, ScanId};

/// How many cancel marks are kept for runs that never get registered here
/// (a run another process settled, say); the oldest are forgotten first.
const MAX_MARKS: usize = 1024;

/// Locks a mutex, ignoring poisoning: every critical section leaves its data
/// consistent, so a panic elsewhere does not make it unusable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A run a worker of this process is measuring.
#[derive(Clone)]
pub(crate) struct LiveScan {
    /// Stops the scan.
    pub token: CancelToken,
    /// Notified once the run's outcome is written.
    pub settled: Arc<Notify>,
}

#[derive(Default)]
struct Scans {
    live: HashMap<ScanId, LiveScan>,
    /// Claims whose database call has not returned yet.
    claiming: usize,
    /// Runs canceled while claimed but not registered, with the reason.
    marks: HashMap<ScanId, CancelReason>,
    mark_order: VecDeque<ScanId>,
    /// Set by a stop: every registration from now on starts canceled.
    stopping: Option<CancelReason>,
}

/// What a cancel finds for a run.
pub(crate) enum Lookup {
    /// A worker here is measuring it.
    Live(LiveScan),
    /// Nobody here measures it now; a registration that comes later starts
    /// canceled.
    Marked,
}

/// The registry of live scans and claims in flight.
#[derive(Default)]
pub(crate) struct Running {
    scans: Mutex<Scans>,
}

/// A claim in flight; dropping it ends the claim.
pub(crate) struct Claim<'a> {
    running: &'a Running,
    done: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.running.scans).claiming -= 1;
        }
    }
}

impl Running {
    /// Starts a claim (call `register` with its result, or drop it), or
    /// `None` while stopping: no new run is claimed then.
    pub fn begin_claim(&self) -> Option<Claim<'_>> {
        let mut scans = lock(&self.scans);
        if scans.stopping.is_some() {
            return None;
        }
        scans.claiming += 1;
        Some(Claim { running: self, done: false })
    }

    /// Registers a claimed run and ends the claim in one step. The token
    /// starts canceled when a cancel or a stop came first.
    pub fn register(&self, mut claim: Claim<'_>, scan_id: ScanId) -> CancelToken {
        let token = CancelToken::new();
        let mut scans = lock(&self.scans);
        scans.claiming -= 1;
        claim.done = true;
        if let Some(reason) = scans.marks.remove(&scan_id) {
            token.cancel(reason);
        }
        if let Some(reason) = scans.stopping {
            token.cancel(reason);
        }
        scans
            .live
            .insert(scan_id, LiveScan { token: token.clone(), settled: Arc::new(Notify::new()) });
        token
    }

    /// For a cancel: the live scan, or a mark that cancels a registration to come.
    pub fn lookup_or_mark(&self, scan_id: ScanId, reason: CancelReason) -> Lookup {
        let mut scans = lock(&self.scans);
        if let Some(scan) = scans.live.get(&scan_id) {
            return Lookup::Live(scan.clone());
        }
        if scans.marks.insert(scan_id, reason).is_none() {
            scans.mark_order.push_back(scan_id);
        }
        while scans.mark_order.len() > MAX_MARKS {
            if let Some(old) = scans.mark_order.pop_front() {
                scans.marks.remove(&old);
            }
        }
        Lookup::Marked
    }

    /// Forgets a run once its outcome is written, waking anyone waiting on it.
    pub fn unregister(&self, scan_id: ScanId) {
        let mut scans = lock(&self.scans);
        if let Some(scan) = scans.live.remove(&scan_id) {
            scan.settled.notify_waiters();
        }
    }

    /// Live scans now.
    pub fn len(&self) -> usize {
        lock(&self.scans).live.len()
    }

    /// Claims whose database call has not returned yet.
    pub fn claims_in_flight(&self) -> usize {
        lock(&self.scans).claiming
    }

    /// Cancels every live scan and every one registered from now on, until `resume`.
    pub fn stop_all(&self, reason: CancelReason) {
        let mut scans = lock(&self.scans);
        scans.stopping = Some(reason);
        for scan in scans.live.values() {
            scan.token.cancel(reason);
        }
    }

    /// Registrations start uncanceled again (after a stop, when starting).
    pub fn resume(&self) {
        lock(&self.scans).stopping = None;
    }

    /// Forgets every live scan, returning their ids (for a forced stop).
    pub fn drain(&self) -> Vec<ScanId> {
        let mut scans = lock(&self.scans);
        let drained: Vec<ScanId> = scans.live.keys().copied().collect();
        for (_, scan) in scans.live.drain() {
            scan.settled.notify_waiters();
        }
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_before_the_registration_cancels_the_token() {
        let running = Running::default();
        let id = ScanId::new();
        let claim = running.begin_claim().unwrap();
        assert_eq!(running.claims_in_flight(), 1);
        assert!(matches!(running.lookup_or_mark(id, CancelReason::User), Lookup::Marked));
        let token = running.register(claim, id);
        assert_eq!(token.reason(), Some(CancelReason::User));
        assert_eq!(running.claims_in_flight(), 0);
        assert!(matches!(running.lookup_or_mark(id, CancelReason::User), Lookup::Live(_)));
    }

    #[test]
    fn a_dropped_claim_ends_and_a_stop_cancels_claims_in_flight() {
        let running = Running::default();
        drop(running.begin_claim());
        assert_eq!(running.claims_in_flight(), 0);
        let claim = running.begin_claim().unwrap();
        running.stop_all(CancelReason::Shutdown);
        assert!(running.begin_claim().is_none(), "no new claim while stopping");
        let token = running.register(claim, ScanId::new());
        assert_eq!(token.reason(), Some(CancelReason::Shutdown));
        assert_eq!(running.drain().len(), 1);
        running.resume();
        let claim = running.begin_claim().unwrap();
        assert_eq!(running.register(claim, ScanId::new()).reason(), None);
    }
}
