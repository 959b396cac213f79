//! `/hosts`: every Docker host sharing the database (SPEC §10), how alive
//! each is (judged by the database's clock), what it runs, and how many
//! volumes it holds with their total size as of its newest scan.
//!
//! A host whose present volumes are not all measured shows the total of the
//! measured ones and how many are not: never a smaller size as the whole.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use volscan_domain::{Host, HostId, HostScope, Liveness, Timestamp, Volume, VolumeStat};

use super::{Nav, error_page, format, here, layout, page, reader};
use crate::AppState;
use crate::routes::block;

/// What one host holds: present volumes, how many of them have a stat, the
/// total of those, and the newest of those stats.
#[derive(Default)]
struct Holding {
    volumes: u64,
    measured: u64,
    bytes: u64,
    newest: Option<Timestamp>,
}

fn holdings(volumes: &[Volume], latest: &[VolumeStat]) -> HashMap<HostId, Holding> {
    let stats: HashMap<(&HostId, &volscan_domain::VolumeName), &VolumeStat> =
        latest.iter().map(|stat| ((&stat.host, &stat.volume), stat)).collect();
    let mut held: HashMap<HostId, Holding> = HashMap::new();
    for volume in volumes.iter().filter(|volume| volume.removed_at.is_none()) {
        let holding = held.entry(volume.host.clone()).or_default();
        holding.volumes += 1;
        if let Some(stat) = stats.get(&(&volume.host, &volume.name)) {
            holding.measured += 1;
            holding.bytes = holding.bytes.saturating_add(stat.usage.size_bytes);
            holding.newest = holding.newest.max(Some(stat.ts));
        }
    }
    held
}

/// `GET /hosts`.
pub(crate) async fn hosts(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let viewer = match reader(&request, &state) {
        Ok(viewer) => viewer,
        Err(redirect) => return redirect,
    };
    let here = here(&request);
    let every = state.repo.scoped(HostScope::All);
    let read = block(move || Ok((every.hosts()?, every.volumes(false)?, every.latest_stats()?)));
    match read.await {
        Ok((hosts, volumes, latest)) => {
            let heartbeat = state.scheduler.heartbeat_interval();
            let held = holdings(&volumes, &latest);
            let body = body(&hosts, &held, state.repo.local_host(), heartbeat, super::now());
            page(StatusCode::OK, layout("Hosts", Nav::Hosts, &viewer, &here, body))
        }
        Err(err) => error_page(&err, &viewer, &here),
    }
}

fn badge(liveness: Liveness) -> Markup {
    let class = match liveness {
        Liveness::Online => "completed",
        Liveness::Stale => "queued",
        Liveness::Offline => "failed",
    };
    html! { span class={ "badge " (class) } data-field="liveness" { (liveness.as_str()) } }
}

fn body(
    hosts: &[Host],
    held: &HashMap<HostId, Holding>,
    local: &HostId,
    heartbeat: std::time::Duration,
    now: Timestamp,
) -> Markup {
    let none = Holding::default();
    html! {
        h1 { "Hosts" }
        p.muted {
            "Every volscan-server sharing this database. A host is online when it wrote its heartbeat within "
            (format::span(heartbeat * volscan_domain::ONLINE_BEATS)) ", stale until "
            (format::span(heartbeat * volscan_domain::STALE_BEATS)) ", then offline, by the database's clock; "
            "its data stays here either way."
        }
        @if hosts.is_empty() {
            p.muted #no-hosts { "No host has registered yet." }
        } @else {
            div.scroll { table #hosts {
                thead { tr {
                    th scope="col" { "Host" } th scope="col" { "Status" } th scope="col" { "Last seen" }
                    th.num scope="col" { "Volumes" } th.num scope="col" { "Size" } th scope="col" { "Newest scan" }
                    th scope="col" { "Machine" } th scope="col" { "Docker" } th scope="col" { "volscan" }
                    th.num scope="col" { "Clock skew" } th scope="col" { "Started" }
                } }
                tbody { @for host in hosts {
                    @let holding = held.get(&host.info.id).unwrap_or(&none);
                    tr data-host=(host.info.id.as_str()) {
                        td.name {
                            @if &host.info.id == local { a href="/" { (host.info.id.as_str()) } " " span.muted { "(this server)" } }
                            @else { a href={ "/?host=" (host.info.id.as_str()) } { (host.info.id.as_str()) } }
                        }
                        td { (badge(host.liveness_under(heartbeat))) }
                        td { (format::when(host.last_seen_at, host.read_at)) }
                        td.num data-field="volumes" { (format::count(holding.volumes)) }
                        td.num data-field="size" {
                            @if holding.measured > 0 { (format::size(holding.bytes)) }
                            @else { span.muted { "—" } }
                            @if holding.measured < holding.volumes {
                                br; span.muted { (holding.volumes - holding.measured) " not measured yet" }
                            }
                        }
                        td { (format::when_or(holding.newest, now, "never")) }
                        td { (host.info.name) }
                        td { (host.info.docker_version.as_deref().unwrap_or("—")) }
                        td { (host.info.volscan_version) }
                        td.num { @match host.clock_skew_ms { Some(ms) => { (ms) " ms" }, None => span.muted { "—" } } }
                        td { (format::when(host.started_at, host.read_at)) }
                    }
                } }
            } }
        }
    }
}
