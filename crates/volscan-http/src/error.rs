//! `ApiError`: every error the API answers with, its status and its stable
//! snake_case code, in the body `{"error": {"code", "message"}}`.
//!
//! A 5xx never shows its details to the client; they go to the log.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

/// An error answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route matches the path.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The request body is not valid JSON for this endpoint, or too large.
    #[error("invalid request body: {0}")]
    BadBody(String),
    /// The database does not answer.
    #[error("the database is unavailable")]
    DatabaseUnavailable,
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
    fn classify(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::DatabaseUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.classify();
        let message = if status.is_server_error() {
            if let ApiError::Internal(detail) = self {
                tracing::error!(%detail, "request failed");
            }
            status.canonical_reason().unwrap_or("server error").to_lowercase()
        } else {
            self.to_string()
        };
        HttpResponse::build(status).json(ErrorBody { error: ErrorDetail { code, message } })
    }
}

/// The default service: a JSON 404 for every unknown path.
pub(crate) async fn not_found(request: HttpRequest) -> HttpResponse {
    ApiError::NotFound(request.path().to_owned()).error_response()
}

/// Turns actix's JSON extractor errors into `ApiError::BadBody`.
pub(crate) fn json_error(
    err: actix_web::error::JsonPayloadError,
    _request: &HttpRequest,
) -> actix_web::Error {
    ApiError::BadBody(err.to_string()).into()
}
