//! `GET /api/v1/health` through the app factory, on a real database that
//! works and on one that has gone away.

use std::sync::Arc;

use actix_web::{App, test};
use volscan_http::AppState;
use volscan_repo::DieselRepository;
use volscan_testing::{PgDatabase, TempDir};

async fn health(repo: DieselRepository) -> (u16, serde_json::Value) {
    let app = test::init_service(
        App::new().configure(volscan_http::configure(AppState { repo: Arc::new(repo) })),
    )
    .await;
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/api/v1/health").to_request()).await;
    let status = response.status().as_u16();
    (status, test::read_body_json(response).await)
}

fn open(url: &str) -> DieselRepository {
    let repo = DieselRepository::connect(url, 2).unwrap();
    repo.migrate().unwrap();
    repo
}

#[actix_web::test]
async fn health_is_healthy_on_a_working_sqlite_database() {
    let dir = TempDir::new("it-health");
    let (status, body) = health(open(&dir.sqlite_url())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["components"]["database"]["status"], "healthy");
}

#[actix_web::test]
async fn health_is_unhealthy_503_when_postgres_goes_away() {
    let database = PgDatabase::create();
    let repo = open(database.url());
    let (status, body) = health(repo.clone()).await;
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("healthy")), "{body}");
    database.drop_now();
    let (status, body) = health(repo).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["components"]["database"]["status"], "unhealthy");
}
