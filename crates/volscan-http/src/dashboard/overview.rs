//! `/`: the first screen. The summary of SPEC §8 (total, unused and
//! reclaimable, filesystems with their fill forecast, the scheduler, recent
//! failures) above the table of every volume, sortable and filterable by
//! links and a plain form, so it all works without JavaScript.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use volscan_domain::{
    Growth, RunFilter, ScanRun, ScanStatus, Timestamp, Volume, VolumeName, VolumeStat,
};
use volscan_scheduler::SchedulerStatus;

use super::{Nav, chart, encode, error_page, format, here, layout, page, reader};
use crate::cache::Version;
use crate::insights::{self, Filesystem, Inputs};
use crate::routes::block;
use crate::{ApiError, AppState, growth};

/// What the volume table sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Name,
    Size,
    Delta24h,
    Delta7d,
    Files,
    Scanned,
}

impl Column {
    const ALL: [(&'static str, Column); 6] = [
        ("name", Column::Name),
        ("size", Column::Size),
        ("delta_24h", Column::Delta24h),
        ("delta_7d", Column::Delta7d),
        ("files", Column::Files),
        ("scanned", Column::Scanned),
    ];

    fn key(self) -> &'static str {
        Self::ALL.iter().find(|(_, c)| *c == self).map_or("name", |(key, _)| key)
    }

    /// `key:asc|desc`; anything else falls back to size, largest first.
    fn parse(text: Option<&str>) -> (Column, bool) {
        let parsed = text.and_then(|text| {
            let (key, order) = text.split_once(':')?;
            let column = Self::ALL.iter().find(|(k, _)| *k == key)?.1;
            match order {
                "asc" => Some((column, false)),
                "desc" => Some((column, true)),
                _ => None,
            }
        });
        parsed.unwrap_or((Column::Size, true))
    }
}

/// Query of `/`.
#[derive(Deserialize, Default)]
pub(crate) struct OverviewQuery {
    sort: Option<String>,
    q: Option<String>,
    show: Option<String>,
}

/// One row of the volume table.
struct Row<'a> {
    volume: &'a Volume,
    stat: Option<&'a VolumeStat>,
    growth: Growth,
    spark: Option<Arc<[(Timestamp, u64)]>>,
    failed: bool,
    active: Option<&'a ScanRun>,
}

impl Row<'_> {
    fn compare(&self, other: &Self, column: Column, descending: bool) -> Ordering {
        let known = |a: Option<i128>, b: Option<i128>| match (a, b) {
            (Some(a), Some(b)) if descending => b.cmp(&a),
            (Some(a), Some(b)) => a.cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let figure = |row: &Self| -> Option<i128> {
            match column {
                Column::Name => None,
                Column::Size => row.stat.map(|s| i128::from(s.usage.size_bytes)),
                Column::Delta24h => row.growth.delta_24h.map(i128::from),
                Column::Delta7d => row.growth.delta_7d.map(i128::from),
                Column::Files => row.stat.and_then(|s| s.usage.file_count).map(i128::from),
                Column::Scanned => row.stat.map(|s| s.ts.unix_timestamp_nanos()),
            }
        };
        let by_name = self.volume.name.cmp(&other.volume.name);
        if column == Column::Name {
            return if descending { by_name.reverse() } else { by_name };
        }
        known(figure(self), figure(other)).then(by_name)
    }
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
    Ok(body(inputs, active, &growth, &sparks, &status, query, docker, super::now()))
}

/// Lays the page out.
#[allow(clippy::too_many_arguments)]
fn body(
    inputs: &Inputs,
    active: &[ScanRun],
    growth: &growth::GrowthMap,
    sparks: &growth::SparkMap,
    status: &SchedulerStatus,
    query: &OverviewQuery,
    docker: Option<usize>,
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
    html! {
        h1 { "Docker volumes" }
        (cards(inputs, &latest, measured, now))
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
        div.two {
            section aria-labelledby="fs-title" {
                h2 #fs-title { "Filesystems" }
                (filesystems(&inputs.filesystems, now))
            }
            section aria-labelledby="sched-title" {
                h2 #sched-title { "Scheduler" }
                (scheduler(status, now))
            }
        }
        @if !failing.is_empty() {
            section aria-labelledby="fail-title" {
                h2 #fail-title { "Failing volumes" }
                (failures(&failing, now))
            }
        }
        section aria-labelledby="vol-title" {
            h2 #vol-title { "Volumes" }
            (filters(query, show))
            (table(&rows, column, descending, query, now))
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

fn failures(failing: &[&ScanRun], now: Timestamp) -> Markup {
    html! {
        div.scroll { table {
            thead { tr { th scope="col" { "Volume" } th scope="col" { "Error" } th scope="col" { "When" } } }
            tbody {
                @for run in failing.iter().take(10) {
                    tr {
                        td.name { a href={ "/volumes/" (encode(run.volume.as_str())) } { (run.volume.as_str()) } }
                        td { (run.error_message.as_deref().unwrap_or("no message")) }
                        td { (format::when_or(run.completed_at, now, "unknown")) }
                    }
                }
            }
        } }
    }
}

fn filters(query: &OverviewQuery, show: &str) -> Markup {
    html! {
        form.filters method="get" action="/" role="search" {
            label { span.visually-hidden { "Filter by name" }
                input type="search" name="q" placeholder="Filter by name" value=(query.q.as_deref().unwrap_or("")); }
            label { "Show "
                select name="show" {
                    option value="all" selected[show == "all"] { "all" }
                    option value="unused" selected[show == "unused"] { "unused" }
                    option value="in_use" selected[show == "in_use"] { "in use" }
                }
            }
            @if let Some(sort) = &query.sort { input type="hidden" name="sort" value=(sort); }
            button.secondary type="submit" { "Apply" }
        }
    }
}

/// A sortable column header: a link that sorts by it (descending first for
/// figures, ascending for the name; again to reverse).
fn header(
    label: &str,
    col: Column,
    current: (Column, bool),
    query: &OverviewQuery,
    class: &str,
) -> Markup {
    let (column, descending) = current;
    let next_desc = if column == col { !descending } else { col != Column::Name };
    let mut href = format!("/?sort={}:{}", col.key(), if next_desc { "desc" } else { "asc" });
    if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
        href.push_str(&format!("&q={}", encode(q)));
    }
    if let Some(show) = query.show.as_deref() {
        href.push_str(&format!("&show={}", encode(show)));
    }
    let sort = (column == col).then_some(if descending { "descending" } else { "ascending" });
    html! {
        th scope="col" class=(class) aria-sort=[sort] {
            a href=(href) data-sort=(col.key()) aria-sort=[sort] { (label)
                @if column == col { @if descending { " ↓" } @else { " ↑" } } }
        }
    }
}

fn delta_cell(delta: Option<i64>) -> Markup {
    match delta {
        Some(d) => {
            let class = match d.signum() {
                1 => "num up",
                -1 => "num down",
                _ => "num",
            };
            html! { td class=(class) { (format::delta(d)) } }
        }
        None => html! { td.num.muted title="not enough history" { "—" } },
    }
}

fn table(
    rows: &[Row<'_>],
    column: Column,
    descending: bool,
    query: &OverviewQuery,
    now: Timestamp,
) -> Markup {
    let current = (column, descending);
    html! {
        @if rows.is_empty() {
            p.muted { "No volume matches." }
        } @else {
            div.scroll { table #volumes {
                caption.visually-hidden { "Volumes, " (rows.len()) " shown" }
                thead { tr {
                    (header("Name", Column::Name, current, query, ""))
                    (header("Size", Column::Size, current, query, "num"))
                    (header("Δ24h", Column::Delta24h, current, query, "num"))
                    (header("Δ7d", Column::Delta7d, current, query, "num"))
                    th scope="col" class="wide-only" { "30 days" }
                    (header("Files", Column::Files, current, query, "num wide-only"))
                    th scope="col" { "Use" }
                    (header("Scanned", Column::Scanned, current, query, ""))
                    th scope="col" class="wide-only" { "Method" }
                } }
                tbody {
                    @for row in rows { (table_row(row, now)) }
                }
            } }
        }
    }
}

fn table_row(row: &Row<'_>, now: Timestamp) -> Markup {
    let name = row.volume.name.as_str();
    html! {
        tr data-volume=(name) {
            td.name {
                a href={ "/volumes/" (encode(name)) } { (name) }
                @if row.failed { " " span.badge.failed title="the last scan failed; the size shown is the last measured one" { "failed" } }
                @if let Some(run) = row.active { " " span class={ "badge " (run.status.as_str()) } { (run.status.as_str()) } }
            }
            @match row.stat {
                Some(stat) => {
                    td.num data-bytes=(stat.usage.size_bytes) {
                        @if stat.usage.is_partial() {
                            span title={ (stat.usage.error_count) " entries could not be read: at least this much" } { "≥ " }
                        }
                        (format::size(stat.usage.size_bytes))
                    }
                }
                None => td.num.muted title="not measured yet" { "—" },
            }
            (delta_cell(row.growth.delta_24h))
            (delta_cell(row.growth.delta_7d))
            td.wide-only { (chart::sparkline(row.spark.as_deref().unwrap_or(&[]))) }
            td.num.wide-only {
                @match row.stat.and_then(|s| s.usage.file_count) {
                    Some(files) => (format::count(files)),
                    None => span.muted title="this method does not count files" { "—" },
                }
            }
            td {
                (super::use_of(row.volume, now))
            }
            td { (format::when_or(row.stat.map(|s| s.ts), now, "never")) }
            td.wide-only { @if let Some(stat) = row.stat { (stat.method.as_str()) } }
        }
    }
}
