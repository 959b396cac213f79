//! Unit tests: bind naming, the allowlist, host prefixes, event mapping and
//! the volumes directory check.
//! The tests against a real Docker Engine are in `tests/docker.rs`.

use std::path::{Path, PathBuf};

use volscan_domain::{SourceEvent, VolumeName};
use volscan_testing::TempDir;

use crate::DockerError;
use crate::events::map_event;
use crate::paths::{BindPolicy, bind_name, is_refused, normalise_prefix, with_prefix};
use crate::volumes_dir;

#[track_caller]
fn check_name(path: &str, expected: &str) {
    assert_eq!(bind_name(Path::new(path)).as_str(), expected, "path {path:?}");
}

#[test]
fn bind_names_are_sanitised_paths_with_a_hash() {
    // FNV-1a 64 of "/srv/data" is 0x…; its low 32 bits end the name.
    let hash = |path: &str| {
        let full = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{:08x}", full as u32)
    };
    check_name("/srv/data", &format!("bind-srv_data-{}", hash("/srv/data")));
    check_name("/srv/my data/ä", &format!("bind-srv_my_data___-{}", hash("/srv/my data/ä")));
    check_name("/a.b-c_d", &format!("bind-a.b-c_d-{}", hash("/a.b-c_d")));
    // Known value: FNV-1a 64 of the empty input is the offset basis.
    assert_eq!(hash(""), "84222325");
}

#[test]
fn bind_names_are_deterministic_and_distinct() {
    let a = bind_name(Path::new("/srv/a b"));
    assert_eq!(a, bind_name(Path::new("/srv/a b")));
    // Both sanitise to `srv_a_b`, the hash tells them apart.
    let b = bind_name(Path::new("/srv/a_b"));
    assert_ne!(a, b);
    assert!(a.as_str().starts_with("bind-srv_a_b-") && b.as_str().starts_with("bind-srv_a_b-"));
}

#[test]
fn long_bind_paths_are_cut_to_fit_a_name() {
    let long = format!("/{}", "x".repeat(600));
    let name = bind_name(Path::new(&long));
    assert_eq!(name.as_str().len(), 255);
    assert!(name.as_str().starts_with("bind-xxx"));
    // Paths that differ only past the cut still get distinct names.
    let longer = format!("{long}y");
    let other = bind_name(Path::new(&longer));
    assert_eq!(other.as_str().len(), 255);
    assert_ne!(name, other);
    assert!(VolumeName::new(other.as_str()).is_ok());
}

#[test]
fn system_directories_are_refused() {
    for path in ["/", "/proc", "/proc/1", "/sys", "/sys/fs", "/dev", "/dev/shm", "relative"] {
        assert!(is_refused(Path::new(path)), "{path} should be refused");
    }
    for path in ["/devices", "/procfs", "/srv", "/tmp/x", "/system"] {
        assert!(!is_refused(Path::new(path)), "{path} should be allowed");
    }
}

#[test]
fn the_host_prefix_is_put_before_the_path_as_text() {
    let prefix = normalise_prefix(Some(Path::new("/host/")));
    assert_eq!(prefix.as_deref(), Some(Path::new("/host")));
    assert_eq!(
        with_prefix(prefix.as_deref(), Path::new("/var/lib/docker/volumes/x/_data")),
        PathBuf::from("/host/var/lib/docker/volumes/x/_data")
    );
    assert_eq!(normalise_prefix(Some(Path::new("/"))), None);
    assert_eq!(normalise_prefix(Some(Path::new(""))), None);
    assert_eq!(with_prefix(None, Path::new("/a")), PathBuf::from("/a"));
}

#[track_caller]
fn refused_entry(prefix: Option<&Path>, entry: &Path) -> String {
    match BindPolicy::new(prefix, &[entry.to_path_buf()]) {
        Err(
            err
            @ (DockerError::AllowlistRefused { .. } | DockerError::AllowlistUnresolvable { .. }),
        ) => {
            let message = err.to_string();
            assert!(message.contains(&entry.display().to_string()), "{message} names no entry");
            message
        }
        other => panic!("{} should be refused, got {other:?}", entry.display()),
    }
}

#[test]
fn the_allowlist_refuses_system_and_missing_directories() {
    for entry in ["/", "/proc", "/sys/fs", "/dev"] {
        refused_entry(None, Path::new(entry));
    }
    let dir = TempDir::new("allowlist");
    refused_entry(None, &dir.path().join("missing"));
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(refused_entry(None, &file).contains("not a directory"));
    // A symlink to / is refused for where it leads.
    let to_root = dir.path().join("to-root");
    std::os::unix::fs::symlink("/", &to_root).unwrap();
    assert!(refused_entry(None, &to_root).contains("resolves to /,"));
    assert!(refused_entry(None, Path::new("relative/dir")).contains("absolute"));
}

#[test]
fn the_allowlist_is_canonical_and_compared_by_component() {
    let dir = TempDir::new("allowlist");
    let allowed = dir.path().join("allowed");
    let sibling = dir.path().join("allowed-not"); // Shares a text prefix only.
    let outside = dir.path().join("outside");
    for path in [&allowed, &sibling, &outside] {
        std::fs::create_dir(path).unwrap();
    }
    std::fs::create_dir(allowed.join("inner")).unwrap();
    let link_in = dir.path().join("link-in");
    std::os::unix::fs::symlink(&allowed, &link_in).unwrap();
    let escape = allowed.join("escape");
    std::os::unix::fs::symlink(&outside, &escape).unwrap();

    // The entry itself is given through a symlink; it is canonicalised.
    let policy = BindPolicy::new(None, std::slice::from_ref(&link_in)).unwrap();
    let canonical = allowed.canonicalize().unwrap();
    assert_eq!(policy.allowlist(), std::slice::from_ref(&canonical));

    let inner = policy.resolve(&allowed.join("inner")).unwrap();
    assert_eq!(inner.local, canonical.join("inner"));
    assert_eq!(inner.host, canonical.join("inner"));
    assert_eq!(policy.resolve(&link_in.join("inner")).unwrap(), inner);
    assert_eq!(policy.resolve(&allowed).unwrap().host, canonical);
    for refused in [&sibling, &outside, &escape] {
        let reason = policy.resolve(refused).unwrap_err();
        assert!(reason.contains("outside the bind allowlist"), "{reason}");
    }
    assert!(policy.resolve(&allowed.join("missing")).unwrap_err().contains("cannot be resolved"));
    assert!(policy.resolve(&allowed.join("inner/..")).unwrap_err().contains("plain absolute"));
}

#[test]
fn the_allowlist_lives_under_the_host_prefix() {
    let host = TempDir::new("host-prefix");
    let data = host.path().join("srv/data");
    std::fs::create_dir_all(data.join("app")).unwrap();
    let prefix = host.path().canonicalize().unwrap();
    let policy = BindPolicy::new(Some(&prefix), &[PathBuf::from("/srv/data")]).unwrap();
    assert_eq!(policy.allowlist(), [prefix.join("srv/data")]);
    let bind = policy.resolve(Path::new("/srv/data/app")).unwrap();
    assert_eq!(bind.local, prefix.join("srv/data/app"));
    assert_eq!(bind.host, PathBuf::from("/srv/data/app"));
    // The host's root, seen through the prefix, is still refused.
    assert!(refused_entry(Some(&prefix), Path::new("/")).contains("never scanned"));
    // A symlink leading out of the prefix is refused.
    std::os::unix::fs::symlink("/tmp", host.path().join("srv/out")).unwrap();
    assert!(
        refused_entry(Some(&prefix), Path::new("/srv/out")).contains("outside the host prefix")
    );
}

#[test]
fn docker_events_map_to_source_events() {
    let skip = |name: &VolumeName| name.as_str().starts_with("docker_");
    let vol = |name: &str| VolumeName::new(name).unwrap();
    assert_eq!(
        map_event("volume", "create", "pgdata", skip),
        Some(SourceEvent::VolumeCreated(vol("pgdata")))
    );
    assert_eq!(
        map_event("volume", "destroy", "pgdata", skip),
        Some(SourceEvent::VolumeDestroyed(vol("pgdata")))
    );
    assert_eq!(map_event("volume", "create", "docker_x", skip), None);
    assert_eq!(
        map_event("volume", "destroy", "docker_x", skip),
        Some(SourceEvent::VolumeDestroyed(vol("docker_x")))
    );
    assert_eq!(map_event("volume", "create", "_bad", skip), None);
    assert_eq!(map_event("volume", "mount", "pgdata", skip), None);
    assert_eq!(map_event("container", "create", "abc", skip), Some(SourceEvent::ContainersChanged));
    assert_eq!(
        map_event("container", "destroy", "abc", skip),
        Some(SourceEvent::ContainersChanged)
    );
    assert_eq!(map_event("container", "start", "abc", skip), None);
    assert_eq!(map_event("network", "create", "abc", skip), None);
}

#[test]
fn the_volumes_dir_check_names_the_path_and_the_mount_that_fixes_it() {
    let dir = TempDir::new("docker-volumes-dir");
    let prefix = dir.path().join("host");
    let local = format!("{}/var/lib/docker/volumes", prefix.display());
    let missing = volumes_dir::problem(&prefix, Path::new("/var/lib/docker"));
    assert_eq!(
        missing.as_deref(),
        Some(
            format!(
                "{local} is missing: mount the host's /var/lib/docker/volumes at {local} \
                 (read-only), or set SCAN_HOST_PREFIX to where the host's directories are mounted"
            )
            .as_str()
        )
    );

    std::fs::create_dir_all(prefix.join("var/lib/docker")).unwrap();
    std::fs::write(&local, b"not a directory").unwrap();
    let file = volumes_dir::problem(&prefix, Path::new("/var/lib/docker")).unwrap();
    assert!(file.starts_with(&format!("{local} is not a directory: mount the host's")), "{file}");

    std::fs::remove_file(&local).unwrap();
    std::fs::create_dir(&local).unwrap();
    assert_eq!(volumes_dir::problem(&prefix, Path::new("/var/lib/docker")), None);
    // Another data root is looked for below the same prefix.
    let other = volumes_dir::problem(&prefix, Path::new("/srv/docker")).unwrap();
    assert!(other.contains("mount the host's /srv/docker/volumes at"), "{other}");
}
