//! `GET /api/v1/health` through the app factory, on a real database that
//! works and on one that has gone away, and with a host check that finds a
//! problem (a container missing the volumes mount).

use std::sync::Arc;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test};
use volscan_domain::{EngineChain, Repository};
use volscan_http::AppState;
use volscan_repo::DieselRepository;
use volscan_scheduler::{SchedulerBuilder, SchedulerHandle, SchedulerOptions, StaticSource};
use volscan_testing::{PgDatabase, TempDir};

/// The app over `url`'s database, with a scheduler over no volumes (stop it
/// before the test ends).
async fn app(
    url: String,
) -> (
    impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    SchedulerHandle,
) {
    app_with(url, None).await
}

/// `app`, with `host_check` given to the state when there is one.
async fn app_with(
    url: String,
    host_check: Option<volscan_http::HostCheck>,
) -> (
    impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    SchedulerHandle,
) {
    let repo = DieselRepository::connect(&url, 2).unwrap();
    repo.migrate().unwrap();
    let repo: Arc<dyn Repository> = Arc::new(repo);
    let options =
        SchedulerOptions { periodic: false, retention: None, ..SchedulerOptions::default() };
    let source = Arc::new(StaticSource::new([]));
    let scheduler =
        SchedulerBuilder::new(source.clone(), EngineChain::new(vec![]), Arc::clone(&repo), options)
            .start()
            .await
            .unwrap();
    let mut state = AppState::new(repo, source, scheduler.clone(), None, 60, None);
    if let Some(check) = host_check {
        state = state.with_host_check(check);
    }
    (test::init_service(App::new().configure(volscan_http::configure(state))).await, scheduler)
}

async fn health(
    app: &impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
) -> (u16, serde_json::Value) {
    let response =
        test::call_service(app, test::TestRequest::get().uri("/api/v1/health").to_request()).await;
    let status = response.status().as_u16();
    (status, test::read_body_json(response).await)
}

#[actix_web::test]
async fn health_is_healthy_on_a_working_sqlite_database() {
    let dir = TempDir::new("it-health");
    let (app, scheduler) = app(dir.sqlite_url()).await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    for component in ["database", "docker", "scheduler"] {
        assert_eq!(body["components"][component]["status"], "healthy", "{body}");
    }
    scheduler.stop().await;
}

#[actix_web::test]
async fn health_is_unhealthy_503_when_postgres_goes_away() {
    let database = PgDatabase::create();
    let (app, scheduler) = app(database.url().to_owned()).await;
    let (status, body) = health(&app).await;
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("healthy")), "{body}");
    database.drop_now();
    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["components"]["database"]["status"], "unhealthy");
    scheduler.stop().await;
}

#[actix_web::test]
async fn health_reports_the_host_checks_problem_as_a_degraded_docker() {
    let dir = TempDir::new("it-health-host");
    let problem = "/host/var/lib/docker/volumes is missing: mount the host's \
                   /var/lib/docker/volumes at /host/var/lib/docker/volumes (read-only)";
    let (app, scheduler) =
        app_with(dir.sqlite_url(), Some(Arc::new(|| Some(problem.to_owned())))).await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["components"]["docker"]["status"], "degraded", "{body}");
    assert_eq!(body["components"]["docker"]["message"], problem, "{body}");
    assert_eq!(body["components"]["database"]["status"], "healthy", "{body}");
    scheduler.stop().await;

    // A check that finds nothing leaves Docker healthy.
    let (app, scheduler) = app_with(dir.sqlite_url(), Some(Arc::new(|| None))).await;
    let (_, body) = health(&app).await;
    assert_eq!(body["components"]["docker"]["status"], "healthy", "{body}");
    scheduler.stop().await;
}
