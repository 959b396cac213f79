//! The native walk's directory breakdown: which depth-1 and depth-2
//! directories (`Owners`) the entries of a directory being read count
//! towards, and their counters (`Slot`).
//!
//! A directory at depth 1 or 2 gets a `Slot` when its parent lists it,
//! starting with the directory's own blocks. Every directory waiting to be read
//! carries the `Owners` of its subtree: none for the root, its own slot for a
//! depth-1 directory, its parent's and its own for a depth-2 one, and its
//! parent's `Owners` (shared, not copied) below that. After a worker has read a
//! directory, what that directory added to the worker's totals (blocks and
//! files, hard links only where the totals counted them) is added to its
//! owners, with one atomic addition per owner: nothing is done per entry.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::fs::Stat;
use volscan_domain::{DIR_LIMIT, DirUsage, escape_component, keep_largest};

/// The counters of one directory at depth 1 or 2.
pub(crate) struct Slot {
    /// Relative to the root, escaped.
    path: String,
    depth: u8,
    /// 512-byte blocks of the subtree, the directory's own included.
    blocks: AtomicU64,
    /// Non-directory inodes of the subtree.
    files: AtomicU64,
}

/// The depth-1 and depth-2 directories a subtree counts towards.
pub(crate) struct Owners {
    depth1: Arc<Slot>,
    depth2: Option<Arc<Slot>>,
}

impl Owners {
    /// Adds what reading one directory of the subtree counted.
    pub(crate) fn add(&self, blocks: u64, files: u64) {
        for slot in std::iter::once(&self.depth1).chain(&self.depth2) {
            slot.blocks.fetch_add(blocks, Ordering::Relaxed);
            slot.files.fetch_add(files, Ordering::Relaxed);
        }
    }
}

/// Every slot of one walk, collected for the result.
#[derive(Default)]
pub(crate) struct Breakdown {
    slots: Mutex<Vec<Arc<Slot>>>,
}

impl Breakdown {
    /// The owners of the subdirectory `name` (whose stat is `stat`) of a
    /// directory whose owners are `parent` (`None` for the root).
    pub(crate) fn child(
        &self,
        parent: Option<&Arc<Owners>>,
        name: &CStr,
        stat: &Stat,
    ) -> Arc<Owners> {
        let new_slot = |path: String, depth: u8| {
            let slot = Arc::new(Slot {
                path,
                depth,
                blocks: AtomicU64::new(u64::try_from(stat.st_blocks).unwrap_or(0)),
                files: AtomicU64::new(0),
            });
            self.slots.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&slot));
            slot
        };
        match parent {
            None => {
                let depth1 = new_slot(escape_component(name.to_bytes()), 1);
                Arc::new(Owners { depth1, depth2: None })
            }
            Some(parent) if parent.depth2.is_none() => {
                let path = format!("{}/{}", parent.depth1.path, escape_component(name.to_bytes()));
                let depth2 = Some(new_slot(path, 2));
                Arc::new(Owners { depth1: Arc::clone(&parent.depth1), depth2 })
            }
            Some(parent) => Arc::clone(parent),
        }
    }

    /// The directories, trimmed by `keep_largest(…, DIR_LIMIT)`.
    pub(crate) fn finish(self) -> Vec<DirUsage> {
        let slots = self.slots.into_inner().unwrap_or_else(PoisonError::into_inner);
        let dirs = slots
            .iter()
            .map(|slot| DirUsage {
                path: slot.path.clone(),
                depth: slot.depth,
                size_bytes: slot.blocks.load(Ordering::Relaxed).saturating_mul(512),
                file_count: Some(slot.files.load(Ordering::Relaxed)),
            })
            .collect();
        keep_largest(dirs, DIR_LIMIT)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::process::Command;

    use volscan_domain::{OTHER, Usage};
    use volscan_testing::TempDir;

    use super::*;
    use crate::NativeEngine;
    use crate::tool::testing;

    fn write(path: &Path, bytes: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; bytes]).unwrap();
    }

    /// `du -sB1 -x DIR`, run on its own.
    fn du_alone(dir: &Path) -> u64 {
        let out = Command::new("du").args(["-sB1", "-x", "--"]).arg(dir).output().unwrap();
        assert!(out.status.success(), "du {}: {:?}", dir.display(), out);
        String::from_utf8_lossy(&out.stdout).split('\t').next().unwrap().parse().unwrap()
    }

    /// The native breakdown of `root`: the usage, the directories by path, and
    /// the `OTHER` rows.
    fn native(threads: usize, root: &Path) -> (Usage, HashMap<String, DirUsage>, Vec<DirUsage>) {
        let engine = NativeEngine::with_threads(threads);
        let (usage, dirs) = testing::scan_with_dirs(&engine, root).unwrap();
        let plain = testing::scan(&engine, root).unwrap();
        assert_eq!(usage, plain, "scan_with_dirs measures what scan does");
        let (other, dirs): (Vec<_>, Vec<_>) =
            dirs.unwrap().into_iter().partition(|d| d.path == OTHER);
        let by_path: HashMap<_, _> = dirs.iter().map(|d| (d.path.clone(), d.clone())).collect();
        assert_eq!(by_path.len(), dirs.len(), "paths are unique: {dirs:?}");
        (usage, by_path, other)
    }

    #[test]
    fn each_directory_matches_du_of_that_directory() {
        let tree = TempDir::new("breakdown-du");
        let root = tree.path();
        write(&root.join("top"), 3000);
        write(&root.join("a/f1"), 10_000);
        write(&root.join("a/b/f2"), 5000);
        write(&root.join("a/b/c/d/deep"), 70_000);
        write(&root.join("a/e/f3"), 1);
        std::fs::create_dir_all(root.join("empty/inner")).unwrap();
        write(&root.join("x/y/z"), 4096);
        // A hard link inside one directory: one inode, counted once.
        write(&root.join("a/b/linked"), 40_000);
        std::fs::hard_link(root.join("a/b/linked"), root.join("a/b/link2")).unwrap();
        std::fs::hard_link(root.join("a/b/linked"), root.join("a/b/c/link3")).unwrap();
        for threads in [1, 3] {
            let (usage, dirs, other) = native(threads, root);
            assert_eq!(other, []);
            assert_eq!(usage.size_bytes, du_alone(root));
            let expected = [
                ("a", 1, 5),
                ("a/b", 2, 3),
                ("a/e", 2, 1),
                ("empty", 1, 0),
                ("empty/inner", 2, 0),
                ("x", 1, 1),
                ("x/y", 2, 1),
            ];
            assert_eq!(dirs.len(), expected.len(), "{dirs:?}");
            for (path, depth, files) in expected {
                let dir = &dirs[path];
                assert_eq!(dir.depth, depth, "{path}");
                assert_eq!(dir.size_bytes, du_alone(&root.join(path)), "{path} vs du -sB1 -x");
                assert_eq!(dir.file_count, Some(files), "{path}: file count");
            }
            // A depth-1 directory holds its depth-2 ones, and more.
            assert!(dirs["a"].size_bytes > dirs["a/b"].size_bytes + dirs["a/e"].size_bytes);
            // Everything but the root itself and its files lies in a depth-1 directory.
            let root_own = du_alone(root)
                - ["a", "empty", "x"].iter().map(|p| dirs[*p].size_bytes).sum::<u64>();
            let top = std::fs::metadata(root.join("top")).unwrap();
            let root_dir = std::fs::symlink_metadata(root).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(root_own, (top.blocks() + root_dir.blocks()) * 512);
        }
    }

    #[test]
    fn a_hard_link_across_directories_counts_once_where_the_walk_met_it() {
        let tree = TempDir::new("breakdown-links");
        let root = tree.path();
        write(&root.join("p/q/shared"), 64 * 1024);
        std::fs::create_dir_all(root.join("r/s")).unwrap();
        std::fs::hard_link(root.join("p/q/shared"), root.join("r/s/shared")).unwrap();
        let (usage, dirs, _) = native(2, root);
        assert_eq!(usage.file_count, Some(1));
        let files = |path: &str| dirs[path].file_count.unwrap();
        assert_eq!(files("p") + files("r"), 1);
        assert_eq!(files("p/q") + files("r/s"), 1);
        assert_eq!((files("p"), files("r")), (files("p/q"), files("r/s")));
        let holder = if files("p") == 1 { "p" } else { "r" };
        assert_eq!(dirs[holder].size_bytes, du_alone(&root.join(holder)));
        let sizes: u64 = ["p", "r"].iter().map(|p| dirs[*p].size_bytes).sum();
        assert!(sizes < du_alone(&root.join("p")) + du_alone(&root.join("r")));
    }

    #[test]
    fn odd_names_are_escaped_never_dropped() {
        let tree = TempDir::new("breakdown-names");
        let root = tree.path();
        write(&root.join("new\nline/in\\side/f"), 100);
        write(
            &root.join(OsStr::from_bytes(b"caf\xe9")).join(OsStr::from_bytes(b"\xff")).join("f"),
            100,
        );
        write(&root.join("(other)/f"), 100);
        let (_, dirs, _) = native(2, root);
        let mut paths: Vec<&str> = dirs.keys().map(String::as_str).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "\\x28other)",
                "caf\\xE9",
                "caf\\xE9/\\xFF",
                "new\\x0Aline",
                "new\\x0Aline/in\\\\side",
            ]
        );
        assert_eq!(
            dirs["new\\x0Aline/in\\\\side"].size_bytes,
            du_alone(&root.join("new\nline/in\\side"))
        );
    }

    #[test]
    fn more_than_the_limit_are_summed_into_other() {
        let tree = TempDir::new("breakdown-many");
        let root = tree.path();
        for i in 0..130 {
            write(&root.join(format!("d{i:03}/sub/f")), (i + 1) * 4096);
        }
        let (usage, dirs, other) = native(2, root);
        let depth1: Vec<&DirUsage> = dirs.values().filter(|d| d.depth == 1).collect();
        let depth2: Vec<&DirUsage> = dirs.values().filter(|d| d.depth == 2).collect();
        assert_eq!((depth1.len(), depth2.len()), (DIR_LIMIT, DIR_LIMIT));
        assert_eq!(
            other.iter().map(|d| (d.depth, d.file_count)).collect::<Vec<_>>(),
            [(1, Some(30)), (2, Some(30))]
        );
        assert!(
            !dirs.contains_key("d029") && dirs.contains_key("d030"),
            "d000..d029 are the smallest"
        );
        assert_eq!(
            other[0].size_bytes,
            (0..30).map(|i| du_alone(&root.join(format!("d{i:03}")))).sum()
        );
        let all_depth1 = depth1.iter().map(|d| d.size_bytes).sum::<u64>() + other[0].size_bytes;
        let root_dir = std::fs::symlink_metadata(root).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(usage.size_bytes, du_alone(root));
        assert_eq!(
            usage.size_bytes - all_depth1,
            root_dir.blocks() * 512,
            "all but the root's own"
        );
    }
}
