//! The native walk's work distribution: the shared LIFO stack of
//! directories (and shares of large ones) waiting to be measured, how
//! workers take from it and wait on it, how a reader hands a share to a
//! waiting worker, and how the caller learns that the walk was widened.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use super::{Walk, lock};
use crate::breakdown::Owners;

/// A directory waiting to be read.
pub(super) struct Pending {
    pub(super) at: At,
    /// With a breakdown, the depth-1 and depth-2 directories its entries count
    /// towards (`None` for the root, and always without a breakdown).
    pub(super) owners: Option<Arc<Owners>>,
}

/// Where a directory waiting to be read is.
pub(super) enum At {
    /// The root, already open.
    Root(OwnedFd),
    /// `name` inside the directory open as `parent`.
    Child { parent: Arc<OwnedFd>, name: CString },
    /// Not a whole directory but a share of a large one's entries, listed by
    /// another worker and handed over while workers were idle: `names`
    /// (each NUL-terminated) inside the directory open as `parent`.
    Share { parent: Arc<OwnedFd>, names: Vec<u8> },
}

/// The stack and the workers' state, behind `Walk::queue`.
pub(super) struct Queue {
    /// What waits to be read; the last pushed is taken first (depth-first).
    pub(super) pending: Vec<Pending>,
    /// Workers currently reading a directory (which may add more).
    pub(super) active: usize,
    /// Started workers waiting for work.
    pub(super) waiting: usize,
    /// Shares in `pending`: a worker hands one over only while more workers
    /// wait than shares are queued, which bounds the names held in shares.
    pub(super) shares: usize,
    /// Set when the walk is finished or canceled.
    pub(super) stopped: bool,
}

impl Walk<'_> {
    /// The next directory to read, waiting for one while other workers may
    /// still add some; `None` once the walk is finished or canceled.
    pub(super) fn next(&self) -> Option<Pending> {
        let mut queue = lock(&self.queue);
        loop {
            if queue.stopped {
                return None;
            }
            if self.cancel.is_canceled() {
                self.stop(&mut queue);
                return None;
            }
            if let Some(directory) = queue.pending.pop() {
                queue.active += 1;
                if matches!(directory.at, At::Share { .. }) {
                    queue.shares -= 1;
                }
                return Some(directory);
            }
            if queue.active == 0 {
                self.stop(&mut queue);
                return None;
            }
            queue.waiting += 1;
            queue = self.ready.wait(queue).unwrap_or_else(PoisonError::into_inner);
            queue.waiting -= 1;
        }
    }

    /// Ends the walk: every worker, waiting or not, returns.
    fn stop(&self, queue: &mut Queue) {
        queue.stopped = true;
        self.ready.notify_all();
        self.gate.notify_all();
    }

    pub(super) fn done_with(&self, children: &mut Vec<Pending>) {
        let mut queue = lock(&self.queue);
        let added = children.len();
        queue.pending.append(children);
        queue.active -= 1;
        if added > 1 || queue.active == 0 {
            self.ready.notify_all();
        } else if added == 1 {
            self.ready.notify_one();
        }
    }

    /// Hands the entries `names` gives (NUL-terminated, in the directory
    /// open as `parent`) to a waiting worker as a share, if more workers wait
    /// than shares are queued; `false` (and `names` not called) otherwise.
    pub(super) fn share(
        &self,
        parent: &Arc<OwnedFd>,
        owners: Option<&Arc<Owners>>,
        names: impl FnOnce() -> Vec<u8>,
    ) -> bool {
        let mut queue = lock(&self.queue);
        if queue.stopped || queue.waiting <= queue.shares {
            return false;
        }
        let at = At::Share { parent: Arc::clone(parent), names: names() };
        queue.pending.push(Pending { at, owners: owners.cloned() });
        queue.shares += 1;
        self.ready.notify_one();
        true
    }

    /// Waits until the walk is widened (`true`) or has ended (`false`).
    pub(super) fn wait_for_widening(&self) -> bool {
        let mut queue = lock(&self.queue);
        loop {
            if queue.stopped {
                return false;
            }
            if self.widened.load(Ordering::Acquire) {
                return true;
            }
            queue = self.gate.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Tells the caller to start the rest of the workers: the cache is cold.
    pub(super) fn widen(&self) {
        if !self.widened.swap(true, Ordering::AcqRel) {
            let _queue = lock(&self.queue);
            self.gate.notify_all();
        }
    }
}
