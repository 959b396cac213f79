//! volscan's HTTP adapter: actix-web routes under `/api/v1`, their JSON types
//! and `ApiError`.
//!
//! This is the only crate that knows HTTP. Its JSON types (`json.rs`) are its
//! own and are filled by hand from domain values, so a change to a domain
//! type cannot silently change the API. Handlers reach the blocking
//! repository (read only) and the volume source only through `web::block`,
//! and the scheduler through its handle; the binary wires all three in.

mod cache;
mod dashboard;
mod dirs;
mod error;
mod growth;
mod guard;
mod health;
mod hosts;
mod insights;
mod json;
mod openapi;
mod routes;
mod volumes;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::{App, HttpServer, middleware, web};
use volscan_domain::{ReadRepository, VolumeSource, VolumeUsers};
use volscan_scheduler::SchedulerHandle;

pub use error::ApiError;
pub use guard::RateLimiter;
pub use health::{ComponentHealth, Components, HealthResponse, HealthStatus};
pub use openapi::document as openapi_document;

/// Container users of volumes (`None`: Docker did not answer) and when they were fetched.
type UsersCache = Arc<Mutex<Option<(Instant, Option<Arc<Vec<VolumeUsers>>>)>>>;

/// Renders the Prometheus exposition of the process's metrics.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Checks what the volume source needs on this machine beyond answering (for
/// a containerised volscan: Docker's volumes directory below the host
/// prefix); returns what is wrong in words a user can act on, `None` when
/// nothing is. Blocking; `GET /api/v1/health` runs it after a successful
/// ping and reports its answer as the `docker` component's message.
pub type HostCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Stored volumes, runs and stats, read only.
    pub repo: Arc<dyn ReadRepository>,
    /// The volume source (Docker), for its health and the containers using volumes.
    pub source: Arc<dyn VolumeSource>,
    /// The scheduler: triggers, cancel, status and health.
    pub scheduler: SchedulerHandle,
    /// `AUTH_TOKEN`: required as a bearer token on writing endpoints when set.
    pub auth_token: Option<String>,
    /// `RATE_LIMIT_RPM` per client on writing endpoints.
    pub limiter: Arc<RateLimiter>,
    /// The Prometheus exposition, when a recorder is installed.
    pub metrics: Option<MetricsRenderer>,
    /// What health checks beyond the source's ping (see `with_host_check`).
    host_check: Option<HostCheck>,
    /// Container users of volumes, cached briefly (see `volumes::users`).
    users: UsersCache,
    /// Rendered volume lists (see `volumes::list_volumes`).
    volumes: Arc<cache::Rendered<volumes::VolumesKey>>,
    /// Every volume's growth, as of one data version (see `growth::all`).
    growth: Arc<growth::GrowthCache>,
    /// Rendered `GET /filesystems` and `GET /summary` answers.
    insights: Arc<cache::Rendered<insights::Insight>>,
    /// `AUTH_READ`: reads need the token too (when one is set).
    auth_read: bool,
    /// `VOLSCAN_DASHBOARD`: whether the pages are served.
    dashboard: bool,
    /// The dashboard's sessions and kept data.
    pages: Arc<dashboard::Pages>,
}

impl AppState {
    /// The state for these parts; `rate_limit_rpm` is `RATE_LIMIT_RPM`.
    pub fn new(
        repo: Arc<dyn ReadRepository>,
        source: Arc<dyn VolumeSource>,
        scheduler: SchedulerHandle,
        auth_token: Option<String>,
        rate_limit_rpm: u32,
        metrics: Option<MetricsRenderer>,
    ) -> Self {
        AppState {
            repo,
            source,
            scheduler,
            auth_token,
            limiter: Arc::new(RateLimiter::new(rate_limit_rpm)),
            metrics,
            host_check: None,
            users: Arc::default(),
            volumes: Arc::default(),
            growth: Arc::default(),
            insights: Arc::default(),
            auth_read: false,
            dashboard: true,
            pages: Arc::default(),
        }
    }

    /// Serves the dashboard (the default) or not (`VOLSCAN_DASHBOARD`).
    #[must_use]
    pub fn with_dashboard(mut self, enabled: bool) -> Self {
        self.dashboard = enabled;
        self
    }

    /// Makes every read need the token too, when one is set (`AUTH_READ`):
    /// the bearer header on the API and the metrics, a login on the pages;
    /// `GET /api/v1/health` stays open.
    #[must_use]
    pub fn with_auth_read(mut self, enabled: bool) -> Self {
        self.auth_read = enabled;
        self
    }

    /// Has `GET /api/v1/health` run `check` whenever the volume source
    /// answers, and report its problem as the `docker` component's.
    #[must_use]
    pub fn with_host_check(mut self, check: HostCheck) -> Self {
        self.host_check = Some(check);
        self
    }
}

/// Largest request body accepted, in bytes; the API's bodies are tiny.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One path with its handlers for the methods in `allow` (as the `Allow`
/// header lists them); any other method gets a JSON 405 with that header.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |request: actix_web::HttpRequest| {
        error::method_not_allowed(request, allow)
    }))
}

/// With `AUTH_READ`, the bearer token on every API read and the metrics;
/// `GET /api/v1/health` stays open for probes, and `POST`s keep their own
/// order (rate limit, then token). A read with a missing or wrong token
/// counts against the client's rate limit, so guessing is throttled: past
/// the limit the answer is `429` instead of `401`.
async fn read_guard(
    request: actix_web::dev::ServiceRequest,
    next: middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .filter(|state| state.auth_read && state.auth_token.is_some())
        .cloned();
    if let Some(state) = state
        && request.method() != actix_web::http::Method::POST
        && request.path() != "/api/v1/health"
        && let Err(err) = guard::authorize(request.request(), state.auth_token.as_deref())
    {
        let err = guard::rate_limit(request.request(), &state.limiter).err().unwrap_or(err);
        let response = actix_web::ResponseError::error_response(&err);
        return Ok(request.into_response(response));
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

/// Registers every route and the JSON error handlers on `config`; shared by
/// `server` and the integration tests.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        let dashboard = state.dashboard;
        config
            .app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(
                web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(error::json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .service(
                web::scope("/api/v1")
                    .wrap(middleware::from_fn(read_guard))
                    .wrap(middleware::from_fn(error::log_server_errors))
                    .service(
                        resource("/volumes/{name}/scan", "POST")
                            .route(web::post().to(routes::trigger_scan)),
                    )
                    .service(resource("/scan/now", "POST").route(web::post().to(routes::scan_now)))
                    .service(resource("/scans", "GET").route(web::get().to(routes::list_scans)))
                    .service(
                        resource("/scans/{scan_id}", "GET").route(web::get().to(routes::get_scan)),
                    )
                    .service(
                        resource("/scans/{scan_id}/cancel", "POST")
                            .route(web::post().to(routes::cancel_scan)),
                    )
                    .service(
                        resource("/scan/batches/{batch_id}", "GET")
                            .route(web::get().to(routes::get_batch)),
                    )
                    .service(
                        resource("/volumes", "GET").route(web::get().to(volumes::list_volumes)),
                    )
                    .service(
                        resource("/volumes/{name}", "GET")
                            .route(web::get().to(volumes::get_volume)),
                    )
                    .service(
                        resource("/volumes/{name}/history", "GET")
                            .route(web::get().to(routes::history)),
                    )
                    .service(
                        resource("/volumes/{name}/dirs", "GET").route(web::get().to(dirs::dirs)),
                    )
                    .service(
                        resource("/filesystems", "GET")
                            .route(web::get().to(insights::list_filesystems)),
                    )
                    .service(resource("/summary", "GET").route(web::get().to(insights::summary)))
                    .service(resource("/hosts", "GET").route(web::get().to(hosts::list_hosts)))
                    .service(
                        resource("/scheduler/status", "GET")
                            .route(web::get().to(routes::scheduler_status)),
                    )
                    .service(
                        resource("/scheduler/metrics", "GET").route(web::get().to(routes::metrics)),
                    )
                    .service(resource("/health", "GET").route(web::get().to(health::health)))
                    .service(
                        resource("/health/scheduler", "GET")
                            .route(web::get().to(routes::scheduler_health)),
                    )
                    .service(resource("/openapi.json", "GET").route(web::get().to(openapi::serve))),
            )
            .service(
                resource("/metrics", "GET")
                    .wrap(middleware::from_fn(read_guard))
                    .wrap(middleware::from_fn(error::log_server_errors))
                    .route(web::get().to(routes::metrics)),
            );
        if dashboard {
            dashboard::configure(config);
        }
        config.default_service(web::to(error::not_found));
    }
}

/// Binds the API on `bind`. The server does not watch signals: the caller
/// stops it through the returned server's handle, so that it can shut the
/// scheduler down at the same time.
pub fn server(
    listener: std::net::TcpListener,
    state: AppState,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(move || {
        App::new().wrap(middleware::Compress::default()).configure(configure(state.clone()))
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(2)
    .run())
}
