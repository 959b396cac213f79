//! `GET /api/v1/health`: the service's overall health from its components.
//!
//! Until the Docker source and the scheduler are wired in, those components
//! report `disabled`, which does not degrade the overall status; the database
//! is always probed for real.

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
    /// Not part of this deployment (not wired or turned off).
    Disabled,
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

pub(crate) async fn health(state: web::Data<AppState>) -> HttpResponse {
    let repo = state.repo.clone();
    let database = match web::block(move || repo.ping()).await {
        Ok(Ok(())) => ComponentHealth { status: HealthStatus::Healthy, message: None },
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "database health check failed");
            ComponentHealth { status: HealthStatus::Unhealthy, message: Some(err.to_string()) }
        }
        Err(_) => ComponentHealth {
            status: HealthStatus::Unhealthy,
            message: Some("health check was interrupted".to_owned()),
        },
    };
    let not_wired = |what: &str| ComponentHealth {
        status: HealthStatus::Disabled,
        message: Some(format!("{what} is not part of this build yet")),
    };
    let components = Components {
        database,
        docker: not_wired("the Docker source"),
        scheduler: not_wired("the scheduler"),
    };
    let status = components.overall();
    let body = HealthResponse { status, components };
    if status == HealthStatus::Unhealthy {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}
