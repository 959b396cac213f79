//! The HTTP API through the app factory, on real SQLite with a scheduler over
//! real directories (a `StaticSource`) and the native and du engines: every
//! endpoint's success and error answers, auth, the rate limit and hostile
//! input; and the answers of SPEC §8 (growth, unused volumes, filesystems,
//! the summary, directories) over data written through the repository port
//! with chosen times, checked against figures computed here by hand and
//! against the OpenAPI document's schemas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{App, test};
use serde_json::Value;
use volscan_domain::{Repository, ScanMethod, VolumeName};
use volscan_http::AppState;
use volscan_repo::DieselRepository;
use volscan_scheduler::{SchedulerHandle, StaticSource};
use volscan_testing::TempDir;

const TOKEN: &str = "test-token-0123456789";

struct Api<S> {
    app: S,
    scheduler: SchedulerHandle,
    /// The repository the app reads, for writing data with chosen times.
    repo: Arc<dyn Repository>,
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
    let source = Arc::new(StaticSource::new(named));
    let scheduler = crate::support::native_scheduler(source.clone(), Arc::clone(&repo)).await;
    let state = AppState::new(
        Arc::clone(&repo) as Arc<dyn volscan_domain::ReadRepository>,
        source,
        scheduler.clone(),
        Some(TOKEN.to_owned()),
        rate_limit_rpm,
        None,
    );
    let app = test::init_service(App::new().configure(volscan_http::configure(state))).await;
    Api { app, scheduler, repo, dirs, _db: db }
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

    // One stat: growth knows its time and nothing else yet.
    assert_eq!(alpha["growth"]["as_of"], alpha["latest"]["ts"], "{alpha}");
    assert_eq!(alpha["growth"]["trend"], "unknown");
    assert!(
        alpha["growth"]["delta_24h"].is_null() && alpha["growth"]["rate_bytes_per_day"].is_null()
    );

    let (status, detail) = api.get("/api/v1/volumes/alpha").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["runs"][0]["scan_id"], trigger["scan_id"]);
    assert_eq!(detail["growth"], alpha["growth"]);
    conforms("VolumeDetail", &detail);

    // The native scan recorded the directories inside the volume.
    let (status, dirs) = api.get("/api/v1/volumes/alpha/dirs").await;
    assert_eq!(status, StatusCode::OK, "{dirs}");
    assert_eq!(dirs["scan_id"], trigger["scan_id"], "{dirs}");
    assert_eq!(dirs["ts"], alpha["latest"]["ts"]);
    let sub = crate::support::du_bytes(&api.dirs.path().join("alpha/sub"));
    assert_eq!(dirs["entries"][0]["path"], "sub", "{dirs}");
    assert_eq!(dirs["entries"][0]["size_bytes"].as_u64(), Some(sub), "{dirs}");
    assert_eq!(dirs["entries"][0]["file_count"].as_u64(), Some(1), "{dirs}");
    conforms("Dirs", &dirs);
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
        (Method::GET, "/api/v1/volumes?unused=maybe".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes?sort=delta_24h".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes?sort=delta_30d:desc".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes?sort=trend:asc".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes?sort=rate_bytes_per_day:up".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/nope/dirs".into(), 404, "volume_not_found"),
        (Method::GET, "/api/v1/volumes/.x/dirs".into(), 400, "invalid_volume_name"),
        (Method::GET, "/api/v1/volumes/alpha/dirs?depth=3".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/alpha/dirs?depth=0".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/alpha/dirs?depth=one".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/alpha/dirs?compare=1h".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/alpha/dirs?limit=0".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/alpha/dirs?limit=1001".into(), 400, "invalid_query"),
        (Method::GET, "/api/v1/volumes/alpha/dirs?limit=-1".into(), 400, "invalid_query"),
        (Method::POST, "/api/v1/summary".into(), 405, "method_not_allowed"),
        (Method::DELETE, "/api/v1/filesystems".into(), 405, "method_not_allowed"),
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
        "/volumes/{name}/dirs",
        "/filesystems",
        "/summary",
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

// ---- SPEC §8: growth, unused volumes, filesystems, the summary, directories ----

/// Checks `value` against the schema `name` of the served OpenAPI document
/// (types, enums, required and unknown fields, recursively).
#[track_caller]
fn conforms(name: &str, value: &Value) {
    let document = volscan_http::openapi_document();
    let schema = &document["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    if let Err(problem) = check(&document, schema, value, name) {
        panic!("{problem}\nin {value}");
    }
}

fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return check(document, &document["components"]["schemas"][name], value, at);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let passing = options.iter().filter(|o| check(document, o, value, at).is_ok()).count();
        return if passing == 1 { Ok(()) } else { Err(format!("{at}: {passing} of oneOf match")) };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let type_ok = types.is_empty()
        || types.iter().any(|kind| match *kind {
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "object" => value.is_object(),
            "array" => value.is_array(),
            _ => false,
        });
    if !type_ok {
        return Err(format!("{at}: {value} is not {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let field = required.as_str().unwrap_or_default();
            if !object.contains_key(field) {
                return Err(format!("{at}: {field} is missing"));
            }
        }
        for (field, inner) in object {
            let inner_at = format!("{at}.{field}");
            match (schema["properties"].get(field), &schema["additionalProperties"]) {
                (Some(property), _) => check(document, property, inner, &inner_at)?,
                (None, Value::Bool(false)) => return Err(format!("{inner_at} is not documented")),
                (None, extra) if extra.is_object() => check(document, extra, inner, &inner_at)?,
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(document, schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

use time::OffsetDateTime as Timestamp;
use volscan_domain::{
    DirUsage, DiscoveredVolume, FilesystemSample, NewScanRun, RunOutcome, ScanDetails, ScanId,
    Trigger, Usage, VolumeKind, VolumeUsers,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Now, to the whole hour, so that times round-trip through the database
/// and RFC 3339 exactly.
fn this_hour() -> Timestamp {
    let now = Timestamp::now_utc().unix_timestamp();
    Timestamp::from_unix_timestamp(now - now % 3600).unwrap()
}

fn hours(n: i64) -> time::Duration {
    time::Duration::hours(n)
}

fn rfc3339(at: Timestamp) -> Value {
    Value::String(at.format(&time::format_description::well_known::Rfc3339).unwrap())
}

fn parse_time(text: &Value) -> Timestamp {
    Timestamp::parse(text.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Writes through the repository port, as the scheduler would, at chosen times.
struct Store(Arc<dyn Repository>);

impl Store {
    fn volume(&self, name: &str, at: Timestamp) -> VolumeName {
        let name = VolumeName::new(name).unwrap();
        let discovered = DiscoveredVolume {
            name: name.clone(),
            driver: "local".to_owned(),
            mountpoint: format!("/nonexistent/{name}").into(),
            kind: VolumeKind::Volume,
            labels: Default::default(),
            created_at: None,
        };
        self.0.upsert_volume(&discovered, at).unwrap();
        name
    }

    /// A run of `volume` queued and claimed at `at`, then ended with `outcome` at `at`.
    fn run(&self, volume: &str, at: Timestamp, outcome: RunOutcome) -> ScanId {
        let scan_id = ScanId::new();
        let volume = VolumeName::new(volume).unwrap();
        let new = NewScanRun {
            host: Default::default(),
            scan_id,
            volume,
            batch_id: None,
            trigger: Trigger::Manual,
            queued_at: at,
        };
        assert!(!self.0.enqueue(new).unwrap().deduplicated);
        let claimed = self.0.claim_next(at).unwrap().expect("the run is due");
        assert_eq!(claimed.scan_id, scan_id, "another run was queued");
        self.0.record_outcome(scan_id, outcome, at).unwrap();
        scan_id
    }

    /// A completed scan measuring `size_bytes` at `at`.
    fn stat(&self, volume: &str, at: Timestamp, size_bytes: u64) -> ScanId {
        let usage = Usage {
            size_bytes,
            apparent_bytes: None,
            file_count: None,
            dir_count: None,
            error_count: 0,
        };
        let duration = Duration::from_millis(5);
        self.run(volume, at, RunOutcome::Completed { usage, method: ScanMethod::Du, duration })
    }

    fn failed(&self, volume: &str, at: Timestamp, reason: &str) -> ScanId {
        self.run(volume, at, RunOutcome::Failed { reason: reason.to_owned() })
    }

    fn canceled(&self, volume: &str, at: Timestamp) {
        let scan_id = ScanId::new();
        let volume = VolumeName::new(volume).unwrap();
        let new = NewScanRun {
            host: Default::default(),
            scan_id,
            volume,
            batch_id: None,
            trigger: Trigger::Manual,
            queued_at: at,
        };
        self.0.enqueue(new).unwrap();
        self.0.record_outcome(scan_id, RunOutcome::Canceled, at).unwrap();
    }

    /// A filesystem sample taken after a scan of `volume` at `at`.
    fn sample(&self, volume: &str, id: &str, mount: &str, total: u64, avail: u64, at: Timestamp) {
        let sample = FilesystemSample {
            id: id.to_owned(),
            mount_point: mount.to_owned(),
            fs_type: "ext4".to_owned(),
            total_bytes: total,
            avail_bytes: avail,
            ts: at,
        };
        let details = ScanDetails { dirs: None, filesystem: Some(sample) };
        let volume = VolumeName::new(volume).unwrap();
        self.0.record_details(ScanId::new(), &volume, at, &details).unwrap();
    }

    /// A completed scan at `at` that recorded `dirs` (path, depth, size).
    fn dirs(&self, volume: &str, at: Timestamp, dirs: &[(&str, u8, u64)]) -> ScanId {
        let scan_id = self.stat(volume, at, dirs.iter().map(|d| d.2).sum());
        let dirs = dirs
            .iter()
            .map(|&(path, depth, size_bytes)| DirUsage {
                path: path.to_owned(),
                depth,
                size_bytes,
                file_count: Some(size_bytes / 10),
            })
            .collect();
        let details = ScanDetails { dirs: Some(dirs), filesystem: None };
        let name = VolumeName::new(volume).unwrap();
        self.0.record_details(scan_id, &name, at, &details).unwrap();
        scan_id
    }

    fn users(&self, volumes: &[&str], at: Timestamp) {
        let users: Vec<VolumeUsers> = volumes
            .iter()
            .map(|name| VolumeUsers {
                volume: VolumeName::new(*name).unwrap(),
                containers: vec![format!("{name}-app")],
                in_use: false,
            })
            .collect();
        self.0.record_users(&users, at).unwrap();
    }

    fn remove(&self, volume: &str, at: Timestamp) {
        assert!(self.0.mark_volume_removed(&VolumeName::new(volume).unwrap(), at).unwrap());
    }
}

/// The least-squares slope of `(time, size)` points in bytes a day,
/// computed here independently of the domain's `fit`.
fn slope_per_day(points: &[(Timestamp, u64)]) -> f64 {
    let n = points.len() as f64;
    let x: Vec<f64> = points.iter().map(|(t, _)| t.unix_timestamp() as f64 / 86_400.0).collect();
    let y: Vec<f64> = points.iter().map(|&(_, size)| size as f64).collect();
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(&y).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = x.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

#[track_caller]
fn assert_close(actual: &Value, expected: f64) {
    let actual = actual.as_f64().unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!(
        (actual - expected).abs() <= expected.abs() * 1e-9 + 1e-6,
        "{actual} is not {expected}"
    );
}

/// The volumes of a listing whose names start with `prefix`, in order.
fn names(listing: &Value, prefix: &str) -> Vec<String> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn growth_figures_and_sort_keys_follow_the_stored_stats() {
    let api = api(600).await;
    api.scheduler.stop().await;
    let store = Store(Arc::clone(&api.repo));
    let end = this_hour() - time::Duration::days(1);
    let day = time::Duration::days(1);
    // (volume, [(time, size)]), oldest first.
    let series: Vec<(&str, Vec<(Timestamp, u64)>)> = vec![
        (
            "g-fast",
            vec![
                (end - day * 31, GIB),
                (end - day * 6, 2 * GIB),
                (end - day * 4, 3 * GIB),
                (end - day * 2, 4 * GIB),
                (end, 5 * GIB),
            ],
        ),
        (
            "g-slow",
            vec![
                (end - day * 10, 10 * GIB),
                (end - day * 4, 10 * GIB),
                (end - day * 2, 10 * GIB + 64 * MIB),
                (end, 10 * GIB + 128 * MIB),
            ],
        ),
        (
            "g-shrink",
            vec![
                (end - day * 8, 8 * GIB),
                (end - day * 3, 7 * GIB),
                (end - day * 2, 6 * GIB),
                (end - hours(3), 4 * GIB + 3 * GIB / 24),
            ],
        ),
        ("g-single", vec![(end - hours(5), MIB)]),
    ];
    for (name, points) in &series {
        store.volume(name, end - day * 40);
        for &(at, size) in points {
            store.stat(name, at, size);
        }
    }
    store.volume("g-never", end);

    let (status, listing) = api.get("/api/v1/volumes").await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    let by_name = |name: &str| {
        listing.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap().clone()
    };
    for volume in listing.as_array().unwrap() {
        conforms("Volume", volume);
    }
    // Deltas against the newest stat at or before the window's start, by hand.
    let expected: [(&str, [Option<i64>; 3]); 5] = [
        ("g-fast", [Some(GIB as i64), Some(4 * GIB as i64), Some(4 * GIB as i64)]),
        ("g-slow", [Some(64 * MIB as i64), Some(128 * MIB as i64), None]),
        (
            "g-shrink",
            [
                Some((3 * GIB / 24) as i64 - 2 * GIB as i64),
                Some(-(4 * GIB as i64) + (3 * GIB / 24) as i64),
                None,
            ],
        ),
        ("g-single", [None, None, None]),
        ("g-never", [None, None, None]),
    ];
    for (name, [d24, d7, d30]) in expected {
        let growth = &by_name(name)["growth"];
        let as_i64 = |field: &str| growth[field].as_i64();
        assert_eq!(
            (as_i64("delta_24h"), as_i64("delta_7d"), as_i64("delta_30d")),
            (d24, d7, d30),
            "{name}: {growth}"
        );
    }
    // Rates: least squares over the week before each volume's newest stat.
    for (name, points) in &series {
        let growth = &by_name(name)["growth"];
        let newest = points.last().unwrap().0;
        assert_eq!(growth["as_of"], rfc3339(newest), "{name}");
        let week: Vec<_> =
            points.iter().copied().filter(|(at, _)| *at >= newest - day * 7).collect();
        if week.len() < 3 {
            assert!(growth["rate_bytes_per_day"].is_null(), "{name}: {growth}");
            assert_eq!(growth["trend"], "unknown", "{name}");
        } else {
            assert_close(&growth["rate_bytes_per_day"], slope_per_day(&week));
        }
    }
    assert_close(&by_name("g-fast")["growth"]["rate_bytes_per_day"], GIB as f64 / 2.0);
    assert_close(&by_name("g-slow")["growth"]["rate_bytes_per_day"], 32.0 * MIB as f64);
    assert_eq!(by_name("g-fast")["growth"]["trend"], "rising");
    assert_eq!(by_name("g-slow")["growth"]["trend"], "rising");
    assert_eq!(by_name("g-shrink")["growth"]["trend"], "falling");
    assert_eq!(by_name("g-never")["growth"]["as_of"], Value::Null);
    assert!(by_name("g-never")["latest"].is_null());

    // Sorted by a growth figure, nulls last both ways, ties by name.
    let cases = [
        ("delta_24h:desc", ["g-fast", "g-slow", "g-shrink", "g-never", "g-single"]),
        ("delta_24h:asc", ["g-shrink", "g-slow", "g-fast", "g-never", "g-single"]),
        ("delta_7d:desc", ["g-fast", "g-slow", "g-shrink", "g-never", "g-single"]),
        ("delta_7d:asc", ["g-shrink", "g-slow", "g-fast", "g-never", "g-single"]),
        ("rate_bytes_per_day:desc", ["g-fast", "g-slow", "g-shrink", "g-never", "g-single"]),
        ("rate_bytes_per_day:asc", ["g-shrink", "g-slow", "g-fast", "g-never", "g-single"]),
        ("size_bytes:desc", ["g-slow", "g-fast", "g-shrink", "g-single", "g-never"]),
        ("name:desc", ["g-slow", "g-single", "g-shrink", "g-never", "g-fast"]),
    ];
    for (sort, order) in cases {
        let (status, sorted) = api.get(&format!("/api/v1/volumes?sort={sort}")).await;
        assert_eq!(status, StatusCode::OK, "{sorted}");
        assert_eq!(names(&sorted, "g-"), order, "sort={sort}");
        // The cached answer is the same.
        assert_eq!(api.get(&format!("/api/v1/volumes?sort={sort}")).await.1, sorted);
    }

    // One volume carries the same figures.
    let (status, detail) = api.get("/api/v1/volumes/g-slow").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["growth"], by_name("g-slow")["growth"]);
    conforms("VolumeDetail", &detail);
}

#[actix_web::test]
async fn one_volume_s_growth_is_computed_alone_when_the_list_was_never_read() {
    let api = api(600).await;
    api.scheduler.stop().await;
    let store = Store(Arc::clone(&api.repo));
    let end = this_hour();
    store.volume("solo", end - hours(100));
    for (i, size) in [100 * MIB, 300 * MIB, 500 * MIB].into_iter().enumerate() {
        store.stat("solo", end - hours(48) + hours(24 * i as i64), size);
    }
    let (status, detail) = api.get("/api/v1/volumes/solo").await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["growth"]["delta_24h"].as_i64(), Some(200 * MIB as i64));
    assert_close(&detail["growth"]["rate_bytes_per_day"], 200.0 * MIB as f64);
    assert_eq!(detail["growth"]["trend"], "rising");
    let (_, listing) = api.get("/api/v1/volumes").await;
    assert_eq!(listing[0]["growth"], detail["growth"]);
}

#[actix_web::test]
async fn unused_volumes_are_filtered_and_dated() {
    let api = api(600).await;
    api.scheduler.stop().await;
    let store = Store(Arc::clone(&api.repo));
    let t0 = this_hour() - hours(48);
    for name in ["u-busy", "u-idle", "u-quiet", "u-gone", "u-was-busy"] {
        store.volume(name, t0);
    }
    store.users(&["u-busy", "u-was-busy"], t0);
    store.users(&["u-busy"], t0 + hours(1));
    store.remove("u-gone", t0 + hours(2));
    store.volume("u-new", t0 + hours(3)); // not looked at since: in_use unknown

    let (status, unused) = api.get("/api/v1/volumes?unused=true").await;
    assert_eq!(status, StatusCode::OK, "{unused}");
    assert_eq!(names(&unused, "u-"), ["u-idle", "u-quiet", "u-was-busy"]);
    let (_, with_removed) = api.get("/api/v1/volumes?unused=true&removed=true").await;
    assert_eq!(
        names(&with_removed, "u-"),
        ["u-idle", "u-quiet", "u-was-busy"],
        "removed is never unused"
    );
    let (_, used) = api.get("/api/v1/volumes?unused=false").await;
    assert_eq!(names(&used, "u-"), ["u-busy"]);
    let (_, all) = api.get("/api/v1/volumes").await;
    assert_eq!(names(&all, "u-"), ["u-busy", "u-idle", "u-new", "u-quiet", "u-was-busy"]);
    let (_, sorted) = api.get("/api/v1/volumes?unused=true&sort=name:desc").await;
    assert_eq!(names(&sorted, "u-"), ["u-was-busy", "u-quiet", "u-idle"]);

    let volume = |name: &str| all.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap();
    let fields = |name: &str| {
        let v = volume(name);
        (v["in_use"].clone(), v["last_used_at"].clone(), v["unused_since"].clone())
    };
    assert_eq!(fields("u-busy"), (Value::Bool(true), rfc3339(t0 + hours(1)), Value::Null));
    assert_eq!(fields("u-idle"), (Value::Bool(false), Value::Null, rfc3339(t0)));
    assert_eq!(
        fields("u-was-busy"),
        (Value::Bool(false), rfc3339(t0), rfc3339(t0 + hours(1))),
        "unused since the first look that found it unused"
    );
    assert_eq!(fields("u-new"), (Value::Null, Value::Null, Value::Null));
    // The live container list comes from the source (none here), not from the stored flag.
    assert_eq!(volume("u-busy")["containers"], serde_json::json!([]));
    for v in all.as_array().unwrap() {
        conforms("Volume", v);
    }
}

#[actix_web::test]
async fn filesystems_report_their_newest_sample_volumes_and_forecast() {
    let api = api(600).await;
    api.scheduler.stop().await;
    let store = Store(Arc::clone(&api.repo));
    let now = this_hour();
    let day = time::Duration::days(1);
    for name in ["f-one", "f-two", "f-gone", "f-old", "f-partial", "f-orphan"] {
        store.volume(name, now - day * 30);
    }
    // Filling: 2 GiB less every 12 hours over 60 hours, 40 GiB left at the end.
    let recent = now - hours(1);
    for k in 0..=5u64 {
        let volume = if k % 2 == 0 { "f-one" } else { "f-two" };
        let at = recent - hours(12 * (5 - k as i64));
        store.sample(volume, "fs-fill", "/var/lib/docker", 100 * GIB, 50 * GIB - k * 2 * GIB, at);
    }
    store.stat("f-two", now - day * 2, GIB);
    store.stat("f-two", now - day, 5 * GIB);
    store.stat("f-one", now - day, 3 * GIB);
    // Within five minutes of the newest sample: not stored again, but the
    // volume is on that filesystem; it is removed, so it does not count.
    store.sample(
        "f-gone",
        "fs-fill",
        "/var/lib/docker",
        100 * GIB,
        GIB,
        recent + time::Duration::minutes(1),
    );
    store.stat("f-gone", now - day, 100 * GIB);
    store.remove("f-gone", now);
    // Not sampled for 18 days: its own samples are read, flat.
    for k in 0..3 {
        store.sample("f-old", "fs-old", "/srv", 20 * GIB, 10 * GIB, now - day * (20 - k));
    }
    // Last sampled 3 days ago: its week reaches back before the bulk read.
    let partial: Vec<(Timestamp, u64)> = [(12, 90), (9, 80), (6, 70), (3, 60)]
        .map(|(d, avail)| (now - day * d, avail * GIB))
        .to_vec();
    for &(at, avail) in &partial {
        store.sample("f-partial", "fs-partial", "/data", 100 * GIB, avail, at);
    }
    // Held only by a removed volume.
    store.sample("f-orphan", "fs-orphan", "/orphan", GIB, GIB / 2, now - hours(2));
    store.remove("f-orphan", now);

    let (status, listed) = api.get("/api/v1/filesystems").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let ids: Vec<&str> =
        listed.as_array().unwrap().iter().map(|fs| fs["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fs-fill", "fs-partial", "fs-old"], "full_at first, then by mount point");
    for fs in listed.as_array().unwrap() {
        conforms("Filesystem", fs);
    }

    let fill = &listed[0];
    assert_eq!(
        (
            &fill["mount_point"],
            &fill["fs_type"],
            fill["total_bytes"].as_u64(),
            fill["avail_bytes"].as_u64()
        ),
        (&Value::from("/var/lib/docker"), &Value::from("ext4"), Some(100 * GIB), Some(40 * GIB))
    );
    assert_eq!(
        (fill["volume_count"].as_u64(), fill["volumes_bytes"].as_u64()),
        (Some(2), Some(8 * GIB))
    );
    assert_eq!(fill["sampled_at"], rfc3339(recent));
    assert_eq!(fill["trend"], "rising");
    assert_close(&fill["rate_bytes_per_day"], 4.0 * GIB as f64);
    // 40 GiB left at 4 GiB a day.
    let full_at = parse_time(&fill["full_at"]);
    let off: time::Duration = full_at - (recent + day * 10);
    assert!(off.abs() < time::Duration::seconds(1), "{full_at}");

    let partial_fs = &listed[1];
    let week: Vec<_> = partial.iter().copied().filter(|(at, _)| *at >= now - day * 10).collect();
    assert_close(&partial_fs["rate_bytes_per_day"], -slope_per_day(&week));
    assert_eq!(partial_fs["trend"], "rising");
    assert_eq!(partial_fs["full_at"], Value::Null, "three samples in its week give no date");
    assert_eq!(
        (partial_fs["volume_count"].as_u64(), partial_fs["volumes_bytes"].as_u64()),
        (Some(1), Some(0))
    );

    let old = &listed[2];
    assert_eq!(old["sampled_at"], rfc3339(now - day * 18));
    assert_eq!((old["trend"].as_str(), &old["full_at"]), (Some("flat"), &Value::Null));
    assert_close(&old["rate_bytes_per_day"], 0.0);

    // The volumes say where they live.
    let (_, one) = api.get("/api/v1/volumes/f-one").await;
    assert_eq!(one["filesystem_id"], "fs-fill");
    // The summary lists the filling one.
    let (status, summary) = api.get("/api/v1/summary").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["filesystems_filling"], serde_json::json!([fill]));
    conforms("Summary", &summary);
}

#[actix_web::test]
async fn the_summary_adds_up_the_present_volumes() {
    let api = api(600).await;
    api.scheduler.stop().await;
    let store = Store(Arc::clone(&api.repo));
    let end = this_hour() - hours(6);
    let day = time::Duration::days(1);
    // (name, first size, change a day): three stats a day apart, ending at `end`.
    let grown: Vec<(String, u64, i64)> = [100, 300, -50, 200, 500, 400, 600]
        .into_iter()
        .enumerate()
        .map(|(i, k)| (format!("s{}", i + 1), (i as u64 + 1) * GIB, k * MIB as i64))
        .collect();
    for (name, first, change) in &grown {
        store.volume(name, end - day * 10);
        for step in 0..3i32 {
            let size = (*first as i64 + change * i64::from(step)) as u64;
            store.stat(name, end - day * (2 - step), size);
        }
    }
    store.volume("s8", end - day * 10);
    store.stat("s8", end - hours(5), 8 * GIB);
    store.volume("s9", end - day * 10);
    store.stat("s9", end, 50 * GIB);
    store.users(&["s1", "s2", "s3", "s4"], end);
    // Failures: s1 twice (the newest counts), s2 before its scans (recovered),
    // s3 then a canceled run (still failing), s8, and s9, which is removed.
    store.failed("s1", end + time::Duration::minutes(20), "first trouble");
    let s1_failure = store.failed("s1", end + hours(1), "disk on fire");
    store.failed("s2", end - day * 3, "early trouble");
    let s3_failure = store.failed("s3", end + hours(2), "timeout");
    store.canceled("s3", end + hours(3));
    let s8_failure = store.failed("s8", end + time::Duration::minutes(30), "permission denied");
    store.failed("s9", end + hours(1), "gone");
    store.remove("s9", end + hours(4));

    let (status, summary) = api.get("/api/v1/summary").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    conforms("Summary", &summary);

    // Expected figures, from the table above.
    let mut latest: Vec<(String, u64, Timestamp)> = grown
        .iter()
        .map(|(name, first, change)| (name.clone(), (*first as i64 + 2 * change) as u64, end))
        .collect();
    latest.push(("s8".to_owned(), 8 * GIB, end - hours(5)));
    let unused = ["s5", "s6", "s7", "s8"];
    let total: u64 = latest.iter().map(|l| l.1).sum();
    let reclaimable: u64 =
        latest.iter().filter(|l| unused.contains(&l.0.as_str())).map(|l| l.1).sum();
    assert_eq!(summary["volume_count"], 8);
    assert_eq!(summary["total_bytes"].as_u64(), Some(total));
    assert_eq!(summary["unused_count"], 4);
    assert_eq!(summary["reclaimable_bytes"].as_u64(), Some(reclaimable));
    assert_eq!(summary["last_scan_at"], rfc3339(end));
    assert_eq!(summary["oldest_scan_at"], rfc3339(end - hours(5)));

    latest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let largest: Vec<Value> = latest
        .iter()
        .take(5)
        .map(|(name, size, at)| serde_json::json!({ "name": name, "size_bytes": size, "scanned_at": rfc3339(*at) }))
        .collect();
    assert_eq!(summary["largest"], Value::Array(largest));

    let mut growing: Vec<&(String, u64, i64)> = grown.iter().filter(|g| g.2 > 0).collect();
    growing.sort_by_key(|g| std::cmp::Reverse(g.2));
    let fastest = summary["fastest_growing"].as_array().unwrap();
    assert_eq!(fastest.len(), 5, "{summary}");
    for (entry, (name, _, change)) in fastest.iter().zip(growing) {
        assert_eq!(entry["name"], name.as_str());
        assert_close(&entry["rate_bytes_per_day"], *change as f64);
        assert_eq!(entry["delta_24h"].as_i64(), Some(*change));
        assert_eq!((entry["trend"].as_str(), &entry["as_of"]), (Some("rising"), &rfc3339(end)));
    }

    let failing: Vec<(&str, String, &str, Value)> = summary["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["scan_id"].as_str().unwrap().to_owned(),
                f["error_message"].as_str().unwrap(),
                f["completed_at"].clone(),
            )
        })
        .collect();
    assert_eq!(
        failing,
        [
            ("s3", s3_failure.to_string(), "timeout", rfc3339(end + hours(2))),
            ("s1", s1_failure.to_string(), "disk on fire", rfc3339(end + hours(1))),
            (
                "s8",
                s8_failure.to_string(),
                "permission denied",
                rfc3339(end + time::Duration::minutes(30))
            ),
        ]
    );
    assert_eq!(summary["filesystems_filling"], serde_json::json!([]));
    // A second read is the cached answer.
    assert_eq!(api.get("/api/v1/summary").await.1, summary);
}

#[actix_web::test]
async fn an_empty_summary_says_so() {
    let api = api(600).await;
    api.scheduler.stop().await;
    let (status, summary) = api.get("/api/v1/summary").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    conforms("Summary", &summary);
    assert_eq!(
        summary,
        serde_json::json!({
            "volume_count": 0, "total_bytes": 0, "unused_count": 0, "reclaimable_bytes": 0,
            "largest": [], "fastest_growing": [], "filesystems_filling": [], "failing": [],
            "last_scan_at": null, "oldest_scan_at": null,
        })
    );
    let (status, filesystems) = api.get("/api/v1/filesystems").await;
    assert_eq!((status, filesystems), (StatusCode::OK, serde_json::json!([])));
}

#[actix_web::test]
async fn directories_are_listed_by_depth_and_compared_with_an_earlier_scan() {
    let api = api(600).await;
    api.scheduler.stop().await;
    let store = Store(Arc::clone(&api.repo));
    let end = this_hour() - time::Duration::days(1);
    let day = time::Duration::days(1);
    // A name that is not UTF-8 and holds a newline, as the scan escapes it.
    let odd = volscan_domain::escape_component(b"c\xff\n");
    assert_eq!(odd, "c\\xFF\\x0A");
    let odd = odd.as_str();
    store.volume("d-vol", end - day * 10);
    store.volume("d-empty", end - day * 10);
    store.stat("d-empty", end, GIB);
    let old = (
        end - day * 8,
        store.dirs("d-vol", end - day * 8, &[("a", 1, 100), ("b", 1, 50), ("a/x", 2, 60)]),
    );
    let daily = [("a", 1, 150), ("b", 1, 40), (odd, 1, 123), ("a/x", 2, 90), ("a/y", 2, 10)];
    let day_before = (end - hours(25), store.dirs("d-vol", end - hours(25), &daily));
    store.dirs("d-vol", end - hours(6), &[("a", 1, 170), ("b", 1, 35)]);
    let newest_dirs = [
        (odd, 1, 500),
        ("a", 1, 200),
        ("b", 1, 30),
        ("new", 1, 7),
        ("(other)", 1, 5),
        ("a/x", 2, 100),
        ("a/z", 2, 20),
        ("(other)", 2, 3),
    ];
    let newest = store.dirs("d-vol", end, &newest_dirs);

    /// (path, size, delta) of each entry.
    fn entries(dirs: &Value) -> Vec<(String, u64, Option<i64>)> {
        dirs["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert_eq!(
                    e["file_count"].as_u64(),
                    Some(e["size_bytes"].as_u64().unwrap() / 10),
                    "{e}"
                );
                (
                    e["path"].as_str().unwrap().to_owned(),
                    e["size_bytes"].as_u64().unwrap(),
                    e["delta_bytes"].as_i64(),
                )
            })
            .collect()
    }
    let row = |path: &str, size: u64, delta: Option<i64>| (path.to_owned(), size, delta);

    let (status, dirs) = api.get("/api/v1/volumes/d-vol/dirs").await;
    assert_eq!(status, StatusCode::OK, "{dirs}");
    conforms("Dirs", &dirs);
    assert_eq!(
        (&dirs["volume"], &dirs["scan_id"], &dirs["ts"], &dirs["compare_ts"]),
        (&Value::from("d-vol"), &Value::from(newest.to_string()), &rfc3339(end), &Value::Null)
    );
    assert_eq!(
        entries(&dirs),
        [
            row(odd, 500, None),
            row("a", 200, None),
            row("b", 30, None),
            row("new", 7, None),
            row("(other)", 5, None)
        ]
    );
    // The escaped path reaches the client as stored: backslashes, no raw byte.
    let raw = test::read_body(
        test::call_service(
            &api.app,
            test::TestRequest::get().uri("/api/v1/volumes/d-vol/dirs").to_request(),
        )
        .await,
    )
    .await;
    assert!(String::from_utf8(raw.to_vec()).unwrap().contains(r#""path":"c\\xFF\\x0A""#));

    let (_, dirs) = api.get("/api/v1/volumes/d-vol/dirs?compare=24h").await;
    conforms("Dirs", &dirs);
    assert_eq!(dirs["compare_ts"], rfc3339(day_before.0), "the older scan nearest to a day before");
    assert_eq!(
        entries(&dirs),
        [
            row(odd, 500, Some(377)),
            row("a", 200, Some(50)),
            row("b", 30, Some(-10)),
            row("new", 7, None),
            row("(other)", 5, None)
        ]
    );
    for compare in ["7d", "30d"] {
        let (_, dirs) =
            api.get(&format!("/api/v1/volumes/d-vol/dirs?compare={compare}&depth=1")).await;
        assert_eq!(dirs["compare_ts"], rfc3339(old.0), "compare={compare}");
        assert_eq!(
            entries(&dirs),
            [
                row(odd, 500, None),
                row("a", 200, Some(100)),
                row("b", 30, Some(-20)),
                row("new", 7, None),
                row("(other)", 5, None)
            ],
            "compare={compare}"
        );
    }
    let (_, dirs) = api.get("/api/v1/volumes/d-vol/dirs?depth=2").await;
    assert_eq!(
        entries(&dirs),
        [row("a/x", 100, None), row("a/z", 20, None), row("(other)", 3, None)]
    );
    let (_, dirs) = api.get("/api/v1/volumes/d-vol/dirs?depth=2&compare=24h&limit=2").await;
    assert_eq!(entries(&dirs), [row("a/x", 100, Some(10)), row("a/z", 20, None)]);
    assert_eq!(dirs["compare_ts"], rfc3339(day_before.0));
    let (_, dirs) = api.get("/api/v1/volumes/d-vol/dirs?limit=1").await;
    assert_eq!(entries(&dirs), [row(odd, 500, None)]);
    let _ = day_before.1;

    // A known volume without directories, and an unknown one.
    for query in ["", "?compare=7d&depth=2&limit=5"] {
        let (status, dirs) = api.get(&format!("/api/v1/volumes/d-empty/dirs{query}")).await;
        assert_eq!(status, StatusCode::OK, "{dirs}");
        conforms("Dirs", &dirs);
        assert_eq!(
            dirs,
            serde_json::json!({ "volume": "d-empty", "scan_id": null, "ts": null, "compare_ts": null, "entries": [] })
        );
    }
    let (status, body) = api.get("/api/v1/volumes/d-nope/dirs").await;
    assert_error(status, &body, 404, "volume_not_found");
    let (status, body) = api.get("/api/v1/volumes/d-vol/dirs?depth=2&compare=1d").await;
    assert_error(status, &body, 400, "invalid_query");
}
