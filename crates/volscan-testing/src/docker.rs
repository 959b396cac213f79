//! Docker fixtures: a throwaway named volume, a throwaway container and a tiny
//! local image to run containers from, each driven through the `docker` CLI.
//!
//! Everything created here is named `volscan-test-<uuid>` and removed on drop,
//! even when the test panics, so tests never touch volumes or containers they
//! did not create. The image is built locally from Debian's static busybox
//! (`apt-get install busybox-static`); nothing is ever pulled from a registry.
//! Without a reachable Docker Engine every fixture panics with a message
//! saying how to start one: tests that need Docker never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The local image `test_image` builds; shared by all tests and kept between runs.
pub const TEST_IMAGE: &str = "volscan-test-busybox:latest";

/// The busybox binary the test image is made of (Debian package `busybox-static`).
const BUSYBOX: &str = "/bin/busybox";

/// A unique name for a Docker object created by a test.
pub fn unique_name() -> String {
    format!("volscan-test-{}", uuid::Uuid::new_v4())
}

/// Runs `docker ARGS`, panicking with its standard error when it fails.
fn docker(args: &[&str]) -> String {
    let output = try_docker(args);
    assert!(
        output.status.success(),
        "`docker {}` failed ({}): {}\nThese tests need a running Docker Engine at \
         /var/run/docker.sock (start it with `service docker start` or `dockerd &`).",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Runs `docker ARGS` and returns its output, panicking only when the CLI is missing.
fn try_docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap_or_else(|err| {
        panic!(
            "cannot run the docker CLI ({err}); these tests need Docker: install docker.io \
             and start the engine (`service docker start`)"
        )
    })
}

/// A named volume created for one test and removed (`docker volume rm -f`) on drop.
#[derive(Debug)]
pub struct TestVolume {
    name: String,
    mountpoint: PathBuf,
}

impl TestVolume {
    /// Creates `volscan-test-<uuid>` with the `local` driver.
    pub fn create() -> Self {
        Self::create_labeled(&[])
    }

    /// Creates `volscan-test-<uuid>` with the given labels.
    pub fn create_labeled(labels: &[(&str, &str)]) -> Self {
        Self::create_named(unique_name(), labels)
    }

    /// Creates a volume with the given name (which the test must make unique) and labels.
    pub fn create_named(name: String, labels: &[(&str, &str)]) -> Self {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["volume", "create"];
        for label in &labels {
            args.extend(["--label", label.as_str()]);
        }
        args.push(&name);
        docker(&args);
        // Constructed before inspecting, so a failing inspect still removes the volume.
        let mut volume = TestVolume { name, mountpoint: PathBuf::new() };
        let mountpoint =
            docker(&["volume", "inspect", "--format", "{{.Mountpoint}}", &volume.name]);
        volume.mountpoint = PathBuf::from(mountpoint);
        volume
    }

    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Docker's `Mountpoint` for it, a directory on the host.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Removes the volume now (dropping it later does nothing more).
    pub fn remove(&self) {
        docker(&["volume", "rm", "-f", &self.name]);
    }
}

impl Drop for TestVolume {
    fn drop(&mut self) {
        let _ = try_docker(&["volume", "rm", "-f", &self.name]);
    }
}

/// A container created for one test and removed (`docker rm -f`) on drop.
#[derive(Debug)]
pub struct TestContainer {
    name: String,
}

impl TestContainer {
    /// Creates `volscan-test-<uuid>` from `image` with `-v SOURCE:TARGET` for
    /// each of `volume_mounts` (SOURCE is a volume name or an absolute host
    /// path), running `sleep 3600`; starts it when `running`.
    pub fn create(image: &str, volume_mounts: &[(&str, &str)], running: bool) -> Self {
        // The guard exists before `docker create` runs: should the CLI fail
        // half-way, the drop still removes whatever was created.
        let container = TestContainer { name: unique_name() };
        let specs: Vec<String> =
            volume_mounts.iter().map(|(source, target)| format!("{source}:{target}")).collect();
        let mut args = vec!["create", "--name", container.name.as_str()];
        for spec in &specs {
            args.extend(["-v", spec.as_str()]);
        }
        args.extend([image, "/bin/sleep", "3600"]);
        docker(&args);
        if running {
            docker(&["start", &container.name]);
        }
        container
    }

    /// The container's name (without Docker's leading `/`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        let _ = try_docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// Ensures the local image `volscan-test-busybox:latest` exists and returns its name.
///
/// The image is imported from a tarball holding Debian's static busybox and
/// the applet links `sh` and `sleep`; no registry is involved.
pub fn test_image() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if try_docker(&["image", "inspect", TEST_IMAGE]).status.success() {
            return;
        }
        build_test_image();
    });
    TEST_IMAGE
}

fn build_test_image() {
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} is missing; the Docker tests build their image from it: run \
         `apt-get install busybox-static` (scripts/test.sh does)"
    );
    let dir = crate::TempDir::new("busybox-image");
    let rootfs = dir.path().join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap_or_else(|err| panic!("cannot create {bin:?}: {err}"));
    std::fs::copy(BUSYBOX, bin.join("busybox"))
        .unwrap_or_else(|err| panic!("cannot copy {BUSYBOX}: {err}"));
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet))
            .unwrap_or_else(|err| panic!("cannot link {applet}: {err}"));
    }
    let tarball = dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap_or_else(|err| panic!("cannot run tar: {err}"));
    assert!(status.success(), "tar failed to pack the test image: {status}");
    let tarball = tarball.to_str().unwrap_or_else(|| panic!("non-UTF-8 temp path {tarball:?}"));
    docker(&["import", tarball, TEST_IMAGE]);
}

/// A private Docker daemon for one test, with its own socket, data root and
/// exec root under a temporary directory, which the test may stop and start
/// again (to take Docker away from a running volscan without touching the
/// machine's own daemon).
///
/// It runs `dockerd` in its own network namespace (`unshare --net`), with
/// the `vfs` storage driver, no bridge and no iptables rules, and an empty
/// configuration file, so `/etc/docker/daemon.json` does not apply. It is meant for volumes; containers need an image imported
/// into it first.
#[derive(Debug)]
pub struct PrivateDaemon {
    dir: crate::TempDir,
    child: Option<std::process::Child>,
    /// Its containerd namespace, unique to it.
    namespace: String,
}

impl PrivateDaemon {
    /// Starts the daemon and waits until it answers.
    pub fn start() -> Self {
        let dir = crate::TempDir::new("dockerd");
        std::fs::write(dir.path().join("daemon.json"), "{}")
            .unwrap_or_else(|err| panic!("cannot write daemon.json: {err}"));
        let namespace = format!("volscan-test-{}", uuid::Uuid::new_v4().simple());
        let mut daemon = PrivateDaemon { dir, child: None, namespace };
        daemon.resume();
        daemon
    }

    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Runs `docker -H HOST ARGS` against this daemon, panicking when it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// Stops the daemon (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Freezes the running daemon with SIGSTOP: its socket accepts
    /// connections but nothing answers, as a hung daemon.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen daemon run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the private daemon is not running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap_or_else(|err| panic!("cannot run kill: {err}"));
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts the (stopped) daemon again on the same socket and data root.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the private daemon is already running");
        let path = |name: &str| self.dir.path().join(name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path("dockerd.log"))
            .unwrap_or_else(|err| panic!("cannot open the dockerd log: {err}"));
        // In a network namespace of its own: a daemon without a bridge deletes
        // the host's `docker0`, which the machine's own daemon needs.
        let child = Command::new("unshare")
            .args(["--net", "dockerd"])
            .arg("--config-file")
            .arg(path("daemon.json"))
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(path("root"))
            .arg("--exec-root")
            .arg(path("exec"))
            .arg("--pidfile")
            .arg(path("dockerd.pid"))
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .args(["--storage-driver", "vfs"])
            // Should it find the machine's containerd, it keeps to namespaces of its own.
            .args(["--containerd-namespace", &self.namespace])
            .args(["--containerd-plugins-namespace", &format!("{}-plugins", self.namespace)])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start dockerd ({err}); this test needs the Docker Engine installed")
            });
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let host = self.host();
        while !try_docker(&["-H", &host, "version"]).status.success() {
            assert!(
                std::time::Instant::now() < deadline,
                "the private dockerd did not answer within 60 s: {}",
                std::fs::read_to_string(path("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A frozen daemon would ignore the SIGTERM of `stop`.
            self.thaw();
        }
        self.stop();
    }
}
