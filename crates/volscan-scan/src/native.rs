//! `NativeEngine`: volscan's in-process parallel walker, the only method that
//! reports every `Usage` field, real progress, and stops promptly on cancel.
//!
//! How it walks:
//! - Every directory is opened relative to its parent's descriptor
//!   (`openat` with `O_NOFOLLOW`), listed with `getdents64` into a reused
//!   buffer, and each entry is measured with one `fstatat(AT_SYMLINK_NOFOLLOW)`
//!   relative to that descriptor. No path is ever re-resolved, so a directory
//!   renamed or swapped for a symlink mid-scan cannot lead the walk outside
//!   the root, and symlinks are never followed.
//! - Entries on another device than the root are skipped (like `du -x`).
//! - Hard-linked inodes (`nlink > 1`, not directories) are counted once, by
//!   (device, inode); only those inodes are remembered.
//! - Directories waiting to be read sit on one shared LIFO stack, so the walk
//!   is depth-first: open descriptors stay bounded by the tree's depth and
//!   memory by the directories pending, whatever the tree's size.
//! - A large directory is not left to one worker: while others wait for work,
//!   its reader hands them shares of `SHARE` listed entries to measure (one
//!   queued share per waiting worker at most).
//! - An entry that vanishes is skipped silently; one that cannot be read
//!   counts in `error_count`, and the walk goes on.
//! - The cancel token is checked before each directory and every 256 entries,
//!   which keeps the reaction well under 100 ms.
//! - A directory's descriptor stays open while any of its subdirectories
//!   waits to be read, so a deep tree with siblings at every level needs
//!   about one descriptor per level. The first scan therefore raises the
//!   process's soft `RLIMIT_NOFILE` to its hard limit (as the Go runtime
//!   does at start-up); past even that, the directories that cannot be
//!   opened count as errors and the scan is partial.
//! - Once the walk is widened (a cold cache), each directory's entries are
//!   measured in inode order (sorted in slices of `INODE_BATCH`), which keeps
//!   the inode-table reads close together (ext4 lists in hash order); on a
//!   warm cache they are measured as listed, since sorting only costs there.
//! - The walk starts as many workers as cores (at most its thread count) and
//!   starts the others once its stats turn out slow: at least `SLOW_TO_WIDEN`
//!   of the timed ones slower than `SLOW_STAT`, and at least one in
//!   `SLOW_SHARE`. On a cold cache more requests in flight pay off, on a warm
//!   one extra threads only contend, and are not even started (a thread
//!   costs about 0.1 ms to start and end, which a small volume feels). Every
//!   worker is a thread of its own at the engine's `Priority`; the caller
//!   only starts them and waits.
//! - `scan_with_dirs` walks the same way and also adds up each directory at
//!   depth 1 and 2 (`breakdown.rs`): once per directory read, never per entry,
//!   and not at all for a plain `scan`.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{CWD, Mode, OFlags, Stat};
use rustix::io::Errno;
use volscan_domain::{
    CancelToken, DirUsage, ScanContext, ScanEngine, ScanError, ScanMethod, Usage,
};

mod queue;
mod read;

use crate::breakdown::Breakdown;
use crate::priority::Priority;
use queue::{At, Pending, Queue};
use read::Scratch;

/// Worker threads at most, by default. Periodic scans usually meet a cold
/// page cache, where the walk waits on the disk and more requests in flight
/// than cores pay off; on a warm cache, threads beyond the cores only
/// contend. So a walk starts with as many workers as cores (at most this
/// many) and starts the rest only once its stats turn out slow (see `SLOW_SHARE`).
pub const DEFAULT_THREADS: usize = 8;

/// A stat taking this long came from the disk, not the cache (a cached one
/// takes a microsecond or two).
const SLOW_STAT: std::time::Duration = std::time::Duration::from_micros(20);

/// Slow stats the walk sees before it starts its extra workers: a few, so
/// that a stat delayed by the CPU scheduler now and then does not.
const SLOW_TO_WIDEN: u64 = 8;

/// ... and the share of the timed stats that must be slow: at least one in
/// this many. On this project's machine, a walk of a 1M-entry tree saw one
/// slow stat in about 130 on a cold cache, and one in about 2,200 on a warm
/// one (a thread preempted mid-stat), so a count alone widened warm walks
/// too, after some 50,000 entries.
const SLOW_SHARE: u64 = 512;

/// One stat in this many is timed while the walk is not yet widened: two
/// clock reads per entry would cost a warm walk about 3 %.
const TIME_EVERY: u64 = 4;

/// Size of each worker's `getdents64` buffer.
const DIRENT_BUFFER: usize = 32 * 1024;
/// Entries between two looks at the cancel token.
const CANCEL_CHECK_EVERY: u64 = 256;
/// Entries between two progress reports.
const PROGRESS_EVERY: u64 = 4096;

/// Most entries of one directory held at a time (and sorted, in inode
/// order): a larger directory is measured in slices of this many, so memory
/// stays bounded (about 64 bytes an entry) whatever the directory's size.
const INODE_BATCH: usize = 16_384;

/// Entries in a share of a large directory that its reader hands to a
/// waiting worker (see `At::Share`); a directory with fewer is never split.
const SHARE: usize = 1024;

/// The `native` method.
#[derive(Debug, Clone)]
pub struct NativeEngine {
    threads: usize,
    inode_order: bool,
    widened_from_start: bool,
    priority: Priority,
}

impl NativeEngine {
    /// A walker with `threads` worker threads at most (at least one),
    /// measuring each directory's entries in inode order once the cache is
    /// found cold.
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            inode_order: true,
            widened_from_start: false,
            priority: Priority::default(),
        }
    }

    /// Runs the walk's threads with `priority` (default: `Priority::GENTLE`).
    /// The thread that calls `scan` only waits for them and keeps its own.
    #[must_use]
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Measures each directory's entries in inode order once the walk finds
    /// the cache cold (the default), or always in the order the directory
    /// lists them. On ext4 the listing order is a hash order that scatters
    /// the inode-table reads of a cold cache; in inode order neighbouring
    /// inodes share a block read.
    #[must_use]
    pub fn inode_order(mut self, on: bool) -> Self {
        self.inode_order = on;
        self
    }

    /// Walks from the first directory as the walk does once it finds the
    /// cache cold: every worker takes work, and entries are measured in
    /// inode order (unless `inode_order(false)`). Off by default; for tests
    /// and benchmarks, which cannot count on a cold cache.
    #[must_use]
    pub fn widened_from_start(mut self, on: bool) -> Self {
        self.widened_from_start = on;
        self
    }

    /// The number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Default for NativeEngine {
    fn default() -> Self {
        Self::with_threads(DEFAULT_THREADS)
    }
}

impl ScanEngine for NativeEngine {
    fn method(&self) -> ScanMethod {
        ScanMethod::Native
    }

    fn availability(&self, _root: &Path) -> Result<(), ScanError> {
        Ok(())
    }

    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError> {
        self.walk(root, context, None)
    }

    fn scan_with_dirs(
        &self,
        root: &Path,
        context: &ScanContext<'_>,
    ) -> Result<(Usage, Option<Vec<DirUsage>>), ScanError> {
        let breakdown = Breakdown::default();
        let usage = self.walk(root, context, Some(&breakdown))?;
        Ok((usage, Some(breakdown.finish())))
    }
}

impl NativeEngine {
    /// Walks `root`; with `breakdown`, also adds up its depth-1 and depth-2 directories.
    fn walk(
        &self,
        root: &Path,
        context: &ScanContext<'_>,
        breakdown: Option<&Breakdown>,
    ) -> Result<Usage, ScanError> {
        raise_descriptor_limit();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let root_fd =
            rustix::fs::openat(CWD, root, flags, Mode::empty()).map_err(|errno| match errno {
                Errno::NOENT => ScanError::RootMissing { path: root.to_path_buf() },
                // The root, or a directory on the way to it, may not be entered.
                Errno::NOTDIR | Errno::LOOP => {
                    ScanError::NotADirectory { path: root.to_path_buf() }
                }
                Errno::ACCESS | Errno::PERM => {
                    ScanError::RootUnreadable { path: root.to_path_buf(), source: errno.into() }
                }
                other => ScanError::Io { path: root.to_path_buf(), source: other.into() },
            })?;
        let root_stat = rustix::fs::fstat(&root_fd)
            .map_err(|errno| ScanError::Io { path: root.to_path_buf(), source: errno.into() })?;

        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let walk = Walk {
            root_dev: root_stat.st_dev,
            inode_order: self.inode_order,
            widened: std::sync::atomic::AtomicBool::new(self.widened_from_start),
            slow: AtomicU64::new(0),
            timed: AtomicU64::new(0),
            queue: Mutex::new(Queue {
                pending: vec![Pending { at: At::Root(root_fd), owners: None }],
                active: 0,
                waiting: 0,
                shares: 0,
                stopped: false,
            }),
            ready: Condvar::new(),
            gate: Condvar::new(),
            links: Mutex::new(HashSet::new()),
            seen: AtomicU64::new(1),
            cancel: context.cancel,
            progress: context.progress,
            breakdown,
        };
        let mut totals = Totals::default();
        totals.add(&root_stat);
        totals.dirs += 1;
        let priority = self.priority;
        std::thread::scope(|scope| {
            // Every worker is a thread of its own, so that lowering its
            // priority never touches the caller (a runtime's pooled thread).
            let walk = &walk;
            let start = || {
                scope.spawn(move || {
                    priority.apply_to_current_thread();
                    walk.work()
                })
            };
            let base = cores.min(self.threads);
            let mut workers: Vec<_> = (0..base).map(|_| start()).collect();
            if self.threads > base && walk.wait_for_widening() {
                workers.extend((base..self.threads).map(|_| start()));
            }
            for helper in workers {
                // A worker only panics on a bug; its share is then missing and the
                // walk is reported as partial rather than silently complete.
                totals.merge(helper.join().unwrap_or(Totals { errors: 1, ..Totals::default() }));
            }
        });
        if let Some(reason) = context.cancel.reason() {
            return Err(ScanError::Canceled(reason));
        }
        (context.progress)(walk.seen.load(Ordering::Relaxed));
        Ok(Usage {
            size_bytes: totals.blocks.saturating_mul(512),
            apparent_bytes: Some(totals.apparent),
            file_count: Some(totals.files),
            dir_count: Some(totals.dirs),
            error_count: totals.errors,
        })
    }
}

/// Raises the soft limit on open descriptors to the hard limit, once per
/// process; should the kernel refuse, the limit stays as it was.
fn raise_descriptor_limit() {
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current.is_some() && limit.current != limit.maximum {
            // Under an unlimited hard limit the kernel still refuses more
            // than `fs.nr_open` (2^20 by default); if it refuses, the walk
            // simply has fewer descriptors.
            let target = limit.maximum.unwrap_or(1 << 20);
            let raised = rustix::process::Rlimit { current: Some(target), ..limit };
            let _ = setrlimit(Resource::Nofile, raised);
        }
    });
}

/// Counts from one worker, summed at the end.
#[derive(Default)]
struct Totals {
    blocks: u64,
    apparent: u64,
    files: u64,
    dirs: u64,
    errors: u64,
}

impl Totals {
    fn add(&mut self, stat: &Stat) {
        self.blocks += u64::try_from(stat.st_blocks).unwrap_or(0);
        self.apparent += u64::try_from(stat.st_size).unwrap_or(0);
    }

    fn merge(&mut self, other: Totals) {
        self.blocks += other.blocks;
        self.apparent += other.apparent;
        self.files += other.files;
        self.dirs += other.dirs;
        self.errors += other.errors;
    }
}

struct Walk<'a> {
    root_dev: u64,
    /// Measure entries in inode order (see `NativeEngine::inode_order`).
    inode_order: bool,
    /// Set once stats turned out slow (a cold cache): the caller then starts
    /// the rest of the workers.
    widened: std::sync::atomic::AtomicBool,
    /// Slow stats seen so far (counted until the walk is widened).
    slow: AtomicU64,
    /// Stats timed so far, added once per directory (until the walk is widened).
    timed: AtomicU64,
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Where the caller waits until the walk is widened or ends, to start
    /// the rest of the workers.
    gate: Condvar,
    /// (device, inode) of hard-linked files already counted.
    links: Mutex<HashSet<(u64, u64)>>,
    /// Entries seen so far, for progress.
    seen: AtomicU64,
    cancel: &'a CancelToken,
    progress: &'a (dyn Fn(u64) + Sync),
    /// Where the directories at depth 1 and 2 are added up, when asked.
    breakdown: Option<&'a Breakdown>,
}

/// Locks a mutex, ignoring poisoning: the data behind these locks stays
/// consistent even if a worker panicked mid-walk.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Walk<'_> {
    /// One worker: takes directories until none are left or the walk stops.
    fn work(&self) -> Totals {
        let mut totals = Totals::default();
        let mut scratch = Scratch {
            buffer: vec![MaybeUninit::<u8>::uninit(); DIRENT_BUFFER],
            batch: Vec::new(),
            names: Vec::new(),
        };
        let mut children = Vec::new();
        while let Some(Pending { at, owners }) = self.next() {
            let (blocks, files) = (totals.blocks, totals.files);
            self.read_directory(at, owners.as_ref(), &mut scratch, &mut totals, &mut children);
            if let Some(owners) = owners {
                // What this directory's entries added to the totals, hard links
                // included only where the totals counted them.
                owners.add(totals.blocks - blocks, totals.files - files);
            }
            self.done_with(&mut children);
        }
        totals
    }

    /// Whether this is the first time the hard-linked inode is seen.
    fn first_sight(&self, stat: &Stat) -> bool {
        lock(&self.links).insert((stat.st_dev, stat.st_ino))
    }
}
