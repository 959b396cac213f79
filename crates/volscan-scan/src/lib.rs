//! volscan's scan engines: `DiskusEngine`, `DuEngine` and `NativeEngine`, each
//! an implementation of the domain's `ScanEngine` (SPEC §1).
//!
//! Engines block and use no async runtime. External tools run with an argument
//! vector (never a shell string) in their own process group, so a cancel or a
//! timeout kills and reaps the whole group (`tool.rs`). The native engine is an
//! in-process parallel walker (`native.rs`). Choosing between engines is the
//! domain's `EngineChain`; this crate only says whether each is available.

mod diskus;
mod du;
mod mounts;
mod native;
mod tool;

use std::sync::Arc;

use volscan_domain::{ScanEngine, ScanMethod};

pub use diskus::DiskusEngine;
pub use du::DuEngine;
pub use native::NativeEngine;
pub use tool::find_program;

/// The engine for `method` with its default settings.
pub fn engine(method: ScanMethod) -> Arc<dyn ScanEngine> {
    match method {
        ScanMethod::Diskus => Arc::new(DiskusEngine::new()),
        ScanMethod::Du => Arc::new(DuEngine::new()),
        ScanMethod::Native => Arc::new(NativeEngine::default()),
    }
}
