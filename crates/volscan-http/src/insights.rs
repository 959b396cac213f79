//! `GET /filesystems` and `GET /summary` (SPEC §8): the filesystems holding
//! present volumes with their fill forecast, and the figures the dashboard's
//! first screen needs in one answer.
//!
//! Both are rendered once per data version (and, for the summary, failure
//! count; see `cache.rs`) from a few queries: the present volumes, their
//! latest stats, the recent filesystem samples, the recent failed runs, and
//! every volume's growth (`growth.rs`, shared with `GET /volumes`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use volscan_domain::{
    FORECAST_WINDOW, FilesystemSample, Forecast, ReadRepository, RepoError, RunFilter, ScanRun,
    ScanStatus, Timestamp, Volume, VolumeName, VolumeStat, forecast,
};

use crate::cache::{self, Version};
use crate::hosts::{HostQuery, Named};
use crate::json::{
    FailingJson, FilesystemJson, GrowingJson, LargestJson, SummaryJson, opt_time, time_text,
};
use crate::routes::block;
use crate::{ApiError, AppState, growth};

/// Which rendered answer of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Insight {
    /// `GET /filesystems`.
    Filesystems,
    /// `GET /summary`.
    Summary,
}

/// How many volumes `largest` and `fastest_growing` list.
const TOP: usize = 5;

/// How many of the newest failed runs `failing` is drawn from: a volume
/// whose last failure is older than this many failures of others is not
/// listed.
const FAILED_RUNS: u32 = 1000;

/// Samples are read for this long before the forecast window, so that the
/// window of a filesystem sampled up to this long ago is read whole in the
/// one query; older ones are read one by one.
const SAMPLE_SLACK: Duration = Duration::from_secs(86_400);

/// `ts` minus `span`, or the Unix epoch when that is not representable (no
/// stored time is older).
fn before(ts: Timestamp, span: Duration) -> Timestamp {
    time::Duration::try_from(span)
        .ok()
        .and_then(|span| ts.checked_sub(span))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A filesystem holding present volumes, before it becomes JSON.
pub(crate) struct Filesystem {
    /// Its newest sample.
    pub newest: FilesystemSample,
    /// Its fill forecast over the week before that sample.
    pub forecast: Forecast,
    /// How many present volumes it holds.
    pub volume_count: u64,
    /// Their latest sizes, summed.
    pub volumes_bytes: u64,
}

impl Filesystem {
    fn json(&self) -> FilesystemJson {
        FilesystemJson::new(&self.newest, &self.forecast, self.volume_count, self.volumes_bytes)
    }
}

/// The samples of every filesystem in `ids`, each with at least the
/// forecast window before its own newest sample; a filesystem without any
/// sample is absent.
fn samples_of(
    repo: &dyn ReadRepository,
    ids: &BTreeSet<&str>,
    now: Timestamp,
) -> Result<BTreeMap<String, Vec<FilesystemSample>>, RepoError> {
    let since = before(now, FORECAST_WINDOW + SAMPLE_SLACK);
    let mut by_id: BTreeMap<String, Vec<FilesystemSample>> = BTreeMap::new();
    for sample in repo.filesystem_samples(None, since)? {
        if ids.contains(sample.id.as_str()) {
            by_id.entry(sample.id.clone()).or_default().push(sample);
        }
    }
    for &id in ids {
        let newest = by_id.get(id).and_then(|samples| samples.last()).map(|s| s.ts);
        let window_start = newest.map(|ts| before(ts, FORECAST_WINDOW));
        if window_start.is_some_and(|start| start >= since) {
            continue;
        }
        // Not sampled lately: read its own window (or, when none of its
        // samples was read, all of them: the newest is the last).
        let samples =
            repo.filesystem_samples(Some(id), window_start.unwrap_or(Timestamp::UNIX_EPOCH))?;
        if !samples.is_empty() {
            by_id.insert(id.to_owned(), samples);
        }
    }
    Ok(by_id)
}

/// Every filesystem holding a present volume and having a sample, soonest
/// `full_at` first (the ones without last), then by mount point and id.
fn filesystems(
    repo: &dyn ReadRepository,
    present: &[Volume],
    latest: &HashMap<&VolumeName, &VolumeStat>,
    now: Timestamp,
) -> Result<Vec<Filesystem>, RepoError> {
    let mut holding: HashMap<&str, (u64, u64)> = HashMap::new();
    for volume in present {
        if let Some(id) = volume.filesystem_id.as_deref() {
            let size = latest.get(&volume.name).map_or(0, |stat| stat.usage.size_bytes);
            let (count, bytes) = holding.entry(id).or_default();
            *count += 1;
            *bytes = bytes.saturating_add(size);
        }
    }
    let ids: BTreeSet<&str> = holding.keys().copied().collect();
    let mut listed = Vec::new();
    for (id, samples) in samples_of(repo, &ids, now)? {
        let Some(newest) = samples.last().cloned() else { continue };
        let points: Vec<(Timestamp, u64)> = samples.iter().map(|s| (s.ts, s.avail_bytes)).collect();
        let (volume_count, volumes_bytes) = holding.get(id.as_str()).copied().unwrap_or_default();
        let forecast = forecast(&points, FORECAST_WINDOW);
        listed.push(Filesystem { newest, forecast, volume_count, volumes_bytes });
    }
    listed.sort_by(|a, b| {
        (a.forecast.full_at.is_none(), a.forecast.full_at, &a.newest.mount_point, &a.newest.id).cmp(
            &(
                b.forecast.full_at.is_none(),
                b.forecast.full_at,
                &b.newest.mount_point,
                &b.newest.id,
            ),
        )
    });
    Ok(listed)
}

/// What the summary (and the dashboard's overview) is computed from, read
/// in one blocking call.
pub(crate) struct Inputs {
    /// The volumes Docker has now.
    pub present: Vec<Volume>,
    /// Every volume's latest stat.
    pub latest: Vec<VolumeStat>,
    /// The newest failed runs, newest first (empty unless asked for).
    pub failed: Vec<ScanRun>,
    /// The filesystems holding present volumes.
    pub filesystems: Vec<Filesystem>,
}

/// Reads the summary's inputs; the failed runs only when `failures`.
pub(crate) fn read_inputs(repo: &dyn ReadRepository, failures: bool) -> Result<Inputs, RepoError> {
    let present = repo.volumes(false)?;
    let latest = repo.latest_stats()?;
    let filesystems = {
        let by_name: HashMap<&VolumeName, &VolumeStat> =
            latest.iter().map(|stat| (&stat.volume, stat)).collect();
        filesystems(repo, &present, &by_name, Timestamp::now_utc())?
    };
    let failed = if failures {
        let filter = RunFilter {
            status: Some(ScanStatus::Failed),
            limit: Some(FAILED_RUNS),
            ..RunFilter::default()
        };
        repo.runs(&filter)?
    } else {
        Vec::new()
    };
    Ok(Inputs { present, latest, failed, filesystems })
}

/// `GET /filesystems?host=H`: every filesystem holding a present volume of
/// the host, with its newest sample and its forecast over the week of
/// samples before it. Only this host's answer is cached (the data version
/// counts this process's writes).
pub(crate) async fn list_filesystems(
    state: web::Data<AppState>,
    host: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let (named, repo) = host.repo(&state, false)?;
    let local = named == Named::Local;
    let version = Version::data(&state);
    if local && let Some(body) = state.insights.fresh(&Insight::Filesystems, version) {
        return Ok(cache::ok(body));
    }
    let inputs = block(move || read_inputs(&*repo, false)).await?;
    let listed: Vec<FilesystemJson> = inputs.filesystems.iter().map(Filesystem::json).collect();
    let body = cache::json_body(&listed)?;
    if local {
        state.insights.store(Insight::Filesystems, version, body.clone());
    }
    Ok(cache::ok(body))
}

/// `GET /summary?host=H`; another host's growth is read from its stats.
pub(crate) async fn summary(
    state: web::Data<AppState>,
    host: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let (named, repo) = host.repo(&state, false)?;
    let local = named == Named::Local;
    let version = Version::now(&state);
    if local && let Some(body) = state.insights.fresh(&Insight::Summary, version) {
        return Ok(cache::ok(body));
    }
    let growth =
        if local { growth::all(&state).await? } else { growth::all_of(Arc::clone(&repo)).await? };
    let inputs = block(move || read_inputs(&*repo, true)).await?;
    let body = cache::json_body(&summarize(&inputs, &growth))?;
    if local {
        state.insights.store(Insight::Summary, version, body.clone());
    }
    Ok(cache::ok(body))
}

/// The summary of the present volumes.
fn summarize(inputs: &Inputs, growth: &growth::GrowthMap) -> SummaryJson {
    let latest: HashMap<&VolumeName, &VolumeStat> =
        inputs.latest.iter().map(|stat| (&stat.volume, stat)).collect();
    let present = &inputs.present;
    let size = |volume: &Volume| latest.get(&volume.name).map_or(0, |stat| stat.usage.size_bytes);
    let unused: Vec<&Volume> = present.iter().filter(|v| v.in_use == Some(false)).collect();
    let measured: Vec<&VolumeStat> =
        present.iter().filter_map(|volume| latest.get(&volume.name).copied()).collect();

    let mut largest = measured.clone();
    largest
        .sort_by(|a, b| b.usage.size_bytes.cmp(&a.usage.size_bytes).then(a.volume.cmp(&b.volume)));
    let largest = largest
        .iter()
        .take(TOP)
        .map(|stat| LargestJson {
            name: stat.volume.to_string(),
            size_bytes: stat.usage.size_bytes,
            scanned_at: time_text(stat.ts),
        })
        .collect();

    let mut growing: Vec<(&VolumeName, f64, &volscan_domain::Growth)> = present
        .iter()
        .filter_map(|volume| {
            let figures = growth.get(&volume.name)?;
            let rate = figures.rate_bytes_per_day.filter(|rate| *rate > 0.0)?;
            Some((&volume.name, rate, figures))
        })
        .collect();
    growing.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let fastest_growing = growing
        .iter()
        .take(TOP)
        .filter_map(|&(name, rate, figures)| {
            Some(GrowingJson {
                name: name.to_string(),
                rate_bytes_per_day: rate,
                delta_24h: figures.delta_24h,
                trend: figures.trend.as_str(),
                as_of: time_text(figures.as_of?),
            })
        })
        .collect();

    SummaryJson {
        volume_count: present.len() as u64,
        total_bytes: present.iter().map(size).fold(0, u64::saturating_add),
        unused_count: unused.len() as u64,
        reclaimable_bytes: unused.iter().map(|v| size(v)).fold(0, u64::saturating_add),
        largest,
        fastest_growing,
        filesystems_filling: inputs
            .filesystems
            .iter()
            .filter(|fs| fs.forecast.full_at.is_some())
            .map(Filesystem::json)
            .collect(),
        failing: failing(present, &latest, &inputs.failed)
            .iter()
            .map(|run| FailingJson {
                name: run.volume.to_string(),
                scan_id: run.scan_id.to_string(),
                error_message: run.error_message.clone(),
                completed_at: opt_time(run.completed_at),
            })
            .collect(),
        last_scan_at: opt_time(measured.iter().map(|stat| stat.ts).max()),
        oldest_scan_at: opt_time(measured.iter().map(|stat| stat.ts).min()),
    }
}

/// The present volumes whose last measurement failed: their newest failed
/// run (among `failed`, newest first) is not followed by a completed scan.
/// A run queued, running or canceled since does not clear the failure;
/// only a measurement does. Most recent failure first.
pub(crate) fn failing<'a>(
    present: &[Volume],
    latest: &HashMap<&VolumeName, &VolumeStat>,
    failed: &'a [ScanRun],
) -> Vec<&'a ScanRun> {
    let present: HashSet<&VolumeName> = present.iter().map(|v| &v.name).collect();
    let mut seen = HashSet::new();
    let mut listed: Vec<&ScanRun> = failed
        .iter()
        .filter(|run| seen.insert(&run.volume))
        .filter(|run| present.contains(&run.volume))
        .filter(|run| {
            let failed_at = run.completed_at.unwrap_or(run.queued_at);
            latest.get(&run.volume).is_none_or(|stat| stat.ts <= failed_at)
        })
        .collect();
    listed.sort_by_key(|run| Reverse(run.completed_at.unwrap_or(run.queued_at)));
    listed
}
