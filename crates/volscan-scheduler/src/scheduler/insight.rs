//! Figures derived from stored data, kept current as data arrives (SPEC §8):
//! each volume's growth rate, each filesystem's latest sample and forecast,
//! and the unused volumes. It owns no state: it reads and writes through the
//! repository and publishes into the ledger's series. Every function blocks;
//! callers run it on a blocking thread.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use volscan_domain::{
    FORECAST_WINDOW, FilesystemSample, RATE_WINDOW, RepoError, ScanDetails, ScanRun, Timestamp,
    VolumeName, error_chain, forecast,
};

use super::Ports;
use super::ledger::Ledger;
use crate::error::SchedulerError;

/// After a completed scan of `root`: stores what it saw besides its totals,
/// and refreshes its filesystem's figures (the volume's growth rate follows
/// in its series, without a query).
pub(super) fn after_scan(
    ports: &Ports,
    ledger: &Ledger,
    run: &ScanRun,
    root: &Path,
    details: &ScanDetails,
) -> Result<(), RepoError> {
    // A volume removed while it was scanned must not keep the series the
    // completion just set (SPEC §8: a removed volume's series disappear).
    if ports.repo.volume(&run.volume)?.is_some_and(|v| v.removed_at.is_some()) {
        ledger.volume_removed(&run.volume);
    }
    let ts = run.completed_at.unwrap_or_else(|| ports.clock.now());
    if details.dirs.is_some() || details.filesystem.is_some() {
        ports.repo.record_details(run.scan_id, &run.volume, ts, details)?;
    }
    if let Some(sample) = &details.filesystem {
        publish_filesystem(ports, ledger, sample, Some(root))?;
    }
    Ok(())
}

/// Samples every filesystem known to hold a scanned volume again, between
/// scans, so its free space in the exposition is current (alert rules
/// predict from it) and its history is dense enough to forecast from.
pub(super) fn sample_filesystems(ports: &Ports, ledger: &Ledger) -> Result<(), RepoError> {
    let Some(probe) = &ports.probe else { return Ok(()) };
    for (id, root) in ledger.capacity().roots() {
        match probe.probe(&root, ports.clock.now()) {
            // The directory may have moved to another filesystem since. The
            // figures are current every interval; the database is written
            // (and the forecast read again) once per spacing, so an idle
            // host costs it little.
            Ok(sample) if sample.id == id => {
                if ledger.capacity().sampled(&sample, crate::policy::FILESYSTEM_STORE_SPACING) {
                    ports.repo.record_filesystem(&sample)?;
                    publish_filesystem(ports, ledger, &sample, Some(&root))?;
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(filesystem = %id, error = %error_chain(&err), "cannot sample a filesystem again")
            }
        }
    }
    Ok(())
}

/// Publishes a filesystem's latest sample with the forecast from its stored
/// history.
fn publish_filesystem(
    ports: &Ports,
    ledger: &Ledger,
    sample: &FilesystemSample,
    root: Option<&Path>,
) -> Result<(), RepoError> {
    let history = ports.repo.filesystem_samples(Some(&sample.id), sample.ts - FORECAST_WINDOW)?;
    let mut points: Vec<(Timestamp, u64)> = history.iter().map(|s| (s.ts, s.avail_bytes)).collect();
    // The latest sample counts even when it was not stored (spacing).
    if history.last().is_none_or(|newest| newest.ts < sample.ts) {
        points.push((sample.ts, sample.avail_bytes));
    }
    ledger.capacity().set_filesystem(sample, forecast(&points, FORECAST_WINDOW).full_at, root);
    Ok(())
}

/// Looks at the containers: which volumes they reference now is recorded,
/// and the unused figures follow. Readers' caches are invalidated only when
/// which volumes are unused changed (a busy host sends container events all
/// the time; `last_used_at` may lag by a cache's few seconds).
pub(super) fn refresh_users(ports: &Ports, ledger: &Ledger) -> Result<(), SchedulerError> {
    let users = ports.source.users()?;
    ports.repo.record_users(&users, ports.clock.now())?;
    if refresh_unused(ports, ledger)? {
        ledger.touched();
    }
    Ok(())
}

/// At start-up and after retention: every volume's growth, every
/// filesystem's figures from its history, and the unused volumes once known.
pub(super) fn load(ports: &Ports, ledger: &Ledger) -> Result<(), RepoError> {
    let now = ports.clock.now();
    load_growth(ports, ledger)?;
    let volumes = ports.repo.volumes(false)?;
    let present: HashSet<String> = volumes.iter().filter_map(|v| v.filesystem_id.clone()).collect();
    let mut by_filesystem: BTreeMap<String, Vec<FilesystemSample>> = BTreeMap::new();
    for sample in ports.repo.filesystem_samples(None, now - FORECAST_WINDOW)? {
        by_filesystem.entry(sample.id.clone()).or_default().push(sample);
    }
    for (id, samples) in &by_filesystem {
        if let Some(latest) = samples.last().filter(|_| present.contains(id)) {
            publish_filesystem(ports, ledger, latest, None)?;
        }
    }
    ledger.capacity().retain_filesystems(&present);
    if volumes.iter().any(|v| v.in_use.is_some()) {
        refresh_unused(ports, ledger)?;
    }
    Ok(())
}

/// Loads every volume's sizes of the rate's window, from which the series
/// keep each growth rate current as scans complete.
fn load_growth(ports: &Ports, ledger: &Ledger) -> Result<(), RepoError> {
    let mut by_volume: BTreeMap<VolumeName, Vec<(Timestamp, u64)>> = BTreeMap::new();
    for point in ports.repo.size_points(None, RATE_WINDOW)? {
        by_volume.entry(point.volume).or_default().push((point.ts, point.size_bytes));
    }
    for (name, points) in by_volume {
        ledger.series().set_sizes(&name, points);
    }
    Ok(())
}

/// Finds the present volumes no container references, with their latest
/// sizes (0 before a first scan); returns whether which volumes are unused
/// changed.
fn refresh_unused(ports: &Ports, ledger: &Ledger) -> Result<bool, RepoError> {
    let mut unused: BTreeMap<VolumeName, u64> = ports
        .repo
        .volumes(false)?
        .into_iter()
        .filter(|v| v.in_use == Some(false))
        .map(|v| (v.name, 0))
        .collect();
    for stat in ports.repo.latest_stats()? {
        if let Some(size) = unused.get_mut(&stat.volume) {
            *size = stat.usage.size_bytes;
        }
    }
    Ok(ledger.capacity().set_unused(unused))
}

/// Logs a failure to keep the derived figures current; the scan's totals
/// are stored already, so nothing else is lost.
pub(super) fn warn(what: &str, err: &dyn std::error::Error) {
    tracing::warn!(error = %error_chain(err), "{what}");
}
