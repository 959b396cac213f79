//! Makes the capabilities the process is permitted to use effective, once, at
//! the start of `main`, before any thread exists (threads inherit the
//! capabilities of the thread that creates them).
//!
//! The container image's binary carries the file capability
//! `cap_dac_read_search=p`: *permitted*, without the *effective* bit, so that
//! the kernel still runs it where the capability is not available (`--cap-drop
//! ALL` alone, or no-new-privileges), where it is then simply not permitted and
//! health says what cannot be read. Where it is permitted, this raises it.
//! Nothing is ever added beyond the permitted set; as root or with systemd's
//! `AmbientCapabilities=`, the sets are already equal and nothing changes.

use rustix::thread::{CapabilitySet, capabilities, set_capabilities};

/// Raises the effective set to the permitted one; returns what was added
/// (empty when nothing was missing).
pub fn make_permitted_effective() -> std::io::Result<CapabilitySet> {
    let mut sets = capabilities(None)?;
    let missing = sets.permitted - sets.effective;
    if !missing.is_empty() {
        sets.effective |= missing;
        set_capabilities(None, sets)?;
    }
    Ok(missing)
}
