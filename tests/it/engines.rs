//! The engine conformance suite (SPEC §1): every engine on the same generated
//! trees, checked against GNU `du` measured on the same tree.
//!
//! Every engine's `size_bytes` equals `du -sB1 -x`; the native engine's
//! `apparent_bytes` equals `du -sb -x` and its `file_count + dir_count`
//! equals `du -s -x --inodes`. The unreadable-directory case runs the real
//! binary as an unprivileged user (root ignores permissions). The directory
//! breakdown of native and du equals `du -sB1 -x` of each directory.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use volscan_domain::{CancelToken, DirUsage, OTHER, ScanContext, ScanEngine, ScanMethod, Usage};
use volscan_scan::{DiskusEngine, DuEngine, NativeEngine};
use volscan_testing::TempDir;

/// What `du` says about a tree.
#[derive(Debug)]
struct DuView {
    size_bytes: u64,
    apparent_bytes: u64,
    inodes: u64,
}

fn du_view(root: &Path) -> DuView {
    DuView {
        size_bytes: crate::support::du(&["-sB1", "-x"], root),
        apparent_bytes: crate::support::du(&["-sb", "-x"], root),
        inodes: crate::support::du(&["-s", "-x", "--inodes"], root),
    }
}

/// Every engine, real binaries included; diskus must be installed.
fn engines() -> Vec<Arc<dyn ScanEngine>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    assert!(
        volscan_scan::find_program("diskus", &path).is_some(),
        "diskus is not on PATH: install it with `cargo install --locked --root /usr/local diskus` \
         (scripts/test.sh does)"
    );
    vec![
        Arc::new(DiskusEngine::new(&path)),
        Arc::new(DuEngine::new(&path)),
        Arc::new(NativeEngine::with_threads(2)),
        // As on a cold cache: four workers from the start, entries in inode order.
        Arc::new(NativeEngine::with_threads(4).widened_from_start(true)),
        // Entries always measured in listing order.
        Arc::new(NativeEngine::with_threads(4).widened_from_start(true).inode_order(false)),
    ]
}

fn scan(engine: &dyn ScanEngine, root: &Path) -> Usage {
    let cancel = CancelToken::new();
    engine
        .scan(root, &ScanContext { cancel: &cancel, progress: &|_| {} })
        .unwrap_or_else(|err| panic!("{} failed on {}: {err}", engine.method(), root.display()))
}

/// Scans `root` with every engine and compares each result with `du`.
#[track_caller]
fn check_conformance(root: &Path) {
    let du = du_view(root);
    for engine in engines() {
        let usage = scan(&*engine, root);
        let method = engine.method();
        assert_eq!(usage.size_bytes, du.size_bytes, "{method}: size_bytes vs du -sB1 -x");
        assert_eq!(usage.error_count, 0, "{method}: error_count");
        if method == ScanMethod::Native {
            assert_eq!(
                usage.apparent_bytes,
                Some(du.apparent_bytes),
                "native: apparent_bytes vs du -sb -x"
            );
            assert_eq!(
                usage.entries(),
                Some(du.inodes),
                "native: file_count + dir_count vs du --inodes"
            );
        } else {
            assert_eq!(
                (usage.apparent_bytes, usage.file_count, usage.dir_count),
                (None, None, None),
                "{method}"
            );
        }
    }
}

fn write_file(path: &Path, bytes: usize) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let mut file = File::create(path).unwrap();
    file.write_all(&vec![b'x'; bytes]).unwrap();
}

#[test]
fn engines_agree_with_du_on_nested_directories() {
    let tree = TempDir::new("conf-nested");
    for (i, size) in [0, 1, 511, 4096, 10_000, 100_000].into_iter().enumerate() {
        write_file(&tree.path().join(format!("a/b{}/c/file{i}", i % 3)), size);
    }
    write_file(&tree.path().join("top"), 123);
    check_conformance(tree.path());
}

#[test]
fn engines_count_hard_links_once() {
    let tree = TempDir::new("conf-links");
    write_file(&tree.path().join("data/original"), 64 * 1024);
    fs::hard_link(tree.path().join("data/original"), tree.path().join("data/link1")).unwrap();
    fs::create_dir_all(tree.path().join("elsewhere")).unwrap();
    fs::hard_link(tree.path().join("data/original"), tree.path().join("elsewhere/link2")).unwrap();
    check_conformance(tree.path());
    let native = scan(&NativeEngine::with_threads(2), tree.path());
    assert_eq!(native.file_count, Some(1), "three names, one inode");
}

#[test]
fn engines_never_follow_symlinks() {
    let outside = TempDir::new("conf-outside");
    write_file(&outside.path().join("huge"), 1024 * 1024);
    let tree = TempDir::new("conf-symlinks");
    write_file(&tree.path().join("dir/file"), 5000);
    symlink("file", tree.path().join("dir/to-file")).unwrap();
    symlink("../dir", tree.path().join("to-dir")).unwrap();
    symlink("loop-b", tree.path().join("loop-a")).unwrap();
    symlink("loop-a", tree.path().join("loop-b")).unwrap();
    symlink(outside.path().join("huge"), tree.path().join("escape")).unwrap();
    symlink(outside.path(), tree.path().join("escape-dir")).unwrap();
    symlink("/nonexistent/dangling", tree.path().join("dangling")).unwrap();
    check_conformance(tree.path());
    let native = scan(&NativeEngine::with_threads(2), tree.path());
    assert!(native.size_bytes < 1024 * 1024, "the 1 MiB file outside the root must not count");
}

#[test]
fn engines_report_allocated_blocks_of_sparse_files() {
    let tree = TempDir::new("conf-sparse");
    let file = File::create(tree.path().join("sparse")).unwrap();
    file.set_len(256 * 1024 * 1024).unwrap();
    write_file(&tree.path().join("dense"), 8192);
    check_conformance(tree.path());
    let native = scan(&NativeEngine::with_threads(2), tree.path());
    assert!(native.apparent_bytes.unwrap() > 256 * 1024 * 1024);
    assert!(native.size_bytes < 1024 * 1024);
}

#[test]
fn engines_count_empty_directories_and_odd_names() {
    let tree = TempDir::new("conf-empty");
    for dir in ["e1", "e2/e3", "e2/e4/e5"] {
        fs::create_dir_all(tree.path().join(dir)).unwrap();
    }
    let latin1 = OsStr::from_bytes(b"caf\xe9-not-utf8");
    write_file(&tree.path().join(latin1), 777);
    write_file(&tree.path().join("with space and\nnewline"), 10);
    fs::create_dir_all(tree.path().join(OsStr::from_bytes(b"dir-\xff"))).unwrap();
    check_conformance(tree.path());
    let native = scan(&NativeEngine::with_threads(2), tree.path());
    assert_eq!((native.file_count, native.dir_count), (Some(2), Some(7)));
}

#[test]
fn engines_walk_a_chain_2000_directories_deep() {
    let tree = TempDir::new("conf-deep");
    // Built with relative steps, as the full path nears PATH_MAX.
    let status = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && i=0 && while [ $i -lt 2000 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done && echo leaf > leaf")
        .arg("sh")
        .arg(tree.path())
        .status()
        .unwrap();
    assert!(status.success());
    check_conformance(tree.path());
    let native = scan(&NativeEngine::with_threads(2), tree.path());
    assert_eq!((native.dir_count, native.file_count), (Some(2001), Some(1)));
}

#[test]
fn engines_finish_while_files_come_and_go() {
    let tree = TempDir::new("conf-churn");
    for i in 0..2000 {
        write_file(&tree.path().join(format!("stable/{}/f{i}", i % 20)), 100);
    }
    fs::create_dir_all(tree.path().join("churn")).unwrap();
    let stable = du_view(&tree.path().join("stable"));
    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let stop = Arc::clone(&stop);
        let dir = tree.path().join("churn");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = dir.join(format!("f{}", i % 50));
                if i.is_multiple_of(2) {
                    let _ = fs::write(&path, b"churn");
                } else {
                    let _ = fs::remove_file(&path);
                    let _ = fs::create_dir(dir.join(format!("d{}", i % 7)));
                    let _ = fs::remove_dir(dir.join(format!("d{}", (i + 3) % 7)));
                }
                i += 1;
            }
        })
    };
    for engine in engines() {
        for _ in 0..5 {
            let usage = scan(&*engine, tree.path());
            assert_eq!(
                usage.error_count,
                0,
                "{}: a vanished entry is not an error",
                engine.method()
            );
            assert!(usage.size_bytes >= stable.size_bytes, "{}", engine.method());
        }
    }
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
}

/// Directories inside a volume: native and du give the same directories at
/// depth 1 and 2, each of the size `du -sB1 -x` gives that directory alone,
/// with odd names escaped (never dropped); diskus gives none.
#[test]
fn directory_breakdowns_agree_with_du_of_each_directory() {
    let tree = TempDir::new("conf-dirs");
    let root = tree.path();
    write_file(&root.join("top"), 3000);
    write_file(&root.join("a/f"), 10_000);
    write_file(&root.join("a/b/f"), 5000);
    write_file(&root.join("a/b/c/d/deep"), 70_000);
    write_file(&root.join("a/b/linked"), 40_000);
    fs::hard_link(root.join("a/b/linked"), root.join("a/b/c/link2")).unwrap();
    fs::create_dir_all(root.join("a/empty")).unwrap();
    write_file(&root.join("new\nline/in\\side/f"), 4096);
    write_file(&root.join(OsStr::from_bytes(b"caf\xe9")).join(OsStr::from_bytes(b"\xff\xfe/f")), 1);
    write_file(&root.join("(other)/f"), 100);
    // A symlink to a directory counts as a file, and is not descended into.
    symlink("../a", root.join("a/to-a")).unwrap();
    // (escaped path, path on disk, depth, files below it)
    let expected: [(&str, &[u8], u8, u64); 8] = [
        ("a", b"a", 1, 5),
        ("a/b", b"a/b", 2, 3),
        ("a/empty", b"a/empty", 2, 0),
        ("new\\x0Aline", b"new\nline", 1, 1),
        ("new\\x0Aline/in\\\\side", b"new\nline/in\\side", 2, 1),
        ("caf\\xE9", b"caf\xe9", 1, 1),
        ("caf\\xE9/\\xFF\\xFE", b"caf\xe9/\xff\xfe", 2, 1),
        ("\\x28other)", b"(other)", 1, 1),
    ];
    let total = crate::support::du_bytes(root);
    let mut breakdowns = Vec::new();
    for engine in engines() {
        let method = engine.method();
        let cancel = CancelToken::new();
        let (usage, dirs) = engine
            .scan_with_dirs(root, &ScanContext { cancel: &cancel, progress: &|_| {} })
            .unwrap_or_else(|err| panic!("{method} failed: {err}"));
        assert_eq!(usage.size_bytes, total, "{method}: size_bytes vs du -sB1 -x");
        assert_eq!(usage, scan(&*engine, root), "{method}: the same usage as scan");
        if method == ScanMethod::Diskus {
            assert_eq!(dirs, None, "diskus cannot tell");
            continue;
        }
        let dirs = dirs.unwrap_or_else(|| panic!("{method}: no breakdown"));
        assert!(dirs.iter().all(|d| d.path != OTHER), "{method}: nothing to drop: {dirs:?}");
        let mut paths: Vec<&str> = dirs.iter().map(|d| d.path.as_str()).collect();
        paths.sort_unstable();
        let mut want: Vec<&str> = expected.iter().map(|(path, ..)| *path).collect();
        want.sort_unstable();
        assert_eq!(paths, want, "{method}: directories");
        for (path, on_disk, depth, files) in &expected {
            let dir: &DirUsage = dirs.iter().find(|d| d.path == *path).unwrap();
            let alone = crate::support::du_bytes(&root.join(OsStr::from_bytes(on_disk)));
            assert_eq!(dir.size_bytes, alone, "{method}: {path} vs du -sB1 -x of it alone");
            assert_eq!(dir.depth, *depth, "{method}: {path}");
            let want_files = (method == ScanMethod::Native).then_some(*files);
            assert_eq!(dir.file_count, want_files, "{method}: {path} file count");
        }
        breakdowns
            .push(dirs.into_iter().map(|d| (d.path, d.depth, d.size_bytes)).collect::<Vec<_>>());
    }
    assert_eq!(breakdowns.len(), 4);
    assert_eq!(breakdowns[0], breakdowns[1], "du and native list the same, in the same order");
    for other in &breakdowns[2..] {
        assert_eq!(&breakdowns[1], other, "any order of measuring gives the same");
    }
}

/// A directory of 20,000 entries (more than one inode-order slice, and
/// split into shares among the waiting workers): the same totals and
/// breakdown as `du`, with subdirectories and hard links inside it.
#[test]
fn engines_agree_with_du_on_a_directory_of_20000_entries() {
    let tree = TempDir::new("conf-large-dir");
    let root = tree.path();
    let big = root.join("big");
    fs::create_dir_all(&big).unwrap();
    for i in 0..19_900 {
        let path = big.join(format!("f{i:05}"));
        if i % 97 == 0 {
            write_file(&path, 5000 + i);
        } else {
            File::create(path).unwrap();
        }
    }
    for i in 0..50 {
        write_file(&big.join(format!("sub{i:02}/inside")), 4096 * (i % 3));
    }
    for i in 0..50 {
        // Hard links to files listed far apart, so likely measured in different shares.
        fs::hard_link(big.join(format!("f{:05}", i * 388)), big.join(format!("link{i:02}")))
            .unwrap();
    }
    write_file(&root.join("small/f"), 100);
    check_conformance(root);
    for engine in engines().into_iter().filter(|e| e.method() == ScanMethod::Native) {
        let cancel = CancelToken::new();
        let (usage, dirs) = engine
            .scan_with_dirs(root, &ScanContext { cancel: &cancel, progress: &|_| {} })
            .unwrap();
        assert_eq!(usage.file_count, Some(19_900 + 50 + 1), "hard links counted once");
        assert_eq!(usage.dir_count, Some(1 + 2 + 50));
        let dirs = dirs.unwrap();
        let find = |path: &str| dirs.iter().find(|d| d.path == path).unwrap();
        assert_eq!(find("big").size_bytes, crate::support::du_bytes(&big));
        assert_eq!(find("big").file_count, Some(19_950));
        assert_eq!(find("big/sub07").size_bytes, crate::support::du_bytes(&big.join("sub07")));
    }
}

/// Runs `command` as the unprivileged user `nobody`.
fn as_nobody(program: &Path, args: &[&OsStr]) -> std::process::Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program)
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .expect("setpriv (util-linux) is needed to drop privileges")
}

#[test]
fn unreadable_directories_count_as_errors_for_every_engine() {
    let tree = TempDir::new("conf-unreadable");
    fs::set_permissions(tree.path(), fs::Permissions::from_mode(0o755)).unwrap();
    write_file(&tree.path().join("open/readable"), 20_000);
    write_file(&tree.path().join("locked/hidden"), 50_000);
    fs::set_permissions(tree.path().join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    // The binary must be reachable by `nobody`; cargo's target dir may not be.
    let bin_dir = TempDir::new("conf-bin");
    fs::set_permissions(bin_dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let server = bin_dir.path().join("volscan-server");
    fs::copy(crate::support::SERVER, &server).unwrap();

    let du = as_nobody(
        Path::new("du"),
        &["-sB1".as_ref(), "-x".as_ref(), "--".as_ref(), tree.path().as_os_str()],
    );
    assert_eq!(du.status.code(), Some(1), "du as nobody must meet the unreadable directory");
    let expected: u64 =
        String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
    for method in ["diskus", "du", "native"] {
        let args: Vec<&OsStr> = vec![
            "scan".as_ref(),
            tree.path().as_os_str(),
            "--method".as_ref(),
            method.as_ref(),
            "--json".as_ref(),
        ];
        let output = as_nobody(&server, &args);
        let (stdout, stderr) = crate::support::text(&output);
        assert!(output.status.success(), "{method} as nobody: {stderr}");
        let usage: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(usage["size_bytes"], expected, "{method}: {stdout}");
        assert!(
            usage["error_count"].as_u64().unwrap() >= 1,
            "{method} must report the error: {stdout}"
        );
    }
    fs::set_permissions(tree.path().join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_missing_or_file_root_is_an_error_not_zero() {
    let tree = TempDir::new("conf-roots");
    write_file(&tree.path().join("file"), 10);
    for engine in engines() {
        let cancel = CancelToken::new();
        let context = ScanContext { cancel: &cancel, progress: &|_| {} };
        let missing: PathBuf = tree.path().join("missing");
        let err = engine.scan(&missing, &context).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{}: {err}", engine.method());
        let err = engine.scan(&tree.path().join("file"), &context).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{}: {err}", engine.method());
    }
}

/// Processes (alive or zombie) whose command name is `name`, as `pid (comm) state`.
fn processes_named(name: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        if head.ends_with(&format!("({name}")) {
            found.push(format!("{head}) {}", tail.split_whitespace().next().unwrap_or("?")));
        }
    }
    found
}

#[test]
fn cancel_stops_every_engine_promptly_and_leaves_no_process() {
    // Copies of the tools under names no other test uses, so that what is left
    // behind (alive or zombie) can be told apart from other tests' processes.
    let bin = TempDir::new("cancel-bin");
    let du_copy = bin.path().join("vs-cancel-du");
    let diskus_copy = bin.path().join("vs-cancel-dk");
    let path = std::env::var_os("PATH").unwrap_or_default();
    fs::copy(volscan_scan::find_program("du", &path).unwrap(), &du_copy).unwrap();
    fs::copy(volscan_scan::find_program("diskus", &path).expect("diskus on PATH"), &diskus_copy)
        .unwrap();
    let engines: Vec<Arc<dyn ScanEngine>> = vec![
        Arc::new(DiskusEngine::with_program(diskus_copy)),
        Arc::new(DuEngine::with_program(du_copy)),
        Arc::new(NativeEngine::with_threads(2)),
        // As on a cold cache: four workers from the start, entries in inode order.
        Arc::new(NativeEngine::with_threads(4).widened_from_start(true)),
        // Entries always measured in listing order.
        Arc::new(NativeEngine::with_threads(4).widened_from_start(true).inode_order(false)),
    ];
    // /usr is a large real tree (over 100,000 entries on a Debian machine).
    let root = Path::new("/usr");
    for engine in engines {
        let cancel = CancelToken::new();
        let stopped_at = std::sync::Mutex::new(None);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(30));
                *stopped_at.lock().unwrap() = Some(std::time::Instant::now());
                cancel.cancel(volscan_domain::CancelReason::User);
            });
            engine.scan(root, &ScanContext { cancel: &cancel, progress: &|_| {} })
        });
        let reaction = stopped_at.lock().unwrap().expect("the canceller ran").elapsed();
        eprintln!("{}: stopped {:?} after cancel", engine.method(), reaction);
        assert!(
            matches!(
                result,
                Err(volscan_domain::ScanError::Canceled(volscan_domain::CancelReason::User))
            ),
            "{}: {result:?}",
            engine.method()
        );
        assert!(reaction < std::time::Duration::from_secs(1), "{}: {reaction:?}", engine.method());
    }
    for name in ["vs-cancel-du", "vs-cancel-dk"] {
        let left = processes_named(name);
        assert!(left.is_empty(), "processes left behind: {left:?}");
    }
}
