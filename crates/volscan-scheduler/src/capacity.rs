//! The capacity series of SPEC §8, kept as state like the per-volume series
//! (`series.rs`): each filesystem holding a scanned volume
//! (`volscan_filesystem_*{filesystem, mount_point}`), and the unused volumes
//! (`volscan_volumes_unused`, `volscan_reclaimable_bytes`).
//!
//! `volscan_filesystem_full_in_seconds` is exported only while the forecast
//! has a fill date; the unused figures only once the containers have been
//! looked at.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use volscan_domain::{FilesystemSample, Timestamp, VolumeName};

use crate::metrics::{
    FILESYSTEM_AVAIL, FILESYSTEM_FULL_IN, FILESYSTEM_SIZE, RECLAIMABLE_BYTES, VOLUMES_UNUSED,
};
use crate::running::lock;
use crate::series::escape;

/// One filesystem's latest sample and forecast.
#[derive(Clone, Debug)]
struct Filesystem {
    mount_point: String,
    total_bytes: u64,
    avail_bytes: u64,
    full_at: Option<Timestamp>,
    /// A directory on it (a scanned volume's root), to sample it again;
    /// unknown for a filesystem loaded from history until a scan on it.
    root: Option<PathBuf>,
    /// When the sampler last sent one of its samples to be stored.
    stored_at: Option<Timestamp>,
}

/// Filesystems and unused volumes.
#[derive(Default)]
pub(crate) struct CapacitySeries {
    filesystems: Mutex<BTreeMap<String, Filesystem>>,
    /// The latest size of every present volume no container references (0
    /// before its first scan); `None` before the first look at the containers.
    unused: Mutex<Option<BTreeMap<VolumeName, u64>>>,
}

impl CapacitySeries {
    /// Records a filesystem's latest sample, taken of `root`, and its fill
    /// date, if any. The sample was stored (by a scan, the sampler, or read
    /// from history), so the sampler's next store is due a spacing later.
    pub fn set_filesystem(
        &self,
        sample: &FilesystemSample,
        full_at: Option<Timestamp>,
        root: Option<&Path>,
    ) {
        let mut filesystems = lock(&self.filesystems);
        let known = filesystems.get(&sample.id);
        let known_root = known.and_then(|f| f.root.clone());
        let stored_at = known.and_then(|f| f.stored_at).max(Some(sample.ts));
        let figures = Filesystem {
            mount_point: sample.mount_point.clone(),
            total_bytes: sample.total_bytes,
            avail_bytes: sample.avail_bytes,
            full_at,
            root: root.map(Path::to_path_buf).or(known_root),
            stored_at,
        };
        filesystems.insert(sample.id.clone(), figures);
    }

    /// Takes a sample between scans: its figures replace the known ones (the
    /// fill date stays until the next stored sample). Returns whether it is
    /// due for storing, `spacing` or more after the last one the sampler
    /// stored, and then counts it as stored; a filesystem not known is due.
    pub fn sampled(&self, sample: &FilesystemSample, spacing: std::time::Duration) -> bool {
        let mut filesystems = lock(&self.filesystems);
        let Some(known) = filesystems.get_mut(&sample.id) else { return true };
        known.total_bytes = sample.total_bytes;
        known.avail_bytes = sample.avail_bytes;
        let due = known.stored_at.is_none_or(|at| sample.ts - at >= spacing);
        if due {
            known.stored_at = Some(sample.ts);
        }
        due
    }

    /// Every filesystem with a known directory on it, and that directory.
    pub fn roots(&self) -> Vec<(String, PathBuf)> {
        lock(&self.filesystems)
            .iter()
            .filter_map(|(id, f)| Some((id.clone(), f.root.clone()?)))
            .collect()
    }

    /// Keeps only the filesystems in `present` (those still holding a volume).
    pub fn retain_filesystems(&self, present: &std::collections::HashSet<String>) {
        lock(&self.filesystems).retain(|id, _| present.contains(id));
    }

    /// Records the unused volumes with their latest sizes; returns whether
    /// which volumes are unused changed (or was not known before).
    pub fn set_unused(&self, unused: BTreeMap<VolumeName, u64>) -> bool {
        let mut current = lock(&self.unused);
        let changed = current.as_ref().is_none_or(|known| !known.keys().eq(unused.keys()));
        *current = Some(unused);
        changed
    }

    /// A volume was measured: its size counts if it is unused.
    pub fn scanned(&self, volume: &VolumeName, size_bytes: u64) {
        if let Some(size) = lock(&self.unused).as_mut().and_then(|u| u.get_mut(volume)) {
            *size = size_bytes;
        }
    }

    /// A volume was removed: it no longer counts.
    pub fn removed(&self, volume: &VolumeName) {
        if let Some(unused) = lock(&self.unused).as_mut() {
            unused.remove(volume);
        }
    }

    /// Appends the series in the Prometheus text format, with `now` for the
    /// time left until a filesystem is full.
    pub fn render(&self, out: &mut String, now: Timestamp) {
        let filesystems = lock(&self.filesystems);
        type Field = fn(&Filesystem, Timestamp) -> Option<f64>;
        let families: [(&str, &str, Field); 3] = [
            (
                FILESYSTEM_SIZE,
                "Size in bytes of each filesystem holding scanned volumes",
                |f, _| Some(f.total_bytes as f64),
            ),
            (
                FILESYSTEM_AVAIL,
                "Bytes still available on each filesystem holding scanned volumes, at its last sample",
                |f, _| Some(f.avail_bytes as f64),
            ),
            (
                FILESYSTEM_FULL_IN,
                "Seconds until the filesystem is full at its 7-day trend (absent unless usage rises steadily)",
                |f, now| f.full_at.map(|at| (at - now).as_seconds_f64().max(0.0)),
            ),
        ];
        for (name, help, field) in families {
            let values: Vec<(&String, &Filesystem, f64)> =
                filesystems.iter().filter_map(|(id, f)| Some((id, f, field(f, now)?))).collect();
            if values.is_empty() {
                continue;
            }
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (id, f, value) in values {
                let _ = writeln!(
                    out,
                    "{name}{{filesystem=\"{}\",mount_point=\"{}\"}} {value}",
                    escape(id),
                    escape(&f.mount_point)
                );
            }
        }
        drop(filesystems);
        if let Some(unused) = lock(&self.unused).as_ref() {
            let reclaimable: u64 = unused.values().sum();
            let _ = writeln!(
                out,
                "# HELP {VOLUMES_UNUSED} Present volumes that no container, running or stopped, references\n\
                 # TYPE {VOLUMES_UNUSED} gauge\n{VOLUMES_UNUSED} {}\n\
                 # HELP {RECLAIMABLE_BYTES} The sum of the latest sizes of the unused volumes\n\
                 # TYPE {RECLAIMABLE_BYTES} gauge\n{RECLAIMABLE_BYTES} {}",
                unused.len(),
                reclaimable
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn sample(id: &str, avail: u64) -> FilesystemSample {
        FilesystemSample {
            id: id.to_owned(),
            mount_point: "/var/lib/docker".to_owned(),
            fs_type: "ext4".to_owned(),
            total_bytes: 1000,
            avail_bytes: avail,
            ts: datetime!(2026-06-01 12:00:00 UTC),
        }
    }

    #[test]
    fn the_fill_time_is_exported_only_with_a_forecast_and_unused_only_once_known() {
        let now = datetime!(2026-06-01 12:00:00 UTC);
        let series = CapacitySeries::default();
        let root = Some(Path::new("/data"));
        series.set_filesystem(&sample("a", 400), Some(datetime!(2026-06-02 12:00:00 UTC)), root);
        series.set_filesystem(&sample("b", 900), None, None);
        assert_eq!(series.roots(), [("a".to_owned(), PathBuf::from("/data"))]);
        let mut text = String::new();
        series.render(&mut text, now);
        let labels = "filesystem=\"a\",mount_point=\"/var/lib/docker\"";
        assert!(text.contains(&format!("volscan_filesystem_full_in_seconds{{{labels}}} 86400\n")));
        assert!(!text.contains("volscan_filesystem_full_in_seconds{filesystem=\"b\""), "{text}");
        assert!(text.contains(
            "volscan_filesystem_avail_bytes{filesystem=\"b\",mount_point=\"/var/lib/docker\"} 900\n"
        ));
        assert!(!text.contains("volscan_volumes_unused"), "{text}");
        let (x, y) = (VolumeName::new("xx").unwrap(), VolumeName::new("yy").unwrap());
        assert!(series.set_unused(BTreeMap::from([(x.clone(), 4096), (y.clone(), 0)])));
        assert!(!series.set_unused(BTreeMap::from([(x.clone(), 4096), (y.clone(), 0)])));
        series.scanned(&y, 4096);
        series.scanned(&VolumeName::new("used").unwrap(), 1 << 40);
        series.retain_filesystems(&["b".to_owned()].into_iter().collect());
        let mut text = String::new();
        series.render(&mut text, now);
        assert!(!text.contains("filesystem=\"a\""), "{text}");
        assert!(text.contains("volscan_volumes_unused 2\n"), "{text}");
        assert!(text.contains("volscan_reclaimable_bytes 8192\n"), "{text}");
        series.removed(&x);
        let mut text = String::new();
        series.render(&mut text, now);
        assert!(text.contains("volscan_volumes_unused 1\n"), "{text}");
        assert!(text.contains("volscan_reclaimable_bytes 4096\n"), "{text}");
    }
}
