//! `DiskusEngine`: the `diskus` binary, run through `tool::run`.
//!
//! diskus reports only the allocated size (it dedupes hard links and does not
//! follow symlinks), so the other `Usage` fields stay `None`. It has no option
//! to stay on one filesystem, so it is unavailable for a root with another
//! mount below it, and the chain falls back to the next method. It runs with
//! `-v`, which prints one line per unreadable entry; those lines are counted
//! as `error_count`, except for entries that vanished during the scan.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use volscan_domain::{ScanContext, ScanEngine, ScanError, ScanMethod, Usage};

use crate::priority::Priority;
use crate::{mounts, tool};

/// The `diskus` method.
#[derive(Debug, Clone)]
pub struct DiskusEngine {
    program: Option<PathBuf>,
    priority: Priority,
}

impl DiskusEngine {
    /// Uses `diskus` from `search_path`, a `PATH`-style list of directories
    /// that the caller read (the binary passes its `PATH`), looked up now.
    pub fn new(search_path: &OsStr) -> Self {
        Self { program: tool::find_program("diskus", search_path), priority: Priority::default() }
    }

    /// Runs the tool with `priority` (default: `Priority::GENTLE`).
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Uses the `diskus` at `program`.
    pub fn with_program(program: PathBuf) -> Self {
        Self { program: Some(program), priority: Priority::default() }
    }
}

fn unavailable(reason: String) -> ScanError {
    ScanError::Unavailable { method: ScanMethod::Diskus, reason }
}

impl ScanEngine for DiskusEngine {
    fn method(&self) -> ScanMethod {
        ScanMethod::Diskus
    }

    fn availability(&self, root: &Path) -> Result<(), ScanError> {
        tool::check_root(root)?;
        match &self.program {
            Some(program) if program.exists() => {}
            _ => return Err(unavailable("`diskus` is not on PATH".to_owned())),
        }
        match mounts::mount_below(root) {
            Ok(None) => Ok(()),
            Ok(Some(mount)) => Err(unavailable(format!(
                "{} is a mount point below the root, and diskus cannot stay on one filesystem",
                mount.display()
            ))),
            Err(err) => Err(unavailable(format!("cannot read the mount table: {err}"))),
        }
    }

    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError> {
        self.availability(root)?;
        let program = self.program.as_deref().unwrap_or(Path::new("diskus"));
        let args = ["-v".as_ref(), "--".as_ref(), root.as_os_str()];
        let invocation = tool::Invocation {
            tool: "diskus",
            program,
            args: &args,
            env: &[("RUST_MIN_STACK", DISKUS_STACK)],
            counts_as_error: is_read_error,
            max_stdout: tool::MAX_STDOUT,
            priority: self.priority,
        };
        let out = tool::run(&invocation, context.cancel)?;
        let size = match tool::leading_number("diskus", &out.stdout) {
            Ok(size) if out.status.success() => size,
            _ => {
                return Err(ScanError::ToolFailed {
                    tool: "diskus",
                    status: out.status.to_string(),
                    stderr: out.stderr_tail,
                });
            }
        };
        Ok(Usage {
            size_bytes: size,
            apparent_bytes: None,
            file_count: None,
            dir_count: None,
            error_count: out.error_lines,
        })
    }
}

/// diskus walks recursively; with Rust's default 2 MiB thread stacks it
/// overflows on a directory chain about 2,000 deep. 64 MiB of (virtual) stack
/// per thread carries it past 50,000 levels.
const DISKUS_STACK: &str = "67108864";

/// diskus names the entry it could not read in quotes and does not say why.
/// The entry is looked at again now: if it can be read now, or no longer
/// exists, it vanished or changed during the scan, which is not an error; if
/// reading it still fails, it is unreadable and counts.
fn is_read_error(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    let Some(path) = quoted_path(&text) else { return !text.trim().is_empty() };
    let still_failing = |result: std::io::Result<()>| matches!(result, Err(err) if err.kind() != std::io::ErrorKind::NotFound);
    if text.contains("could not read contents of directory") {
        still_failing(std::fs::read_dir(path).map(drop))
    } else {
        still_failing(path.symlink_metadata().map(drop))
    }
}

/// The path between the first and the last single quote of a diskus message.
fn quoted_path(text: &str) -> Option<&Path> {
    let start = text.find('\'')?;
    let end = text.rfind('\'')?;
    (end > start).then(|| Path::new(&text[start + 1..end]))
}

#[cfg(test)]
mod tests {
    use volscan_testing::TempDir;

    use super::*;
    use crate::tool::testing;

    /// diskus runs like du in the C locale, with its larger stack.
    #[test]
    fn diskus_runs_in_the_c_locale_with_a_large_stack() {
        let dir = TempDir::new("diskus-locale");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let diskus = testing::script(
            dir.path(),
            "diskus",
            &format!(
                r#"[ "$LC_ALL" = C ] && [ "$RUST_MIN_STACK" = {DISKUS_STACK} ] || exit 3
printf '8192\n'"#
            ),
        );
        let usage = testing::scan(&DiskusEngine::with_program(diskus), &root).unwrap();
        assert_eq!(usage.size_bytes, 8192);
    }

    #[test]
    fn diskus_is_looked_up_in_the_given_search_path_only() {
        let dir = TempDir::new("diskus-search-path");
        testing::script(dir.path(), "diskus", "exit 0");
        let engine = DiskusEngine::new(dir.path().as_os_str());
        assert_eq!(engine.program, Some(dir.path().join("diskus")));
        let engine = DiskusEngine::new(OsStr::new("/nonexistent"));
        let err = engine.availability(dir.path()).unwrap_err();
        assert!(
            matches!(err, ScanError::Unavailable { method: ScanMethod::Diskus, .. }),
            "{err:?}"
        );
    }
}
