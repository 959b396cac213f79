//! The container image from `cargo xtask image`, run on the real Docker
//! Engine the way README.md's deployment section tells an operator to: the
//! socket and Docker's volumes directory mounted read-only below `/host`, a
//! read-only root filesystem, a non-root user holding only `DAC_READ_SEARCH`;
//! then the same without that capability, with a wrong prefix, stopped, as the
//! one-shot CLI, and resolving host names. And the deployment files checked
//! by their own tools (`docker-compose config`, `systemd-analyze verify`).
//!
//! The image is built once per run of this test binary, tagged
//! `volscan:test-<id>`, and removed when the process exits; every container,
//! volume and network a test creates is removed on drop, even when it fails.
//! Without Docker (or docker-compose, or systemd-analyze) these tests fail
//! with a message saying what to install; they never skip.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use volscan_testing::TempDir;
use volscan_testing::docker::{TestVolume, test_image, unique_name};

use crate::support::{Answer, TOKEN, du_bytes, everything_but, raw_request, unique_prefix};

/// The image's size goal (SPEC §11, issue 14).
const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

/// The tag of the image under test; set once it is built.
static IMAGE: OnceLock<String> = OnceLock::new();

/// The image under test, built with `cargo xtask image` on first use and
/// removed when this process exits.
fn image() -> &'static str {
    IMAGE.get_or_init(|| {
        let tag = format!("volscan:test-{}", &unique_name()["volscan-test-".len()..][..8]);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let started = Instant::now();
        let output = Command::new(cargo)
            .args(["xtask", "image", "--tag", &tag])
            .current_dir(root)
            .output()
            .expect("failed to run cargo xtask image");
        // SAFETY: `atexit` takes a function pointer to a plain `extern "C"`
        // function that neither unwinds nor takes arguments, as required.
        let registered = unsafe { atexit(remove_image) };
        assert_eq!(registered, 0, "atexit failed");
        assert!(
            output.status.success(),
            "cargo xtask image failed ({}); it needs Docker, binutils' strip and ldd:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("built {tag} in {:.1?}", started.elapsed());
        tag
    })
}

unsafe extern "C" {
    /// The C library's `atexit`: runs `callback` when the process exits
    /// normally, which the test harness does, passing or failing.
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

/// Removes the image `image` built, if it did.
extern "C" fn remove_image() {
    if let Some(tag) = IMAGE.get() {
        let _ = Command::new("docker").args(["image", "rm", "-f", tag]).output();
    }
}

/// `docker ARGS`, panicking with its output when it fails.
fn docker(args: &[&str]) -> String {
    let output = try_docker(args);
    assert!(
        output.status.success(),
        "docker {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `docker ARGS`, whatever it exits with.
fn try_docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the docker CLI is needed: install docker.io")
}

/// Docker's data root, as `/info` gives it.
fn data_root() -> String {
    docker(&["info", "--format", "{{.DockerRootDir}}"])
}

/// The group that may use the Docker socket, so a non-root container may too.
fn socket_group() -> String {
    std::fs::metadata("/var/run/docker.sock").expect("no /var/run/docker.sock").gid().to_string()
}

/// A container started with `docker run -d`, removed (with its anonymous
/// volumes) on drop.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d --name <unique> ARGS…`.
    fn run(args: &[&str]) -> Container {
        let container = Container { name: unique_name() };
        let mut all = vec!["run", "-d", "--name", container.name.as_str()];
        all.extend_from_slice(args);
        docker(&all);
        container
    }

    fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "--format", format, &self.name])
    }

    fn logs(&self) -> String {
        let output = try_docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// The host port published for the container's 8080.
    fn port(&self) -> u16 {
        let published = docker(&["port", &self.name, "8080/tcp"]);
        let first = published.lines().next().unwrap_or_default();
        first
            .rsplit(':')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no published port in {published:?}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = try_docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// A user-defined network, removed on drop (after its containers: declare it first).
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = try_docker(&["network", "rm", &self.0]);
    }
}

/// The volscan server in the image (`--read-only`, port 8080 published on
/// 127.0.0.1, periodic scans off, Docker's healthcheck every second) with
/// the environment `vars` and more `docker run` arguments; waits until its
/// health endpoint answers.
fn serve(vars: &[(&str, &str)], run_args: &[&str]) -> (Container, u16) {
    let envs: Vec<String> = vars.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let mut args = vec!["--read-only", "-p", "127.0.0.1::8080", "--health-interval", "1s"];
    let token = format!("AUTH_TOKEN={TOKEN}");
    // The host id the test's own repository reads as (a container's
    // hostname is its random id).
    args.extend(["-e", token.as_str(), "-e", "SCAN_ENABLED=false", "-e", "VOLSCAN_HOST_ID=local"]);
    for env in &envs {
        args.extend(["-e", env.as_str()]);
    }
    args.extend_from_slice(run_args);
    args.push(image());
    let container = Container::run(&args);
    let port = container.port();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/api/v1/health").is_none() {
        assert!(Instant::now() < deadline, "did not start: {}", container.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    (container, port)
}

fn get(port: u16, path: &str) -> Option<Answer> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}");
    raw_request(port, &head, b"")
}

/// Triggers a scan of `volume` and follows it until it is final; returns the run.
fn scan(port: u16, volume: &str) -> Value {
    let head = format!(
        "POST /api/v1/volumes/{volume}/scan HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Length: 0"
    );
    let (status, _, body) = raw_request(port, &head, b"").expect("the trigger is answered");
    assert_eq!(status, 202, "{body}");
    let url = body["status_url"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, run) = get(port, &url).unwrap();
        if crate::support::is_final(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "{run}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(container's health document, docker component's message)`.
fn health(port: u16) -> (Value, String) {
    let (_, _, body) = get(port, "/api/v1/health").unwrap();
    let message = body["components"]["docker"]["message"].as_str().unwrap_or_default().to_owned();
    (body, message)
}

/// The `-v` specs of README's `docker run`: the socket, and Docker's volumes
/// below `prefix`, both read-only (the volumes `rslave`, as the compose file has them).
fn host_mounts(prefix: &str) -> Vec<String> {
    let volumes = format!("{}/volumes", data_root());
    vec![
        "/var/run/docker.sock:/var/run/docker.sock:ro".to_owned(),
        format!("{volumes}:{prefix}{volumes}:ro,rslave"),
    ]
}

/// The test volumes: `open` (files, a hard link, and a root-owned `0700`
/// directory `secret`) and `locked` (its data directory root-owned `0700`,
/// as PostgreSQL's is).
fn volumes(prefix: &str) -> (TestVolume, TestVolume) {
    let open = TestVolume::create_named(format!("{prefix}open"), &[]);
    let root = open.mountpoint();
    std::fs::write(root.join("a"), vec![b'a'; 100_000]).unwrap();
    std::fs::create_dir(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/b"), vec![b'b'; 30_000]).unwrap();
    std::fs::hard_link(root.join("dir/b"), root.join("dir/b-link")).unwrap();
    std::fs::create_dir_all(root.join("secret/deeper")).unwrap();
    std::fs::write(root.join("secret/c"), vec![b'c'; 200_000]).unwrap();
    std::fs::write(root.join("secret/deeper/d"), vec![b'd'; 10_000]).unwrap();
    std::fs::hard_link(root.join("secret/c"), root.join("secret/deeper/c-link")).unwrap();
    std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o700)).unwrap();

    let locked = TestVolume::create_named(format!("{prefix}locked"), &[]);
    std::fs::write(locked.mountpoint().join("big"), vec![b'l'; 300_000]).unwrap();
    std::fs::set_permissions(locked.mountpoint(), std::fs::Permissions::from_mode(0o700)).unwrap();
    (open, locked)
}

#[test]
fn the_image_measures_every_volume_like_du_as_a_non_root_user_with_one_capability() {
    let image = image();
    let size: u64 = docker(&["image", "inspect", "--format", "{{.Size}}", image]).parse().unwrap();
    eprintln!("image size: {size} bytes ({:.1} MiB)", size as f64 / 1_048_576.0);
    assert!(size <= MAX_IMAGE_BYTES, "the image is {size} bytes, over 20 MiB");

    let prefix = unique_prefix("img");
    let (open, locked) = volumes(&prefix);
    let data = TestVolume::create();
    let skip = everything_but(&prefix);
    let mut run_args: Vec<String> = ["--cap-drop", "ALL", "--cap-add", "DAC_READ_SEARCH"]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
    run_args.extend(["--group-add".to_owned(), socket_group()]);
    for mount in host_mounts("/host") {
        run_args.extend(["-v".to_owned(), mount]);
    }
    run_args.extend(["-v".to_owned(), format!("{}:/data", data.name())]);
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let (container, port) = serve(&[("SCAN_SKIP_PATTERN", &skip)], &run_args);
    let answering = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while container.inspect("{{.State.Health.Status}}") != "healthy" {
        assert!(Instant::now() < deadline, "never healthy: {}", container.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "start-up: health answered after {answering:.1?}, Docker's healthcheck (every 1 s) \
         said healthy after {:.1?}",
        started.elapsed()
    );

    // A non-root process whose only effective capability is DAC_READ_SEARCH.
    let pid = container.inspect("{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert!(field("Uid:").starts_with("10001"), "{status}");
    assert_eq!(field("CapEff:"), "0000000000000004", "{status}");
    assert!(
        container.logs().contains("permitted capabilities made effective"),
        "{}",
        container.logs()
    );
    let (body, _) = health(port);
    assert_eq!(body["status"], "healthy", "{body}");

    for volume in [&open, &locked] {
        let run = scan(port, volume.name());
        assert_eq!(run["status"], "completed", "{run}\n{}", container.logs());
        let (_, _, detail) = get(port, &format!("/api/v1/volumes/{}", volume.name())).unwrap();
        let latest = &detail["latest"];
        assert_eq!(latest["size_bytes"].as_u64(), Some(du_bytes(volume.mountpoint())), "{detail}");
        assert_eq!(latest["error_count"].as_u64(), Some(0), "{detail}");
        assert_eq!(latest["scan_method"], "native", "{detail}");
    }

    // The directory breakdown names directories inside the volume, never host paths.
    for depth in [1, 2] {
        let path = format!("/api/v1/volumes/{}/dirs?depth={depth}", open.name());
        let (status, _, dirs) = get(port, &path).unwrap();
        assert_eq!(status, 200, "{dirs}");
        let paths: Vec<&str> =
            dirs["entries"].as_array().unwrap().iter().filter_map(|e| e["path"].as_str()).collect();
        assert!(paths.contains(&if depth == 1 { "secret" } else { "secret/deeper" }), "{dirs}");
        let text = dirs.to_string();
        for host in ["/host", "/var/lib/docker", "_data", &data_root()] {
            assert!(!text.contains(host), "{host} in {dirs}");
        }
    }

    let stats = docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &container.name]);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let peak = status.lines().find_map(|line| line.strip_prefix("VmHWM:")).unwrap_or("?").trim();
    eprintln!("memory after scanning: docker stats {stats}, the server's peak RSS (VmHWM) {peak}");

    // docker stop while a bulk scan is queued or running: out within 10 s, no run left running.
    let head = format!(
        "POST /api/v1/scan/now HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 0"
    );
    let (status, _, batch) = raw_request(port, &head, b"").unwrap();
    assert_eq!(status, 202, "{batch}");
    let stopping = Instant::now();
    docker(&["stop", "-t", "10", &container.name]);
    let took = stopping.elapsed();
    eprintln!("docker stop took {took:.1?}");
    assert!(took < Duration::from_secs(10), "docker stop took {took:?}: {}", container.logs());
    assert_eq!(container.inspect("{{.State.ExitCode}}"), "0", "{}", container.logs());
    let database = data.mountpoint().join("volscan.db");
    let repo =
        volscan_repo::DieselRepository::connect(&format!("sqlite://{}", database.display()), 1)
            .unwrap();
    use volscan_domain::ReadRepository;
    let with = |status| volscan_domain::RunFilter { status: Some(status), ..Default::default() };
    assert_eq!(repo.count_runs(&with(volscan_domain::ScanStatus::Running)).unwrap(), 0);
    assert!(repo.count_runs(&with(volscan_domain::ScanStatus::Completed)).unwrap() >= 2);
    let owner = std::fs::metadata(&database).unwrap();
    assert_eq!(
        (owner.uid(), owner.gid()),
        (10001, 10001),
        "the database belongs to the image's user"
    );
}

#[test]
fn without_dac_read_search_unreadable_volumes_fail_or_are_partial_never_smaller() {
    let prefix = unique_prefix("imgnocap");
    let (open, locked) = volumes(&prefix);
    let skip = everything_but(&prefix);
    let mut common: Vec<String> = vec!["--group-add".to_owned(), socket_group()];
    for mount in host_mounts("/host") {
        common.extend(["-v".to_owned(), mount]);
    }
    let expected = format!(
        "/host{}/volumes cannot be read (permission denied): a non-root volscan needs the \
         capability DAC_READ_SEARCH",
        data_root()
    );

    // Every capability dropped: the binary still starts, and says what it lacks.
    let mut args: Vec<&str> = vec!["--cap-drop", "ALL"];
    args.extend(common.iter().map(String::as_str));
    let (container, port) =
        serve(&[("SCAN_SKIP_PATTERN", &skip), ("SCAN_MAX_RETRIES", "0")], &args);
    let (body, message) = health(port);
    assert_eq!(body["components"]["docker"]["status"], "degraded", "{body}");
    assert!(message.starts_with(&expected), "{body}");

    let run = scan(port, open.name());
    let (_, _, detail) = get(port, &format!("/api/v1/volumes/{}", open.name())).unwrap();
    match run["status"].as_str() {
        Some("completed") => {
            let note = run["error_message"].as_str().unwrap_or_default();
            assert!(note.starts_with("partial:"), "{run}");
            assert_eq!(detail["latest"]["partial"], true, "{detail}");
            assert!(detail["latest"]["error_count"].as_u64() >= Some(1), "{detail}");
        }
        Some("failed") => assert!(detail["latest"].is_null(), "{detail}"),
        _ => panic!("{run}"),
    }
    let run = scan(port, locked.name());
    assert_eq!(run["status"], "failed", "{run}");
    let reason = run["error_message"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot be read"), "{run}");
    let (_, _, detail) = get(port, &format!("/api/v1/volumes/{}", locked.name())).unwrap();
    assert!(detail["latest"].is_null(), "a volume never read has no size, not 0: {detail}");
    drop(container);

    // no-new-privileges keeps the kernel from granting the file capability:
    // the capability added to the container does not reach the process.
    let mut args: Vec<&str> = vec![
        "--cap-drop",
        "ALL",
        "--cap-add",
        "DAC_READ_SEARCH",
        "--security-opt",
        "no-new-privileges",
    ];
    args.extend(common.iter().map(String::as_str));
    let (_container, port) = serve(&[("SCAN_SKIP_PATTERN", &skip)], &args);
    let (body, message) = health(port);
    assert!(message.starts_with(&expected), "{body}");
}

#[test]
fn a_wrong_host_prefix_is_named_in_health_and_scans_fail_without_a_size() {
    let prefix = unique_prefix("imgprefix");
    let (open, _locked) = volumes(&prefix);
    let skip = everything_but(&prefix);
    let mut args: Vec<String> = vec!["--cap-drop".to_owned(), "ALL".to_owned()];
    args.extend(["--cap-add".to_owned(), "DAC_READ_SEARCH".to_owned()]);
    args.extend(["--group-add".to_owned(), socket_group()]);
    for mount in host_mounts("/host") {
        args.extend(["-v".to_owned(), mount]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let vars = [
        ("SCAN_SKIP_PATTERN", skip.as_str()),
        ("SCAN_HOST_PREFIX", "/wrong"),
        ("SCAN_MAX_RETRIES", "0"),
    ];
    let (_container, port) = serve(&vars, &args);
    let (body, message) = health(port);
    let volumes = format!("{}/volumes", data_root());
    assert_eq!(
        message,
        format!(
            "/wrong{volumes} is missing: mount the host's {volumes} at /wrong{volumes} (read-only), \
             or set SCAN_HOST_PREFIX to where the host's directories are mounted"
        ),
        "{body}"
    );
    assert_eq!(body["status"], "degraded", "{body}");
    let run = scan(port, open.name());
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error_message"].as_str().unwrap_or_default().contains("does not exist"), "{run}");
    let (_, _, detail) = get(port, &format!("/api/v1/volumes/{}", open.name())).unwrap();
    assert!(detail["latest"].is_null(), "{detail}");
}

#[test]
fn the_image_runs_the_one_shot_scan_command() {
    let volume = TestVolume::create();
    std::fs::create_dir(volume.mountpoint().join("sub")).unwrap();
    std::fs::write(volume.mountpoint().join("sub/file"), vec![b's'; 123_456]).unwrap();
    let mount = format!("{}:/some/path:ro", volume.name());
    let output = try_docker(&[
        "run",
        "--rm",
        "--read-only",
        "--cap-drop",
        "ALL",
        "-v",
        &mount,
        image(),
        "scan",
        "/some/path",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let usage: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(usage["size_bytes"].as_u64(), Some(du_bytes(volume.mountpoint())), "{usage}");
    assert_eq!(usage["scan_method"], "native", "{usage}");
    assert_eq!(usage["error_count"], 0, "{usage}");
}

#[test]
fn host_names_resolve_in_the_image_from_hosts_and_from_docker_dns() {
    // /etc/hosts (`files`): PostgreSQL by a name only Docker's /etc/hosts knows.
    let database = volscan_testing::PgDatabase::create();
    let url = database.url().replacen("127.0.0.1", "volscan-pg.test", 1);
    assert_ne!(url, database.url(), "VOLSCAN_TEST_PG_URL must name 127.0.0.1");
    let url_var = format!("DATABASE_URL={url}");
    let output = try_docker(&[
        "run",
        "--rm",
        "--read-only",
        "--network",
        "host",
        "--add-host",
        "volscan-pg.test:127.0.0.1",
        "-e",
        &url_var,
        image(),
        "migrate",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && text.contains("postgres:"), "{text}");

    // Docker's embedded DNS (`dns`): another container's name on a user network.
    let network = Network(unique_name());
    docker(&["network", "create", &network.0]);
    let target = Container::run(&[
        "--network",
        &network.0,
        "--network-alias",
        "volscan-dns-target",
        test_image(),
        "/bin/sleep",
        "3600",
    ]);
    let output = try_docker(&[
        "run",
        "--rm",
        "--read-only",
        "--network",
        &network.0,
        "-e",
        "DATABASE_URL=postgres://volscan@volscan-dns-target:5432/volscan",
        image(),
        "migrate",
    ]);
    let text = String::from_utf8_lossy(&output.stderr);
    // Resolved: libpq got as far as connecting to the address (nothing listens there).
    assert!(!output.status.success(), "{text}");
    assert!(!text.contains("translate host name"), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    drop(target);
}

/// A file of `deploy/`.
fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy").join(name)
}

#[test]
fn the_compose_file_is_valid_and_runs_the_image_of_this_version_locked_down() {
    let dir = TempDir::new("it-compose");
    std::fs::copy(deploy_file("compose.yaml"), dir.path().join("compose.yaml")).unwrap();
    std::fs::copy(deploy_file("volscan.env.example"), dir.path().join("volscan.env")).unwrap();
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .arg("-f")
            .arg(dir.path().join("compose.yaml"))
            .args(args)
            .output()
            .expect(
                "docker-compose is needed: apt-get install docker-compose (scripts/test.sh does)",
            )
    };
    let quiet = compose(&["config", "-q"]);
    assert!(quiet.status.success(), "{}", String::from_utf8_lossy(&quiet.stderr));
    let output = compose(&["config"]);
    let config = String::from_utf8_lossy(&output.stdout);
    for promise in [
        format!("image: volscan:{}", env!("CARGO_PKG_VERSION")),
        "- 127.0.0.1:8080:8080/tcp".to_owned(),
        "read_only: true".to_owned(),
        "DOCKER_HOST: tcp://socket-proxy:2375".to_owned(),
        "SCAN_HOST_PREFIX: /host".to_owned(),
        "target: /host/var/lib/docker/volumes".to_owned(),
        "propagation: rslave".to_owned(),
        "- DAC_READ_SEARCH".to_owned(),
        "- ALL".to_owned(),
        "internal: true".to_owned(),
        "POST: 0".to_owned(),
        "/var/run/docker.sock:/var/run/docker.sock:ro".to_owned(),
    ] {
        assert!(config.contains(&promise), "{promise:?} missing from:\n{config}");
    }
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let dir = TempDir::new("it-unit");
    // `verify` wants the ExecStart binary to exist: point it at the one just built.
    let unit = std::fs::read_to_string(deploy_file("volscan.service"))
        .unwrap()
        .replace("/usr/local/bin/volscan-server", crate::support::SERVER);
    let path = dir.path().join("volscan.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed: apt-get install systemd (scripts/test.sh does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // It reports unknown keys and bad values without failing: both must be empty.
    assert!(output.status.success() && text.trim().is_empty(), "{text}");
}
