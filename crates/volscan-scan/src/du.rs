//! `DuEngine`: GNU `du -s -x -B1 -- ROOT`, run through `tool::run`.
//!
//! `du` reports only the allocated size; the other `Usage` fields stay `None`.
//! Entries it could not read are counted from its standard error (one line
//! each, entries that vanished mid-scan excepted), so a partial scan is never
//! reported as complete. du exits 1 after such errors but still prints the
//! total of what it could read.
//!
//! The directory breakdown (`scan_with_dirs`) is the same single run as
//! `du -x -B1 --max-depth=2 -0 -- ROOT`: NUL-terminated `SIZE\tPATH` records
//! (a name may hold a newline), the root's last since du prints a directory
//! after what it holds; the root's record is the total.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use volscan_domain::{
    DIR_LIMIT, DirUsage, ScanContext, ScanEngine, ScanError, ScanMethod, Usage, escape_component,
    keep_largest,
};

use crate::priority::Priority;
use crate::tool;

/// The `du` method.
#[derive(Debug, Clone)]
pub struct DuEngine {
    program: Option<PathBuf>,
    priority: Priority,
}

impl DuEngine {
    /// Uses `du` from `search_path`, a `PATH`-style list of directories
    /// that the caller read (the binary passes its `PATH`), looked up now.
    pub fn new(search_path: &OsStr) -> Self {
        Self { program: tool::find_program("du", search_path), priority: Priority::default() }
    }

    /// Runs the tool with `priority` (default: `Priority::GENTLE`).
    #[must_use]
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Uses the `du` at `program`.
    pub fn with_program(program: PathBuf) -> Self {
        Self { program: Some(program), priority: Priority::default() }
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
        let args = ["-s".as_ref(), "-x".as_ref(), "-B1".as_ref(), "--".as_ref(), root.as_os_str()];
        let out = self.run(root, &args, tool::MAX_STDOUT, context)?;
        let size = tool::leading_number("du", &out.stdout).map_err(|_| failed(&out))?;
        Ok(usage(size, &out))
    }

    fn scan_with_dirs(
        &self,
        root: &Path,
        context: &ScanContext<'_>,
    ) -> Result<(Usage, Option<Vec<DirUsage>>), ScanError> {
        let args = [
            "-x".as_ref(),
            "-B1".as_ref(),
            "--max-depth=2".as_ref(),
            "-0".as_ref(),
            "--".as_ref(),
            root.as_os_str(),
        ];
        let out = match self.run(root, &args, MAX_BREAKDOWN_OUTPUT, context) {
            // Too many directories to list: the total still counts, without
            // the breakdown (a second, plain run).
            Err(ScanError::BadOutput { .. }) => return Ok((self.scan(root, context)?, None)),
            other => other?,
        };
        if out.stdout.is_empty() {
            return Err(failed(&out));
        }
        let (size, dirs) = parse_breakdown(&out.stdout)?;
        Ok((usage(size, &out), Some(keep_largest(dirs, DIR_LIMIT))))
    }
}

/// The most output `du --max-depth=2` may print: about 200,000 directories
/// at depth 1 and 2 with 80-byte paths. Past it the breakdown is dropped
/// (never cut) and the volume is measured with `du -s` alone.
const MAX_BREAKDOWN_OUTPUT: usize = 16 * 1024 * 1024;

impl DuEngine {
    /// Runs du with `args` (`root` last). du exits 1 when some entries could not
    /// be read but still prints the total of what it could; any other exit fails.
    fn run(
        &self,
        root: &Path,
        args: &[&OsStr],
        max_stdout: usize,
        context: &ScanContext<'_>,
    ) -> Result<tool::ToolOutput, ScanError> {
        self.availability(root)?;
        tool::check_root(root)?;
        let program = self.program.as_deref().unwrap_or(Path::new("du"));
        let invocation = tool::Invocation {
            tool: "du",
            program,
            args,
            env: &[],
            counts_as_error: is_read_error,
            max_stdout,
            priority: self.priority,
        };
        let out = tool::run(&invocation, context.cancel)?;
        match out.status.code() {
            Some(0 | 1) => Ok(out),
            _ => Err(failed(&out)),
        }
    }
}

/// du exited badly or printed no number.
fn failed(out: &tool::ToolOutput) -> ScanError {
    ScanError::ToolFailed {
        tool: "du",
        status: out.status.to_string(),
        stderr: out.stderr_tail.clone(),
    }
}

fn usage(size: u64, out: &tool::ToolOutput) -> Usage {
    Usage {
        size_bytes: size,
        apparent_bytes: None,
        file_count: None,
        dir_count: None,
        error_count: out.error_lines,
    }
}

/// Reads `du -B1 --max-depth=2 -0` output: the root's size (its record is
/// the last) and every other record as a `DirUsage`, its path made relative to
/// the root and each component escaped.
fn parse_breakdown(stdout: &[u8]) -> Result<(u64, Vec<DirUsage>), ScanError> {
    let bad = |what: &str, record: &[u8]| ScanError::BadOutput {
        tool: "du",
        output: format!("{what}: {}", escape_component(&record[..record.len().min(200)])),
    };
    let Some(body) = stdout.strip_suffix(b"\0") else {
        return Err(bad("output does not end with NUL", stdout));
    };
    let mut records = body.split(|&byte| byte == 0).map(|record| {
        let tab = record.iter().position(|&byte| byte == b'\t');
        let size = tab.and_then(|tab| std::str::from_utf8(&record[..tab]).ok()?.parse().ok());
        match (tab, size) {
            (Some(tab), Some(size)) => Ok((size, &record[tab + 1..])),
            _ => Err(bad("not `SIZE\\tPATH`", record)),
        }
    });
    let Some(root) = records.next_back() else { return Err(bad("no record", stdout)) };
    let (total, root) = root?;
    // du names entries `ROOT/a/b` with the root's trailing slashes dropped
    // (`/` itself gives `/a`).
    let mut base = root;
    while let Some(shorter) = base.strip_suffix(b"/") {
        base = shorter;
    }
    let mut dirs = Vec::new();
    for record in records {
        let (size, path) = record?;
        let Some(relative) = path.strip_prefix(base).and_then(|rest| rest.strip_prefix(b"/"))
        else {
            return Err(bad("a path outside the root", path));
        };
        let components: Vec<&[u8]> = relative.split(|&byte| byte == b'/').collect();
        if components.is_empty() || components.len() > 2 || components.iter().any(|c| c.is_empty())
        {
            return Err(bad("not at depth 1 or 2", path));
        }
        let path: Vec<String> = components.iter().map(|c| escape_component(c)).collect();
        dirs.push(DirUsage {
            path: path.join("/"),
            depth: if components.len() == 1 { 1 } else { 2 },
            size_bytes: size,
            file_count: None,
        });
    }
    Ok((total, dirs))
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
    use volscan_domain::OTHER;
    use volscan_testing::TempDir;

    use super::*;
    use crate::tool::testing;

    fn scan_with_dirs(engine: &DuEngine, root: &Path) -> (Usage, Vec<DirUsage>) {
        let (usage, dirs) = testing::scan_with_dirs(engine, root).unwrap();
        (usage, dirs.unwrap())
    }

    fn dir(path: &str, depth: u8, size_bytes: u64) -> DirUsage {
        DirUsage { path: path.to_owned(), depth, size_bytes, file_count: None }
    }

    #[test]
    fn the_breakdown_is_parsed_from_nul_terminated_records() {
        let output = b"4096\t/v/x\x008192\t/v/a/b\x004096\t/v/a/new\nline\x00512\t/v/a/caf\xe9\x00\
16384\t/v/a\x0012\t/v/(other)\x0024576\t/v/\x00";
        let (total, dirs) = parse_breakdown(output).unwrap();
        assert_eq!(total, 24576);
        assert_eq!(
            keep_largest(dirs, DIR_LIMIT),
            vec![
                dir("a", 1, 16384),
                dir("x", 1, 4096),
                dir("\\x28other)", 1, 12),
                dir("a/b", 2, 8192),
                dir("a/new\\x0Aline", 2, 4096),
                dir("a/caf\\xE9", 2, 512),
            ]
        );
        // du prints `/a` below the root `/`.
        let (total, dirs) = parse_breakdown(b"1\t/a\x003\t/a/b\x005\t/\x00").unwrap();
        assert_eq!((total, dirs), (5, vec![dir("a", 1, 1), dir("a/b", 2, 3)]));
        assert_eq!(parse_breakdown(b"7\t.\x00").unwrap(), (7, vec![]));
    }

    #[test]
    fn malformed_breakdown_output_is_an_error() {
        for output in [
            &b""[..],
            b"1\t/v/a\n2\t/v\n",
            b"x\t/v\x00",
            b"1\t/w/a\x002\t/v\x00",
            b"1\t/v/a/b/c\x002\t/v\x00",
            b"1\t/v\x002\t/v\x00",
            b"1 /v\x00",
        ] {
            let err = parse_breakdown(output).unwrap_err();
            assert!(matches!(err, ScanError::BadOutput { tool: "du", .. }), "{output:?}: {err:?}");
        }
    }

    /// One du run, its records (a name with a newline, one that is not UTF-8)
    /// turned into the total and the trimmed breakdown.
    #[test]
    fn du_runs_once_with_max_depth_2_and_nul_records() {
        let tmp = TempDir::new("du-breakdown");
        let du = testing::script(
            tmp.path(),
            "du",
            r#"echo "$@" >> "$(dirname "$0")/calls"
[ "$*" = "-x -B1 --max-depth=2 -0 -- $6" ] || exit 3
printf '10\t%s/n\nl\0' "$6"
printf '20\t%s/n\nl/\377\0' "$6"
printf '30\t%s\0' "$6""#,
        );
        let (usage, dirs) = scan_with_dirs(&DuEngine::with_program(du), tmp.path());
        assert_eq!((usage.size_bytes, usage.error_count, usage.file_count), (30, 0, None));
        assert_eq!(dirs, vec![dir("n\\x0Al", 1, 10), dir("n\\x0Al/\\xFF", 2, 20)]);
        let calls = std::fs::read_to_string(tmp.path().join("calls")).unwrap();
        assert_eq!(calls.lines().count(), 1, "{calls}");
    }

    #[test]
    fn du_breakdown_keeps_the_largest_and_sums_the_rest() {
        let mut output = Vec::new();
        for i in 0..150u64 {
            output.extend_from_slice(format!("{}\t/v/d{i}\0", 1000 + i).as_bytes());
        }
        output.extend_from_slice(b"999999\t/v\0");
        let (total, dirs) = parse_breakdown(&output).unwrap();
        let dirs = keep_largest(dirs, DIR_LIMIT);
        assert_eq!(total, 999_999);
        assert_eq!(dirs.len(), DIR_LIMIT + 1);
        // The `OTHER` row sorts by its size like the rest.
        assert_eq!(dirs[0], dir(OTHER, 1, (1000..1050).sum()));
        assert_eq!(dirs[1], dir("d149", 1, 1149));
        assert_eq!(dirs[DIR_LIMIT], dir("d50", 1, 1050));
    }

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
