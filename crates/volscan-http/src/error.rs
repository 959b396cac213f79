//! `ApiError`: every error the API answers with, its status and its stable
//! snake_case code, in the body `{"error": {"code", "message"}}`.
//!
//! A 5xx never shows its details to the client; they go to the log, written
//! by the `log_server_errors` middleware.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use volscan_domain::{RepoError, error_chain};
use volscan_scheduler::SchedulerError;

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The path names no endpoint.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The endpoint exists but not for this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The request body is not valid JSON for this endpoint, or too large.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// The request body is over `MAX_BODY_BYTES`.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A query parameter is malformed.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The volume name breaks Docker's rule.
    #[error("invalid volume name: {0}")]
    InvalidVolumeName(String),
    /// The `host` parameter is not a host id (or `*` where one is needed).
    #[error("invalid host: {0}")]
    InvalidHost(String),
    /// No host with this id shares the database.
    #[error("host {0} is not known to the database")]
    HostNotFound(String),
    /// The run is running on another host, which alone can cancel it.
    #[error("scan run {0} is running on host {1}; cancel it through that host's server")]
    RunningElsewhere(String, String),
    /// No such volume.
    #[error("volume {0} does not exist")]
    VolumeNotFound(String),
    /// The volume matches the skip pattern.
    #[error("volume {0} matches the skip pattern and is never scanned")]
    ScanForbidden(String),
    /// The scan queue is full.
    #[error("the scan queue is full ({0} runs); retry later")]
    QueueFull(u64),
    /// Too many requests (per client) or a bulk scan inside the cooldown.
    #[error("{message}")]
    RateLimited {
        /// What was limited.
        message: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// No such scan run.
    #[error("scan run {0} does not exist")]
    ScanNotFound(String),
    /// The run already finished.
    #[error("scan run {0} is already {1}")]
    ScanFinished(String, String),
    /// No runs carry this batch id.
    #[error("batch {0} does not exist")]
    BatchNotFound(String),
    /// Missing or wrong bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The database does not answer.
    #[error("the database is unavailable")]
    DatabaseUnavailable,
    /// The volume source (Docker) does not answer.
    #[error("the Docker Engine is unavailable")]
    SourceUnavailable,
    /// Anything else that went wrong on our side.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    /// Status plus a stable snake_case code. Clients match on the code, never on the message.
    pub fn classify(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::BadBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            ApiError::InvalidVolumeName(_) => (StatusCode::BAD_REQUEST, "invalid_volume_name"),
            ApiError::VolumeNotFound(_) => (StatusCode::NOT_FOUND, "volume_not_found"),
            ApiError::InvalidHost(_) => (StatusCode::BAD_REQUEST, "invalid_host"),
            ApiError::HostNotFound(_) => (StatusCode::NOT_FOUND, "host_not_found"),
            ApiError::RunningElsewhere(..) => (StatusCode::CONFLICT, "scan_running_elsewhere"),
            ApiError::ScanForbidden(_) => (StatusCode::FORBIDDEN, "scan_forbidden"),
            ApiError::QueueFull(_) => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::ScanNotFound(_) => (StatusCode::NOT_FOUND, "scan_not_found"),
            ApiError::ScanFinished(..) => (StatusCode::CONFLICT, "scan_finished"),
            ApiError::BatchNotFound(_) => (StatusCode::NOT_FOUND, "batch_not_found"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::DatabaseUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            ApiError::SourceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "docker_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl From<RepoError> for ApiError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::Unavailable(_) => ApiError::DatabaseUnavailable,
            RepoError::ScanNotFound(id) => ApiError::ScanNotFound(id.to_string()),
            other => ApiError::Internal(error_chain(&other)),
        }
    }
}

impl From<SchedulerError> for ApiError {
    fn from(err: SchedulerError) -> Self {
        match err {
            SchedulerError::VolumeNotFound(name) => ApiError::VolumeNotFound(name.into_string()),
            SchedulerError::Forbidden(name) => ApiError::ScanForbidden(name.into_string()),
            SchedulerError::QueueFull { capacity } => ApiError::QueueFull(capacity),
            err @ SchedulerError::RateLimited { retry_after } => {
                ApiError::RateLimited { message: err.to_string(), retry_after }
            }
            SchedulerError::ScanNotFound(id) => ApiError::ScanNotFound(id.to_string()),
            SchedulerError::ScanFinished { scan_id, status } => {
                ApiError::ScanFinished(scan_id.to_string(), status.to_string())
            }
            SchedulerError::HostNotFound(host) => ApiError::HostNotFound(host.to_string()),
            SchedulerError::RunningElsewhere { scan_id, host } => {
                ApiError::RunningElsewhere(scan_id.to_string(), host.to_string())
            }
            SchedulerError::Repo(err) => err.into(),
            SchedulerError::Source(_) => ApiError::SourceUnavailable,
            other => ApiError::Internal(error_chain(&other)),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.classify();
        // `Internal`'s message is generic; `log_server_errors` logs its detail.
        let message = self.to_string();
        let mut response = HttpResponse::build(status);
        match self {
            ApiError::RateLimited { retry_after, .. } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.insert_header((header::RETRY_AFTER, seconds.max(1).to_string()));
            }
            ApiError::QueueFull(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            ApiError::Unauthorized => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            _ => {}
        }
        response.json(ErrorBody { error: ErrorDetail { code, message } })
    }
}

/// Middleware: logs the detail of a 5xx answer once, after the response is
/// built (so converting an error into a response has no side effect). Only
/// the log sees an `Internal` error's detail; the client gets a generic body.
pub(crate) async fn log_server_errors(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let response = next.call(request).await?;
    if response.status().is_server_error() {
        let error = response.response().error();
        match error.and_then(|err| err.as_error::<ApiError>()) {
            Some(ApiError::Internal(detail)) => tracing::error!(%detail, "request failed"),
            Some(other) => tracing::debug!(error = %other, "request answered with a 5xx"),
            None => tracing::debug!(status = %response.status(), "request answered with a 5xx"),
        }
    }
    Ok(response)
}

/// The default service: a JSON 404 for every unknown path.
pub(crate) async fn not_found(request: HttpRequest) -> HttpResponse {
    ApiError::NotFound(request.path().to_owned()).error_response()
}

/// A JSON 405 for a known path with the wrong method, with the `Allow`
/// header RFC 9110 asks for.
pub(crate) async fn method_not_allowed(request: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = ApiError::MethodNotAllowed(request.method().to_string()).error_response();
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    response
}

/// Turns actix's JSON extractor errors into `ApiError::BadBody`.
pub(crate) fn json_error(
    err: actix_web::error::JsonPayloadError,
    _request: &HttpRequest,
) -> actix_web::Error {
    ApiError::BadBody(err.to_string()).into()
}

/// Turns actix's query extractor errors into `ApiError::InvalidQuery`.
pub(crate) fn query_error(
    err: actix_web::error::QueryPayloadError,
    _request: &HttpRequest,
) -> actix_web::Error {
    ApiError::InvalidQuery(err.to_string()).into()
}

/// Turns actix's path extractor errors into a 404.
pub(crate) fn path_error(
    err: actix_web::error::PathError,
    request: &HttpRequest,
) -> actix_web::Error {
    tracing::debug!(error = %err, path = request.path(), "unmatched path parameters");
    ApiError::NotFound(request.path().to_owned()).into()
}
