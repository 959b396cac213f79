//! `/`: the first screen. The summary of SPEC §8 (total, unused and
//! reclaimable, filesystems with their fill forecast, the scheduler, recent
//! failures) above the table of every volume, sortable and filterable by
//! links and a plain form, so it all works without JavaScript.
//!
//! `/?host=ID` shows another host of a shared database (SPEC §10) from its
//! stored data, read afresh; a selector lists the hosts when there are
//! several. That host's scheduler is its own server's, so its panel is not
//! shown here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use volscan_domain::{
    Growth, Host, HostId, HostScope, RunFilter, ScanRun, ScanStatus, Timestamp, Volume, VolumeName,
    VolumeStat,
};
use volscan_scheduler::SchedulerStatus;

use super::table::{self, Column, Row};
use super::{Nav, encode, error_page, format, here, layout, page, reader};
use crate::cache::Version;
use crate::hosts::{HostQuery, Named};
use crate::insights::{self, Filesystem, Inputs};
use crate::routes::block;
use crate::{ApiError, AppState, growth};

/// Query of `/`.
#[derive(Deserialize, Default)]
pub(crate) struct OverviewQuery {
    /// `COLUMN:asc|desc`.
    pub sort: Option<String>,
    /// A part of the name, any case.
    pub q: Option<String>,
    /// `all`, `unused` or `in_use`.
    pub show: Option<String>,
    /// A host id (SPEC §10); absent: this server's host.
    pub host: Option<String>,
}

/// Everything the page shows, read in one blocking call.
pub(crate) struct Read {
    inputs: Inputs,
    active: Vec<ScanRun>,
}

fn read(repo: &dyn volscan_domain::ReadRepository) -> Result<Read, volscan_domain::RepoError> {
    // Active runs first: a scan that completes meanwhile shows as still
    // active beside its old size, never as done without its new size.
    let mut active =
        repo.runs(&RunFilter { limit: Some(500), ..RunFilter::with_status(ScanStatus::Running) })?;
    active.extend(
        repo.runs(&RunFilter { limit: Some(500), ..RunFilter::with_status(ScanStatus::Queued) })?,
    );
    let inputs = insights::read_inputs(repo, true)?;
    Ok(Read { inputs, active })
}

/// What Docker says while volscan knows no volume, asked only for the
/// empty state: how many volumes it has, or `None` when it does not answer.
async fn source_volumes(state: &AppState) -> Option<usize> {
    let source = Arc::clone(&state.source);
    let listing = web::block(move || source.volumes());
    match actix_web::rt::time::timeout(Duration::from_secs(2), listing).await {
        Ok(Ok(Ok(volumes))) => Some(volumes.len()),
        _ => None,
    }
}

/// `GET /`.
pub(crate) async fn overview(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<OverviewQuery>,
) -> HttpResponse {
    let viewer = match reader(&request, &state) {
        Ok(viewer) => viewer,
        Err(redirect) => return redirect,
    };
    let here = here(&request);
    match render(&state, &query).await {
        Ok(body) => page(StatusCode::OK, layout("Overview", Nav::Overview, &viewer, &here, body)),
        Err(err) => error_page(&err, &viewer, &here),
    }
}

/// The page body for `query`, as of now.
pub(crate) async fn render(state: &AppState, query: &OverviewQuery) -> Result<Markup, ApiError> {
    let named = HostQuery::of(query.host.clone()).named(state, false)?;
    let every = state.repo.scoped(HostScope::All);
    let hosts = block(move || every.hosts()).await?;
    let now = super::now();
    if let Named::Other(id) = &named {
        if !hosts.iter().any(|host| &host.info.id == id) {
            return Err(ApiError::HostNotFound(id.to_string()));
        }
        let repo = state.repo.scoped(HostScope::One(id.clone()));
        let growth = growth::all_of(Arc::clone(&repo)).await?;
        let data = block(move || read(&*repo)).await?;
        let shown = Shown { host: Some(id), hosts: &hosts, local: state.repo.local_host() };
        let sparks = growth::SparkMap::new();
        return Ok(body(
            &data.inputs,
            &data.active,
            &growth,
            &sparks,
            None,
            query,
            None,
            shown,
            now,
        ));
    }
    let (growth, sparks) = growth::with_sparks(state).await?;
    // The data is kept like the API's answers (same version, at most
    // `cache::TTL` old); the page, with its relative times, is drawn anew.
    let version = Version::now(state);
    let data = match state.pages.overview.fresh(&(), version) {
        Some(data) => data,
        None => {
            let repo = Arc::clone(&state.repo);
            let data = Arc::new(block(move || read(&*repo)).await?);
            state.pages.overview.store((), version, Arc::clone(&data));
            data
        }
    };
    let Read { inputs, active } = &*data;
    let status = state.scheduler.status();
    let docker = if inputs.present.is_empty() { source_volumes(state).await } else { Some(0) };
    let shown = Shown { host: None, hosts: &hosts, local: state.repo.local_host() };
    Ok(body(inputs, active, &growth, &sparks, Some(&status), query, docker, shown, now))
}

/// Which host the page shows, and the hosts to choose from.
#[derive(Clone, Copy)]
struct Shown<'a> {
    /// Another host; `None` for this server's own.
    host: Option<&'a HostId>,
    /// Every host sharing the database.
    hosts: &'a [Host],
    /// This server's host.
    local: &'a HostId,
}

/// The host selector: a plain form, shown when the database has several hosts.
fn selector(shown: Shown<'_>) -> Markup {
    let current = shown.host.unwrap_or(shown.local);
    html! {
        @if shown.hosts.len() > 1 {
            form.filters #host-selector method="get" action="/" {
                label { "Host "
                    select name="host" {
                        @for host in shown.hosts {
                            option value=(host.info.id.as_str()) selected[&host.info.id == current] {
                                (host.info.id.as_str()) @if &host.info.id == shown.local { " (this server)" }
                            }
                        }
                    }
                }
                " " button type="submit" { "Show" }
                " " a href="/hosts" { "All hosts" }
            }
        }
    }
}

/// Lays the page out.
#[allow(clippy::too_many_arguments)]
fn body(
    inputs: &Inputs,
    active: &[ScanRun],
    growth: &growth::GrowthMap,
    sparks: &growth::SparkMap,
    status: Option<&SchedulerStatus>,
    query: &OverviewQuery,
    docker: Option<usize>,
    shown: Shown<'_>,
    now: Timestamp,
) -> Markup {
    let latest: HashMap<&VolumeName, &VolumeStat> =
        inputs.latest.iter().map(|stat| (&stat.volume, stat)).collect();
    let failing = insights::failing(&inputs.present, &latest, &inputs.failed);
    let failed: HashSet<&VolumeName> = failing.iter().map(|run| &run.volume).collect();
    let running: HashMap<&VolumeName, &ScanRun> =
        active.iter().map(|run| (&run.volume, run)).collect();
    let (column, descending) = Column::parse(query.sort.as_deref());
    let needle = query.q.as_deref().unwrap_or("").trim().to_lowercase();
    let show = query.show.as_deref().unwrap_or("all");
    let mut rows: Vec<Row<'_>> = inputs
        .present
        .iter()
        .filter(|volume| needle.is_empty() || volume.name.as_str().to_lowercase().contains(&needle))
        .filter(|volume| match show {
            "unused" => volume.in_use == Some(false),
            "in_use" => volume.in_use == Some(true),
            _ => true,
        })
        .map(|volume| Row {
            volume,
            stat: latest.get(&volume.name).copied(),
            growth: growth.get(&volume.name).copied().unwrap_or(Growth::UNKNOWN),
            spark: sparks.get(&volume.name).cloned(),
            failed: failed.contains(&volume.name),
            active: running.get(&volume.name).copied(),
        })
        .collect();
    rows.sort_by(|a, b| a.compare(b, column, descending));
    let measured = inputs.present.iter().filter(|v| latest.contains_key(&v.name)).count();
    let host_link = shown.host.map(|host| format!("?host={host}")).unwrap_or_default();
    html! {
        h1 { "Docker volumes" @if let Some(host) = shown.host { " on " (host.as_str()) } }
        (selector(shown))
        (cards(inputs, &latest, measured, now))
        @match (status, shown.host) {
            (Some(status), _) => (first_looks(inputs, measured, status, docker, now)),
            (None, Some(host)) => {
                @if inputs.present.is_empty() {
                    div.empty #empty-state { p { strong { "No volume of " (host.as_str()) " is stored." } " Its own volscan-server records them at its first look at its Docker." } }
                } @else if measured == 0 {
                    div.empty { p { strong { "No volume of " (host.as_str()) " has been measured yet." } } }
                }
            }
            (None, None) => {}
        }
        div.two {
            section aria-labelledby="fs-title" {
                h2 #fs-title { "Filesystems" }
                (filesystems(&inputs.filesystems, now))
            }
            section aria-labelledby="sched-title" {
                h2 #sched-title { "Scheduler" }
                @match status {
                    Some(status) => (scheduler(status, now)),
                    None => p.muted { "This host is scheduled by its own volscan-server; see "
                        a href="/hosts" { "Hosts" } " for whether it is online." },
                }
            }
        }
        @if !failing.is_empty() {
            section aria-labelledby="fail-title" {
                h2 #fail-title { "Failing volumes" }
                (failures(&failing, &host_link, now))
            }
        }
        section aria-labelledby="vol-title" {
            h2 #vol-title { "Volumes" }
            (table::filters(query, show))
            (table::table(&rows, column, descending, query, now))
        }
    }
}

/// The first look of this server's own host: nothing known yet, or nothing
/// measured yet, with what the scheduler is doing about it.
fn first_looks(
    inputs: &Inputs,
    measured: usize,
    status: &SchedulerStatus,
    docker: Option<usize>,
    now: Timestamp,
) -> Markup {
    html! {
        @if inputs.present.is_empty() {
            (empty_state(docker, status, now))
        } @else if measured == 0 {
            div.empty {
                @if status.active_scans + status.queue_depth > 0 {
                    p { strong { "First scan running." } " " (status.active_scans) " scanning, "
                        (status.queue_depth) " queued; sizes appear here as each volume finishes." }
                    p { a href="/scans" { "Follow it on the Scans page" } }
                } @else {
                    p { strong { "No volume has been measured yet." } " "
                        @match status.next_run_at {
                            Some(next) => { "The first periodic run starts " (format::when(next, now)) "; " }
                            None => "Periodic scans are off; ",
                        }
                        "“Scan all” measures every volume now." }
                }
            }
        }
    }
}

fn cards(
    inputs: &Inputs,
    latest: &HashMap<&VolumeName, &VolumeStat>,
    measured: usize,
    now: Timestamp,
) -> Markup {
    let size = |v: &Volume| latest.get(&v.name).map_or(0, |s| s.usage.size_bytes);
    let total: u64 = inputs.present.iter().map(size).fold(0, u64::saturating_add);
    let unused: Vec<&Volume> = inputs.present.iter().filter(|v| v.in_use == Some(false)).collect();
    let reclaimable: u64 = unused.iter().map(|v| size(v)).fold(0, u64::saturating_add);
    let newest = inputs.present.iter().filter_map(|v| latest.get(&v.name)).map(|s| s.ts).max();
    let oldest = inputs.present.iter().filter_map(|v| latest.get(&v.name)).map(|s| s.ts).min();
    html! {
        div.cards {
            div.card { div.label { "Volumes" } div.value #total-count { (inputs.present.len()) }
                div.note { (measured) " measured" } }
            div.card { div.label { "Total size" } div.value #total-size {
                    @if measured == 0 { span.muted title="no volume measured yet" { "—" } } @else { (format::size(total)) } }
                div.note { "of the measured ones" } }
            div.card { div.label { "Unused" } div.value { (unused.len()) }
                div.note { "no container refers to them" } }
            div.card { div.label { "Reclaimable" } div.value {
                    @if measured == 0 { span.muted title="no volume measured yet" { "—" } } @else { (format::size(reclaimable)) } }
                div.note { "latest size of the unused" } }
            div.card { div.label { "Newest scan" } div.value { (format::when_or(newest, now, "never")) }
                div.note { "oldest figure " (format::when_or(oldest, now, "none")) } }
        }
    }
}

/// What to tell a user while volscan knows no volume: Docker is not
/// reachable, or volscan has not looked yet, or there are none.
fn empty_state(docker: Option<usize>, status: &SchedulerStatus, now: Timestamp) -> Markup {
    html! {
        div.empty #empty-state {
            @if let Some(count @ 1..) = docker {
                p { strong { "volscan has not looked at Docker's volumes yet." } " Docker has " (count)
                    "; they appear here at volscan's first look, "
                    @match status.next_run_at {
                        Some(next) => { "with the first periodic run " (format::when(next, now)) "." }
                        None => "at the next reconcile, or now with “Scan all”.",
                    }
                }
            } @else if docker.is_none() {
                p { strong { "Docker is not reachable." } " volscan could not reach the Docker Engine "
                    "at its DOCKER_HOST, and no volume is stored yet. Check that the socket is "
                    "mounted and readable; see " a href="/api/v1/health" { "health" } "." }
            } @else {
                p { strong { "No volumes yet." } " volscan lists every Docker volume of this host. "
                    "Create one (" code { "docker volume create NAME" } ") or start a container "
                    "with a volume, and it appears here within seconds; its size follows after its "
                    "first scan." }
            }
        }
    }
}

/// A used/free bar.
fn bar(total: u64, avail: u64) -> Markup {
    let used = total.saturating_sub(avail);
    let share = if total == 0 { 0.0 } else { used as f64 / total as f64 };
    let width = format!("{:.1}", share * 100.0);
    let class = if share >= 0.9 { "full" } else { "used" };
    html! {
        svg.bar viewBox="0 0 100 6" preserveAspectRatio="none" role="img"
            aria-label={ (format!("{:.0}", share * 100.0)) " % used" } {
            rect.free x="0" y="0" width="100" height="6" {}
            rect class=(class) x="0" y="0" width=(width) height="6" {}
        }
    }
}

fn filesystems(listed: &[Filesystem], now: Timestamp) -> Markup {
    html! {
        @if listed.is_empty() {
            p.muted { "No filesystem sampled yet: each scan samples the filesystem holding its volume." }
        }
        @for fs in listed {
            @let sample = &fs.newest;
            div.panel {
                div { strong { code { (sample.mount_point) } } " " span.muted { (sample.fs_type) } }
                (bar(sample.total_bytes, sample.avail_bytes))
                div {
                    (format::size(sample.avail_bytes)) " free of " (format::size(sample.total_bytes))
                    " · " (fs.volume_count) " volumes, " (format::size(fs.volumes_bytes))
                }
                div {
                    @match fs.forecast.full_at {
                        Some(full_at) => {
                            strong.up { "Full " (format::when(full_at, now)) }
                        }
                        None => span.muted { "No fill date: usage is not rising, or too few samples." }
                    }
                    " · sampled " (format::when(sample.ts, now))
                }
            }
        }
    }
}

fn scheduler(status: &SchedulerStatus, now: Timestamp) -> Markup {
    html! {
        dl.facts {
            dt { "State" } dd { @if status.running { "running" } @else { strong.up { "stopped" } } }
            dt { "Last run of all volumes" } dd { (format::when_or(status.last_run_at, now, "none yet")) }
            dt { "Next periodic run" } dd { (format::when_or(status.next_run_at, now, "not scheduled")) }
            dt { "Scanning" } dd { (status.active_scans) " of " (status.worker_count) " workers" }
            dt { "Queue" } dd { (status.queue_depth) " of " (status.queue_capacity) }
            dt { "Since start" } dd { (status.total_completed) " completed, " (status.total_failed)
                " failed, " (status.total_canceled) " canceled" }
        }
    }
}

fn failures(failing: &[&ScanRun], host_link: &str, now: Timestamp) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th scope="col" { "Volume" } th scope="col" { "Error" } th scope="col" { "When" } } }
            tbody {
                @for run in failing.iter().take(10) {
                    tr {
                        td.name { a href={ "/volumes/" (encode(run.volume.as_str())) (host_link) } { (run.volume.as_str()) } }
                        td { (run.error_message.as_deref().unwrap_or("no message")) }
                        td { (format::when_or(run.completed_at, now, "unknown")) }
                    }
                }
            }
        } }
    }
}
