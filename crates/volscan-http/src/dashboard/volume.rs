//! `/volumes/{name}`: one volume. Its chart of size and apparent size over
//! 24 h, 7 d, 30 d or everything stored; its growth figures; the directory
//! breakdown with changes; the containers that use it; its runs, with
//! "Scan now" and a cancel for an active run. `?host=ID` shows another
//! host's volume of a shared database (SPEC §10); its scan is queued for
//! that host's own workers.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use volscan_domain::{
    DirUsage, Growth, HostId, HostScope, RunFilter, ScanRun, ScanStatus, Timestamp, Volume,
    VolumeStat, VolumeUsers,
};

use super::chart::{self, ChartPoint};
use super::session::Viewer;
use super::{
    Nav, action_button, encode, error_page, format, here, layout, page, progress, reader,
    status_badge,
};
use crate::dirs::{self, Read as DirsRead};
use crate::hosts::{HostQuery, Named};
use crate::routes::{block, volume_name};
use crate::{ApiError, AppState, growth};

/// Query of `/volumes/{name}`.
#[derive(Deserialize)]
pub(crate) struct VolumeQuery {
    range: Option<String>,
    compare: Option<String>,
    host: Option<String>,
}

/// The chart's ranges: query value, label, and how far back (`None`: all).
const RANGES: [(&str, &str, Option<i64>); 4] = [
    ("24h", "24 hours", Some(1)),
    ("7d", "7 days", Some(7)),
    ("30d", "30 days", Some(30)),
    ("all", "everything stored", None),
];

/// Most stored points read for the chart before thinning.
const MAX_HISTORY: u32 = 10_000;

/// Runs listed.
const RUNS: u32 = 20;

/// Directories listed.
const DIRS: usize = 50;

/// What the page shows, read in one blocking call.
struct Read {
    volume: Volume,
    latest: Option<VolumeStat>,
    history: Vec<VolumeStat>,
    runs: Vec<ScanRun>,
    dirs: DirsRead,
}

/// `GET /volumes/{name}?range=24h|7d|30d|all&compare=24h|7d|30d`.
pub(crate) async fn volume(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<VolumeQuery>,
) -> HttpResponse {
    let viewer = match reader(&request, &state) {
        Ok(viewer) => viewer,
        Err(redirect) => return redirect,
    };
    let here = here(&request);
    match render(&state, &path, &query, &viewer, &here).await {
        Ok((title, body)) => page(StatusCode::OK, layout(&title, Nav::Other, &viewer, &here, body)),
        Err(err) => error_page(&err, &viewer, &here),
    }
}

async fn render(
    state: &AppState,
    raw_name: &str,
    query: &VolumeQuery,
    viewer: &Viewer,
    here: &str,
) -> Result<(String, Markup), ApiError> {
    let name = volume_name(raw_name)?;
    let range =
        RANGES.iter().find(|(key, ..)| Some(*key) == query.range.as_deref()).unwrap_or(&RANGES[1]);
    let compare_key = query.compare.as_deref().unwrap_or("24h");
    let window = dirs::compare_window(compare_key)?;
    let now = super::now();
    let since = range.2.map(|days| now - time::Duration::days(days));
    let other = match HostQuery::of(query.host.clone()).named(state, false)? {
        Named::Other(id) => Some(id),
        _ => None,
    };
    let repo = match &other {
        Some(id) => state.repo.scoped(HostScope::One(id.clone())),
        None => Arc::clone(&state.repo),
    };
    let reader = Arc::clone(&repo);
    let lookup = name.clone();
    let read = block(move || {
        let repo = reader;
        let Some(volume) = repo.volume(&lookup)? else { return Ok(None) };
        let filter =
            RunFilter { volume: Some(lookup.clone()), limit: Some(RUNS), ..RunFilter::default() };
        // Runs first: a scan that completes while this reads then shows
        // its run still active (and the script reloads the page), never a
        // completed run beside the size from before it.
        let runs = repo.runs(&filter)?;
        Ok(Some(Read {
            runs,
            latest: repo.latest_stat(&lookup)?,
            history: repo.history(&lookup, since, None, MAX_HISTORY)?,
            dirs: dirs::read(&*repo, &lookup, Some(window))?,
            volume,
        }))
    })
    .await?
    .ok_or_else(|| ApiError::VolumeNotFound(name.to_string()))?;
    // Docker answers for this host only: another host's containers are its
    // own server's to know.
    let (growth, users) = match &other {
        None => (growth::of(state, &name).await?, crate::volumes::users(state).await),
        Some(_) => (growth::of_in(repo, &name).await?, None),
    };
    let used = users.as_ref().and_then(|users| users.iter().find(|u| u.volume == name));
    let seen = Seen { host: other.as_ref(), docker_answered: users.is_some() };
    let body = body(&read, &growth, used, seen, range, compare_key, viewer, here, now);
    Ok((name.to_string(), body))
}

/// Whose volume the page shows and whether its Docker answered.
#[derive(Clone, Copy)]
struct Seen<'a> {
    /// Another host; `None` for this server's own.
    host: Option<&'a HostId>,
    /// Whether this host's Docker listed the containers.
    docker_answered: bool,
}

impl Seen<'_> {
    /// `&host=ID` for a link of this page, or nothing.
    fn link(&self) -> String {
        self.host.map(|host| format!("&host={host}")).unwrap_or_default()
    }
}

#[allow(clippy::too_many_arguments)]
fn body(
    read: &Read,
    growth: &Growth,
    used: Option<&VolumeUsers>,
    seen: Seen<'_>,
    range: &(&str, &str, Option<i64>),
    compare_key: &str,
    viewer: &Viewer,
    here: &str,
    now: Timestamp,
) -> Markup {
    let volume = &read.volume;
    let name = volume.name.as_str();
    let points: Vec<ChartPoint> = read
        .history
        .iter()
        .map(|stat| ChartPoint {
            ts: stat.ts,
            size: stat.usage.size_bytes,
            apparent: stat.usage.apparent_bytes,
        })
        .collect();
    let points = chart::thin(&points, |p| p.ts, chart::MAX_POINTS);
    let active = read.runs.iter().find(|run| !run.status.is_final());
    html! {
        h1 { "Volume " code #volume-name { (name) } @if let Some(host) = seen.host { " on " (host.as_str()) } }
        @if volume.removed_at.is_some() {
            p.notice.error { "Docker no longer has this volume; its stored history is shown." }
        }
        div.cards {
            (figure_card("Size", read.latest.as_ref().map(|s| s.usage.size_bytes), read.latest.as_ref(), now, "size-now"))
            (figure_card("Apparent size", read.latest.as_ref().and_then(|s| s.usage.apparent_bytes), read.latest.as_ref(), now, "apparent-now"))
            div.card { div.label { "Files" } div.value {
                @match read.latest.as_ref().and_then(|s| s.usage.file_count) {
                    Some(files) => (format::count(files)),
                    None => span.muted title="not counted by this method" { "—" },
                } } }
            div.card { div.label { "Δ24h · Δ7d · Δ30d" } div.value {
                (opt_delta(growth.delta_24h)) " · " (opt_delta(growth.delta_7d)) " · " (opt_delta(growth.delta_30d)) }
                div.note { "as of " (format::when_or(growth.as_of, now, "no data")) } }
            div.card { div.label { "Growth rate" } div.value {
                @match growth.rate_bytes_per_day { Some(rate) => (format::rate(rate)), None => span.muted title="fewer than 3 points or under an hour of history" { "—" } } }
                div.note { "trend: " (growth.trend.as_str()) } }
        }
        div.filters {
            @if viewer.may_act() {
                @let host = seen.host.map(|host| format!("?host={host}")).unwrap_or_default();
                (action_button(&format!("/actions/scan/{}{host}", encode(name)), "Scan now", "", viewer, here))
            } @else {
                a href={ "/login?next=" (encode(here)) } { "Log in to scan" }
            }
            @if let Some(run) = active {
                span data-live-scan=(run.scan_id.to_string()) {
                    (status_badge(run.status)) " " (progress(run))
                    @if viewer.may_act() {
                        " " span data-cancel { (action_button(&format!("/actions/cancel/{}", run.scan_id), "Cancel", "danger", viewer, here)) }
                    }
                }
            }
        }
        section aria-labelledby="chart-title" {
            h2 #chart-title { "Size over " (range.1) }
            nav.ranges aria-label="Range" {
                @for (key, label, _) in RANGES {
                    a href={ "?range=" (key) "&compare=" (compare_key) (seen.link()) } aria-current=[(key == range.0).then_some("page")] { (label) }
                }
            }
            div.legend { span.key-size { "size on disk" } span.key-apparent { "apparent size" } }
            div.panel #chart { (chart::time_chart(&points, range.1)) }
        }
        div.two {
            section aria-labelledby="dirs-title" {
                h2 #dirs-title { "Largest directories" }
                (directories(&read.dirs, compare_key, range.0, &seen.link(), now))
            }
            section aria-labelledby="use-title" {
                h2 #use-title { "Containers" }
                (containers(volume, used, seen, now))
                h2 { "Details" }
                dl.facts {
                    dt { "Driver" } dd { (volume.driver) }
                    dt { "Mount point" } dd { code { (volume.mountpoint.to_string_lossy()) } }
                    dt { "Kind" } dd { (volume.kind.as_str()) }
                    dt { "Created" } dd { (format::when_or(volume.created_at, now, "unknown")) }
                    dt { "First seen" } dd { (format::when(volume.first_seen_at, now)) }
                    @for (key, value) in &volume.labels {
                        dt { "Label " code { (key) } } dd { code { (value) } }
                    }
                }
            }
        }
        section aria-labelledby="runs-title" {
            h2 #runs-title { "Runs" }
            (runs(&read.runs, viewer, here, now))
        }
    }
}

fn opt_delta(delta: Option<i64>) -> Markup {
    match delta {
        Some(d) => html! { (format::delta(d)) },
        None => html! { span.muted title="no stored size that far back" { "—" } },
    }
}

fn figure_card(
    label: &str,
    value: Option<u64>,
    stat: Option<&VolumeStat>,
    now: Timestamp,
    id: &str,
) -> Markup {
    html! {
        div.card {
            div.label { (label) }
            div.value id=(id) {
                @match value {
                    Some(bytes) => {
                        @if stat.is_some_and(|s| s.usage.is_partial()) { span title="some entries could not be read: at least this much" { "≥ " } }
                        (format::size(bytes))
                    }
                    None => span.muted title="not measured by this method, or not yet" { "—" },
                }
            }
            div.note {
                @match stat {
                    Some(stat) => { "scanned " (format::when(stat.ts, now)) " by " (stat.method.as_str()) }
                    None => "not scanned yet",
                }
            }
        }
    }
}

fn directories(
    read: &DirsRead,
    compare_key: &str,
    range_key: &str,
    host_link: &str,
    now: Timestamp,
) -> Markup {
    match read {
        DirsRead::UnknownVolume | DirsRead::NoDirectories => html! {
            p.muted { "No directory breakdown yet: the native and du methods record one with each scan; diskus does not." }
        },
        DirsRead::Scanned { newest, dirs, compared } => {
            let before = compared.as_ref().map(|(_, dirs)| dirs.as_slice());
            let listed: Vec<(&DirUsage, Option<i64>)> = dirs::with_deltas(dirs, before, 1, DIRS);
            html! {
                p.muted { "As of the scan " (format::when(newest.1, now))
                    @match compared { Some((ts, _)) => { ", compared with " (format::when(*ts, now)) }, None => ", nothing older to compare with" } "." }
                nav.ranges aria-label="Compare with" {
                    @for key in ["24h", "7d", "30d"] {
                        a href={ "?range=" (range_key) "&compare=" (key) (host_link) } aria-current=[(key == compare_key).then_some("page")] { "Δ " (key) }
                    }
                }
                div.scroll { table #dirs {
                    thead { tr { th scope="col" { "Directory" } th.num scope="col" { "Size" } th.num scope="col" { "Change" } th.num scope="col" { "Files" } } }
                    tbody {
                        @for (dir, delta) in &listed {
                            tr {
                                td.name { code { (dir.path) } }
                                td.num { (format::size(dir.size_bytes)) }
                                @match delta {
                                    Some(d) => td.num class=[match d.signum() { 1 => Some("up"), -1 => Some("down"), _ => None }] { (format::delta(*d)) },
                                    None if compared.is_some() => td.num.muted title="not listed in the compared scan" { "new" },
                                    None => td.num.muted { "—" },
                                }
                                td.num { @match dir.file_count { Some(n) => (format::count(n)), None => "—" } }
                            }
                        }
                    }
                } }
            }
        }
    }
}

fn containers(
    volume: &Volume,
    used: Option<&VolumeUsers>,
    seen: Seen<'_>,
    now: Timestamp,
) -> Markup {
    html! {
        @if let Some(host) = seen.host {
            p.muted { "Which containers use it now is known to " (host.as_str()) "'s own volscan-server." }
        } @else if !seen.docker_answered {
            p.muted { "Docker did not answer; the containers using it are not known right now." }
        } @else if let Some(users) = used.filter(|u| !u.containers.is_empty()) {
            ul { @for container in &users.containers { li { code { (container) } } } }
        } @else {
            p { "No container refers to it now." }
        }
        p.muted {
            @match (volume.in_use, volume.last_used_at, volume.unused_since) {
                (Some(true), _, _) => "In use as of the scheduler's last look at the containers.",
                (Some(false), last, _) => {
                    (super::use_of(volume, now)) "; "
                    @match last { Some(last) => { "last used " (format::when(last, now)) "." }, None => "never seen in use." }
                }
                (None, _, _) => "Container use not looked at yet.",
            }
        }
    }
}

fn runs(runs: &[ScanRun], viewer: &Viewer, here: &str, now: Timestamp) -> Markup {
    html! {
        @if runs.is_empty() {
            p.muted { "No runs yet." }
        } @else {
            div.scroll { table #runs {
                thead { tr {
                    th scope="col" { "Status" } th scope="col" { "Trigger" } th scope="col" { "Method" }
                    th scope="col" { "Queued" } th.num scope="col" { "Took" } th.num scope="col" { "Attempt" } th scope="col" { "Error" }
                } }
                tbody {
                    @for run in runs {
                        tr data-live-scan=[(!run.status.is_final()).then(|| run.scan_id.to_string())] data-scan=(run.scan_id.to_string()) {
                            td {
                                (status_badge(run.status))
                                @if run.status == ScanStatus::Running || run.status == ScanStatus::Queued {
                                    " " (progress(run))
                                    @if viewer.may_act() {
                                        " " span data-cancel { (action_button(&format!("/actions/cancel/{}", run.scan_id), "Cancel", "danger", viewer, here)) }
                                    }
                                }
                            }
                            td { (run.trigger.as_str()) }
                            td { @if let Some(method) = run.method { (method.as_str()) } }
                            td { (format::when(run.queued_at, now)) }
                            td.num { @if let (Some(start), Some(end)) = (run.started_at, run.completed_at) {
                                (format::took(std::time::Duration::try_from(end - start).unwrap_or_default())) } }
                            td.num { (run.attempt) }
                            td { @if let Some(error) = &run.error_message { (error) } }
                        }
                    }
                }
            } }
        }
    }
}
