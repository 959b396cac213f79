//! volscan's scan engines: `DiskusEngine`, `DuEngine` and `NativeEngine`, each
//! an implementation of the domain's `ScanEngine` (SPEC §1).
//!
//! Engines block and use no async runtime. External tools run with an argument
//! vector (never a shell string) in their own process group, so a cancel or a
//! timeout kills and reaps the whole group (`tool.rs`). The native engine is an
//! in-process parallel walker (`native.rs`). Choosing between engines is the
//! domain's `EngineChain`; this crate only says whether each is available.
//! It reads no environment variable: the binary passes its `PATH` in.

mod breakdown;
mod diskus;
mod du;
mod filesystem;
mod mounts;
mod native;
mod priority;
mod tool;

use std::ffi::OsStr;
use std::sync::Arc;

use volscan_domain::{ScanEngine, ScanMethod};

pub use diskus::DiskusEngine;
pub use du::DuEngine;
pub use filesystem::StatvfsProbe;
pub use native::NativeEngine;
pub use priority::{IoClass, Priority};
pub use tool::find_program;

/// The engine for `method` with its default settings (`Priority::GENTLE`
/// among them); external tools are looked up in `search_path`, a
/// `PATH`-style list of directories that the caller read (this crate reads
/// no environment variable).
pub fn engine(method: ScanMethod, search_path: &OsStr) -> Arc<dyn ScanEngine> {
    engine_with(method, search_path, Priority::default())
}

/// As `engine`, scanning with `priority`.
pub fn engine_with(
    method: ScanMethod,
    search_path: &OsStr,
    priority: Priority,
) -> Arc<dyn ScanEngine> {
    match method {
        ScanMethod::Diskus => Arc::new(DiskusEngine::new(search_path).with_priority(priority)),
        ScanMethod::Du => Arc::new(DuEngine::new(search_path).with_priority(priority)),
        ScanMethod::Native => Arc::new(NativeEngine::default().priority(priority)),
    }
}
