//! The scan engine port: what measures a directory tree, the chain that
//! picks one by availability, and why a scan fails.
//!
//! Engines block and depend on no async runtime; the caller picks the thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{CancelReason, CancelToken, DirUsage, ScanMethod, Usage};

/// What an engine gets besides the root: the cancel flag and a progress sink.
pub struct ScanContext<'a> {
    /// Polled by the engine; a canceled scan returns `ScanError::Canceled` promptly.
    pub cancel: &'a CancelToken,
    /// Called now and then with the number of entries seen so far.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// Computes the disk usage of a directory tree (SPEC §1).
///
/// Implementations block and depend on no async runtime. Given the same
/// tree, every engine reports the same `size_bytes`; the conformance suite
/// checks this against `du`.
pub trait ScanEngine: Send + Sync {
    /// Which method this is; stored with every result.
    fn method(&self) -> ScanMethod;

    /// Whether this engine can measure `root` at all (its binary exists, and
    /// for `diskus` no other mount lies below `root`). An unavailable engine
    /// is skipped in favour of the next; a failing one is not.
    fn availability(&self, root: &Path) -> Result<(), ScanError>;

    /// Measures `root` without following symlinks or leaving its filesystem.
    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError>;

    /// Like `scan`, and also the usage of every directory at depth 1 and 2
    /// below `root`, trimmed by `keep_largest(…, DIR_LIMIT)`; `None` when the
    /// method cannot tell (diskus).
    fn scan_with_dirs(
        &self,
        root: &Path,
        context: &ScanContext<'_>,
    ) -> Result<(Usage, Option<Vec<DirUsage>>), ScanError> {
        Ok((self.scan(root, context)?, None))
    }
}

/// The engines to try, in the order of `SCAN_METHODS_ORDER`.
///
/// `select` falls back to the next engine only when one is *unavailable*
/// (its binary is missing, or diskus meets a mount below the root); an
/// engine that fails or times out is not replaced by another.
#[derive(Clone)]
pub struct EngineChain {
    engines: Vec<Arc<dyn ScanEngine>>,
}

impl EngineChain {
    /// A chain trying `engines` in order.
    pub fn new(engines: Vec<Arc<dyn ScanEngine>>) -> Self {
        Self { engines }
    }

    /// The engines, in order.
    pub fn engines(&self) -> &[Arc<dyn ScanEngine>] {
        &self.engines
    }

    /// The first engine available for `root`, or `NoEngine` with every reason.
    pub fn select(&self, root: &Path) -> Result<Arc<dyn ScanEngine>, ScanError> {
        let mut reasons = Vec::new();
        for engine in &self.engines {
            match engine.availability(root) {
                Ok(()) => return Ok(Arc::clone(engine)),
                Err(ScanError::Unavailable { method, reason }) => {
                    reasons.push(format!("{method}: {reason}"));
                }
                Err(other) => return Err(other),
            }
        }
        Err(ScanError::NoEngine { reasons: reasons.join("; ") })
    }
}

impl std::fmt::Debug for EngineChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.engines.iter().map(|engine| engine.method())).finish()
    }
}

/// Why a scan produced no `Usage`.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The root does not exist.
    #[error("scan root {path} does not exist")]
    RootMissing {
        /// The root asked for.
        path: PathBuf,
    },
    /// The root exists but this process may not list or enter it (a
    /// non-root volscan, NFS `root_squash`): nothing of it can be measured, so
    /// the attempt fails instead of reporting the root's own few KiB.
    #[error("scan root {path} cannot be read")]
    RootUnreadable {
        /// The root asked for.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The root exists but is not a directory.
    #[error("scan root {path} is not a directory")]
    NotADirectory {
        /// The root asked for.
        path: PathBuf,
    },
    /// The method cannot be used here; the chain falls back to the next one.
    #[error("{method} is unavailable: {reason}")]
    Unavailable {
        /// The method.
        method: ScanMethod,
        /// Why, for the log.
        reason: String,
    },
    /// No engine of the chain is available for this root.
    #[error("no scan method is available: {reasons}")]
    NoEngine {
        /// Each engine's reason, `method: reason; …`.
        reasons: String,
    },
    /// An external tool could not be started.
    #[error("failed to start `{tool}`")]
    Spawn {
        /// The program.
        tool: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// An external tool exited unsuccessfully.
    #[error("`{tool}` exited with {status}: {stderr}")]
    ToolFailed {
        /// The program.
        tool: &'static str,
        /// Its exit status as text.
        status: String,
        /// The end of its standard error, bounded.
        stderr: String,
    },
    /// An external tool printed something that is not a size.
    #[error("`{tool}` printed unexpected output: {output:?}")]
    BadOutput {
        /// The program.
        tool: &'static str,
        /// What it printed, bounded.
        output: String,
    },
    /// The scan stopped because its `CancelToken` was set.
    #[error("scan stopped: {}", match .0 { CancelReason::User => "canceled", CancelReason::Timeout => "timeout", CancelReason::Shutdown => "shutting down" })]
    Canceled(CancelReason),
    /// Reading the root itself failed.
    #[error("failed to read {path}")]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine whose availability is fixed, for the chain tests.
    struct Fixed(ScanMethod, Option<&'static str>);

    impl ScanEngine for Fixed {
        fn method(&self) -> ScanMethod {
            self.0
        }

        fn availability(&self, _root: &Path) -> Result<(), ScanError> {
            match self.1 {
                None => Ok(()),
                Some("missing-root") => Err(ScanError::RootMissing { path: "/x".into() }),
                Some(reason) => {
                    Err(ScanError::Unavailable { method: self.0, reason: reason.into() })
                }
            }
        }

        fn scan(&self, _root: &Path, _context: &ScanContext<'_>) -> Result<Usage, ScanError> {
            Ok(Usage::default())
        }
    }

    #[track_caller]
    fn check_chain(engines: Vec<Fixed>, expected: Result<ScanMethod, &str>) {
        let chain = EngineChain::new(
            engines.into_iter().map(|e| Arc::new(e) as Arc<dyn ScanEngine>).collect(),
        );
        let picked = chain
            .select(Path::new("/x"))
            .map(|engine| engine.method())
            .map_err(|err| err.to_string());
        assert_eq!(picked, expected.map_err(str::to_owned));
    }

    #[test]
    fn the_chain_falls_back_only_when_unavailable() {
        use ScanMethod::*;
        check_chain(vec![Fixed(Diskus, None), Fixed(Du, None)], Ok(Diskus));
        check_chain(vec![Fixed(Diskus, Some("not on PATH")), Fixed(Du, None)], Ok(Du));
        check_chain(
            vec![Fixed(Diskus, Some("not on PATH")), Fixed(Du, Some("not on PATH"))],
            Err("no scan method is available: diskus: not on PATH; du: not on PATH"),
        );
        // Any other error stops the chain: it is not a reason to try another method.
        check_chain(
            vec![Fixed(Diskus, Some("missing-root")), Fixed(Du, None)],
            Err("scan root /x does not exist"),
        );
    }
}
