//! The dashboard's pages through the app factory, on SQLite and PostgreSQL,
//! with a scheduler over real directories (a `StaticSource`) and the native
//! engine: every page's status, content type and security headers; hostile
//! names, labels, directory names and error messages escaped; assets with a
//! content hash and immutable caching; the login, session cookie and CSRF
//! flow of actions when `AUTH_TOKEN` is set; `AUTH_READ`; and
//! `VOLSCAN_DASHBOARD=false`. (The same pages in a real browser against the
//! real binary and real Docker volumes are in `browser.rs`.)

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, test};
use volscan_domain::{
    DiscoveredVolume, NewScanRun, Repository, RunOutcome, ScanId, Timestamp, Trigger, VolumeKind,
    VolumeName,
};
use volscan_http::AppState;
use volscan_repo::DieselRepository;
use volscan_scheduler::{SchedulerHandle, StaticSource};
use volscan_testing::{PgDatabase, TempDir};

const TOKEN: &str = "dash-token-5b9e0c";

/// A hostile label, directory name and error message: each must reach the
/// page as text, never as markup.
const LABEL_KEY: &str = "<script>alert('key')</script>";
const LABEL_VALUE: &str = "\"><img src=x onerror=alert('value')>";
const DIR_NAME: &str = "<svg onload=alert('dir')>";
const ERROR: &str = "disk said <b onmouseover=alert('error')>no</b> & left";

struct Dash<S> {
    app: S,
    scheduler: SchedulerHandle,
    dirs: TempDir,
}

/// A response's status, headers we check, and body.
struct Page {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// The app over `alpha` (small), `beta` (larger) and `hostile` (a directory
/// named like a script tag, and one whose name is not UTF-8), with a failed
/// run whose error is markup, and labels that are markup.
async fn dash(
    url: &str,
    configure: impl FnOnce(AppState) -> AppState,
) -> Dash<impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>> {
    let dirs = TempDir::new("it-dash-dirs");
    let mut named = Vec::new();
    for (name, bytes) in [("alpha", 10_000), ("beta", 200_000), ("hostile", 50_000)] {
        let dir = dirs.path().join(name);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/file"), vec![b'x'; bytes]).unwrap();
        named.push((VolumeName::new(name).unwrap(), dir));
    }
    let hostile = dirs.path().join("hostile");
    std::fs::create_dir_all(hostile.join(DIR_NAME)).unwrap();
    std::fs::write(hostile.join(DIR_NAME).join("f"), vec![b'y'; 30_000]).unwrap();
    let invalid = std::ffi::OsStr::from_bytes(b"bad\xff<i>name");
    std::fs::create_dir_all(hostile.join(invalid)).unwrap();
    std::fs::write(hostile.join(invalid).join("f"), vec![b'z'; 20_000]).unwrap();

    let repo = DieselRepository::connect(url, 4).unwrap();
    repo.migrate().unwrap();
    let repo: Arc<dyn Repository> = Arc::new(repo);
    // A failed run of `hostile`, stored before the scheduler starts.
    let now = Timestamp::now_utc();
    let discovered = |labels: BTreeMap<String, String>| DiscoveredVolume {
        name: VolumeName::new("hostile").unwrap(),
        driver: "local".into(),
        mountpoint: hostile.clone(),
        kind: VolumeKind::Volume,
        labels,
        created_at: None,
    };
    repo.upsert_volume(&discovered(BTreeMap::new()), now).unwrap();
    let run = NewScanRun {
        host: Default::default(),
        scan_id: ScanId::new(),
        volume: VolumeName::new("hostile").unwrap(),
        batch_id: None,
        trigger: Trigger::Manual,
        queued_at: now,
    };
    let scan_id = repo.enqueue(run).unwrap().run.scan_id;
    repo.claim_next(now).unwrap().unwrap();
    repo.record_outcome(scan_id, RunOutcome::Failed { reason: ERROR.to_owned() }, now).unwrap();

    let source = Arc::new(StaticSource::new(named));
    let scheduler = crate::support::native_scheduler(source.clone(), Arc::clone(&repo)).await;
    // Labels after the first reconcile, which writes the source's (none).
    let labels = BTreeMap::from([(LABEL_KEY.to_owned(), LABEL_VALUE.to_owned())]);
    repo.upsert_volume(&discovered(labels), Timestamp::now_utc()).unwrap();
    for name in ["alpha", "beta", "hostile"] {
        let enqueued = scheduler.scan_volume(VolumeName::new(name).unwrap()).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !repo.run(enqueued.run.scan_id).unwrap().unwrap().status.is_final() {
            assert!(Instant::now() < deadline, "the scan of {name} never ended");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let state = configure(AppState::new(
        Arc::clone(&repo) as Arc<dyn volscan_domain::ReadRepository>,
        source,
        scheduler.clone(),
        Some(TOKEN.to_owned()),
        100_000,
        None,
    ));
    let app = test::init_service(App::new().configure(volscan_http::configure(state))).await;
    Dash { app, scheduler, dirs }
}

impl<S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>>
    Dash<S>
{
    async fn send(&self, request: test::TestRequest) -> Page {
        let request = request.peer_addr("127.0.0.1:40000".parse().unwrap()).to_request();
        let response = test::call_service(&self.app, request).await;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
        Page { status, headers, body }
    }

    async fn get(&self, uri: &str) -> Page {
        self.send(test::TestRequest::get().uri(uri)).await
    }

    /// `POST`s a form, as a browser on this origin does.
    async fn post_form(&self, uri: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> Page {
        let body: Vec<String> =
            fields.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect();
        let mut request = test::TestRequest::post()
            .uri(uri)
            .insert_header(("host", "localhost:8080"))
            .insert_header(("origin", "http://localhost:8080"))
            .insert_header(("sec-fetch-site", "same-origin"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(body.join("&"));
        if let Some(cookie) = cookie {
            request = request.insert_header(("cookie", cookie.to_owned()));
        }
        self.send(request).await
    }
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The security headers every page carries.
#[track_caller]
fn assert_secured(page: &Page) {
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("x-frame-options"), "DENY");
}

#[track_caller]
fn assert_html(page: &Page, status: StatusCode) {
    assert_eq!(page.status, status, "{}", page.body);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(page.body.starts_with("<!DOCTYPE html>"), "{}", &page.body[..80.min(page.body.len())]);
    assert_secured(page);
    for markup in ["<script>", "<img", "<svg onload", "<b on"] {
        assert!(!page.body.contains(markup), "unescaped markup {markup}");
    }
    assert!(!page.body.contains(TOKEN), "the token is never in a page");
}

/// The value of the first hidden `name` field of `body`.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).unwrap_or_else(|| panic!("no {name} field")) + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

/// The order in which the overview's table lists volumes.
fn table_order(body: &str) -> Vec<String> {
    body.split("data-volume=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

async fn every_page(url: &str) {
    let dash = dash(url, |state| state).await;

    let overview = dash.get("/").await;
    assert_html(&overview, StatusCode::OK);
    assert_eq!(table_order(&overview.body), ["beta", "hostile", "alpha"], "largest first");
    let by_name = dash.get("/?sort=name:asc").await;
    assert_eq!(table_order(&by_name.body), ["alpha", "beta", "hostile"]);
    let filtered = dash.get("/?q=ALP").await;
    assert_eq!(table_order(&filtered.body), ["alpha"]);
    let beta = volscan_testing_du(&dash.dirs.path().join("beta"));
    assert!(overview.body.contains(&format!("data-bytes=\"{beta}\"")), "beta's size as du says");
    assert!(overview.body.contains("<svg class=\"spark\"") || overview.body.contains("one scan"));
    assert!(overview.body.contains("Log in"), "reads are open, actions need a login");
    // HEAD answers like GET, without the body.
    let head = dash
        .send(test::TestRequest::default().method(actix_web::http::Method::HEAD).uri("/"))
        .await;
    assert_eq!(head.status, StatusCode::OK);

    let volume = dash.get("/volumes/hostile?range=30d&compare=7d").await;
    assert_html(&volume, StatusCode::OK);
    assert!(
        volume.body.contains("<code>&lt;svg onload=alert('dir')&gt;</code>"),
        "the directory, escaped: {}",
        volume.body
    );
    assert!(volume.body.contains("bad\\xFF&lt;i&gt;name"), "a name that is not UTF-8, escaped");
    assert!(volume.body.contains("&lt;script&gt;alert("), "the label key, escaped");
    assert!(volume.body.contains("&quot;&gt;&lt;img src=x"), "the label value, escaped");
    assert!(volume.body.contains("<svg class=\"chart\""), "the chart");
    assert!(volume.body.contains("<circle"), "its points");
    assert!(volume.body.contains("failed"), "the failed run is listed");
    assert!(volume.body.contains("disk said &lt;b onmouseover"), "the error, escaped");

    let scans = dash.get("/scans").await;
    assert_html(&scans, StatusCode::OK);
    assert!(
        scans.body.contains("disk said &lt;b onmouseover=alert(")
            && scans.body.contains("&amp; left")
    );

    for (uri, status) in [
        ("/volumes/nosuch", StatusCode::NOT_FOUND),
        ("/volumes/-bad", StatusCode::BAD_REQUEST),
        ("/volumes/alpha?compare=1y", StatusCode::BAD_REQUEST),
    ] {
        let page = dash.get(uri).await;
        assert_html(&page, status);
    }

    // The script's poll: the status and progress of the runs it names.
    let newest = dash.get("/api/v1/scans?status=completed&limit=1").await;
    let id = newest.body.split("\"scan_id\":\"").nth(1).unwrap().split('"').next().unwrap();
    let live = dash.get(&format!("/live/scans?ids={id},not-an-id,{}", ScanId::new())).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_secured(&live);
    let runs: serde_json::Value = serde_json::from_str(&live.body).unwrap();
    assert_eq!(runs, serde_json::json!({ id: {"status": "completed", "progress": 100} }));

    // Assets: hashed names, cached forever; another hash is not served.
    let style = hidden_link(&overview.body, "stylesheet");
    let asset = dash.get(&style).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.header("content-type"), "text/css; charset=utf-8");
    assert_eq!(asset.header("cache-control"), "public, max-age=31536000, immutable");
    assert!(asset.body.contains("prefers-color-scheme: dark"));
    let stale = dash.get("/assets/style.0000000000000000.css").await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
    dash.scheduler.stop().await;
}

/// The `href` of the `<link rel=REL>` of a page.
fn hidden_link(body: &str, rel: &str) -> String {
    let marker = format!("rel=\"{rel}\" href=\"");
    let start = body.find(&marker).unwrap() + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

fn volscan_testing_du(path: &std::path::Path) -> u64 {
    crate::support::du_bytes(path)
}

#[actix_web::test]
async fn every_page_on_sqlite() {
    let db = TempDir::new("it-dash-db");
    every_page(&db.sqlite_url()).await;
}

#[actix_web::test]
async fn every_page_on_postgres() {
    let db = PgDatabase::create();
    every_page(db.url()).await;
}

#[actix_web::test]
async fn actions_need_a_session_and_its_csrf_token() {
    let db = TempDir::new("it-dash-auth");
    let url = db.sqlite_url();
    let dash = dash(&url, |state| state).await;
    let back = [("back", "/volumes/alpha"), ("csrf", "")];

    // No session: sent to the login page, nothing queued.
    let refused = dash.post_form("/actions/scan/alpha", &back, None).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert_eq!(refused.header("location"), "/login?next=/volumes/alpha");
    let login = dash.get("/login?next=/volumes/alpha").await;
    assert_html(&login, StatusCode::OK);
    assert!(login.body.contains("type=\"password\""));

    let wrong = dash.post_form("/login", &[("token", "nope"), ("next", "/")], None).await;
    assert_html(&wrong, StatusCode::UNAUTHORIZED);
    assert!(wrong.header("set-cookie").is_empty());

    let ok = dash.post_form("/login", &[("token", TOKEN), ("next", "//evil.example/")], None).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.header("location"), "/", "never redirected off the site");
    let cookie = ok.header("set-cookie").to_owned();
    assert!(cookie.starts_with("volscan_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie holds a session id, not the token");
    let session = cookie.split(';').next().unwrap().to_owned();

    let page = dash
        .send(
            test::TestRequest::get()
                .uri("/volumes/alpha")
                .insert_header(("cookie", session.clone())),
        )
        .await;
    assert_html(&page, StatusCode::OK);
    assert!(page.body.contains("Log out") && page.body.contains("Scan now"));
    let csrf = hidden(&page.body, "csrf");
    assert_eq!(csrf.len(), 64);

    // A session without its CSRF token, or a form from another site: refused.
    let forged = dash.post_form("/actions/scan/alpha", &back, Some(&session)).await;
    assert_html(&forged, StatusCode::FORBIDDEN);
    let mut cross = test::TestRequest::post()
        .uri("/actions/scan/alpha")
        .insert_header(("host", "localhost:8080"))
        .insert_header(("origin", "http://evil.example"))
        .insert_header(("cookie", session.clone()))
        .insert_header(("content-type", "application/x-www-form-urlencoded"));
    cross = cross.set_payload(format!("csrf={csrf}&back=/"));
    assert_eq!(dash.send(cross).await.status, StatusCode::FORBIDDEN);
    let runs = |dash: &Dash<_>| dash.scheduler.status().total_completed;
    let completed = runs(&dash);

    // With both: queued, and back to the page.
    let fields = [("back", "/volumes/alpha"), ("csrf", csrf.as_str())];
    let done = dash.post_form("/actions/scan/alpha", &fields, Some(&session)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), "/volumes/alpha");
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs(&dash) == completed {
        assert!(Instant::now() < deadline, "the scan never completed");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let all = dash.post_form("/actions/scan-all", &fields, Some(&session)).await;
    assert_eq!(all.status, StatusCode::SEE_OTHER, "{}", all.body);
    let cancel = dash
        .post_form(&format!("/actions/cancel/{}", ScanId::new()), &fields, Some(&session))
        .await;
    assert_html(&cancel, StatusCode::NOT_FOUND);

    // Logging out ends the session: its cookie and CSRF token no longer act.
    let out = dash.post_form("/logout", &fields, Some(&session)).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.header("set-cookie").contains("volscan_session=;"), "{}", out.header("set-cookie"));
    let after = dash.post_form("/actions/scan/alpha", &fields, Some(&session)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(after.header("location").starts_with("/login"));
    dash.scheduler.stop().await;
}

#[actix_web::test]
async fn auth_read_closes_every_read_but_health() {
    let db = TempDir::new("it-dash-read");
    let url = db.sqlite_url();
    let dash = dash(&url, |state| state.with_auth_read(true)).await;
    for page in ["/", "/scans", "/volumes/alpha"] {
        let answer = dash.get(page).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{page}");
        assert!(answer.header("location").starts_with("/login?next="), "{page}");
    }
    for api in [
        "/api/v1/volumes",
        "/api/v1/summary",
        "/api/v1/scans",
        "/metrics",
        "/api/v1/scheduler/metrics",
    ] {
        assert_eq!(dash.get(api).await.status, StatusCode::UNAUTHORIZED, "{api}");
        let with = test::TestRequest::get()
            .uri(api)
            .insert_header(("authorization", format!("Bearer {TOKEN}")));
        assert_eq!(dash.send(with).await.status, StatusCode::OK, "{api} with the token");
    }
    let health = dash.get("/api/v1/health").await;
    assert_ne!(health.status, StatusCode::UNAUTHORIZED, "health stays open");
    let live = dash.get(&format!("/live/scans?ids={}", ScanId::new())).await;
    assert_eq!(live.status, StatusCode::UNAUTHORIZED);

    let ok = dash.post_form("/login", &[("token", TOKEN), ("next", "/scans")], None).await;
    assert_eq!(ok.header("location"), "/scans");
    let session = ok.header("set-cookie").split(';').next().unwrap().to_owned();
    let page =
        dash.send(test::TestRequest::get().uri("/").insert_header(("cookie", session))).await;
    assert_html(&page, StatusCode::OK);
    assert_eq!(table_order(&page.body).len(), 3);
    dash.scheduler.stop().await;
}

#[actix_web::test]
async fn wrong_tokens_on_reads_are_throttled() {
    let db = TempDir::new("it-dash-guess");
    let url = db.sqlite_url();
    let dash = dash(&url, |mut state| {
        state.limiter = Arc::new(volscan_http::RateLimiter::new(20));
        state.with_auth_read(true)
    })
    .await;
    let guess = |n: usize| {
        test::TestRequest::get()
            .uri("/api/v1/volumes")
            .insert_header(("authorization", format!("Bearer guess-{n}")))
    };
    for n in 0..10 {
        assert_eq!(dash.send(guess(n)).await.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let throttled = dash.send(guess(10)).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.body);
    let right = test::TestRequest::get()
        .uri("/api/v1/volumes")
        .insert_header(("authorization", format!("Bearer {TOKEN}")));
    assert_eq!(dash.send(right).await.status, StatusCode::OK, "the token still reads");
    dash.scheduler.stop().await;
}

#[actix_web::test]
async fn the_dashboard_can_be_turned_off() {
    let db = TempDir::new("it-dash-off");
    let url = db.sqlite_url();
    let dash = dash(&url, |state| state.with_dashboard(false)).await;
    for path in ["/", "/scans", "/volumes/alpha", "/login"] {
        let answer = dash.get(path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(answer.body.contains("\"not_found\""), "{path}: {}", answer.body);
    }
    assert_eq!(dash.get("/api/v1/volumes").await.status, StatusCode::OK);
    dash.scheduler.stop().await;
}
