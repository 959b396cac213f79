//! Docker's event messages mapped to `SourceEvent`s.
//!
//! Only volume and container `create`/`destroy` matter; everything else is
//! dropped here. Following the stream itself lives in `source.rs`.

use volscan_domain::{SourceEvent, VolumeName};

/// The event a Docker message means, if any.
///
/// `kind` is Docker's `Type`, `action` its `Action` and `actor` its
/// `Actor.ID` (the volume's name for volume events). A created volume whose
/// name is invalid or `skipped` is dropped, as `volumes()` drops it.
pub(crate) fn map_event(
    kind: &str,
    action: &str,
    actor: &str,
    skipped: impl Fn(&VolumeName) -> bool,
) -> Option<SourceEvent> {
    match (kind, action) {
        ("volume", "create" | "destroy") => {
            let name = match VolumeName::new(actor) {
                Ok(name) => name,
                Err(err) => {
                    tracing::warn!(volume = actor, "ignoring Docker volume event: {err}");
                    return None;
                }
            };
            if action == "destroy" {
                Some(SourceEvent::VolumeDestroyed(name))
            } else if skipped(&name) {
                tracing::debug!(
                    volume = actor,
                    "ignoring a created volume matching the skip pattern"
                );
                None
            } else {
                Some(SourceEvent::VolumeCreated(name))
            }
        }
        ("container", "create" | "destroy") => Some(SourceEvent::ContainersChanged),
        _ => None,
    }
}
