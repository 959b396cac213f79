//! A small W3C WebDriver client for the browser tests: it starts Debian's
//! `chromedriver` on a free port, opens a headless Chromium session with a
//! profile of its own, and speaks JSON over the same plain HTTP/1.1 the
//! other tests use. Only the commands the tests need are here; Chrome's
//! DevTools commands (full-page screenshots, the dark colour scheme) go
//! through chromedriver's `goog/cdp/execute`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use volscan_testing::TempDir;

use crate::support::{free_port, which};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium driven over WebDriver; the driver is killed on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = exchange(self.port, "DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP exchange with the driver; the answer's status and JSON body.
/// The driver may keep the connection open after answering, so the body is
/// read by its `Content-Length` (or its chunks), not until the end.
fn exchange(port: u16, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let complete = |received: &[u8]| -> Option<(u16, String)> {
        let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
        let raw = &received[end + 4..];
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let length = head.lines().find_map(|line| {
            line.strip_prefix("content-length:").and_then(|n| n.trim().parse::<usize>().ok())
        });
        match length {
            Some(length) if raw.len() >= length => {
                Some((status, String::from_utf8_lossy(&raw[..length]).into_owned()))
            }
            Some(_) => None,
            None if head.contains("transfer-encoding: chunked") => {
                let text = String::from_utf8_lossy(raw);
                text.contains("\r\n0\r\n").then(|| (status, dechunk(&text)))
            }
            None => None,
        }
    };
    loop {
        if let Some((status, text)) = complete(&received) {
            return Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)));
        }
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
    }
}

/// Joins the chunks of a chunked body.
fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        raw = rest[size..].trim_start_matches("\r\n");
    }
    out
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` × `height`.
    pub fn start(width: u32, height: u32) -> Browser {
        let driver_path = which("chromedriver");
        let chromium = which("chromium");
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/test.sh installs Debian's chromium-driver)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while exchange(port, "GET", "/status", None)
            .is_none_or(|(_, body)| body["value"]["ready"] != true)
        {
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = TempDir::new("it-chromium-profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let (status, answer) = exchange(port, "POST", "/session", Some(&capabilities))
            .expect("chromedriver did not answer the new session");
        assert_eq!(status, 200, "no browser session: {answer}");
        let session = answer["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser { driver, port, session, _profile: profile }
    }

    /// A command of this session; its `value`, or a panic naming the error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let (status, answer) = exchange(self.port, method, &full, body.as_ref())
            .unwrap_or_else(|| panic!("{method} {path}: chromedriver did not answer"));
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.command("GET", "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found =
            self.command("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found
            .as_array()
            .map(|all| all.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The first element matching a CSS selector (panics when none does).
    pub fn find(&self, css: &str) -> String {
        self.find_all(css).into_iter().next().unwrap_or_else(|| panic!("nothing matches {css}"))
    }

    /// Clicks an element (and waits for a navigation it starts).
    pub fn click(&self, element: &str) {
        self.command("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    /// Clicks an element that navigates, and waits until the page at a path
    /// starting with `path` (path and query) has loaded: WebDriver may
    /// return from a click before the navigation it starts has ended.
    pub fn click_to(&self, element: &str, path: &str) {
        self.click(element);
        let script = format!(
            "return (location.pathname + location.search).startsWith({}) && \
             document.readyState === 'complete';",
            serde_json::Value::String(path.to_owned())
        );
        self.wait_for(&script, Duration::from_secs(30), &format!("the page {path} loads"));
    }

    /// Types into an element.
    pub fn type_into(&self, element: &str, text: &str) {
        self.command("POST", &format!("/element/{element}/value"), Some(json!({"text": text})));
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub fn script(&self, script: &str) -> Value {
        self.command("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Waits until `script` returns `true`, at most `within`.
    pub fn wait_for(&self, script: &str, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        while self.script(script) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "not within {within:?}: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A DevTools command.
    fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.command("POST", "/goog/cdp/execute", Some(json!({"cmd": cmd, "params": params})))
    }

    /// Emulates the dark (or light) colour scheme.
    pub fn color_scheme(&self, scheme: &str) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        );
    }

    /// Emulates a device `width` CSS pixels wide (a phone at 375).
    pub fn device_width(&self, width: u32) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": true}),
        );
    }

    /// Saves a full-page PNG screenshot to `path`.
    pub fn screenshot(&self, path: &Path) {
        let shot = self
            .cdp("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let data = shot["data"].as_str().expect("no screenshot data");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, base64_decode(data)).unwrap();
    }

    /// The browser console's messages since the last call: `(level, message)`.
    pub fn console(&self) -> Vec<(String, String)> {
        let logs = self.command("POST", "/se/log", Some(json!({"type": "browser"})));
        logs.as_array()
            .map(|all| {
                all.iter()
                    .map(|entry| {
                        let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
                        (text("level"), text("message"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every URL the current page loaded (itself and its resources).
    pub fn requests(&self) -> Vec<String> {
        let urls = self.script(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
        );
        urls.as_array()
            .map(|all| all.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

/// Decodes standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for sextet in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}
