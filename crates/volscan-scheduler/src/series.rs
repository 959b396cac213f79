//! The per-volume series of SPEC §6 (`volscan_volume_*{volume}`), kept as
//! state rather than through the `metrics` facade.
//!
//! The facade can set a gauge but never remove one, so a destroyed volume
//! would stay in every scrape and a field the latest scan did not measure
//! would keep an older method's value. Here each volume has exactly the
//! values of its latest completed scan, a volume that is removed (event,
//! reconcile or retention) disappears from the next rendering, and a field
//! that scan did not measure is not exported at all.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use volscan_domain::{RATE_WINDOW, Timestamp, Usage, VolumeName, growth};

use crate::metrics::{
    VOLUME_APPARENT, VOLUME_FILES, VOLUME_GROWTH, VOLUME_LAST_SCAN, VOLUME_PARTIAL, VOLUME_SIZE,
};
use crate::running::lock;

/// One volume's latest completed scan.
#[derive(Clone, Debug)]
struct Sample {
    usage: Usage,
    scanned_at: Timestamp,
    /// The sizes of the rate's window (`RATE_WINDOW` before the newest),
    /// oldest first, so a new scan updates the rate without a query.
    sizes: Vec<(Timestamp, u64)>,
    /// Bytes a day over 7 days, when known.
    growth: Option<f64>,
}

impl Sample {
    /// Adds a size and recomputes the rate over the window.
    fn push_size(&mut self, at: Timestamp, size: u64) {
        self.sizes.push((at, size));
        self.sizes.sort_by_key(|(ts, _)| *ts);
        let newest = self.sizes.last().map_or(at, |(ts, _)| *ts);
        self.sizes.retain(|(ts, _)| *ts >= newest - RATE_WINDOW);
        self.growth = growth(&self.sizes).rate_bytes_per_day;
    }
}

/// The latest completed scan of every volume that is still present.
#[derive(Default)]
pub(crate) struct VolumeSeries {
    samples: Mutex<BTreeMap<VolumeName, Sample>>,
}

impl VolumeSeries {
    /// Records a volume's latest completed scan.
    pub fn set(&self, volume: &VolumeName, usage: &Usage, scanned_at: Timestamp) {
        let mut samples = lock(&self.samples);
        let sample = samples.entry(volume.clone()).or_insert_with(|| Sample {
            usage: *usage,
            scanned_at,
            sizes: Vec::new(),
            growth: None,
        });
        sample.usage = *usage;
        sample.scanned_at = scanned_at;
        sample.push_size(scanned_at, usage.size_bytes);
    }

    /// Replaces a volume's sizes in the rate's window (loaded from the
    /// database) and recomputes its rate; ignored for a volume without a
    /// series.
    pub fn set_sizes(&self, volume: &VolumeName, sizes: Vec<(Timestamp, u64)>) {
        if let Some(sample) = lock(&self.samples).get_mut(volume) {
            sample.sizes.clear();
            for (at, size) in sizes {
                sample.push_size(at, size);
            }
        }
    }

    /// Forgets a removed volume.
    pub fn remove(&self, volume: &VolumeName) {
        lock(&self.samples).remove(volume);
    }

    /// Keeps only the volumes in `present`.
    pub fn retain(&self, present: &std::collections::HashSet<VolumeName>) {
        lock(&self.samples).retain(|name, _| present.contains(name));
    }

    /// Replaces everything (at start-up and after retention).
    pub fn replace_all(&self, samples: impl IntoIterator<Item = (VolumeName, Usage, Timestamp)>) {
        let fresh: BTreeMap<VolumeName, Sample> = samples
            .into_iter()
            .map(|(name, usage, scanned_at)| {
                let sample = Sample {
                    usage,
                    scanned_at,
                    sizes: vec![(scanned_at, usage.size_bytes)],
                    growth: None,
                };
                (name, sample)
            })
            .collect();
        *lock(&self.samples) = fresh;
    }

    /// Volumes with a series now.
    pub fn len(&self) -> usize {
        lock(&self.samples).len()
    }

    /// Appends the series in the Prometheus text format (version 0.0.4).
    pub fn render(&self, out: &mut String) {
        let samples = lock(&self.samples);
        type Field = fn(&Sample) -> Option<f64>;
        let families: [(&str, &str, Field); 6] = [
            (
                VOLUME_SIZE,
                "Disk usage in bytes of each volume, from its last completed scan",
                |s| Some(s.usage.size_bytes as f64),
            ),
            (
                VOLUME_APPARENT,
                "Apparent size in bytes of each volume, from its last completed scan (absent when its method cannot know it)",
                |s| s.usage.apparent_bytes.map(|v| v as f64),
            ),
            (
                VOLUME_FILES,
                "Files in each volume, from its last completed scan (absent when its method cannot know it)",
                |s| s.usage.file_count.map(|v| v as f64),
            ),
            (VOLUME_LAST_SCAN, "Unix time of each volume's last completed scan", |s| {
                Some(s.scanned_at.unix_timestamp_nanos() as f64 / 1e9)
            }),
            (
                VOLUME_PARTIAL,
                "1 when the last completed scan of the volume met unreadable entries, so its figures are a lower bound",
                |s| Some(if s.usage.is_partial() { 1.0 } else { 0.0 }),
            ),
            (
                VOLUME_GROWTH,
                "Growth of each volume in bytes a day, least squares over 7 days (absent when unknown)",
                |s| s.growth,
            ),
        ];
        for (name, help, field) in families {
            let values: Vec<(&VolumeName, f64)> =
                samples.iter().filter_map(|(volume, s)| Some((volume, field(s)?))).collect();
            if values.is_empty() {
                continue;
            }
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (volume, value) in values {
                let _ = writeln!(out, "{name}{{volume=\"{}\"}} {value}", escape(volume.as_str()));
            }
        }
    }
}

/// Escapes a label value: backslash, double quote and line feed.
pub(crate) fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn usage(size: u64, apparent: Option<u64>, errors: u64) -> Usage {
        Usage {
            size_bytes: size,
            apparent_bytes: apparent,
            file_count: apparent.map(|_| 3),
            dir_count: apparent.map(|_| 1),
            error_count: errors,
        }
    }

    #[test]
    fn only_measured_fields_of_present_volumes_are_rendered() {
        let series = VolumeSeries::default();
        let at = datetime!(2026-06-01 12:00:00 UTC);
        let (a, b) = (VolumeName::new("alpha").unwrap(), VolumeName::new("beta").unwrap());
        series.set(&a, &usage(4096, Some(100), 0), at);
        series.set(&b, &usage(8192, Some(200), 0), at);
        // beta is now measured by du: no apparent size, no files, and partial.
        series.set(&b, &usage(12288, None, 2), at);
        let mut text = String::new();
        series.render(&mut text);
        assert!(text.contains("volscan_volume_size_bytes{volume=\"beta\"} 12288\n"), "{text}");
        assert!(!text.contains("volscan_volume_apparent_bytes{volume=\"beta\"}"), "{text}");
        assert!(!text.contains("volscan_volume_files{volume=\"beta\"}"), "{text}");
        assert!(text.contains("volscan_volume_scan_partial{volume=\"beta\"} 1\n"), "{text}");
        assert!(text.contains("volscan_volume_scan_partial{volume=\"alpha\"} 0\n"), "{text}");
        assert!(
            text.contains(
                "volscan_volume_last_scan_timestamp_seconds{volume=\"alpha\"} 1780315200\n"
            ),
            "{text}"
        );
        series.remove(&a);
        series.remove(&b);
        let mut empty = String::new();
        series.render(&mut empty);
        assert_eq!(empty, "", "no volume, no series and no HELP lines");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
