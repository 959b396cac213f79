//! The handlers of `/api/v1` (SPEC §5): triggers, runs, batches, history and
//! the scheduler's status (volumes are in `volumes.rs`, the answers of §8 in
//! `insights.rs` and `dirs.rs`). Writing endpoints pass the bearer token and
//! the rate limit first; repository calls run in `web::block`.

use volscan_scheduler::Targets;

use crate::hosts::{HostQuery, Named};
use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use volscan_domain::{BatchId, RunFilter, ScanId, ScanStatus, Timestamp, VolumeName};

use crate::guard::{authorize, rate_limit};
use crate::json::{
    BatchJson, BatchStatusJson, HistoryJson, RunJson, SchedulerHealthJson, StatJson, StatusJson,
    TriggerJson,
};
use crate::{ApiError, AppState};

/// Runs blocking repository work off the async threads.
pub(crate) async fn block<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, volscan_domain::RepoError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(work)
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
        .map_err(ApiError::from)
}

/// Parses a volume name from a path, `400 invalid_volume_name` when it breaks Docker's rule.
pub(crate) fn volume_name(raw: &str) -> Result<VolumeName, ApiError> {
    VolumeName::new(raw).map_err(|err| ApiError::InvalidVolumeName(err.to_string()))
}

/// Rate limit, token, declared body size and then the body itself, in that
/// order, for every writing endpoint. The limit comes first so that every
/// request counts, a wrong token too: guessing tokens is throttled.
async fn guard_write(
    request: &HttpRequest,
    state: &AppState,
    payload: web::Payload,
) -> Result<(), ApiError> {
    rate_limit(request, &state.limiter)?;
    authorize(request, state.auth_token.as_deref())?;
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > crate::MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge(crate::MAX_BODY_BYTES));
    }
    check_body(payload).await
}

/// Reads a writing endpoint's body, which none of them needs: an empty one
/// (or whitespace) or any JSON value passes; anything else is `400
/// invalid_body`, and more than `MAX_BODY_BYTES` (sent without a
/// `Content-Length`) is `413`.
async fn check_body(mut payload: web::Payload) -> Result<(), ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| ApiError::BadBody(err.to_string()))?;
        if body.len() + chunk.len() > crate::MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(crate::MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&body)
        .map(|_| ())
        .map_err(|err| ApiError::BadBody(format!("the body is not JSON: {err}")))
}

/// `POST /volumes/{name}/scan`.
pub(crate) async fn trigger_scan(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    host: web::Query<HostQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    guard_write(&request, &state, payload).await?;
    let name = volume_name(&path)?;
    let enqueued = match host.named(&state, false)? {
        Named::Other(host) => state.scheduler.scan_volume_on(&host, name).await?,
        _ => state.scheduler.scan_volume(name).await?,
    };
    let run = &enqueued.run;
    Ok(HttpResponse::Accepted().json(TriggerJson {
        scan_id: run.scan_id.to_string(),
        volume: run.volume.to_string(),
        status: run.status.as_str(),
        deduplicated: enqueued.deduplicated,
        status_url: format!("/api/v1/scans/{}", run.scan_id),
    }))
}

/// `POST /scan/now`.
pub(crate) async fn scan_now(
    request: HttpRequest,
    state: web::Data<AppState>,
    host: web::Query<HostQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    guard_write(&request, &state, payload).await?;
    let targets = match host.named(&state, true)? {
        Named::Local => Targets::Local,
        Named::Other(host) => Targets::Remote(host),
        Named::Every => Targets::All,
    };
    let summary = state.scheduler.scan_all_on(targets).await?;
    Ok(HttpResponse::Accepted().json(BatchJson {
        batch_id: summary.batch_id.to_string(),
        count: summary.count,
        skipped: summary.skipped,
        deduplicated: summary.deduplicated,
    }))
}

fn scan_id(raw: &str) -> Result<ScanId, ApiError> {
    raw.parse().map_err(|_| ApiError::ScanNotFound(raw.chars().take(64).collect()))
}

/// `GET /scans/{scan_id}`.
pub(crate) async fn get_scan(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = scan_id(&path)?;
    let repo = Arc::clone(&state.repo);
    let run =
        block(move || repo.run(id)).await?.ok_or_else(|| ApiError::ScanNotFound(id.to_string()))?;
    Ok(HttpResponse::Ok().json(RunJson::from(&run)))
}

/// `POST /scans/{scan_id}/cancel`.
pub(crate) async fn cancel_scan(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    guard_write(&request, &state, payload).await?;
    let id = scan_id(&path)?;
    let run = state.scheduler.cancel(id).await?;
    Ok(HttpResponse::Ok().json(RunJson::from(&run)))
}

/// Query of `GET /scans`.
#[derive(Deserialize)]
pub(crate) struct ScansQuery {
    volume: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
}

/// Most runs `GET /scans` returns.
const MAX_RUNS: u32 = 1000;

/// `GET /scans?volume=&status=&limit=`.
pub(crate) async fn list_scans(
    state: web::Data<AppState>,
    query: web::Query<ScansQuery>,
    host: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let (_, repo) = host.repo(&state, true)?;
    let ScansQuery { volume, status, limit } = query.into_inner();
    let volume = volume.map(|v| volume_name(&v)).transpose()?;
    let status = status
        .map(|s| s.parse::<ScanStatus>().map_err(|err| ApiError::InvalidQuery(err.to_string())))
        .transpose()?;
    let limit = limit.unwrap_or(50);
    if limit == 0 || limit > MAX_RUNS {
        return Err(ApiError::InvalidQuery(format!("limit must be 1 to {MAX_RUNS}")));
    }
    let filter = RunFilter { volume, status, batch: None, limit: Some(limit) };
    let runs = block(move || repo.runs(&filter)).await?;
    Ok(HttpResponse::Ok().json(runs.iter().map(RunJson::from).collect::<Vec<_>>()))
}

/// `GET /scan/batches/{batch_id}` (behind the token, like every `/scan/*` path).
pub(crate) async fn get_batch(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, state.auth_token.as_deref())?;
    let not_found = || ApiError::BatchNotFound(path.chars().take(64).collect());
    let batch: BatchId = path.parse().map_err(|_| not_found())?;
    let repo = Arc::clone(&state.repo);
    let counts = block(move || repo.batch_counts(batch)).await?;
    if counts.total() == 0 {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(BatchStatusJson::new(batch.to_string(), &counts)))
}

/// Query of `GET /volumes/{name}/history`.
#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
}

/// Most points `GET /volumes/{name}/history` returns.
const MAX_POINTS: u32 = 10_000;

fn rfc3339(field: &str, raw: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    raw.map(|text| {
        Timestamp::parse(&text, &Rfc3339).map_err(|_| {
            ApiError::InvalidQuery(format!(
                "{field} must be an RFC 3339 time such as 2026-01-31T12:00:00Z"
            ))
        })
    })
    .transpose()
}

/// `GET /volumes/{name}/history?since=&until=&limit=`: the newest `limit`
/// points in `[since, until)`, oldest first.
pub(crate) async fn history(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
    host: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = volume_name(&path)?;
    let (_, repo) = host.repo(&state, false)?;
    let HistoryQuery { since, until, limit } = query.into_inner();
    let (since, until) = (rfc3339("since", since)?, rfc3339("until", until)?);
    let limit = limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_POINTS {
        return Err(ApiError::InvalidQuery(format!("limit must be 1 to {MAX_POINTS}")));
    }
    let lookup = name.clone();
    let (known, points) = block(move || {
        Ok((repo.volume(&lookup)?.is_some(), repo.history(&lookup, since, until, limit)?))
    })
    .await?;
    if !known {
        return Err(ApiError::VolumeNotFound(name.to_string()));
    }
    Ok(HttpResponse::Ok().json(HistoryJson {
        volume: name.to_string(),
        points: points.iter().map(StatJson::from).collect(),
    }))
}

/// `GET /scheduler/status`: the in-memory snapshot, no database access.
pub(crate) async fn scheduler_status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(StatusJson::from(&state.scheduler.status()))
}

/// `GET /health/scheduler`: 200 when healthy or degraded, 503 when stopped.
pub(crate) async fn scheduler_health(state: web::Data<AppState>) -> HttpResponse {
    let health = state.scheduler.health();
    let body = SchedulerHealthJson::from(&health);
    if health.status == volscan_scheduler::HealthState::Stopped {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// `GET /scheduler/metrics` and `GET /metrics`: the Prometheus exposition of
/// what the scheduler recorded; reading it never triggers a scan.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = state.metrics.as_ref().map(|render| render()).unwrap_or_default();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body)
}
