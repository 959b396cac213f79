//! The dashboard in a real browser (Debian's Chromium, headless, driven over
//! WebDriver by `webdriver.rs`) against the real binary and real Docker
//! volumes: the overview sorted by size and then by Δ7d, a volume's chart
//! with its points, "Scan now" through the token login, the run followed
//! live to `completed` and the new size shown, a slow scan canceled from
//! its page; no console errors and no request leaving 127.0.0.1 on any
//! page; light, dark and 375 px screenshots saved under `target/dashboard/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use volscan_domain::Timestamp;
use volscan_repo::DieselRepository;
use volscan_testing::TempDir;
use volscan_testing::docker::TestVolume;

use crate::support::{
    ServerProcess, TOKEN, du_bytes, everything_but, seed, slow_tool_path, unique_prefix,
};
use crate::webdriver::Browser;

const MIB: u64 = 1 << 20;

/// Where the screenshots go.
fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard")
}

/// Writes `bytes` of incompressible data to `name` in `volume`.
fn fill(volume: &TestVolume, name: &str, bytes: u64) {
    let mut data = Vec::with_capacity(bytes as usize);
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ bytes;
    while (data.len() as u64) < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(bytes as usize);
    let path = volume.mountpoint().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// The volumes in the order the overview's table lists them.
fn table_order(browser: &Browser) -> Vec<String> {
    let rows = browser.script(
        "return Array.from(document.querySelectorAll('#volumes tbody tr')).map(r => r.dataset.volume);",
    );
    rows.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// Asserts the page raised no console error and loaded nothing from
/// elsewhere than `origin`.
#[track_caller]
fn assert_clean(browser: &Browser, origin: &str) {
    let errors: Vec<(String, String)> =
        browser.console().into_iter().filter(|(level, _)| level == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors on {}: {errors:?}", browser.url());
    for url in browser.requests() {
        assert!(url.starts_with(origin), "{url} left {origin}");
    }
}

/// Waits until every run the server knows is final.
fn settle(server: &ServerProcess) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, status) = server.call("GET", "/api/v1/scheduler/status");
        if status["active_scans"] == 0 && status["queue_depth"] == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "scans never settled: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_dashboard_in_a_real_browser() {
    let prefix = unique_prefix("dash");
    let big = TestVolume::create_named(format!("{prefix}big"), &[]);
    let mid = TestVolume::create_named(format!("{prefix}mid"), &[]);
    let small = TestVolume::create_named(format!("{prefix}small"), &[]);
    fill(&big, "data/blob", 12 * MIB);
    fill(&mid, "data/blob", 6 * MIB);
    fill(&small, "data/blob", MIB);

    // A week of history: `mid` grew most over 7 days, `small` shrank.
    let dir = TempDir::new("it-browser");
    let url = dir.sqlite_url();
    let repo = DieselRepository::connect(&url, 2).unwrap();
    repo.migrate().unwrap();
    let now = Timestamp::now_utc();
    let days = |d: i64| now - time::Duration::days(d);
    for (volume, sizes) in [
        (&big, [11 * MIB + MIB / 2, 11 * MIB + MIB * 3 / 4, 12 * MIB]),
        (&mid, [MIB, 3 * MIB, 5 * MIB]),
        (&small, [3 * MIB, 2 * MIB, MIB + MIB / 2]),
    ] {
        for (at, size) in [days(8), days(3), days(1)].into_iter().zip(sizes) {
            seed(&repo, volume, size, at);
        }
    }
    drop(repo);

    let skip = everything_but(&prefix);
    let server = ServerProcess::start(
        &[
            ("DATABASE_URL", url.as_str()),
            ("SCAN_ENABLED", "false"),
            ("SCAN_METHODS_ORDER", "native"),
            ("SCAN_SKIP_PATTERN", skip.as_str()),
            ("RATE_LIMIT_RPM", "100000"),
        ],
        dir.path(),
    );
    let (status, _, batch) = server.call("POST", "/api/v1/scan/now");
    assert_eq!((status, batch["count"].as_u64()), (202, Some(3)), "{batch}");
    settle(&server);
    let origin = format!("http://127.0.0.1:{}/", server.port);

    let browser = Browser::start(1280, 900);
    browser.goto(&origin);
    let names = |volumes: [&TestVolume; 3]| volumes.map(|v| v.name().to_owned()).to_vec();
    assert_eq!(table_order(&browser), names([&big, &mid, &small]), "sorted by size");
    let size_cell = browser.script(&format!(
        "return document.querySelector('tr[data-volume=\"{}\"] td[data-bytes]').dataset.bytes;",
        big.name()
    ));
    assert_eq!(size_cell, Value::String(du_bytes(big.mountpoint()).to_string()));
    assert_clean(&browser, &origin);
    browser.screenshot(&shots().join("overview-light.png"));

    browser.click_to(&browser.find("th a[data-sort=delta_7d]"), "/?sort=delta_7d:desc");
    assert_eq!(table_order(&browser), names([&mid, &big, &small]), "sorted by Δ7d, largest first");
    assert!(browser.url().contains("sort=delta_7d:desc"), "{}", browser.url());

    // The volume page: the chart has the seeded points of the week and the scan.
    let page = format!("/volumes/{}", mid.name());
    browser
        .click_to(&browser.find(&format!("tr[data-volume=\"{}\"] td.name a", mid.name())), &page);
    assert!(browser.url().ends_with(&format!("/volumes/{}", mid.name())), "{}", browser.url());
    let points =
        browser.script("return document.querySelectorAll('svg.chart circle.point').length;");
    assert_eq!(points, 3, "two seeded points within 7 days and the scan");
    let hover = browser
        .script("return document.querySelector('svg.chart circle.point title').textContent;");
    assert!(hover.as_str().unwrap().contains("UTC: 3.00 MiB"), "{hover}");
    assert_clean(&browser, &origin);

    // "Scan now" needs the token: log in, come back, scan, watch it finish.
    fill(&mid, "data/more", 4 * MIB);
    browser.click_to(&browser.find("a[href^='/login?next=']"), "/login?next=");
    assert!(browser.url().contains("/login?next="), "{}", browser.url());
    browser.type_into(&browser.find("input#token"), TOKEN);
    browser.click_to(&browser.find("form[action='/login'] button"), &page);
    assert!(browser.url().ends_with(&format!("/volumes/{}", mid.name())), "{}", browser.url());
    let cookie_visible = browser.script("return document.cookie;");
    assert_eq!(cookie_visible, "", "the session cookie is not readable by scripts");
    browser.click(&browser.find(&format!("form[action='/actions/scan/{}'] button", mid.name())));
    // WebDriver may return from the click before the form's navigation ends,
    // so the old page (four runs, all final) must not satisfy the wait.
    browser.wait_for(
        "return document.querySelectorAll('#runs tbody tr').length === 5 && \
         !document.querySelector('[data-live-scan]') && \
         document.querySelector('#runs tbody tr [data-field=status]').textContent === 'completed';",
        Duration::from_secs(60),
        "the new run is listed, completes, and the page reloads with it",
    );
    let runs = browser.script("return document.querySelectorAll('#runs tbody tr').length;");
    assert_eq!(runs, 5, "three seeded, the bulk scan and this one");
    assert_clean(&browser, &origin);
    browser.screenshot(&shots().join("volume-light.png"));
    browser.goto(&origin);
    let size_cell = browser.script(&format!(
        "return document.querySelector('tr[data-volume=\"{}\"] td[data-bytes]').dataset.bytes;",
        mid.name()
    ));
    assert_eq!(size_cell, Value::String(du_bytes(mid.mountpoint()).to_string()), "the new size");

    // Dark, and a phone's width: readable, no page-wide horizontal scroll.
    browser.color_scheme("dark");
    browser.goto(&origin);
    let background = browser.script("return getComputedStyle(document.body).backgroundColor;");
    assert_eq!(background, "rgb(17, 19, 21)", "the dark theme");
    browser.screenshot(&shots().join("overview-dark.png"));
    browser.color_scheme("light");
    browser.device_width(375);
    browser.goto(&origin);
    let width = browser.script("return document.documentElement.scrollWidth;");
    assert!(width.as_u64().unwrap() <= 375, "the page is {width} px wide at 375");
    browser.screenshot(&shots().join("overview-375.png"));
    browser.goto(&format!("{origin}volumes/{}", mid.name()));
    let width = browser.script("return document.documentElement.scrollWidth;");
    assert!(width.as_u64().unwrap() <= 375, "the volume page is {width} px wide at 375");
    browser.screenshot(&shots().join("volume-375.png"));
    browser.goto(&format!("{origin}scans"));
    assert_clean(&browser, &origin);
}

#[test]
fn a_slow_scan_is_canceled_from_its_page() {
    let prefix = unique_prefix("dcan");
    let volume = TestVolume::create_named(format!("{prefix}slow"), &[]);
    fill(&volume, "blob", MIB);
    let dir = TempDir::new("it-browser-cancel");
    let url = dir.sqlite_url();
    let skip = everything_but(&prefix);
    let path = slow_tool_path(&dir, "diskus", 120.0);
    let server = ServerProcess::start(
        &[
            ("DATABASE_URL", url.as_str()),
            ("SCAN_ENABLED", "false"),
            ("SCAN_METHODS_ORDER", "diskus"),
            ("SCAN_SKIP_PATTERN", skip.as_str()),
            ("AUTH_TOKEN", ""),
            ("PATH", path.as_str()),
        ],
        dir.path(),
    );
    let origin = format!("http://127.0.0.1:{}/", server.port);
    // The server lists the volume once its first look at Docker is done.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.call("GET", &format!("/api/v1/volumes/{}", volume.name())).0 != 200 {
        assert!(std::time::Instant::now() < deadline, "the volume never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("{origin}volumes/{}", volume.name()));
    browser.click(&browser.find(&format!("form[action='/actions/scan/{}'] button", volume.name())));
    browser.wait_for(
        "const s = document.querySelector('[data-live-scan] [data-field=status]'); \
         return !!s && s.textContent === 'running';",
        Duration::from_secs(30),
        "the run is shown running, updated live",
    );
    browser.click(&browser.find("[data-live-scan] form[action^='/actions/cancel/'] button"));
    browser.wait_for(
        "const s = document.querySelector('#runs tbody tr [data-field=status]'); \
         return !!s && s.textContent === 'canceled';",
        Duration::from_secs(30),
        "the run is canceled",
    );
    let (_, _, runs) = server.call("GET", "/api/v1/scans?limit=5");
    assert_eq!(runs[0]["status"], "canceled", "{runs}");
    assert_clean(&browser, &origin);
}
