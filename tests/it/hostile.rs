//! Hostile trees for every engine, beyond the conformance suite: a symlink
//! loop, a symlink to `/`, a mount inside the root, 100,000 files in one
//! directory, a FIFO and a socket, a directory removed while scans run, and
//! a deep tree under a low descriptor limit. Each scan must stay inside the
//! root (and on its filesystem), agree with `du`, and end: an in-process scan
//! that has not ended after a minute fails the test as hung. (Unreadable
//! entries, reported as errors and so `partial`, are in `engines.rs`.)

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use volscan_domain::{
    CancelToken, EngineChain, ScanContext, ScanEngine, ScanError, ScanMethod, Usage,
};
use volscan_scan::{DiskusEngine, DuEngine, NativeEngine};
use volscan_testing::TempDir;

use crate::support::du_bytes;

/// Longer than any of these scans takes on a loaded machine; reaching it means a hang.
const HANG: Duration = Duration::from_secs(60);

fn engines() -> Vec<Arc<dyn ScanEngine>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    assert!(
        volscan_scan::find_program("diskus", &path).is_some(),
        "diskus is not on PATH (scripts/test.sh installs it)"
    );
    vec![
        Arc::new(DiskusEngine::new(&path)),
        Arc::new(DuEngine::new(&path)),
        Arc::new(NativeEngine::with_threads(2)),
        // Entries measured in listing order instead of inode order.
        Arc::new(NativeEngine::with_threads(2).inode_order(false)),
    ]
}

/// Scans `root` on another thread, failing the test if it does not end within `HANG`.
fn scan_or_hang(engine: &Arc<dyn ScanEngine>, root: &Path) -> Result<Usage, ScanError> {
    let (sender, receiver) = mpsc::channel();
    let (scanner, root_owned) = (Arc::clone(engine), root.to_path_buf());
    std::thread::spawn(move || {
        let cancel = CancelToken::new();
        let result = scanner.scan(&root_owned, &ScanContext { cancel: &cancel, progress: &|_| {} });
        let _ = sender.send(result);
    });
    receiver
        .recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{} hung on {}", engine.method(), root.display()))
}

fn scan_ok(engine: &Arc<dyn ScanEngine>, root: &Path) -> Usage {
    scan_or_hang(engine, root)
        .unwrap_or_else(|err| panic!("{} failed on {}: {err}", engine.method(), root.display()))
}

/// Scans `root` with every engine: each must equal `du -sB1 -x` with no
/// errors, and native must count `(files, dirs)`.
#[track_caller]
fn every_engine_agrees_with_du(root: &Path, files_and_dirs: (u64, u64)) {
    let expected = du_bytes(root);
    for engine in engines() {
        let usage = scan_ok(&engine, root);
        assert_eq!(usage.size_bytes, expected, "{}", engine.method());
        assert_eq!(usage.error_count, 0, "{}", engine.method());
        if engine.method() == ScanMethod::Native {
            assert_eq!(
                (usage.file_count, usage.dir_count),
                (Some(files_and_dirs.0), Some(files_and_dirs.1))
            );
            assert_eq!(usage.apparent_bytes, Some(crate::support::du(&["-sb", "-x"], root)));
        }
    }
}

fn write(path: &Path, bytes: usize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, vec![b'h'; bytes]).unwrap();
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn symlink_loops_and_a_symlink_to_the_root_directory_are_not_followed() {
    let tree = TempDir::new("hostile-links");
    write(&tree.path().join("a/file"), 4096);
    symlink("/", tree.path().join("slash")).unwrap();
    symlink("..", tree.path().join("a/up")).unwrap();
    symlink(tree.path(), tree.path().join("a/self")).unwrap();
    symlink("loop", tree.path().join("loop")).unwrap();
    assert!(du_bytes(tree.path()) < 1024 * 1024, "du itself must not follow the links");
    // a/file and four symlinks; the root and a.
    every_engine_agrees_with_du(tree.path(), (5, 2));
}

/// A tmpfs mounted inside the root through a bind mount, unmounted on drop.
struct MountInside {
    source: TempDir,
    target: std::path::PathBuf,
}

impl MountInside {
    fn new(root: &Path) -> MountInside {
        let source = TempDir::new("hostile-tmpfs");
        let target = root.join("mounted");
        fs::create_dir_all(&target).unwrap();
        let source_path = source.path().to_str().unwrap().to_owned();
        run("mount", &["-t", "tmpfs", "-o", "size=16m", "volscan-test", &source_path]);
        let mount = MountInside { source, target };
        write(&mount.source.path().join("big"), 4 * 1024 * 1024);
        run("mount", &["--bind", &source_path, mount.target.to_str().unwrap()]);
        mount
    }
}

impl Drop for MountInside {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.target).status();
        let _ = Command::new("umount").arg(self.source.path()).status();
    }
}

#[test]
fn a_mount_inside_the_root_is_not_crossed_and_diskus_steps_aside() {
    let tree = TempDir::new("hostile-mount");
    write(&tree.path().join("own"), 8192);
    let _mount = MountInside::new(tree.path());
    let expected = du_bytes(tree.path());
    assert!(expected < 1024 * 1024, "du -x must stay off the mount: {expected}");
    for engine in engines() {
        match engine.method() {
            ScanMethod::Diskus => {
                // diskus cannot stay on one filesystem: it is unavailable here,
                // so the chain falls back to the next method.
                let err = engine.availability(tree.path()).unwrap_err();
                assert!(matches!(err, ScanError::Unavailable { .. }), "{err}");
                let chain = EngineChain::new(engines());
                assert_eq!(chain.select(tree.path()).unwrap().method(), ScanMethod::Du);
            }
            method => {
                let usage = scan_ok(&engine, tree.path());
                assert_eq!(
                    usage.size_bytes, expected,
                    "{method}: the mounted 4 MiB must not count"
                );
                assert_eq!(usage.error_count, 0, "{method}");
            }
        }
    }
}

#[test]
fn a_hundred_thousand_files_in_one_directory() {
    let tree = TempDir::new("hostile-wide");
    let wide = tree.path().join("wide");
    fs::create_dir(&wide).unwrap();
    for i in 0..100_000 {
        fs::File::create(wide.join(format!("f{i:06}"))).unwrap();
    }
    fs::write(wide.join("f000000"), b"some bytes").unwrap();
    every_engine_agrees_with_du(tree.path(), (100_000, 2));
}

#[test]
fn a_fifo_and_a_socket_are_counted_never_opened() {
    let tree = TempDir::new("hostile-special");
    write(&tree.path().join("file"), 100);
    // A FIFO nobody writes to: opening it for reading would block forever.
    run("mkfifo", &[tree.path().join("fifo").to_str().unwrap()]);
    let _listener = std::os::unix::net::UnixListener::bind(tree.path().join("socket")).unwrap();
    every_engine_agrees_with_du(tree.path(), (3, 1));
}

#[test]
fn a_directory_removed_while_it_is_scanned() {
    let tree = TempDir::new("hostile-removed");
    write(&tree.path().join("kept/file"), 50_000);
    let kept = du_bytes(&tree.path().join("kept"));
    for engine in engines() {
        let mut overlapped = 0;
        for round in 0..3 {
            let doomed = tree.path().join("doomed");
            for d in 0..100 {
                for f in 0..50 {
                    write(&doomed.join(format!("d{d}/sub/f{f}")), 10);
                }
            }
            let remover = std::thread::spawn({
                let doomed = doomed.clone();
                move || {
                    std::thread::sleep(Duration::from_millis(2 * round));
                    let started = Instant::now();
                    fs::remove_dir_all(&doomed).unwrap();
                    (started, Instant::now())
                }
            });
            let scan_started = Instant::now();
            let usage = scan_ok(&engine, tree.path());
            let scan_ended = Instant::now();
            let (removal_started, removal_ended) = remover.join().unwrap();
            if removal_started < scan_ended && removal_ended > scan_started {
                overlapped += 1;
            }
            assert_eq!(
                usage.error_count,
                0,
                "{}: a vanished entry is not an error",
                engine.method()
            );
            assert!(usage.size_bytes >= kept, "{}: {usage:?}", engine.method());
        }
        assert!(overlapped > 0, "{}: no removal overlapped a scan", engine.method());
        // Once it is gone, the totals equal du's again.
        assert_eq!(scan_ok(&engine, tree.path()).size_bytes, du_bytes(tree.path()));
    }
}

#[test]
fn a_deep_tree_with_siblings_at_every_level_is_walked_under_a_low_descriptor_limit() {
    // The native walk keeps a directory's descriptor open while any of its
    // subdirectories waits to be read, so this tree needs about one
    // descriptor per level: more than a soft limit of 128 allows.
    let tree = TempDir::new("hostile-deep");
    let mut level = tree.path().to_path_buf();
    for _ in 0..600 {
        for sibling in ["s1", "s2", "s3"] {
            write(&level.join(sibling).join("f"), 10);
        }
        level = level.join("d");
    }
    write(&level.join("bottom"), 10);
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -S -n 128 && exec \"$0\" scan \"$1\" --method native --json")
        .arg(crate::support::SERVER)
        .arg(tree.path())
        .output()
        .unwrap();
    let (stdout, stderr) = crate::support::text(&output);
    assert!(output.status.success(), "{stderr}");
    let usage: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(usage["error_count"], 0, "{stdout}");
    assert_eq!(usage["size_bytes"], du_bytes(tree.path()), "{stdout}");
    assert_eq!(usage["dir_count"], 1 + 600 * 4, "{stdout}");
}
