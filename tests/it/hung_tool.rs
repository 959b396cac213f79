//! A hung tool: a `diskus` placed first on `PATH` that never exits (it waits
//! on a background child of its own) must be killed, with its child, at
//! `SCAN_TIMEOUT_PER_VOLUME`; the run fails with reason `timeout`, no process
//! or zombie is left (checked in `/proc`), and the worker goes on to the next
//! run, which the same script hands to the real diskus.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use volscan_testing::TempDir;
use volscan_testing::docker::TestVolume;

use crate::support::{ServerProcess, du_bytes, everything_but, unique_prefix, which};

/// Processes whose command name is `name`, and zombie children of `parent`,
/// as `pid (comm) state`.
fn leftovers(name: &str, parent: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        let mut fields = tail.split_whitespace();
        let state = fields.next().unwrap_or("?");
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if head.ends_with(&format!("({name}")) || (state == "Z" && ppid == parent) {
            found.push(format!("{head}) {state}"));
        }
    }
    found
}

#[test]
fn a_diskus_that_never_exits_is_killed_at_the_timeout_and_the_worker_moves_on() {
    let prefix = unique_prefix("hang");
    let dir = TempDir::new("it-hung");
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    // A copy of sleep under a name no other process has, to find it in /proc.
    let sleeper_name = format!("vshang{}", &prefix[7..13]);
    let sleeper = bin.join(&sleeper_name);
    fs::copy(which("sleep"), &sleeper).unwrap();
    let real_diskus = which("diskus");
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in\n  *{prefix}hang*) {s} 3600 & {s} 3600 ;;\nesac\nexec {real} \"$@\"\n",
        s = sleeper.display(),
        real = real_diskus.display()
    );
    fs::write(bin.join("diskus"), script).unwrap();
    fs::set_permissions(bin.join("diskus"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    let hung = TestVolume::create_named(format!("{prefix}hang"), &[]);
    let next = TestVolume::create_named(format!("{prefix}next"), &[]);
    fs::write(next.mountpoint().join("data"), vec![b'n'; 70_000]).unwrap();
    let skip = everything_but(&prefix);
    let vars = [
        ("DATABASE_URL", &dir.sqlite_url() as &str),
        ("SCAN_ENABLED", "false"),
        ("SCAN_SKIP_PATTERN", &skip),
        ("SCAN_METHODS_ORDER", "diskus"),
        ("SCAN_CONCURRENCY", "1"),
        ("SCAN_TIMEOUT_PER_VOLUME", "3s"),
        ("PATH", &path),
    ];
    let server = ServerProcess::start(&vars, dir.path());
    let started = Instant::now();
    let first = server.trigger(hung.name());
    let second = server.trigger(next.name());

    // While it hangs, the script's two sleepers are there to be found.
    let deadline = Instant::now() + Duration::from_secs(15);
    while leftovers(&sleeper_name, server.pid()).len() < 2 {
        assert!(Instant::now() < deadline, "the hung diskus never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, _, queued) = server.call("GET", second["status_url"].as_str().unwrap());
    assert_eq!(queued["status"], "queued", "one worker: the next run waits: {queued}");

    let run = server.follow(first["status_url"].as_str().unwrap(), Duration::from_secs(30));
    let took = started.elapsed();
    eprintln!("hung diskus: run ended {took:?} after the trigger: {run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error_message"].as_str().unwrap().contains("timeout"), "{run}");
    assert_eq!(run["attempt"], 1, "a timeout is not retried: {run}");
    assert!(took >= Duration::from_secs(3), "killed before the timeout: {took:?}");
    assert!(took < Duration::from_secs(10), "killed long after the timeout: {took:?}");

    // Nothing left: no sleeper (the script's background child included), no zombie.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = leftovers(&sleeper_name, server.pid());
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind after the timeout: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The worker took the next run, and the real diskus measured it.
    let run = server.follow(second["status_url"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["method"], "diskus", "{run}");
    let (_, _, detail) = server.call("GET", &format!("/api/v1/volumes/{}", next.name()));
    assert_eq!(detail["latest"]["size_bytes"].as_u64(), Some(du_bytes(next.mountpoint())));
    assert!(leftovers(&sleeper_name, server.pid()).is_empty());
}
