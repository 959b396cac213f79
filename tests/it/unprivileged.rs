//! The real server run as an unprivileged user (`setpriv` to `nobody`, with
//! the `docker` group for the socket), seeing real Docker volumes through
//! `SCAN_HOST_PREFIX` as a non-root container would, for every method:
//!
//! - a volume root it cannot read fails the attempt with a clear reason, and
//!   the last good size stays in the API and the metrics (never ~4 KiB);
//! - a volume with an unreadable directory inside is stored and shown as
//!   `partial`: in the API, in `volscan_volume_scan_partial` and on the run.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use volscan_testing::TempDir;
use volscan_testing::docker::TestVolume;

use crate::support::{Answer, TOKEN, everything_but, free_port, raw_request, unique_prefix};

const NOBODY: u32 = 65534;

/// The `docker` group's id, so that `nobody` may use the socket.
fn docker_gid() -> String {
    let output = Command::new("getent").args(["group", "docker"]).output().unwrap();
    let line = String::from_utf8_lossy(&output.stdout).into_owned();
    line.split(':').nth(2).unwrap_or_else(|| panic!("no docker group: {line:?}")).to_owned()
}

/// The server as `nobody`, killed when dropped.
struct Unprivileged {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unprivileged {
    fn start(binary: &Path, dir: &Path, vars: &[(&str, &str)]) -> Unprivileged {
        let port = free_port();
        let log = dir.join(format!("server-{port}.log"));
        let file = fs::File::create(&log).unwrap();
        let child = Command::new("setpriv")
            .args(["--reuid", &NOBODY.to_string(), "--regid", &NOBODY.to_string()])
            .args(["--groups", &docker_gid(), "--"])
            .arg(binary)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("VOLSCAN_BIND", format!("127.0.0.1:{port}"))
            .env("AUTH_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("setpriv (util-linux) is needed to drop privileges");
        let server = Unprivileged { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.get("/api/v1/health").is_none() {
            assert!(Instant::now() < deadline, "did not start: {}", server.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<Answer> {
        let head =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}");
        raw_request(self.port, &head, b"")
    }

    fn scan(&self, volume: &str) -> Value {
        let head = format!(
            "POST /api/v1/volumes/{volume}/scan HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0"
        );
        let (status, _, body) = raw_request(self.port, &head, b"").unwrap();
        assert_eq!(status, 202, "{body}: {}", self.log_text());
        let url = body["status_url"].as_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, _, run) = self.get(&url).unwrap();
            if crate::support::is_final(&run) {
                return run;
            }
            assert!(Instant::now() < deadline, "{run}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metric(&self, series: &str) -> Option<f64> {
        let (_, _, body) = self.get("/metrics").unwrap();
        crate::guarantees::metric(body.as_str().unwrap_or_default(), series)
    }
}

/// Makes `path` and its parents below `top` enterable by everyone.
fn open_up(top: &Path, path: &Path) {
    let mut current = path.to_path_buf();
    while current.starts_with(top) {
        fs::set_permissions(&current, fs::Permissions::from_mode(0o755)).unwrap();
        if !current.pop() {
            break;
        }
    }
}

#[test]
fn a_non_root_server_fails_unreadable_roots_and_marks_partial_scans_for_every_method() {
    let work = TempDir::new("it-nobody");
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The binary and the database must be reachable by `nobody`.
    let binary = work.path().join("volscan-server");
    fs::copy(crate::support::SERVER, &binary).unwrap();
    let data = work.path().join("data");
    fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(NOBODY), Some(NOBODY)).unwrap();
    let prefix_dir = work.path().join("host");

    let prefix = unique_prefix("nobody");
    let locked = TestVolume::create_named(format!("{prefix}locked"), &[]);
    let holey = TestVolume::create_named(format!("{prefix}holey"), &[]);
    // What a container would see under SCAN_HOST_PREFIX: the volumes' directories.
    let mirror = |volume: &TestVolume| {
        let inside = volume.mountpoint().strip_prefix("/").unwrap();
        let path = prefix_dir.join(inside);
        fs::create_dir_all(&path).unwrap();
        open_up(work.path(), &path);
        path
    };
    let locked_root = mirror(&locked);
    fs::write(locked_root.join("big"), vec![b'l'; 5_000_000]).unwrap();
    let holey_root = mirror(&holey);
    fs::write(holey_root.join("open"), vec![b'o'; 20_000]).unwrap();
    fs::create_dir(holey_root.join("secret")).unwrap();
    fs::write(holey_root.join("secret/hidden"), vec![b'h'; 50_000]).unwrap();
    fs::set_permissions(holey_root.join("secret"), fs::Permissions::from_mode(0o700)).unwrap();
    let full_size = crate::support::du_bytes(&locked_root) as f64;

    let url = format!("sqlite://{}", data.join("volscan.db").display());
    let skip = everything_but(&prefix);
    let host_prefix = prefix_dir.display().to_string();
    let (locked_name, holey_name) = (locked.name().to_owned(), holey.name().to_owned());
    for method in ["native", "du", "diskus"] {
        fs::set_permissions(&locked_root, fs::Permissions::from_mode(0o755)).unwrap();
        let vars = [
            ("DATABASE_URL", url.as_str()),
            ("SCAN_ENABLED", "false"),
            ("SCAN_SKIP_PATTERN", &skip),
            ("SCAN_HOST_PREFIX", &host_prefix),
            ("SCAN_METHODS_ORDER", method),
            ("SCAN_MAX_RETRIES", "0"),
        ];
        let server = Unprivileged::start(&binary, work.path(), &vars);
        let good = server.scan(&locked_name);
        assert_eq!(good["status"], "completed", "{method}: {good}");

        // Now root-owned 0700: nothing of it can be read.
        fs::set_permissions(&locked_root, fs::Permissions::from_mode(0o700)).unwrap();
        let failed = server.scan(&locked_name);
        assert_eq!(failed["status"], "failed", "{method}: {failed}");
        let reason = failed["error_message"].as_str().unwrap_or_default();
        assert!(reason.contains("cannot be read"), "{method}: {reason}");
        let (_, _, detail) = server.get(&format!("/api/v1/volumes/{locked_name}")).unwrap();
        assert_eq!(detail["latest"]["size_bytes"].as_f64(), Some(full_size), "{method}: {detail}");
        let size = format!("volscan_volume_size_bytes{{volume=\"{locked_name}\"}}");
        assert_eq!(server.metric(&size), Some(full_size), "{method}: the last good value stays");

        let partial = server.scan(&holey_name);
        assert_eq!(partial["status"], "completed", "{method}: {partial}");
        let note = partial["error_message"].as_str().unwrap_or_default();
        assert!(note.starts_with("partial:"), "{method}: {partial}");
        let (_, _, detail) = server.get(&format!("/api/v1/volumes/{holey_name}")).unwrap();
        assert_eq!(detail["latest"]["partial"], true, "{method}: {detail}");
        assert!(detail["latest"]["error_count"].as_u64() >= Some(1), "{method}: {detail}");
        let flag = format!("volscan_volume_scan_partial{{volume=\"{holey_name}\"}}");
        assert_eq!(server.metric(&flag), Some(1.0), "{method}");
    }
    fs::set_permissions(holey_root.join("secret"), fs::Permissions::from_mode(0o755)).unwrap();
}
