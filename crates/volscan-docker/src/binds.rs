//! Bind mounts seen in containers' mounts, resolved against the allowlist
//! (`paths::BindPolicy`) once per source.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use docker_api::models::MountPoint;

use crate::paths::{BindPolicy, ResolvedBind};

/// Resolves bind mount sources against the allowlist, each source once.
///
/// Only directories count: a bind-mounted file is not something to measure.
pub(crate) struct BindResolver<'a> {
    policy: &'a BindPolicy,
    seen: HashMap<String, Option<ResolvedBind>>,
}

impl<'a> BindResolver<'a> {
    pub(crate) fn new(policy: &'a BindPolicy) -> Self {
        BindResolver { policy, seen: HashMap::new() }
    }

    /// The allowed directory behind `mount`, if it is a bind mount and allowed.
    pub(crate) fn resolve(&mut self, mount: &MountPoint) -> Option<ResolvedBind> {
        if mount.type_.as_deref() != Some("bind") {
            return None;
        }
        let source = mount.source.as_deref()?;
        let policy = self.policy;
        self.seen
            .entry(source.to_owned())
            .or_insert_with(|| match policy.resolve(Path::new(source)) {
                Ok(bind) if bind.local.is_dir() => Some(bind),
                Ok(bind) => {
                    tracing::debug!(
                        source,
                        "not scanning a bind mount of a non-directory {}",
                        bind.host.display()
                    );
                    None
                }
                Err(reason) => {
                    tracing::debug!(source, "not scanning a bind mount: {reason}");
                    None
                }
            })
            .clone()
    }

    /// Every allowed bind seen, deduplicated by canonical host path.
    pub(crate) fn into_allowed(self) -> impl Iterator<Item = ResolvedBind> {
        let unique: BTreeMap<PathBuf, ResolvedBind> =
            self.seen.into_values().flatten().map(|bind| (bind.host.clone(), bind)).collect();
        unique.into_values()
    }
}
