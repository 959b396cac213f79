//! Reading one directory for the native walk: listing it with `getdents64`
//! into the worker's buffer, measuring each entry with one `fstatat`
//! relative to the directory's descriptor (in inode order, in slices of
//! `INODE_BATCH`, unless the engine says listing order), counting slow
//! stats towards widening the walk, and queuing the subdirectories.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
use rustix::io::Errno;

use super::{
    At, CANCEL_CHECK_EVERY, INODE_BATCH, PROGRESS_EVERY, Pending, SLOW_STAT, SLOW_TO_WIDEN, Totals,
    Walk,
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

/// The directory being read and where its entries go.
struct Listing<'a> {
    fd: &'a Arc<OwnedFd>,
    owners: Option<&'a Arc<Owners>>,
    totals: &'a mut Totals,
    children: &'a mut Vec<Pending>,
    /// Entries measured so far.
    seen: u64,
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
        let mut listing = Listing { fd: &fd, owners, totals, children, seen: 0 };
        batch.clear();
        names.clear();
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
            if !self.inode_order {
                if !self.measure(&mut listing, name) {
                    complete = false;
                    break;
                }
                continue;
            }
            let start = names.len();
            names.extend_from_slice(name.to_bytes_with_nul());
            batch.push((entry.ino(), start));
            if batch.len() == INODE_BATCH && !self.measure_batch(&mut listing, batch, names) {
                complete = false;
                break;
            }
        }
        if complete && !batch.is_empty() {
            self.measure_batch(&mut listing, batch, names);
        }
        let seen = listing.seen;
        let before = self.seen.fetch_add(seen, Ordering::Relaxed);
        if (before + seen) / PROGRESS_EVERY != before / PROGRESS_EVERY {
            (self.progress)(before + seen);
        }
    }

    /// Measures the listed entries of `batch` (inode, offset of the name in
    /// `names`) in inode order, then empties both; `false` when canceled.
    fn measure_batch(
        &self,
        listing: &mut Listing<'_>,
        batch: &mut Vec<(u64, usize)>,
        names: &mut Vec<u8>,
    ) -> bool {
        batch.sort_unstable_by_key(|&(ino, _)| ino);
        let mut going = true;
        for &(_, start) in batch.iter() {
            // Each name was copied with its terminating NUL and has no other.
            let Ok(name) = CStr::from_bytes_until_nul(&names[start..]) else { continue };
            if !self.measure(listing, name) {
                going = false;
                break;
            }
        }
        batch.clear();
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
        let started = std::time::Instant::now();
        let stat = rustix::fs::statat(&**listing.fd, name, AtFlags::SYMLINK_NOFOLLOW);
        if started.elapsed() >= SLOW_STAT
            && !self.widened.load(Ordering::Relaxed)
            && self.slow.fetch_add(1, Ordering::Relaxed) + 1 == SLOW_TO_WIDEN
        {
            self.widen();
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
}
