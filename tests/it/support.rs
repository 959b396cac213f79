//! Helpers for driving the real `volscan-server` binary: a clean environment,
//! a free port, a minimal HTTP client over a TCP stream, and a running server
//! that tests can trigger, follow, SIGTERM or kill -9.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The server binary cargo built for these tests.
pub const SERVER: &str = env!("CARGO_BIN_EXE_volscan-server");

/// A command for the server binary with an empty environment plus `vars`, so
/// the caller's environment cannot change what a test sees.
pub fn server(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(SERVER);
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    // The host id the tests' own repositories write as (`HostId::default()`),
    // whatever this machine's hostname; a test may set another.
    command.env("VOLSCAN_HOST_ID", "local");
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Runs the server binary to completion.
pub fn run_server(args: &[&str], vars: &[(&str, &str)]) -> Output {
    server(vars).args(args).output().expect("failed to run volscan-server")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:port; returns the status code and body, or `None`
/// when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

/// Text of a process's stdout and stderr.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What GNU `du ARGS -- path` prints first: a number.
pub fn du(args: &[&str], path: &std::path::Path) -> u64 {
    let output = Command::new("du").args(args).arg("--").arg(path).output().expect("du");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du {args:?}: {text:?}"))
}

/// `du -sB1 -x`: the disk usage every engine must report.
pub fn du_bytes(path: &std::path::Path) -> u64 {
    du(&["-sB1", "-x"], path)
}

/// The bearer token `ServerProcess` gives its server.
pub const TOKEN: &str = "it-secret-token-4f1d";

/// A regex matching every name that does not start with `prefix` (the regex
/// crate has no lookahead): a differing character at some position, or a
/// name shorter than the prefix. Given as `SCAN_SKIP_PATTERN`, it keeps a
/// server away from every volume but the test's own.
pub fn everything_but(prefix: &str) -> String {
    let chars: Vec<char> = prefix.chars().collect();
    let mut alternatives: Vec<String> = (0..chars.len())
        .map(|i| {
            let head: String = chars[..i].iter().collect();
            format!("^{}[^{}]", regex::escape(&head), regex::escape(&chars[i].to_string()))
        })
        .collect();
    alternatives.push(format!("^.{{0,{}}}$", chars.len() - 1));
    alternatives.join("|")
}

/// A short unique prefix for the names of one test's volumes.
pub fn unique_prefix(label: &str) -> String {
    let id = volscan_domain::ScanId::new().to_string();
    format!("vs{label}-{}-", &id[..8])
}

/// A running `volscan-server serve`, killed on drop if the test did not stop it.
pub struct ServerProcess {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    log: PathBuf,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer: status, head and body (JSON when it parses, else a string).
pub type Answer = (u16, String, Value);

impl ServerProcess {
    /// Starts the server with `VOLSCAN_BIND` on a free port, `AUTH_TOKEN`
    /// `TOKEN` and `RUST_LOG=debug` unless `vars` sets them, and waits until
    /// `/api/v1/health` answers (whatever it says). Its log goes to
    /// `dir/server.log` (stdout and stderr, appended, so a restart keeps the
    /// earlier lines).
    pub fn start(vars: &[(&str, &str)], dir: &Path) -> ServerProcess {
        let port = free_port();
        let log = dir.join("server.log");
        let bind = format!("127.0.0.1:{port}");
        let mut all =
            vec![("VOLSCAN_BIND", bind.as_str()), ("AUTH_TOKEN", TOKEN), ("RUST_LOG", "debug")];
        all.extend_from_slice(vars);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        // The server logs to stdout; both streams go to the log file.
        let child = server(&all).stdout(file.try_clone().unwrap()).stderr(file).spawn().unwrap();
        let mut server = ServerProcess { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.request("GET", "/api/v1/health", false, None).is_none() {
            if let Some(exit) = server.child.try_wait().unwrap() {
                panic!("the server exited ({exit}): {}", server.log_text());
            }
            assert!(Instant::now() < deadline, "the server did not start: {}", server.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.1 request, with the bearer token when `auth`; `None` when
    /// nothing answers.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        auth: bool,
        body: Option<&str>,
    ) -> Option<Answer> {
        let auth = if auth { format!("\r\nAuthorization: Bearer {TOKEN}") } else { String::new() };
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost{auth}\r\nContent-Type: application/json\r\nContent-Length: {}",
            body.len()
        );
        raw_request(self.port, &head, body.as_bytes())
    }

    /// An authorised request that must be answered.
    pub fn call(&self, method: &str, path: &str) -> Answer {
        self.request(method, path, true, None)
            .unwrap_or_else(|| panic!("{method} {path}: no answer; log:\n{}", self.log_text()))
    }

    /// Polls a run's `status_url` until the run is final; returns it.
    pub fn follow(&self, status_url: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, _, run) = self.call("GET", status_url);
            assert_eq!(status, 200, "{run}");
            if is_final(&run) {
                return run;
            }
            assert!(Instant::now() < deadline, "not final within {within:?}: {run}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Triggers a scan of `volume` and returns the answer's body (202 asserted).
    pub fn trigger(&self, volume: &str) -> Value {
        let (status, _, body) = self.call("POST", &format!("/api/v1/volumes/{volume}/scan"));
        assert_eq!(status, 202, "{body}");
        body
    }

    /// Sends SIGTERM and waits (at most 15 s) for a clean exit; returns how long it took.
    pub fn sigterm_and_wait(&mut self) -> Duration {
        let started = Instant::now();
        self.signal("TERM");
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                assert!(exit.success(), "exit {exit}: {}", self.log_text());
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(15), "SIGTERM ignored");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its exit status, once it exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// kill -9, and reap it.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.child.wait().unwrap();
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }
}

/// Sends `head` (request line and headers, without the final blank line)
/// and `body` over a fresh connection to 127.0.0.1:`port`; returns the
/// answer's status, head and body, or `None` when nothing answers.
pub fn raw_request(port: u16, head: &str, body: &[u8]) -> Option<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(30))).ok()?;
    stream.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    // The server may answer (413, say) and close before taking the whole body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    Some((status, head.to_owned(), body))
}

/// Whether a `scan_runs` row in JSON has reached a final state.
pub fn is_final(run: &Value) -> bool {
    ["completed", "failed", "canceled"].contains(&run["status"].as_str().unwrap_or(""))
}

/// The full path of `program` on `PATH`.
pub fn which(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// A `PATH` whose first directory (inside `dir`) holds a `tool` that runs
/// the shell code `before` and then the real tool, to slow scans down or
/// hold them.
pub fn tool_shim_path(dir: &volscan_testing::TempDir, tool: &str, before: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.path().join("shim-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = which(tool);
    let script = format!("#!/bin/sh\n{before}\nexec {} \"$@\"\n", real.display());
    let path = bin.join(tool);
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// A `PATH` with a `tool` that sleeps `seconds` before running the real one.
pub fn slow_tool_path(dir: &volscan_testing::TempDir, tool: &str, seconds: f32) -> String {
    tool_shim_path(dir, tool, &format!("sleep {seconds}"))
}

/// `count` Docker volumes named `PREFIX00`, `PREFIX01`, …; volume `i` holds
/// one file of `unit × (i + 1)` bytes. Removed when dropped.
pub fn filled_volumes(
    prefix: &str,
    count: usize,
    unit: usize,
) -> Vec<volscan_testing::docker::TestVolume> {
    (0..count)
        .map(|i| {
            let volume =
                volscan_testing::docker::TestVolume::create_named(format!("{prefix}{i:02}"), &[]);
            std::fs::write(volume.mountpoint().join("data"), vec![b'v'; unit * (i + 1)]).unwrap();
            volume
        })
        .collect()
}

/// Completes one run of `volume` measuring `size`, stamped `at` (history).
pub fn seed(
    repo: &volscan_repo::DieselRepository,
    volume: &volscan_testing::docker::TestVolume,
    size: u64,
    at: volscan_domain::Timestamp,
) {
    use volscan_domain::{
        DiscoveredVolume, NewScanRun, Repository, RunOutcome, ScanId, ScanMethod, Trigger, Usage,
        VolumeKind, VolumeName,
    };
    let discovered = DiscoveredVolume {
        name: VolumeName::new(volume.name()).unwrap(),
        driver: "local".into(),
        mountpoint: volume.mountpoint().to_path_buf(),
        kind: VolumeKind::Volume,
        labels: Default::default(),
        created_at: None,
    };
    repo.upsert_volume(&discovered, at).unwrap();
    let run = NewScanRun {
        host: Default::default(),
        scan_id: ScanId::new(),
        volume: discovered.name.clone(),
        batch_id: None,
        trigger: Trigger::Manual,
        queued_at: at,
    };
    let scan_id = repo.enqueue(run).unwrap().run.scan_id;
    let claimed = repo.claim_next(at).unwrap().unwrap();
    assert_eq!(claimed.scan_id, scan_id, "the seed claimed another run");
    let usage = Usage { size_bytes: size, ..Usage::default() };
    let outcome =
        RunOutcome::Completed { usage, method: ScanMethod::Du, duration: Duration::from_secs(1) };
    repo.record_outcome(scan_id, outcome, at).unwrap();
}

/// A scheduler over `source` and `repo` measuring with the native engine,
/// without periodic runs or retention: what the app-factory tests drive.
pub async fn native_scheduler(
    source: std::sync::Arc<volscan_scheduler::StaticSource>,
    repo: std::sync::Arc<dyn volscan_domain::Repository>,
) -> volscan_scheduler::SchedulerHandle {
    use volscan_scheduler::{SchedulerBuilder, SchedulerOptions};
    let engines = volscan_domain::EngineChain::new(vec![volscan_scan::engine(
        volscan_domain::ScanMethod::Native,
        &std::env::var_os("PATH").unwrap_or_default(),
    )]);
    let options =
        SchedulerOptions { periodic: false, retention: None, ..SchedulerOptions::default() };
    SchedulerBuilder::new(source, engines, repo, options).start().await.unwrap()
}
