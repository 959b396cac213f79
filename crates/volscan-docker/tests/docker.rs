//! `DockerSource` against the real Docker Engine at /var/run/docker.sock.
//!
//! Every test creates its own `volscan-test-<uuid>` volumes and containers
//! (fixtures in `volscan_testing::docker`) and removes them on drop, even when
//! it fails. Without Docker these tests fail with a message saying how to
//! start it; they never skip.

// Helpers outside `#[test]` functions panic on purpose too: this is test code.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use regex::Regex;
use time::OffsetDateTime;
use volscan_docker::{DockerError, DockerSource, DockerSourceOptions};
use volscan_domain::{
    CancelReason, CancelToken, DiscoveredVolume, SourceError, SourceEvent, Volume, VolumeKind,
    VolumeName, VolumeSource, VolumeUsers,
};
use volscan_testing::TempDir;
use volscan_testing::docker::{TestContainer, TestVolume, test_image, unique_name};

fn source(options: DockerSourceOptions) -> DockerSource {
    DockerSource::new(options).expect("the options are valid")
}

fn local() -> DockerSource {
    source(DockerSourceOptions::default())
}

fn name(name: &str) -> VolumeName {
    VolumeName::new(name).expect("a valid volume name")
}

fn find<'a>(volumes: &'a [DiscoveredVolume], name: &str) -> Option<&'a DiscoveredVolume> {
    volumes.iter().find(|volume| volume.name.as_str() == name)
}

/// The repository's view of a discovered volume, as `scan_root` gets it.
fn stored(volume: &DiscoveredVolume) -> Volume {
    let now = OffsetDateTime::now_utc();
    Volume {
        host: Default::default(),
        name: volume.name.clone(),
        driver: volume.driver.clone(),
        mountpoint: volume.mountpoint.clone(),
        kind: volume.kind,
        labels: volume.labels.clone(),
        created_at: volume.created_at,
        first_seen_at: now,
        last_seen_at: now,
        removed_at: None,
        in_use: None,
        last_used_at: None,
        unused_since: None,
        filesystem_id: None,
    }
}

fn users_of<'a>(users: &'a [VolumeUsers], volume: &VolumeName) -> Option<&'a VolumeUsers> {
    users.iter().find(|users| &users.volume == volume)
}

#[test]
fn ping_returns_the_daemon_version() {
    let version = local().ping().expect("Docker answers at /var/run/docker.sock");
    let output = std::process::Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .expect("the docker CLI runs");
    assert_eq!(version, String::from_utf8_lossy(&output.stdout).trim());
    assert!(version.chars().any(|c| c.is_ascii_digit()), "{version}");
}

#[test]
fn a_created_volume_is_listed_with_its_driver_and_mountpoint() {
    let volume = TestVolume::create_labeled(&[("com.example.team", "storage")]);
    let before = OffsetDateTime::now_utc() - Duration::from_secs(120);
    let volumes = local().volumes().unwrap();
    let found = find(&volumes, volume.name()).expect("the new volume is listed");
    assert_eq!(found.kind, VolumeKind::Volume);
    assert_eq!(found.driver, "local");
    assert_eq!(found.mountpoint, volume.mountpoint());
    assert_eq!(found.labels.get("com.example.team").map(String::as_str), Some("storage"));
    let created = found.created_at.expect("Docker reports CreatedAt");
    assert!(created > before && created < OffsetDateTime::now_utc() + Duration::from_secs(120));
}

#[test]
fn a_volume_matching_the_skip_pattern_is_not_listed() {
    let skipped = TestVolume::create();
    let kept = TestVolume::create();
    let pattern = Regex::new(&format!("^{}$", regex::escape(skipped.name()))).unwrap();
    let source = source(DockerSourceOptions {
        skip_pattern: Some(pattern),
        ..DockerSourceOptions::default()
    });
    let volumes = source.volumes().unwrap();
    assert!(find(&volumes, skipped.name()).is_none());
    assert!(find(&volumes, kept.name()).is_some());
    assert!(source.is_skipped(&name(skipped.name())));
    assert!(!source.is_skipped(&name(kept.name())));
    assert!(!local().is_skipped(&name(skipped.name())), "no pattern skips nothing");
}

#[test]
fn scan_root_of_a_listed_volume_is_its_data_directory() {
    let volume = TestVolume::create();
    std::fs::write(volume.mountpoint().join("hello.txt"), b"hello").unwrap();
    let source = local();
    let volumes = source.volumes().unwrap();
    let found = find(&volumes, volume.name()).unwrap();
    let root = source.scan_root(&stored(found)).unwrap();
    assert!(root.is_dir());
    assert_eq!(std::fs::read(root.join("hello.txt")).unwrap(), b"hello");
}

#[test]
fn scan_root_puts_the_host_prefix_before_the_mountpoint_as_text() {
    // A prefix under which the host's /var appears, as in a container with
    // `-v /var/lib/docker:/host/var/lib/docker`.
    let prefix = TempDir::new("host-prefix");
    std::os::unix::fs::symlink("/var", prefix.path().join("var")).unwrap();
    let volume = TestVolume::create();
    std::fs::write(volume.mountpoint().join("marker"), b"x").unwrap();
    let source = source(DockerSourceOptions {
        host_prefix: Some(prefix.path().to_path_buf()),
        ..DockerSourceOptions::default()
    });
    let volumes = source.volumes().unwrap();
    let found = find(&volumes, volume.name()).unwrap();
    assert_eq!(found.mountpoint, volume.mountpoint(), "the stored mountpoint is Docker's");
    let root = source.scan_root(&stored(found)).unwrap();
    let mut expected = prefix.path().as_os_str().to_os_string();
    expected.push(volume.mountpoint().as_os_str());
    assert_eq!(root, PathBuf::from(expected));
    assert!(root.join("marker").is_file());
}

#[test]
fn scan_root_under_a_missing_host_prefix_is_unreachable_with_a_reason() {
    let volume = TestVolume::create();
    let prefix = PathBuf::from(format!("/tmp/{}", unique_name()));
    let source = source(DockerSourceOptions {
        host_prefix: Some(prefix.clone()),
        ..DockerSourceOptions::default()
    });
    let volumes = source.volumes().unwrap();
    let found = find(&volumes, volume.name()).unwrap();
    match source.scan_root(&stored(found)) {
        Err(SourceError::Unreachable { name, reason }) => {
            assert_eq!(name.as_str(), volume.name());
            let missing = format!("{}{}", prefix.display(), volume.mountpoint().display());
            assert!(reason.contains(&format!("mountpoint {missing} does not exist")), "{reason}");
            assert!(reason.contains("SCAN_HOST_PREFIX"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[test]
fn the_data_root_comes_from_info_and_its_volumes_dir_is_checked_below_the_prefix() {
    let output = std::process::Command::new("docker")
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .output()
        .expect("the docker CLI runs");
    let expected = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert_eq!(local().data_root().unwrap(), expected);
    // Without a prefix there is nothing to check.
    assert_eq!(local().volumes_dir_problem(), None);

    let prefix = PathBuf::from(format!("/tmp/{}", unique_name()));
    let prefixed = source(DockerSourceOptions {
        host_prefix: Some(prefix.clone()),
        ..DockerSourceOptions::default()
    });
    let local_dir = format!("{}{}/volumes", prefix.display(), expected.display());
    let problem = prefixed.volumes_dir_problem().unwrap();
    assert!(
        problem.starts_with(&format!(
            "{local_dir} is missing: mount the host's {}/volumes at {local_dir} (read-only)",
            expected.display()
        )),
        "{problem}"
    );
    // The host's own directory seen below a prefix (through a symlink here), readable by root.
    let dir = TempDir::new("docker-prefix");
    let seen = PathBuf::from(format!("{}{}/volumes", dir.path().display(), expected.display()));
    std::fs::create_dir_all(seen.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(expected.join("volumes"), &seen).unwrap();
    let mirrored = source(DockerSourceOptions {
        host_prefix: Some(dir.path().to_path_buf()),
        ..DockerSourceOptions::default()
    });
    assert_eq!(mirrored.volumes_dir_problem(), None);
}

#[test]
fn scan_root_refuses_what_it_cannot_measure() {
    let source = local();
    let dir = TempDir::new("not-a-volume");
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let volume = |driver: &str, mountpoint: &Path| {
        stored(&DiscoveredVolume {
            name: name("volscan-test-x"),
            driver: driver.to_owned(),
            mountpoint: mountpoint.to_path_buf(),
            kind: VolumeKind::Volume,
            labels: Default::default(),
            created_at: None,
        })
    };
    let reason = |volume: Volume| match source.scan_root(&volume) {
        Err(SourceError::Unreachable { reason, .. }) => reason,
        other => panic!("expected Unreachable, got {other:?}"),
    };
    assert!(reason(volume("nfs", Path::new(""))).contains("driver nfs reports no mountpoint"));
    assert!(reason(volume("local", &file)).contains("is not a directory"));
    assert!(reason(volume("local", &link)).contains("is a symlink"));
    assert!(reason(volume("local", Path::new("relative"))).contains("not a plain absolute path"));
    let missing = dir.path().join("missing");
    assert!(reason(volume("rexray", &missing)).contains("driver rexray"));
    // A bind is refused while bind mounts are off.
    let mut bind = volume("bind", dir.path());
    bind.kind = VolumeKind::Bind;
    assert!(reason(bind).contains("SCAN_BIND_MOUNTS_ENABLED"));
}

#[test]
fn users_lists_running_and_stopped_containers() {
    let shared = TestVolume::create();
    let idle = TestVolume::create();
    let unused = TestVolume::create();
    let running = TestContainer::create(test_image(), &[(shared.name(), "/data")], true);
    let stopped = TestContainer::create(
        test_image(),
        &[(shared.name(), "/data"), (idle.name(), "/idle")],
        false,
    );
    let users = local().users().unwrap();

    let shared_users = users_of(&users, &name(shared.name())).expect("the shared volume has users");
    let mut expected = vec![running.name().to_owned(), stopped.name().to_owned()];
    expected.sort();
    assert_eq!(shared_users.containers, expected);
    assert!(shared_users.in_use);

    let idle_users = users_of(&users, &name(idle.name())).expect("the idle volume has a user");
    assert_eq!(idle_users.containers, [stopped.name().to_owned()]);
    assert!(!idle_users.in_use);

    assert!(users_of(&users, &name(unused.name())).is_none());
}

#[test]
fn only_bind_mounts_under_the_allowlist_are_listed() {
    let dir = TempDir::new("binds");
    let root = dir.path().canonicalize().unwrap();
    let allowed = root.join("allowed");
    let outside = root.join("outside");
    let inside = allowed.join("app");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // Inside the allowlist by its text, outside by where it leads.
    let escape = allowed.join("escape");
    std::os::unix::fs::symlink(&outside, &escape).unwrap();
    std::fs::write(inside.join("data.bin"), b"0123456789").unwrap();

    let path = |path: &Path| path.to_str().unwrap().to_owned();
    let (inside_s, outside_s, escape_s) = (path(&inside), path(&outside), path(&escape));
    // Inside the allowlist by its first components, outside through `..`.
    let dotdot_s = format!("{}/../outside", allowed.display());
    let running = TestContainer::create(
        test_image(),
        &[(&inside_s, "/in"), (&outside_s, "/out"), (&escape_s, "/escape"), (&dotdot_s, "/dotdot")],
        true,
    );
    // A second user of the same directory: the bind is listed once.
    let stopped = TestContainer::create(test_image(), &[(&inside_s, "/in")], false);

    let options = DockerSourceOptions {
        bind_mounts_enabled: true,
        bind_allowlist: vec![allowed.clone()],
        ..DockerSourceOptions::default()
    };
    let source = source(options.clone());
    let volumes = source.volumes().unwrap();
    let binds: Vec<&DiscoveredVolume> = volumes
        .iter()
        .filter(|volume| volume.kind == VolumeKind::Bind && volume.mountpoint.starts_with(&root))
        .collect();
    assert_eq!(binds.len(), 1, "{binds:#?}");
    let bind = binds[0];
    assert_eq!(bind.mountpoint, inside);
    assert_eq!(bind.driver, "bind");
    assert!(bind.name.as_str().starts_with("bind-tmp_volscan-binds-"), "{}", bind.name);

    let scan_root = source.scan_root(&stored(bind)).unwrap();
    assert_eq!(scan_root, inside);
    assert!(scan_root.join("data.bin").is_file());

    let users = source.users().unwrap();
    let bind_users = users_of(&users, &bind.name).expect("the bind has users");
    let mut expected = vec![running.name().to_owned(), stopped.name().to_owned()];
    expected.sort();
    assert_eq!(bind_users.containers, expected);
    assert!(bind_users.in_use);
    assert!(
        !users.iter().any(|users| users.volume.as_str().contains("outside")),
        "binds outside the allowlist have no users entry: {users:#?}"
    );

    // Without the option, no binds at all.
    let disabled = DockerSourceOptions { bind_mounts_enabled: false, ..options };
    let volumes = DockerSource::new(disabled).unwrap().volumes().unwrap();
    assert!(!volumes.iter().any(|volume| volume.name == bind.name));

    // A symlink swapped in since discovery may not lead the scan outside.
    std::fs::rename(&inside, allowed.join("moved")).unwrap();
    std::os::unix::fs::symlink(&outside, &inside).unwrap();
    match source.scan_root(&stored(bind)) {
        Err(SourceError::Unreachable { reason, .. }) => {
            assert!(reason.contains("outside the bind allowlist"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // Swapped within the allowlist, it is still refused: it names another directory now.
    std::fs::remove_file(&inside).unwrap();
    std::os::unix::fs::symlink(allowed.join("moved"), &inside).unwrap();
    match source.scan_root(&stored(bind)) {
        Err(SourceError::Unreachable { reason, .. }) => {
            assert!(reason.contains("a symlink was put into its path"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[test]
fn system_directories_are_refused_as_allowlist_entries() {
    for entry in ["/", "/proc", "/sys", "/dev/shm"] {
        let options = DockerSourceOptions {
            bind_mounts_enabled: true,
            bind_allowlist: vec![PathBuf::from(entry)],
            ..DockerSourceOptions::default()
        };
        match DockerSource::new(options) {
            Err(err @ DockerError::AllowlistRefused { .. }) => {
                assert!(err.to_string().contains(entry), "{err}");
            }
            other => panic!("{entry} should be refused, got {other:?}"),
        }
    }
    let missing = PathBuf::from(format!("/tmp/{}", unique_name()));
    let options = DockerSourceOptions {
        bind_allowlist: vec![missing.clone()],
        ..DockerSourceOptions::default()
    };
    match DockerSource::new(options) {
        Err(err @ DockerError::AllowlistUnresolvable { .. }) => {
            assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
        }
        other => panic!("a missing entry should be refused, got {other:?}"),
    }
}

#[test]
fn invalid_hosts_are_refused() {
    for host in
        ["", "/var/run/docker.sock", "ssh://user@box", "unix://", "unix://relative", "tcp://"]
    {
        let options =
            DockerSourceOptions { host: host.to_owned(), ..DockerSourceOptions::default() };
        match DockerSource::new(options) {
            Err(DockerError::BadHost { host: named, .. }) => assert_eq!(named, host),
            other => panic!("{host:?} should be refused, got {other:?}"),
        }
    }
    let options = DockerSourceOptions {
        host: "tcp://127.0.0.1:2375".to_owned(),
        ..DockerSourceOptions::default()
    };
    assert!(DockerSource::new(options).is_ok());
}

/// Cancels the token when dropped, so a failing assertion cannot leave the
/// watching thread (and the scope joining it) running forever.
struct CancelOnDrop<'a>(&'a CancelToken);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.0.cancel(CancelReason::Shutdown);
    }
}

/// The first event `wanted` accepts within `timeout`, skipping others.
fn wait_for(
    events: &mpsc::Receiver<SourceEvent>,
    timeout: Duration,
    wanted: impl Fn(&SourceEvent) -> bool,
) -> Option<SourceEvent> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(event) if wanted(&event) => return Some(event),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn watch_reports_volume_and_container_events_and_stops_promptly() {
    let skipped_probe = TestVolume::create();
    let pattern = Regex::new(&format!("^{}$", regex::escape(skipped_probe.name()))).unwrap();
    let source = source(DockerSourceOptions {
        skip_pattern: Some(pattern),
        ..DockerSourceOptions::default()
    });
    let stop = CancelToken::new();
    let (sender, events) = mpsc::channel();
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            source.watch(&stop, &mut |event| {
                let _ = sender.send(event);
            })
        });
        let _cancel = CancelOnDrop(&stop);

        // The stream has no "subscribed" signal: create volumes until one is seen.
        let mut created = None;
        for _ in 0..20 {
            let volume = TestVolume::create();
            let expected = SourceEvent::VolumeCreated(name(volume.name()));
            if wait_for(&events, Duration::from_secs(1), |event| *event == expected).is_some() {
                created = Some(volume);
                break;
            }
        }
        let volume = created.expect("watch reports a created volume");

        // A skipped volume's creation is not reported, its removal is.
        skipped_probe.remove();
        let destroyed = SourceEvent::VolumeDestroyed(name(skipped_probe.name()));
        let skipped_created = SourceEvent::VolumeCreated(name(skipped_probe.name()));
        let seen = wait_for(&events, Duration::from_secs(10), |event| {
            *event == destroyed || *event == skipped_created
        });
        assert_eq!(seen, Some(destroyed));

        volume.remove();
        let destroyed = SourceEvent::VolumeDestroyed(name(volume.name()));
        assert!(
            wait_for(&events, Duration::from_secs(10), |event| *event == destroyed).is_some(),
            "watch reports the removed volume"
        );

        let container = TestContainer::create(test_image(), &[], false);
        assert!(
            wait_for(&events, Duration::from_secs(10), |event| *event
                == SourceEvent::ContainersChanged)
            .is_some(),
            "watch reports a created container"
        );
        drop(container);
        assert!(
            wait_for(&events, Duration::from_secs(10), |event| *event
                == SourceEvent::ContainersChanged)
            .is_some(),
            "watch reports a removed container"
        );

        let canceled_at = Instant::now();
        stop.cancel(CancelReason::Shutdown);
        let result = watcher.join().expect("the watcher does not panic");
        let took = canceled_at.elapsed();
        assert!(result.is_ok(), "{result:?}");
        assert!(took < Duration::from_millis(500), "watch took {took:?} to stop");
    });
}

#[test]
fn watch_with_a_canceled_token_returns_at_once() {
    let stop = CancelToken::new();
    stop.cancel(CancelReason::Shutdown);
    let started = Instant::now();
    local().watch(&stop, &mut |_| {}).unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
}

#[test]
fn a_missing_socket_is_unavailable() {
    let socket = format!("unix:///tmp/{}.sock", unique_name());
    let source =
        source(DockerSourceOptions { host: socket.clone(), ..DockerSourceOptions::default() });
    let chain = |err: &dyn std::error::Error| {
        let mut text = err.to_string();
        let mut cause = err.source();
        while let Some(err) = cause {
            text.push_str(&format!(": {err}"));
            cause = err.source();
        }
        text
    };
    match source.ping() {
        Err(err @ SourceError::Unavailable(_)) => {
            assert!(chain(&err).contains(&socket), "{}", chain(&err));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(source.volumes(), Err(SourceError::Unavailable(_))));
    assert!(matches!(source.users(), Err(SourceError::Unavailable(_))));
    let stop = CancelToken::new();
    assert!(matches!(source.watch(&stop, &mut |_| {}), Err(SourceError::Unavailable(_))));
}

/// A one-connection stand-in for Docker on a unix socket: it answers the
/// first request with `response` and returns the request line it got.
struct FakeDaemon {
    host: String,
    _dir: TempDir,
    server: std::thread::JoinHandle<String>,
}

impl FakeDaemon {
    fn start(response: &'static str) -> Self {
        let dir = TempDir::new("fake-docker");
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap() > 0 && header != "\r\n" {
                header.clear();
            }
            (&stream).write_all(response.as_bytes()).unwrap();
            // Closing the connection ends any stream the client follows.
            request_line.trim_end().to_owned()
        });
        FakeDaemon { host: format!("unix://{}", socket.display()), _dir: dir, server }
    }

    fn source(&self) -> DockerSource {
        source(DockerSourceOptions { host: self.host.clone(), ..DockerSourceOptions::default() })
    }

    fn request_line(self) -> String {
        self.server.join().expect("the fake daemon does not panic")
    }
}

#[test]
fn requests_use_api_version_1_41() {
    // Docker 20.10 refuses anything newer than 1.41, docker-api's default is 1.42.
    let body = r#"{"Version":"20.10.99","ApiVersion":"1.41"}"#;
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let daemon = FakeDaemon::start(response);
    assert_eq!(daemon.source().ping().unwrap(), "20.10.99");
    assert_eq!(
        daemon.request_line().split(' ').nth(1).map(|path| path.starts_with("/v1.41/version")),
        Some(true)
    );
}

#[test]
fn watch_fails_as_unavailable_when_the_event_stream_ends() {
    let event = r#"{"Type":"volume","Action":"create","Actor":{"ID":"pgdata","Attributes":{"driver":"local"}},"scope":"local","time":1,"timeNano":1}"#;
    let response: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
             {:x}\r\n{event}\n\r\n0\r\n\r\n",
            event.len() + 1
        )
        .into_boxed_str(),
    );
    let daemon = FakeDaemon::start(response);
    let source = daemon.source();
    let mut seen = Vec::new();
    let result = source.watch(&CancelToken::new(), &mut |event| seen.push(event));
    assert!(matches!(result, Err(SourceError::Unavailable(_))), "{result:?}");
    assert_eq!(seen, [SourceEvent::VolumeCreated(name("pgdata"))]);
    let request = daemon.request_line();
    assert!(request.starts_with("GET /v1.41/events?"), "{request}");
    assert!(request.contains("filters="), "{request}");
}
