//! Many hosts on one database (SPEC §10): `GET /hosts`, and the `host`
//! query parameter that reads and triggers take (absent: this server's host;
//! a host id: that host's; `*`: every host's, on lists).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use volscan_domain::{Host, HostId, HostScope, ReadRepository};

use crate::AppState;
use crate::error::ApiError;
use crate::json::time_text;
use crate::routes::block;

/// The `host` query parameter.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HostQuery {
    host: Option<String>,
}

/// Which hosts a request names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Named {
    /// This server's host (no `host`, or its own id).
    Local,
    /// Another host.
    Other(HostId),
    /// `host=*`.
    Every,
}

impl HostQuery {
    /// The parameter as given (the dashboard's queries carry it).
    pub(crate) fn of(host: Option<String>) -> Self {
        HostQuery { host }
    }

    /// The hosts named; `*` only where `every` allows it.
    pub(crate) fn named(&self, state: &AppState, every: bool) -> Result<Named, ApiError> {
        match self.host.as_deref() {
            None => Ok(Named::Local),
            Some("*") if every => Ok(Named::Every),
            Some("*") => Err(ApiError::InvalidHost(
                "host=* names every host; this endpoint needs one host id".into(),
            )),
            Some(text) => {
                let id: HostId = text.parse().map_err(|err: volscan_domain::InvalidHostId| {
                    ApiError::InvalidHost(err.to_string())
                })?;
                if &id == state.repo.local_host() { Ok(Named::Local) } else { Ok(Named::Other(id)) }
            }
        }
    }

    /// The repository reading the named hosts' data.
    pub(crate) fn repo(
        &self,
        state: &AppState,
        every: bool,
    ) -> Result<(Named, Arc<dyn ReadRepository>), ApiError> {
        let named = self.named(state, every)?;
        let repo = match &named {
            Named::Local => Arc::clone(&state.repo),
            Named::Other(id) => state.repo.scoped(HostScope::One(id.clone())),
            Named::Every => state.repo.scoped(HostScope::All),
        };
        Ok((named, repo))
    }
}

/// One host in `GET /hosts`.
#[derive(Serialize)]
pub struct HostJson {
    id: String,
    name: String,
    docker_engine_id: Option<String>,
    docker_version: Option<String>,
    started_at: String,
    last_seen_at: String,
    volscan_version: String,
    clock_skew_ms: Option<i64>,
    status: &'static str,
    local: bool,
    as_of: String,
}

impl HostJson {
    fn new(host: &Host, local: &HostId, heartbeat: Duration) -> Self {
        HostJson {
            id: host.info.id.to_string(),
            name: host.info.name.clone(),
            docker_engine_id: host.info.docker_engine_id.clone(),
            docker_version: host.info.docker_version.clone(),
            started_at: time_text(host.started_at),
            last_seen_at: time_text(host.last_seen_at),
            volscan_version: host.info.volscan_version.clone(),
            clock_skew_ms: host.clock_skew_ms,
            status: host.liveness_under(heartbeat).as_str(),
            local: &host.info.id == local,
            as_of: time_text(host.read_at),
        }
    }
}

/// `GET /hosts`: every host sharing the database, by id.
pub(crate) async fn list_hosts(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let repo = Arc::clone(&state.repo);
    let hosts = block(move || repo.hosts()).await?;
    let local = state.repo.local_host();
    let heartbeat = state.scheduler.heartbeat_interval();
    let listed: Vec<HostJson> = hosts.iter().map(|h| HostJson::new(h, local, heartbeat)).collect();
    Ok(HttpResponse::Ok().json(listed))
}
