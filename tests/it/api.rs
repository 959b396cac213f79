//! The HTTP API through the app factory, on real SQLite with a scheduler over
//! real directories (a `StaticSource`) and the native and du engines: every
//! endpoint's success and error answers, auth, the rate limit and hostile
//! input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{App, test};
use serde_json::Value;
use volscan_domain::{EngineChain, Repository, ScanMethod, VolumeName};
use volscan_http::AppState;
use volscan_repo::DieselRepository;
use volscan_scheduler::{SchedulerBuilder, SchedulerHandle, SchedulerOptions, StaticSource};
use volscan_testing::TempDir;

const TOKEN: &str = "test-token-0123456789";

struct Api<S> {
    app: S,
    scheduler: SchedulerHandle,
    dirs: TempDir,
    _db: TempDir,
}

/// The app over three directories (`alpha`, `beta`, `gamma`), with a token and a rate limit.
async fn api(
    rate_limit_rpm: u32,
) -> Api<impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>> {
    let dirs = TempDir::new("it-api-dirs");
    let mut named = Vec::new();
    for (i, name) in ["alpha", "beta", "gamma"].into_iter().enumerate() {
        let dir = dirs.path().join(name);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/data"), vec![b'x'; 10_000 * (i + 1)]).unwrap();
        named.push((VolumeName::new(name).unwrap(), dir));
    }
    let db = TempDir::new("it-api-db");
    let repo = DieselRepository::connect(&db.sqlite_url(), 4).unwrap();
    repo.migrate().unwrap();
    let repo: Arc<dyn Repository> = Arc::new(repo);
    let engines = EngineChain::new(vec![volscan_scan::engine(
        ScanMethod::Native,
        &std::env::var_os("PATH").unwrap_or_default(),
    )]);
    let options =
        SchedulerOptions { periodic: false, retention: None, ..SchedulerOptions::default() };
    let source = Arc::new(StaticSource::new(named));
    let scheduler = SchedulerBuilder::new(source.clone(), engines, Arc::clone(&repo), options)
        .start()
        .await
        .unwrap();
    let state = AppState::new(
        repo,
        source,
        scheduler.clone(),
        Some(TOKEN.to_owned()),
        rate_limit_rpm,
        None,
    );
    let app = test::init_service(App::new().configure(volscan_http::configure(state))).await;
    Api { app, scheduler, dirs, _db: db }
}

impl<S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>> Api<S> {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value, Option<String>) {
        let mut request = test::TestRequest::default().method(method).uri(uri);
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        self.send(request).await
    }

    async fn send(&self, request: test::TestRequest) -> (StatusCode, Value, Option<String>) {
        let request = request.peer_addr("127.0.0.1:40000".parse().unwrap()).to_request();
        let response = test::call_service(&self.app, request).await;
        let status = response.status();
        let retry_after =
            response.headers().get("Retry-After").map(|v| v.to_str().unwrap().to_owned());
        let body = test::read_body(response).await;
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, json, retry_after)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, body, _) = self.call(Method::GET, uri, None).await;
        (status, body)
    }

    async fn post(&self, uri: &str) -> (StatusCode, Value, Option<String>) {
        self.call(Method::POST, uri, Some(TOKEN)).await
    }

    /// Follows a run's status URL until it is final.
    async fn follow(&self, status_url: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, run) = self.get(status_url).await;
            assert_eq!(status, StatusCode::OK, "{run}");
            if ["completed", "failed", "canceled"].contains(&run["status"].as_str().unwrap()) {
                return run;
            }
            assert!(Instant::now() < deadline, "run never finished: {run}");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[track_caller]
fn assert_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[actix_web::test]
async fn a_scan_is_triggered_followed_and_listed() {
    let api = api(600).await;
    // A listing before the scan is rendered and kept; the scan must replace it.
    let (status, before) = api.get("/api/v1/volumes?sort=size_bytes:desc").await;
    assert_eq!(status, StatusCode::OK);
    assert!(before.as_array().unwrap().iter().all(|v| v["latest"].is_null()), "{before}");
    let (status, trigger, _) = api.post("/api/v1/volumes/alpha/scan").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{trigger}");
    assert_eq!(
        (trigger["volume"].as_str(), trigger["deduplicated"].as_bool()),
        (Some("alpha"), Some(false))
    );
    let url = trigger["status_url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/api/v1/scans/{}", trigger["scan_id"].as_str().unwrap()));
    let run = api.follow(&url).await;
    assert_eq!(
        (run["status"].as_str(), run["progress"].as_u64()),
        (Some("completed"), Some(100)),
        "{run}"
    );

    let (status, volumes) = api.get("/api/v1/volumes?sort=size_bytes:desc").await;
    assert_eq!(status, StatusCode::OK);
    let alpha = volumes.as_array().unwrap().iter().find(|v| v["name"] == "alpha").unwrap();
    assert_eq!(
        alpha["latest"]["size_bytes"].as_u64(),
        Some(crate::support::du_bytes(&api.dirs.path().join("alpha")))
    );
    assert_eq!(alpha["latest"]["scan_method"], "native");
    assert_eq!(volumes[0]["name"], "alpha", "sorted by size, scanned first");

    let (status, detail) = api.get("/api/v1/volumes/alpha").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["runs"][0]["scan_id"], trigger["scan_id"]);
    let (status, history) = api.get("/api/v1/volumes/alpha/history?limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["points"].as_array().unwrap().len(), 1);
    let (status, history) =
        api.get("/api/v1/volumes/alpha/history?since=2999-01-01T00:00:00Z").await;
    assert_eq!((status, history["points"].as_array().unwrap().len()), (StatusCode::OK, 0));

    let (status, runs) = api.get("/api/v1/scans?volume=alpha&status=completed&limit=5").await;
    assert_eq!((status, runs.as_array().unwrap().len()), (StatusCode::OK, 1));
    let (status, scheduler) = api.get("/api/v1/scheduler/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (scheduler["running"].as_bool(), scheduler["total_completed"].as_u64()),
        (Some(true), Some(1))
    );
    let (status, health) = api.get("/api/v1/health/scheduler").await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("healthy")), "{health}");
    api.scheduler.stop().await;
    let (status, health) = api.get("/api/v1/health/scheduler").await;
    assert_eq!((status.as_u16(), health["status"].as_str()), (503, Some("stopped")));
}

#[actix_web::test]
async fn bulk_scans_count_dedupe_and_share_the_cooldown() {
    let api = api(600).await;
    let (status, batch, _) = api.post("/api/v1/scan/now").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    assert_eq!((batch["count"].as_u64(), batch["skipped"].as_u64()), (Some(3), Some(0)));
    let (status, again, retry_after) = api.post("/api/v1/scan/now").await;
    assert_error(status, &again, 429, "rate_limited");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    let batch_url = format!("/api/v1/scan/batches/{}", batch["batch_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, counts, _) = api.call(Method::GET, &batch_url, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{counts}");
        assert_eq!(counts["total"], 3);
        if counts["completed"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{counts}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // The batch endpoint sits under /scan/ and needs the token too.
    let (status, body, _) = api.call(Method::GET, &batch_url, None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body, _) =
        api.call(Method::GET, &format!("/api/v1/scan/batches/{}", uuid_like()), Some(TOKEN)).await;
    assert_error(status, &body, 404, "batch_not_found");
    api.scheduler.stop().await;
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_owned()
}

#[actix_web::test]
async fn triggers_are_idempotent_and_cancel_answers_409_once_finished() {
    let api = api(600).await;
    // Stopped workers keep the run queued, so it can be seen twice and canceled.
    api.scheduler.stop().await;
    let (_, first, _) = api.post("/api/v1/volumes/beta/scan").await;
    let (status, second, _) = api.post("/api/v1/volumes/beta/scan").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        (second["deduplicated"].as_bool(), &second["scan_id"]),
        (Some(true), &first["scan_id"])
    );
    let cancel = format!("/api/v1/scans/{}/cancel", first["scan_id"].as_str().unwrap());
    let (status, run, _) = api.post(&cancel).await;
    assert_eq!((status, run["status"].as_str()), (StatusCode::OK, Some("canceled")), "{run}");
    let (status, body, _) = api.post(&cancel).await;
    assert_error(status, &body, 409, "scan_finished");
    let (status, body, _) = api.post(&format!("/api/v1/scans/{}/cancel", uuid_like())).await;
    assert_error(status, &body, 404, "scan_not_found");
}

#[actix_web::test]
async fn every_post_needs_the_token_and_bad_input_gets_a_4xx_error_body() {
    let api = api(600).await;
    for uri in [
        "/api/v1/volumes/alpha/scan",
        "/api/v1/scan/now",
        &format!("/api/v1/scans/{}/cancel", uuid_like()),
    ] {
        let (status, body, _) = api.call(Method::POST, uri, None).await;
        assert_error(status, &body, 401, "unauthorized");
        let (status, body, _) = api.call(Method::POST, uri, Some("wrong-token")).await;
        assert_error(status, &body, 401, "unauthorized");
    }
    let long = "a".repeat(10_000);
    let cases: Vec<(Method, String, u16, &str)> = vec![
        (Method::POST, "/api/v1/volumes/nope/scan".into(), 404, "volume_not_found"),
        (Method::POST, "/api/v1/volumes/..%2f..%2fetc/scan".into(), 400, "invalid_volume_name"),
        (Method::POST, "/api/v1/volumes/%2e%2e/scan".into(), 400, "invalid_volume_name"),
        (Method::POST, "/api/v1/volumes/a%00b/scan".into(), 400, "invalid_volume_name"),
        (Method::POST, "/api/v1/volumes/%2F/scan".into(), 400, "invalid_volume_name"),
        (Method::POST, "/api/v1/volumes//scan".into(), 404, "not_found"),
        (Method::POST, format!("/api/v1/volumes/{long}/scan"), 400, "invalid_volume_name"),
        (Method::GET, "/api/v1/volumes/..".into(), 400, "invalid_volume_name"),
        (Method::GET, "/api/v1/volumes/.x".into(), 400, "invalid_volume_name"),
        (Method::GET, "/api/v1/volumes/nope".into(), 404, "volume_not_found"),
        (Method::GET, "/api/v1/volumes/nope/history".into(), 404, "volume_not_found"),
        (Method::GET, "/api/v1/volumes/alpha/history?since=yesterday".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/alpha/history?limit=0".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes?sort=size".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes?removed=maybe".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/scans?status=lost".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/scans?limit=100000".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/scans/not-a-uuid".into(), 404, "scan_not_found"),
        (Method::GET, format!("/api/v1/scans/{}", uuid_like()), 404, "scan_not_found"),
        (Method::DELETE, "/api/v1/volumes".into(), 405, "method_not_allowed"),
        (Method::GET, "/api/v1/scan/now".into(), 405, "method_not_allowed"),
        (Method::PUT, "/api/v1/volumes/alpha/scan".into(), 405, "method_not_allowed"),
        (Method::GET, "/api/v1/nothing-here".into(), 404, "not_found"),
    ];
    for (method, uri, expected, code) in cases {
        let (status, body, _) = api.call(method.clone(), &uri, Some(TOKEN)).await;
        assert_eq!(status.as_u16(), expected, "{method} {}: {body}", &uri[..uri.len().min(80)]);
        assert_eq!(body["error"]["code"], code, "{method} {}: {body}", &uri[..uri.len().min(80)]);
    }
    // Bodies: invalid JSON and a 10 MB body are refused, never a 5xx.
    let request = test::TestRequest::post()
        .uri("/api/v1/scan/now")
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(vec![b'{'; 10 * 1024 * 1024]);
    let (status, body, _) = api.send(request).await;
    assert_error(status, &body, 413, "payload_too_large");
    let request = test::TestRequest::post()
        .uri("/api/v1/volumes/alpha/scan")
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{not json");
    let (status, body, _) = api.send(request).await;
    assert_error(status, &body, 400, "invalid_body");
    // No endpoint needs a body; an empty one or any JSON value is accepted.
    for payload in ["", "{}", " null\n"] {
        let request = test::TestRequest::post()
            .uri("/api/v1/volumes/alpha/scan")
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(payload);
        let (status, body, _) = api.send(request).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{payload:?}: {body}");
    }
    api.scheduler.stop().await;
}

#[actix_web::test]
async fn wrong_tokens_count_toward_the_rate_limit() {
    let api = api(4).await; // A burst of 2, then one every 15 s.
    let mut answers = Vec::new();
    for _ in 0..12 {
        let (status, body, retry_after) =
            api.call(Method::POST, "/api/v1/volumes/gamma/scan", Some("wrong-token")).await;
        answers.push(status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_error(status, &body, 429, "rate_limited");
            assert!(retry_after.is_some(), "429 without Retry-After");
        }
    }
    assert_eq!(answers[..2], [401, 401], "{answers:?}");
    assert!(answers[2..].iter().all(|status| *status == 429), "{answers:?}");
    // The right token from the same peer waits its turn as well.
    let (status, body, _) = api.post("/api/v1/volumes/gamma/scan").await;
    assert_error(status, &body, 429, "rate_limited");
    api.scheduler.stop().await;
}

#[actix_web::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let api = api(4).await; // A burst of 2, then one every 15 s.
    for _ in 0..2 {
        let (status, body, _) = api.post("/api/v1/volumes/gamma/scan").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body, retry_after) = api.post("/api/v1/volumes/gamma/scan").await;
    assert_error(status, &body, 429, "rate_limited");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=15).contains(&seconds), "{seconds}");
    // Reads are not limited.
    for _ in 0..10 {
        assert_eq!(api.get("/api/v1/scheduler/status").await.0, StatusCode::OK);
    }
    api.scheduler.stop().await;
}

#[actix_web::test]
async fn the_openapi_document_lists_every_route() {
    let api = api(600).await;
    let (status, document) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/volumes/{name}/scan",
        "/scan/now",
        "/scans",
        "/scans/{scan_id}",
        "/scans/{scan_id}/cancel",
        "/scan/batches/{batch_id}",
        "/volumes",
        "/volumes/{name}",
        "/volumes/{name}/history",
        "/scheduler/status",
        "/scheduler/metrics",
        "/health",
        "/health/scheduler",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    api.scheduler.stop().await;
}
