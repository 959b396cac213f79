//! `StaticSource`: a `VolumeSource` over a fixed list of directories, for
//! services that embed the scheduler without Docker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use volscan_domain::{
    CancelToken, DiscoveredVolume, SourceError, SourceEvent, Volume, VolumeKind, VolumeName,
    VolumeSource, VolumeUsers,
};

/// A fixed set of named directories; it has no events and no users.
#[derive(Clone, Debug, Default)]
pub struct StaticSource {
    volumes: Vec<DiscoveredVolume>,
}

impl StaticSource {
    /// Each directory under its name.
    pub fn new(directories: impl IntoIterator<Item = (VolumeName, PathBuf)>) -> Self {
        let volumes = directories
            .into_iter()
            .map(|(name, mountpoint)| DiscoveredVolume {
                name,
                driver: "static".to_owned(),
                mountpoint,
                kind: VolumeKind::Volume,
                labels: Default::default(),
                created_at: None,
            })
            .collect();
        StaticSource { volumes }
    }
}

impl VolumeSource for StaticSource {
    fn ping(&self) -> Result<String, SourceError> {
        Ok(format!("static source with {} directories", self.volumes.len()))
    }

    fn volumes(&self) -> Result<Vec<DiscoveredVolume>, SourceError> {
        Ok(self.volumes.clone())
    }

    fn is_skipped(&self, _name: &VolumeName) -> bool {
        false
    }

    fn scan_root(&self, volume: &Volume) -> Result<PathBuf, SourceError> {
        let path: &Path = &volume.mountpoint;
        if path.is_dir() {
            Ok(path.to_path_buf())
        } else {
            Err(SourceError::Unreachable {
                name: volume.name.clone(),
                reason: format!("{} is not a directory", path.display()),
            })
        }
    }

    fn users(&self) -> Result<Vec<VolumeUsers>, SourceError> {
        Ok(Vec::new())
    }

    fn watch(
        &self,
        stop: &CancelToken,
        _on_event: &mut dyn FnMut(SourceEvent),
    ) -> Result<(), SourceError> {
        while !stop.is_canceled() {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}
