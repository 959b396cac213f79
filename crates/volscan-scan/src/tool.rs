//! Running an external tool (`du`, `diskus`) so that it can always be stopped.
//!
//! The tool gets an argument vector, no stdin, the C locale (`LC_ALL=C`, so its
//! messages are the English ones the line filters match), and its own process
//! group. Tools are looked up in a search path the caller gives
//! ([`find_program`]); this crate never reads `PATH` itself. While
//! it runs, the caller's `CancelToken` is polled; when it is set, the whole
//! group is killed with SIGKILL and the tool is reaped, so neither a zombie nor
//! an orphan remains. Standard output is kept up to a limit the invocation sets
//! (a tool that prints more fails the attempt: its output is never cut
//! silently); standard error is counted by lines and its last few KiB are kept
//! for the error message.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use volscan_domain::{CancelToken, ScanError};

use crate::priority::Priority;

/// How much standard output a tool printing one line may print.
pub(crate) const MAX_STDOUT: usize = 64 * 1024;
/// How much of the end of a tool's standard error is kept.
const MAX_STDERR: usize = 4 * 1024;
/// How often a running tool's exit and the cancel flag are checked.
const POLL: Duration = Duration::from_millis(10);

/// What a tool left behind when it exited by itself.
#[derive(Debug)]
pub(crate) struct ToolOutput {
    pub status: ExitStatus,
    /// Standard output, whole (`run` fails when it exceeds the invocation's `max_stdout`).
    pub stdout: Vec<u8>,
    /// The last `MAX_STDERR` bytes of standard error.
    pub stderr_tail: String,
    /// Lines of standard error that `counts_as_error` accepted.
    pub error_lines: u64,
}

/// Decides whether one line of a tool's standard error reports an entry that
/// could not be read (as opposed to one that vanished during the scan).
pub(crate) type LineFilter = fn(&[u8]) -> bool;

/// How to run one tool.
pub(crate) struct Invocation<'a> {
    /// Its name, for errors.
    pub tool: &'static str,
    /// Its executable.
    pub program: &'a Path,
    /// Its arguments.
    pub args: &'a [&'a OsStr],
    /// Extra environment variables. `LC_ALL` is always `C`, whatever these say.
    pub env: &'a [(&'a str, &'a str)],
    /// Which standard error lines are errors.
    pub counts_as_error: LineFilter,
    /// The most standard output the tool may print (`MAX_STDOUT` for one line).
    pub max_stdout: usize,
    /// The CPU niceness and I/O class the tool runs with.
    pub priority: Priority,
}

/// The locale every tool runs in. du's messages are translated in other
/// locales, and `is_read_error` matches the English one of a vanished entry.
/// `LC_ALL` overrides `LANG` and every other `LC_*`, and in the C locale GNU
/// gettext ignores `LANGUAGE` too.
const TOOL_LOCALE: (&str, &str) = ("LC_ALL", "C");

/// Finds `program` as an executable file in the directories of `search_path`,
/// a `PATH`-style list (`/usr/local/bin:/usr/bin`) that the caller read.
///
/// Empty and relative entries are skipped: they would name the working
/// directory, and a scan must not run a `du` that happens to lie there.
pub fn find_program(program: &str, search_path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Runs the tool until it exits or `cancel` is set.
pub(crate) fn run(
    invocation: &Invocation<'_>,
    cancel: &CancelToken,
) -> Result<ToolOutput, ScanError> {
    let Invocation { tool, program, args, env, counts_as_error, max_stdout, priority } =
        *invocation;
    let mut command = Command::new(program);
    // SAFETY: the hook runs in the child between fork and exec and makes two
    // system calls (`Priority::apply_to_current_thread`): async-signal-safe,
    // no allocation, no lock.
    unsafe {
        command.pre_exec(move || {
            priority.apply_to_current_thread();
            Ok(())
        });
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .env(TOOL_LOCALE.0, TOOL_LOCALE.1)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that killing the group reaches anything it started.
        .process_group(0)
        .spawn()
        .map_err(|source| ScanError::Spawn { tool, source })?;
    let stdout = child.stdout.take().map(|pipe| thread::spawn(move || read_head(pipe, max_stdout)));
    let stderr =
        child.stderr.take().map(|pipe| thread::spawn(move || read_tail(pipe, counts_as_error)));

    let status = loop {
        if let Some(reason) = cancel.reason() {
            kill_group(&mut child);
            // The readers end once every process of the group has closed its pipes.
            join(stdout);
            join(stderr);
            return Err(ScanError::Canceled(reason));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => thread::sleep(POLL),
            Err(source) => {
                kill_group(&mut child);
                return Err(ScanError::Spawn { tool, source });
            }
        }
    };
    let (stdout, overflow) = join(stdout).unwrap_or_default();
    let (stderr_tail, error_lines) = join(stderr).unwrap_or_default();
    if overflow {
        return Err(ScanError::BadOutput {
            tool,
            output: format!(
                "more than {max_stdout} bytes on standard output, which is the most read"
            ),
        });
    }
    Ok(ToolOutput {
        status,
        stdout,
        stderr_tail: String::from_utf8_lossy(&stderr_tail).trim_end().to_owned(),
        error_lines,
    })
}

/// SIGKILL to the child's whole process group, then reap the child.
fn kill_group(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        // ESRCH (already gone) is fine: there is nothing left to kill.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.wait();
}

fn join<T: Default>(handle: Option<thread::JoinHandle<T>>) -> Option<T> {
    handle.map(|handle| handle.join().unwrap_or_default())
}

/// Reads a pipe to its end, keeping the first `limit` bytes; `true` when
/// there were more.
fn read_head(mut pipe: impl Read, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut overflow = false;
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        overflow |= n > room;
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    (kept, overflow)
}

/// Reads a pipe to its end, keeping the last `MAX_STDERR` bytes and counting
/// the lines `counts_as_error` accepts. A line longer than `MAX_STDERR` is
/// judged by its first `MAX_STDERR` bytes.
fn read_tail(mut pipe: impl Read, counts_as_error: LineFilter) -> (Vec<u8>, u64) {
    let mut kept: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut errors = 0;
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf) {
        if n == 0 {
            break;
        }
        for &byte in &buf[..n] {
            if byte == b'\n' {
                errors += u64::from(counts_as_error(&line));
                line.clear();
            } else if line.len() < MAX_STDERR {
                line.push(byte);
            }
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * MAX_STDERR {
            kept.drain(..kept.len() - MAX_STDERR);
        }
    }
    if !line.is_empty() {
        errors += u64::from(counts_as_error(&line));
    }
    if kept.len() > MAX_STDERR {
        kept.drain(..kept.len() - MAX_STDERR);
    }
    (kept, errors)
}

/// Parses the leading decimal number of a tool's output (`12345\t/path`).
pub(crate) fn leading_number(tool: &'static str, output: &[u8]) -> Result<u64, ScanError> {
    let output = String::from_utf8_lossy(output);
    let digits: &str =
        output.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
    digits
        .parse()
        .map_err(|_| ScanError::BadOutput { tool, output: output.chars().take(200).collect() })
}

/// Checks that `root` is an existing directory, without following a symlink,
/// that this process may list (open and read it) and enter (stat an entry).
/// The tools report only the root's own size for a root they cannot read, and
/// du and diskus still print a number: that must fail the attempt instead.
pub(crate) fn check_root(root: &Path) -> Result<(), ScanError> {
    let unreadable = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            ScanError::RootUnreadable { path: root.to_path_buf(), source }
        } else {
            ScanError::Io { path: root.to_path_buf(), source }
        }
    };
    match std::fs::symlink_metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(ScanError::NotADirectory { path: root.to_path_buf() }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ScanError::RootMissing { path: root.to_path_buf() });
        }
        Err(source) => return Err(unreadable(source)),
    }
    let mut entries = std::fs::read_dir(root).map_err(unreadable)?;
    // Entering the root (search permission) is needed to stat what it holds.
    if let Some(Ok(entry)) = entries.next() {
        match std::fs::symlink_metadata(entry.path()) {
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(unreadable(err));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Helpers for the engines' tests: fake tools written as shell scripts.
#[cfg(test)]
pub(crate) mod testing {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use volscan_domain::{CancelToken, DirUsage, ScanContext, ScanEngine, ScanError, Usage};

    /// Writes the executable `/bin/sh` script `body` as `dir/name`.
    pub(crate) fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `engine.scan(root)`, retried while the script is "text file busy":
    /// another test thread may have forked while it was open for writing, and
    /// that child holds it open until it execs.
    pub(crate) fn scan(engine: &dyn ScanEngine, root: &Path) -> Result<Usage, ScanError> {
        retry_busy(|context| engine.scan(root, context))
    }

    /// `engine.scan_with_dirs(root)`, retried like `scan`.
    pub(crate) fn scan_with_dirs(
        engine: &dyn ScanEngine,
        root: &Path,
    ) -> Result<(Usage, Option<Vec<DirUsage>>), ScanError> {
        retry_busy(|context| engine.scan_with_dirs(root, context))
    }

    fn retry_busy<T>(
        attempt: impl Fn(&ScanContext<'_>) -> Result<T, ScanError>,
    ) -> Result<T, ScanError> {
        let cancel = CancelToken::new();
        let context = ScanContext { cancel: &cancel, progress: &|_| {} };
        for _ in 0..100 {
            match attempt(&context) {
                Err(ScanError::Spawn { source, .. })
                    if source.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error()) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                result => return result,
            }
        }
        attempt(&context)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use volscan_domain::CancelReason;

    use super::*;

    /// The search path the tests look up `sh` in.
    const SEARCH_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

    fn sh() -> PathBuf {
        find_program("sh", OsStr::new(SEARCH_PATH)).unwrap()
    }

    #[test]
    fn output_and_the_end_of_stderr_are_kept() {
        let sh = sh();
        let script = "echo 42 out; i=0; while [ $i -lt 3000 ]; do echo line $i >&2; i=$((i+1)); done; exit 3";
        let even = |line: &[u8]| line.last().is_some_and(|digit| digit % 2 == 0);
        let args = ["-c".as_ref(), script.as_ref()];
        let invocation = Invocation {
            tool: "sh",
            program: &sh,
            args: &args,
            env: &[],
            counts_as_error: even,
            max_stdout: MAX_STDOUT,
            priority: Priority::UNCHANGED,
        };
        let out = run(&invocation, &CancelToken::new()).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"42 out\n");
        assert_eq!(out.error_lines, 1500);
        assert!(out.stderr_tail.len() <= MAX_STDERR);
        assert!(out.stderr_tail.ends_with("line 2999"), "{}", out.stderr_tail);
        assert_eq!(leading_number("sh", &out.stdout).unwrap(), 42);
    }

    #[test]
    fn cancel_kills_the_whole_group_and_leaves_no_process() {
        let sh = sh();
        // A sleep length no other process uses, to recognise ours in /proc.
        let seconds = format!("7{}", std::process::id());
        let marker = format!("sleep\0{seconds}");
        // A child that starts a grandchild in the same group; both sleep for days.
        let script = format!("sleep {seconds} & sleep {seconds}");
        let token = CancelToken::new();
        let canceller = token.clone();
        let started = Instant::now();
        let killer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            canceller.cancel(CancelReason::Timeout);
        });
        let args = ["-c".as_ref(), script.as_ref()];
        let invocation = Invocation {
            tool: "sh",
            program: &sh,
            args: &args,
            env: &[],
            counts_as_error: |_| true,
            max_stdout: MAX_STDOUT,
            priority: Priority::UNCHANGED,
        };
        let err = run(&invocation, &token).unwrap_err();
        killer.join().unwrap();
        assert!(matches!(err, ScanError::Canceled(CancelReason::Timeout)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        // Nothing of the group is left: no sleeper, and no zombie child of
        // ours. Other tests of this process run tools at the same time, and
        // their children are zombies for the moment between exiting and being
        // reaped, so a zombie counts only if it is still one half a second later.
        let me = std::process::id().to_string();
        let zombies = || -> Vec<(std::path::PathBuf, String)> {
            let mut found = Vec::new();
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                let fields: Vec<&str> =
                    stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
                // fields[0] is the state, fields[1] the parent pid.
                if fields.get(1) == Some(&me.as_str()) && fields[0] == "Z" {
                    found.push((entry.path(), stat.clone()));
                }
                let cmdline =
                    std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
                assert!(!cmdline.contains(&marker), "process left: {cmdline}");
            }
            found
        };
        let first = zombies();
        thread::sleep(Duration::from_millis(500));
        for (path, stat) in first {
            let still = std::fs::read_to_string(path.join("stat")).is_ok_and(|now| now == stat);
            assert!(!still, "zombie left: {stat}");
        }
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let invocation = Invocation {
            tool: "nope",
            program: Path::new("/nonexistent/nope"),
            args: &[],
            env: &[],
            counts_as_error: |_| true,
            max_stdout: MAX_STDOUT,
            priority: Priority::UNCHANGED,
        };
        let err = run(&invocation, &CancelToken::new()).unwrap_err();
        assert!(matches!(err, ScanError::Spawn { tool: "nope", .. }), "{err:?}");
        assert!(find_program("volscan-no-such-program", OsStr::new(SEARCH_PATH)).is_none());
    }

    #[test]
    fn programs_are_found_only_in_the_given_search_path() {
        let sh = find_program("sh", OsStr::new("/nonexistent:/bin:/usr/bin")).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(find_program("sh", OsStr::new("")), None);
        assert_eq!(find_program("sh", OsStr::new("/nonexistent")), None);
        // A relative entry is never searched, although this one names `/bin`
        // from any working directory (`..` stops at the root).
        let relative = "../".repeat(64) + "bin";
        assert!(Path::new(&relative).join("sh").exists());
        assert_eq!(find_program("sh", OsStr::new(&relative)), None);
    }

    #[test]
    fn output_over_the_limit_fails_instead_of_being_cut() {
        let sh = sh();
        let args = ["-c".as_ref(), "printf '%s' 12345; printf '%s' 6789".as_ref()];
        let invocation = Invocation {
            tool: "sh",
            program: &sh,
            args: &args,
            env: &[],
            counts_as_error: |_| true,
            max_stdout: 9,
            priority: Priority::UNCHANGED,
        };
        assert_eq!(run(&invocation, &CancelToken::new()).unwrap().stdout, b"123456789");
        let invocation = Invocation { max_stdout: 8, ..invocation };
        let err = run(&invocation, &CancelToken::new()).unwrap_err();
        assert!(matches!(err, ScanError::BadOutput { tool: "sh", .. }), "{err:?}");
        assert!(err.to_string().contains("more than 8 bytes"), "{err}");
    }

    /// Tools run in the C locale whatever the environment and the invocation
    /// say, so du's messages are the English ones its line filter matches.
    #[test]
    fn tools_run_in_the_c_locale() {
        let sh = sh();
        let script = r#"printf '%s|%s' "$LC_ALL" "$RUST_MIN_STACK""#;
        let args = ["-c".as_ref(), script.as_ref()];
        let invocation = Invocation {
            tool: "sh",
            program: &sh,
            args: &args,
            env: &[("LC_ALL", "de_DE.UTF-8"), ("RUST_MIN_STACK", "123")],
            counts_as_error: |_| true,
            max_stdout: MAX_STDOUT,
            priority: Priority::UNCHANGED,
        };
        let out = run(&invocation, &CancelToken::new()).unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, b"C|123");
        let invocation = Invocation { env: &[], ..invocation };
        let out = run(&invocation, &CancelToken::new()).unwrap();
        assert_eq!(out.stdout, b"C|");
    }
}
