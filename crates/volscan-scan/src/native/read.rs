//! Reading one directory for the native walk: listing it with `getdents64`
//! into the worker's buffer, measuring each entry with one `fstatat`
//! relative to the directory's descriptor (in slices of `INODE_BATCH`, in
//! inode order once the walk is widened unless the engine says listing
//! order), handing shares of a large directory to waiting workers, counting
//! slow stats towards widening the walk, and queuing the subdirectories.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
use rustix::io::Errno;

use super::{
    At, CANCEL_CHECK_EVERY, INODE_BATCH, PROGRESS_EVERY, Pending, SHARE, SLOW_SHARE, SLOW_STAT,
    SLOW_TO_WIDEN, TIME_EVERY, Totals, Walk,
};
use crate::breakdown::Owners;

/// A worker's reused buffers: the `getdents64` buffer, and the entries of
/// the directory being read that wait to be measured in inode order
/// (inode, offset of the NUL-terminated name in `names`).
pub(super) struct Scratch {
    pub(super) buffer: Vec<MaybeUninit<u8>>,
    pub(super) batch: Vec<(u64, usize)>,
    pub(super) names: Vec<u8>,
}

/// The listed entries of the directory being read that wait to be measured
/// (a worker's `Scratch`), and whether to sort them by inode first.
struct Batch<'a> {
    entries: &'a mut Vec<(u64, usize)>,
    names: &'a mut Vec<u8>,
    sorted: bool,
}

/// The directory being read and where its entries go.
struct Listing<'a> {
    fd: &'a Arc<OwnedFd>,
    owners: Option<&'a Arc<Owners>>,
    totals: &'a mut Totals,
    children: &'a mut Vec<Pending>,
    /// Entries measured so far.
    seen: u64,
    /// Entries timed so far (not yet added to `Walk::timed`).
    timed: u64,
}

impl Walk<'_> {
    pub(super) fn read_directory(
        &self,
        directory: At,
        owners: Option<&Arc<Owners>>,
        scratch: &mut Scratch,
        totals: &mut Totals,
        children: &mut Vec<Pending>,
    ) {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match directory {
            At::Share { parent, names } => {
                let mut listing =
                    Listing { fd: &parent, owners, totals, children, seen: 0, timed: 0 };
                for name in names.split_inclusive(|&byte| byte == 0) {
                    // Each name was copied with its terminating NUL and has no other.
                    let Ok(name) = CStr::from_bytes_with_nul(name) else { continue };
                    if !self.measure(&mut listing, name) {
                        break;
                    }
                }
                self.count(&listing);
                return;
            }
            At::Root(fd) => fd,
            At::Child { parent, name } => {
                match rustix::fs::openat(&*parent, &name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    // Removed, or replaced by a non-directory, since it was listed.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return,
                    Err(_) => {
                        totals.errors += 1;
                        return;
                    }
                }
            }
        };
        let fd = Arc::new(fd);
        let Scratch { buffer, batch, names } = scratch;
        let mut listing = Listing { fd: &fd, owners, totals, children, seen: 0, timed: 0 };
        batch.clear();
        names.clear();
        // Inode order pays only on a cold cache (a widened walk); on a warm
        // one the sort is a cost of its own.
        let sorted = self.inode_order && self.widened.load(Ordering::Relaxed);
        let mut batch = Batch { entries: batch, names, sorted };
        let mut entries = RawDir::new(&*fd, buffer);
        let mut complete = true;
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                // The directory was removed after it was opened (Linux answers ENOENT
                // for a dead directory): it vanished, which is not an error.
                Err(Errno::NOENT) => break,
                Err(_) => {
                    listing.totals.errors += 1;
                    break;
                }
            };
            let name: &CStr = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let start = batch.names.len();
            batch.names.extend_from_slice(name.to_bytes_with_nul());
            batch.entries.push((entry.ino(), start));
            if batch.entries.len() == INODE_BATCH && !self.measure_batch(&mut listing, &mut batch) {
                complete = false;
                break;
            }
        }
        if complete && !batch.entries.is_empty() {
            self.measure_batch(&mut listing, &mut batch);
        }
        self.count(&listing);
    }

    /// Adds what `listing` timed and measured to the walk's counts, and
    /// reports progress when it crossed a multiple of `PROGRESS_EVERY`.
    fn count(&self, listing: &Listing<'_>) {
        if listing.timed > 0 {
            self.timed.fetch_add(listing.timed, Ordering::Relaxed);
        }
        let seen = listing.seen;
        let before = self.seen.fetch_add(seen, Ordering::Relaxed);
        if (before + seen) / PROGRESS_EVERY != before / PROGRESS_EVERY {
            (self.progress)(before + seen);
        }
    }

    /// Measures the listed entries of `batch` (in inode order if it is
    /// sorted), handing all but the last `SHARE` of them to waiting workers
    /// when there are any, then empties it; `false` when canceled.
    fn measure_batch(&self, listing: &mut Listing<'_>, batch: &mut Batch<'_>) -> bool {
        let Batch { entries, names, sorted } = batch;
        if *sorted {
            entries.sort_unstable_by_key(|&(ino, _)| ino);
        }
        // Each name was copied with its terminating NUL and has no other.
        let name_at = |start: usize| CStr::from_bytes_until_nul(&names[start..]).ok();
        let mut going = true;
        let mut shares = entries.chunks(SHARE).peekable();
        while let Some(share) = shares.next() {
            let handed = shares.peek().is_some()
                && self.share(listing.fd, listing.owners, || {
                    let mut copy = Vec::with_capacity(share.len() * 16);
                    for name in share.iter().filter_map(|&(_, start)| name_at(start)) {
                        copy.extend_from_slice(name.to_bytes_with_nul());
                    }
                    copy
                });
            if handed {
                continue;
            }
            for name in share.iter().filter_map(|&(_, start)| name_at(start)) {
                if !self.measure(listing, name) {
                    going = false;
                    break;
                }
            }
            if !going {
                break;
            }
        }
        entries.clear();
        names.clear();
        going
    }

    /// Measures one entry of the directory being read; `false` when the
    /// walk was canceled meanwhile.
    fn measure(&self, listing: &mut Listing<'_>, name: &CStr) -> bool {
        listing.seen += 1;
        if listing.seen.is_multiple_of(CANCEL_CHECK_EVERY) && self.cancel.is_canceled() {
            return false;
        }
        let totals = &mut *listing.totals;
        // One stat in `TIME_EVERY` is timed (each directory's first among
        // them), and none once the walk is widened: two clock reads per entry
        // would be a cost of their own on a warm cache.
        let timed = listing.seen % TIME_EVERY == 1 && !self.widened.load(Ordering::Relaxed);
        let started = timed.then(std::time::Instant::now);
        let stat = rustix::fs::statat(&**listing.fd, name, AtFlags::SYMLINK_NOFOLLOW);
        if let Some(started) = started {
            listing.timed += 1;
            if started.elapsed() >= SLOW_STAT {
                self.slow_stat(listing.timed);
            }
        }
        let stat = match stat {
            Ok(stat) => stat,
            Err(Errno::NOENT) => return true,
            Err(_) => {
                totals.errors += 1;
                return true;
            }
        };
        if stat.st_dev != self.root_dev {
            // Another filesystem mounted here: not ours to count (du -x).
            return true;
        }
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            totals.add(&stat);
            totals.dirs += 1;
            let owners =
                self.breakdown.map(|breakdown| breakdown.child(listing.owners, name, &stat));
            let at = At::Child { parent: Arc::clone(listing.fd), name: name.to_owned() };
            listing.children.push(Pending { at, owners });
        } else if stat.st_nlink <= 1 || self.first_sight(&stat) {
            totals.add(&stat);
            totals.files += 1;
        }
        true
    }

    /// Counts a slow stat, and widens the walk once enough of the timed
    /// ones were slow; `timed_here` are those of the directory being read.
    fn slow_stat(&self, timed_here: u64) {
        let slow = self.slow.fetch_add(1, Ordering::Relaxed) + 1;
        let timed = self.timed.load(Ordering::Relaxed) + timed_here;
        if slow >= SLOW_TO_WIDEN && slow.saturating_mul(SLOW_SHARE) >= timed {
            self.widen();
        }
    }
}
