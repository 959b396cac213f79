//! volscan's HTTP adapter: actix-web routes under `/api/v1`, their JSON types
//! and `ApiError`.
//!
//! This is the only crate that knows HTTP. Its JSON types are its own and are
//! filled by hand from domain values, so a change to a domain type cannot
//! silently change the API. Handlers reach the blocking repository only through
//! `web::block`.

mod error;
mod health;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use volscan_domain::Repository;
use volscan_scheduler::SchedulerHandle;

pub use error::ApiError;
pub use health::{ComponentHealth, Components, HealthResponse, HealthStatus};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Stored volumes, runs and stats.
    pub repo: Arc<dyn Repository>,
    /// The scheduler: triggers, cancel, status, health and the volume source.
    pub scheduler: SchedulerHandle,
}

/// Largest request body accepted, in bytes; the API's bodies are tiny.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Registers every route and the JSON error handlers on `config`; shared by
/// `serve` and the integration tests.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(
                web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(error::json_error),
            )
            .service(web::scope("/api/v1").route("/health", web::get().to(health::health)))
            .default_service(web::to(error::not_found));
    }
}

/// Binds the API on `bind`. The server does not watch signals: the caller
/// stops it through the returned server's handle, so that it can shut the
/// scheduler down at the same time.
pub fn server(bind: SocketAddr, state: AppState) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(move || App::new().configure(configure(state.clone())))
        .bind(bind)?
        .disable_signals()
        .shutdown_timeout(2)
        .run())
}
