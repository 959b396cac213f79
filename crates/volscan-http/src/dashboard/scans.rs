//! `/scans`: queued and running runs with live progress, recent batches,
//! and recent failures with their error; and `/live/scans/{id}`, the small
//! JSON the page's script polls (behind the same session as the pages, so
//! it works when `AUTH_READ` closes the API to browsers without the token).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use volscan_domain::{BatchId, RunFilter, ScanId, ScanRun, ScanStatus, StatusCounts, Timestamp};

use super::session::Viewer;
use super::{
    Nav, action_button, encode, error_page, format, here, layout, page, progress, reader, secured,
    status_badge,
};
use crate::AppState;
use crate::routes::block;

/// Runs of each list.
const LISTED: u32 = 200;

/// Batches shown.
const BATCHES: usize = 5;

struct Read {
    active: Vec<ScanRun>,
    failed: Vec<ScanRun>,
    batches: Vec<(BatchId, Timestamp, StatusCounts)>,
}

fn read(repo: &dyn volscan_domain::ReadRepository) -> Result<Read, volscan_domain::RepoError> {
    let list =
        |status| repo.runs(&RunFilter { limit: Some(LISTED), ..RunFilter::with_status(status) });
    let mut active = list(ScanStatus::Running)?;
    let mut queued = list(ScanStatus::Queued)?;
    queued.reverse();
    active.extend(queued);
    let failed = list(ScanStatus::Failed)?;
    let recent = repo.runs(&RunFilter { limit: Some(LISTED), ..RunFilter::default() })?;
    let mut newest: BTreeMap<BatchId, Timestamp> = BTreeMap::new();
    for run in &recent {
        if let Some(batch) = run.batch_id {
            let at = newest.entry(batch).or_insert(run.queued_at);
            *at = (*at).max(run.queued_at);
        }
    }
    let mut order: Vec<(BatchId, Timestamp)> = newest.into_iter().collect();
    order.sort_by_key(|&(_, at)| std::cmp::Reverse(at));
    let mut batches = Vec::new();
    for (batch, at) in order.into_iter().take(BATCHES) {
        batches.push((batch, at, repo.batch_counts(batch)?));
    }
    Ok(Read { active, failed, batches })
}

/// `GET /scans`.
pub(crate) async fn scans(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let viewer = match reader(&request, &state) {
        Ok(viewer) => viewer,
        Err(redirect) => return redirect,
    };
    let here = here(&request);
    let repo = Arc::clone(&state.repo);
    match block(move || read(&*repo)).await {
        Ok(read) => {
            let body = body(&read, &viewer, &here, super::now());
            page(StatusCode::OK, layout("Scans", Nav::Scans, &viewer, &here, body))
        }
        Err(err) => error_page(&err, &viewer, &here),
    }
}

fn body(read: &Read, viewer: &Viewer, here: &str, now: Timestamp) -> Markup {
    html! {
        h1 { "Scans" }
        section aria-labelledby="active-title" {
            h2 #active-title { "Queued and running" }
            @if read.active.is_empty() {
                p.muted #no-active { "Nothing queued or running." }
            } @else {
                div.scroll { table #active {
                    thead { tr { th scope="col" { "Volume" } th scope="col" { "Status" }
                        th scope="col" { "Progress" } th scope="col" { "Queued" } th scope="col" { "Trigger" } th scope="col" { "" } } }
                    tbody { @for run in &read.active {
                        tr data-live-scan=(run.scan_id.to_string()) {
                            td.name { a href={ "/volumes/" (encode(run.volume.as_str())) } { (run.volume.as_str()) } }
                            td { (status_badge(run.status)) @if run.attempt > 1 { " attempt " (run.attempt) } }
                            td { (progress(run)) }
                            td { (format::when(run.queued_at, now)) }
                            td { (run.trigger.as_str()) }
                            td { @if viewer.may_act() { span data-cancel { (action_button(&format!("/actions/cancel/{}", run.scan_id), "Cancel", "danger", viewer, here)) } } }
                        }
                    } }
                } }
            }
        }
        section aria-labelledby="batch-title" {
            h2 #batch-title { "Recent batches" }
            @if read.batches.is_empty() {
                p.muted { "No batch yet: “Scan all” and the periodic runs each start one." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Started" } th.num scope="col" { "Runs" } th.num scope="col" { "Queued" }
                        th.num scope="col" { "Running" } th.num scope="col" { "Completed" } th.num scope="col" { "Failed" } th.num scope="col" { "Canceled" } } }
                    tbody { @for (batch, at, counts) in &read.batches {
                        tr title=(batch.to_string()) {
                            td { (format::when(*at, now)) }
                            td.num { (counts.total()) }
                            td.num { (counts.queued) } td.num { (counts.running) } td.num { (counts.completed) }
                            td.num { (counts.failed) } td.num { (counts.canceled) }
                        }
                    } }
                } }
            }
        }
        section aria-labelledby="failed-title" {
            h2 #failed-title { "Recent failures" }
            @if read.failed.is_empty() {
                p.muted { "No failed run is stored." }
            } @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Volume" } th scope="col" { "Error" } th scope="col" { "Method" } th.num scope="col" { "Attempt" } th scope="col" { "When" } } }
                    tbody { @for run in read.failed.iter().take(50) {
                        tr {
                            td.name { a href={ "/volumes/" (encode(run.volume.as_str())) } { (run.volume.as_str()) } }
                            td { (run.error_message.as_deref().unwrap_or("no message")) }
                            td { @if let Some(method) = run.method { (method.as_str()) } }
                            td.num { (run.attempt) }
                            td { (format::when_or(run.completed_at, now, "unknown")) }
                        }
                    } }
                } }
            }
        }
    }
}

/// Most runs one `/live/scans` request asks about.
const MAX_LIVE: usize = 200;

/// Query of `/live/scans`.
#[derive(Deserialize)]
pub(crate) struct LiveQuery {
    ids: Option<String>,
}

/// The status and progress of the runs `ids` names: the active ones from
/// two queries, the others (just finished, or unknown) one by one.
fn live_runs(
    repo: &dyn volscan_domain::ReadRepository,
    ids: &[ScanId],
) -> Result<serde_json::Map<String, serde_json::Value>, volscan_domain::RepoError> {
    let mut known: HashMap<ScanId, ScanRun> = HashMap::new();
    for status in [ScanStatus::Running, ScanStatus::Queued] {
        let filter = RunFilter { limit: Some(1000), ..RunFilter::with_status(status) };
        known.extend(repo.runs(&filter)?.into_iter().map(|run| (run.scan_id, run)));
    }
    let mut answer = serde_json::Map::new();
    for id in ids {
        let run = match known.remove(id) {
            Some(run) => Some(run),
            None => repo.run(*id)?,
        };
        if let Some(run) = run {
            answer.insert(
                id.to_string(),
                serde_json::json!({"status": run.status.as_str(), "progress": run.progress}),
            );
        }
    }
    Ok(answer)
}

/// `GET /live/scans?ids=ID,ID,…`: `{ID: {status, progress}}` for the runs a
/// page shows as queued or running (at most 200; unknown ids are left
/// out), polled by the page's script once a second in one request; the
/// same access rule as the pages.
pub(crate) async fn live(
    request: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LiveQuery>,
) -> HttpResponse {
    if reader(&request, &state).is_err() {
        return secured(HttpResponse::Unauthorized()).json(serde_json::json!({"error": "log in"}));
    }
    let ids: Vec<ScanId> = query
        .ids
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|id| id.parse().ok())
        .take(MAX_LIVE)
        .collect();
    let repo = Arc::clone(&state.repo);
    match block(move || live_runs(&*repo, &ids)).await {
        Ok(runs) => secured(HttpResponse::Ok())
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(runs),
        Err(err) => {
            let status = err.classify().0;
            if status.is_server_error() {
                tracing::error!(error = ?err, "live progress failed");
            }
            secured(HttpResponse::build(status)).json(serde_json::json!({"error": err.to_string()}))
        }
    }
}
