//! `DuEngine`: GNU `du -s -x -B1 -- ROOT`, run through `tool::run`.
//!
//! `du` reports only the allocated size; the other `Usage` fields stay `None`.
//! Entries it could not read are counted from its standard error (one line
//! each, entries that vanished mid-scan excepted), so a partial scan is never
//! reported as complete. du exits 1 after such errors but still prints the
//! total of what it could read.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use volscan_domain::{ScanContext, ScanEngine, ScanError, ScanMethod, Usage};

use crate::tool;

/// The `du` method.
#[derive(Debug, Clone)]
pub struct DuEngine {
    program: Option<PathBuf>,
}

impl DuEngine {
    /// Uses `du` from `search_path`, a `PATH`-style list of directories
    /// that the caller read (the binary passes its `PATH`), looked up now.
    pub fn new(search_path: &OsStr) -> Self {
        Self { program: tool::find_program("du", search_path) }
    }

    /// Uses the `du` at `program`.
    pub fn with_program(program: PathBuf) -> Self {
        Self { program: Some(program) }
    }
}

impl ScanEngine for DuEngine {
    fn method(&self) -> ScanMethod {
        ScanMethod::Du
    }

    fn availability(&self, _root: &Path) -> Result<(), ScanError> {
        match &self.program {
            Some(program) if program.exists() => Ok(()),
            _ => Err(ScanError::Unavailable {
                method: ScanMethod::Du,
                reason: "`du` is not on PATH".to_owned(),
            }),
        }
    }

    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError> {
        self.availability(root)?;
        tool::check_root(root)?;
        let program = self.program.as_deref().unwrap_or(Path::new("du"));
        let args = ["-s".as_ref(), "-x".as_ref(), "-B1".as_ref(), "--".as_ref(), root.as_os_str()];
        let invocation = tool::Invocation {
            tool: "du",
            program,
            args: &args,
            env: &[],
            counts_as_error: is_read_error,
        };
        let out = tool::run(&invocation, context.cancel)?;
        // du exits 1 when some entries could not be read but still prints the total
        // of what it could; anything else without a number is a failure.
        let size = match (out.status.code(), tool::leading_number("du", &out.stdout)) {
            (Some(0), Ok(size)) => size,
            (Some(1), Ok(size)) => size,
            _ => {
                return Err(ScanError::ToolFailed {
                    tool: "du",
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

/// du names an entry that vanished mid-scan with ENOENT's message; that is not
/// a read error (SPEC §1), every other complaint is. The message is English
/// because `tool::run` starts every tool with `LC_ALL=C`.
fn is_read_error(line: &[u8]) -> bool {
    const VANISHED: &[u8] = b"No such file or directory";
    !line.is_empty() && !line.windows(VANISHED.len()).any(|window| window == VANISHED)
}

#[cfg(test)]
mod tests {
    use volscan_testing::TempDir;

    use super::*;
    use crate::tool::testing;

    /// du's vanished-entry filter matches English, so du runs with `LC_ALL=C`
    /// whatever locale volscan itself runs in.
    #[test]
    fn du_runs_in_the_c_locale() {
        let dir = TempDir::new("du-locale");
        let du = testing::script(
            dir.path(),
            "du",
            r#"[ "$LC_ALL" = C ] || { echo "LC_ALL is '$LC_ALL'" >&2; exit 3; }
printf '4096\t%s\n' "$5""#,
        );
        let usage = testing::scan(&DuEngine::with_program(du), dir.path()).unwrap();
        assert_eq!(usage.size_bytes, 4096);
        assert_eq!(usage.error_count, 0);
    }

    #[test]
    fn du_is_looked_up_in_the_given_search_path_only() {
        let dir = TempDir::new("du-search-path");
        testing::script(dir.path(), "du", "exit 0");
        let root = Path::new("/");
        DuEngine::new(dir.path().as_os_str()).availability(root).unwrap();
        let err = DuEngine::new(OsStr::new("/nonexistent")).availability(root).unwrap_err();
        assert!(matches!(err, ScanError::Unavailable { method: ScanMethod::Du, .. }), "{err:?}");
    }

    #[test]
    fn only_vanished_entries_are_not_read_errors() {
        assert!(!is_read_error(b"du: cannot access '/x/gone': No such file or directory"));
        assert!(is_read_error(b"du: cannot read directory '/x/locked': Permission denied"));
        assert!(!is_read_error(b""));
    }
}
