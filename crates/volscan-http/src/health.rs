//! `GET /api/v1/health`: the service's overall health from its components.
//!
//! The database and the volume source are probed for real on each request
//! (each with a short timeout), and when the source answers, the host check
//! the binary gave (`AppState::with_host_check`) runs too; the scheduler
//! reports its own evaluation.
//! Only a failed database makes the service unhealthy (503): without Docker
//! or with a degraded scheduler it still serves stored data.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::AppState;

/// The overall or a component's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working with reduced function.
    Degraded,
    /// Not working; the endpoint answers 503.
    Unhealthy,
}

/// One component's state and, when not healthy, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// Its state.
    pub status: HealthStatus,
    /// Why it is not healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The body of `GET /api/v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthResponse {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: HealthStatus,
    /// Per component.
    pub components: Components,
}

/// The components `GET /api/v1/health` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Components {
    /// The repository.
    pub database: ComponentHealth,
    /// The Docker Engine.
    pub docker: ComponentHealth,
    /// The scan scheduler.
    pub scheduler: ComponentHealth,
}

impl Components {
    /// Unhealthy when the database is; degraded when any other component is not healthy.
    fn overall(&self) -> HealthStatus {
        let all = [&self.database, &self.docker, &self.scheduler];
        if all.iter().any(|c| c.status == HealthStatus::Unhealthy) {
            HealthStatus::Unhealthy
        } else if all.iter().any(|c| c.status == HealthStatus::Degraded) {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }
}

/// How long a probe of the database or the volume source may take: short
/// enough that an answer comes within the 3 s `volscan-server healthcheck`
/// (a container's `HEALTHCHECK`) waits, so a hung Docker reads as degraded
/// there, not as no answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn component(status: HealthStatus, message: Option<String>) -> ComponentHealth {
    ComponentHealth { status, message }
}

pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    let repo = state.repo.clone();
    let ping = tokio_timeout(web::block(move || repo.ping()));
    let source = state.source.clone();
    let host_check = state.host_check.clone();
    let source = tokio_timeout(web::block(move || {
        source.ping().map(|_version| host_check.and_then(|check| check()))
    }));
    let (database, docker) = futures_util::future::join(ping, source).await;
    let database = match database {
        Some(Ok(Ok(()))) => component(HealthStatus::Healthy, None),
        Some(Ok(Err(err))) => {
            tracing::warn!(error = %err, "database health check failed");
            component(HealthStatus::Unhealthy, Some(err.to_string()))
        }
        Some(Err(_)) | None => component(
            HealthStatus::Unhealthy,
            Some("the database did not answer in time".to_owned()),
        ),
    };
    let docker = match docker {
        Some(Ok(Ok(None))) => component(HealthStatus::Healthy, None),
        Some(Ok(Ok(Some(problem)))) => component(HealthStatus::Degraded, Some(problem)),
        Some(Ok(Err(err))) => component(HealthStatus::Degraded, Some(err.to_string())),
        Some(Err(_)) => component(
            HealthStatus::Degraded,
            Some("the volume source check was interrupted".to_owned()),
        ),
        None => component(
            HealthStatus::Degraded,
            Some("the volume source did not answer in time".to_owned()),
        ),
    };
    let scheduler_health = state.scheduler.health();
    let scheduler = match scheduler_health.status {
        volscan_scheduler::HealthState::Healthy => component(HealthStatus::Healthy, None),
        volscan_scheduler::HealthState::Degraded => {
            component(HealthStatus::Degraded, Some(scheduler_health.reasons.join("; ")))
        }
        volscan_scheduler::HealthState::Stopped => {
            component(HealthStatus::Degraded, Some("the scheduler is stopped".to_owned()))
        }
    };
    let components = Components { database, docker, scheduler };
    let status = components.overall();
    let body = HealthResponse { status, components };
    if status == HealthStatus::Unhealthy {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Runs `future` for at most `PROBE_TIMEOUT`; `None` when it took longer.
async fn tokio_timeout<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    actix_web::rt::time::timeout(PROBE_TIMEOUT, future).await.ok()
}
