//! `GET /volumes/{name}/dirs?depth=1|2&compare=24h|7d|30d&limit=N` (SPEC
//! §8): the largest directories inside a volume at its newest scan that
//! recorded them, and how each changed since an earlier such scan.
//!
//! Paths are returned as the repository stores them: relative to the volume
//! root, each component escaped (`volscan_domain::escape_component`), never
//! an absolute host path.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use volscan_domain::{DirUsage, ScanId, Timestamp};

use crate::hosts::HostQuery;
use crate::json::{DirEntryJson, DirsJson, opt_time};
use crate::routes::{block, volume_name};
use crate::{ApiError, AppState};

/// Most entries one answer lists.
const MAX_ENTRIES: u32 = 1000;

/// Entries listed without `limit`.
const DEFAULT_ENTRIES: u32 = 100;

/// Query of `GET /volumes/{name}/dirs`.
#[derive(Deserialize)]
pub(crate) struct DirsQuery {
    depth: Option<String>,
    compare: Option<String>,
    limit: Option<u32>,
}

/// The window of `compare`.
pub(crate) fn compare_window(text: &str) -> Result<time::Duration, ApiError> {
    match text {
        "24h" => Ok(time::Duration::hours(24)),
        "7d" => Ok(time::Duration::days(7)),
        "30d" => Ok(time::Duration::days(30)),
        _ => Err(ApiError::InvalidQuery("compare is 24h, 7d or 30d".to_owned())),
    }
}

/// The scan to compare the newest one (`scans[0]`, newest first) with: of
/// the older scans, the one whose time is nearest to the newest's minus
/// `window`; of two equally near, the older one.
fn compared_scan(
    scans: &[(ScanId, Timestamp)],
    window: time::Duration,
) -> Option<(ScanId, Timestamp)> {
    let &(_, newest) = scans.first()?;
    let target = newest.checked_sub(window)?;
    scans
        .iter()
        .filter(|(_, ts)| *ts < newest)
        .min_by_key(|(_, ts)| ((*ts - target).unsigned_abs(), *ts > target))
        .copied()
}

/// What the repository holds for one request.
pub(crate) enum Read {
    /// No such volume.
    UnknownVolume,
    /// The volume is known but no scan recorded directories.
    NoDirectories,
    /// The newest scan with directories, and the compared one with its time.
    Scanned {
        newest: (ScanId, Timestamp),
        dirs: Vec<DirUsage>,
        compared: Option<(Timestamp, Vec<DirUsage>)>,
    },
}

/// Reads the newest scan with directories of `volume` and, with a
/// `window`, the scan compared with it.
pub(crate) fn read(
    repo: &dyn volscan_domain::ReadRepository,
    volume: &volscan_domain::VolumeName,
    window: Option<time::Duration>,
) -> Result<Read, volscan_domain::RepoError> {
    if repo.volume(volume)?.is_none() {
        return Ok(Read::UnknownVolume);
    }
    let scans = repo.dir_scans(volume)?;
    let Some(&newest) = scans.first() else { return Ok(Read::NoDirectories) };
    let compared = match window.and_then(|window| compared_scan(&scans, window)) {
        Some((scan, ts)) => Some((ts, repo.dirs(scan)?)),
        None => None,
    };
    Ok(Read::Scanned { newest, dirs: repo.dirs(newest.0)?, compared })
}

/// The directories of `depth` in `dirs` (largest first, as stored), at most
/// `limit`, each with its change since `before` when that scan is known
/// (`None` for a directory it did not list).
pub(crate) fn with_deltas<'a>(
    dirs: &'a [DirUsage],
    before: Option<&[DirUsage]>,
    depth: u8,
    limit: usize,
) -> Vec<(&'a DirUsage, Option<i64>)> {
    let before: Option<HashMap<&str, u64>> = before.map(|dirs| {
        dirs.iter()
            .filter(|dir| dir.depth == depth)
            .map(|dir| (dir.path.as_str(), dir.size_bytes))
            .collect()
    });
    dirs.iter()
        .filter(|dir| dir.depth == depth)
        .take(limit)
        .map(|dir| {
            let old = before.as_ref().and_then(|before| before.get(dir.path.as_str()));
            (dir, old.map(|&old| delta(dir.size_bytes, old)))
        })
        .collect()
}

/// `size` minus `before`, saturating at the range of `i64`.
fn delta(size: u64, before: u64) -> i64 {
    let change = i128::from(size) - i128::from(before);
    i64::try_from(change).unwrap_or(if change > 0 { i64::MAX } else { i64::MIN })
}

/// `GET /volumes/{name}/dirs`: `depth` 1 (default) or 2, `limit` 1 to 1000
/// (default 100), largest first. A known volume without recorded
/// directories answers with `scan_id` null and no entries.
pub(crate) async fn dirs(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<DirsQuery>,
    host: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = volume_name(&path)?;
    let (_, repo) = host.repo(&state, false)?;
    let DirsQuery { depth, compare, limit } = query.into_inner();
    let depth: u8 = match depth.as_deref().unwrap_or("1") {
        "1" => 1,
        "2" => 2,
        _ => return Err(ApiError::InvalidQuery("depth is 1 or 2".to_owned())),
    };
    let window = compare.as_deref().map(compare_window).transpose()?;
    let limit = limit.unwrap_or(DEFAULT_ENTRIES);
    if limit == 0 || limit > MAX_ENTRIES {
        return Err(ApiError::InvalidQuery(format!("limit must be 1 to {MAX_ENTRIES}")));
    }
    let lookup = name.clone();
    let read = block(move || read(&*repo, &lookup, window)).await?;
    let ((scan_id, ts), dirs, compared) = match read {
        Read::UnknownVolume => return Err(ApiError::VolumeNotFound(name.to_string())),
        Read::NoDirectories => {
            return Ok(HttpResponse::Ok().json(DirsJson {
                volume: name.to_string(),
                scan_id: None,
                ts: None,
                compare_ts: None,
                entries: Vec::new(),
            }));
        }
        Read::Scanned { newest, dirs, compared } => (newest, dirs, compared),
    };
    let (compare_ts, before) = compared.unzip();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let entries = with_deltas(&dirs, before.as_deref(), depth, limit)
        .into_iter()
        .map(|(dir, delta)| DirEntryJson::new(dir, delta))
        .collect();
    Ok(HttpResponse::Ok().json(DirsJson {
        volume: name.to_string(),
        scan_id: Some(scan_id.to_string()),
        ts: Some(crate::json::time_text(ts)),
        compare_ts: opt_time(compare_ts),
        entries,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + time::Duration::days(20_000) + time::Duration::hours(hours)
    }

    #[test]
    fn the_compared_scan_is_the_older_one_nearest_to_the_window_start() {
        let scans: Vec<(ScanId, Timestamp)> =
            [0, -6, -20, -30, -200].into_iter().map(|h| (ScanId::new(), at(h))).collect();
        let day = time::Duration::hours(24);
        assert_eq!(compared_scan(&scans, day).map(|s| s.1), Some(at(-20)));
        assert_eq!(compared_scan(&scans, time::Duration::days(7)).map(|s| s.1), Some(at(-200)));
        assert_eq!(compared_scan(&scans, time::Duration::hours(1)).map(|s| s.1), Some(at(-6)));
        // Equally near (-20 and -28 around -24): the older one.
        let tie: Vec<_> = [0, -20, -28].into_iter().map(|h| (ScanId::new(), at(h))).collect();
        assert_eq!(compared_scan(&tie, day).map(|s| s.1), Some(at(-28)));
        assert_eq!(compared_scan(&scans[..1], day), None, "no older scan");
        assert_eq!(compared_scan(&[], day), None);
    }

    #[test]
    fn deltas_saturate() {
        assert_eq!(delta(5, 7), -2);
        assert_eq!(delta(u64::MAX, 0), i64::MAX);
        assert_eq!(delta(0, u64::MAX), i64::MIN);
    }

    #[test]
    fn windows_are_the_three_documented() {
        assert_eq!(compare_window("7d").unwrap(), time::Duration::days(7));
        for bad in ["1h", "7", "", "24H"] {
            assert!(compare_window(bad).is_err(), "{bad}");
        }
    }
}
