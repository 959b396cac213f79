//! `cargo xtask image [--tag T]`: builds the container image
//! `volscan:<version>` from this checkout with no registry access.
//!
//! The image is `FROM scratch` plus one layer, `rootfs.tar`, written here:
//! the release binary (stripped) with the file capability
//! `cap_dac_read_search=p`, the shared libraries `ldd` lists and the loader,
//! `/etc/passwd` and `/etc/group` with the user `volscan` (10001:10001),
//! `/etc/nsswitch.conf` (`hosts: files dns`; glibc 2.34 and later hold those
//! modules, an older one needs its `libnss_*` and `libresolv` copied too),
//! and `/data` owned by that user.
//! `deploy/Dockerfile` adds the metadata (user, environment, volume,
//! healthcheck, entrypoint) around it; `docker build` runs in
//! `target/image/<tag>/context`, which holds only those two files.
//! Then one `scan` in the image checks that the builder kept the file capability.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::rootfs::{Entry, write_archive};

/// The image's user and group ids: fixed, so that the files it writes in its
/// `/data` volume keep their owner from one image version to the next.
pub const USER: (u32, u32) = (10001, 10001);

/// Where the binary is in the image (the Dockerfile's entrypoint and healthcheck).
const BINARY_IN_IMAGE: &str = "usr/local/bin/volscan-server";

/// `security.capability` for `cap_dac_read_search=p`, as the kernel stores it
/// (`VFS_CAP_REVISION_2`, little-endian): `magic_etc` without the effective
/// bit, then permitted and inheritable for capabilities 0–31 and 32–63;
/// `CAP_DAC_READ_SEARCH` is bit 2. Without the effective bit the kernel still
/// runs the binary where the capability is not available; the binary raises
/// it itself when permitted (`bin/volscan-server/src/capabilities.rs`).
const CAP_DAC_READ_SEARCH_PERMITTED: [u8; 20] =
    [0, 0, 0, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The image's `/etc/passwd`: root (for file ownership) and the runtime user.
const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      volscan:x:10001:10001:volscan:/nonexistent:/sbin/nologin\n";

/// The image's `/etc/group`.
const GROUP: &str = "root:x:0:\nvolscan:x:10001:\n";

/// The image's `/etc/nsswitch.conf`: host names from Docker's `/etc/hosts`,
/// then its DNS (`/etc/resolv.conf`), as a PostgreSQL host or `DOCKER_HOST` needs.
const NSSWITCH: &str = "# volscan image: name lookups for libpq and DOCKER_HOST\n\
                        passwd: files\ngroup: files\nhosts: files dns\n";

/// Builds the release binary and the image; prints its tag and size.
pub fn image(args: &[String]) -> anyhow::Result<()> {
    let tag = match args {
        [] => None,
        [flag, tag] if flag == "--tag" => Some(tag.clone()),
        [flag] if flag.starts_with("--tag=") => Some(flag["--tag=".len()..].to_owned()),
        _ => bail!("usage: cargo xtask image [--tag NAME:TAG]"),
    };
    let (version, target) = version_and_target_dir()?;
    let tag = tag.unwrap_or_else(|| format!("volscan:{version}"));

    let mut build = crate::cargo();
    build.args(["build", "--release", "-p", "volscan-server"]);
    crate::run("cargo build --release -p volscan-server", build)?;
    let binary = target.join("release/volscan-server");

    eprintln!("\n==> root filesystem");
    // One directory per tag, so that builds of different tags (test runs) never meet.
    let work = target.join("image").join(tag.replace(['/', ':'], "_"));
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("failed to clear {}", work.display()))?;
    }
    let context = work.join("context");
    std::fs::create_dir_all(&context)
        .with_context(|| format!("failed to create {}", context.display()))?;
    let stripped = work.join("volscan-server.stripped");
    strip(&binary, &stripped)?;
    let mut libraries = shared_libraries(&binary)?;
    libraries.extend(nss_modules(&libraries)?);
    let entries = root_filesystem(&stripped, &libraries)?;
    for entry in &entries {
        let size = entry.contents.as_ref().map_or(0, Vec::len);
        eprintln!("  /{} ({size} bytes)", entry.path);
    }
    let archive = context.join("rootfs.tar");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&archive)
            .with_context(|| format!("failed to create {}", archive.display()))?,
    );
    write_archive(&mut file, &entries, source_date_epoch())
        .and_then(|()| std::io::Write::flush(&mut file))
        .with_context(|| format!("failed to write {}", archive.display()))?;
    let dockerfile = crate::root().join("deploy/Dockerfile");
    std::fs::copy(&dockerfile, context.join("Dockerfile"))
        .with_context(|| format!("failed to copy {}", dockerfile.display()))?;

    let mut docker = Command::new("docker");
    docker
        .args(["build", "--build-arg", &format!("VERSION={version}"), "--tag", &tag])
        .arg(&context);
    crate::run(&format!("docker build --tag {tag}"), docker)?;
    check_capability(&tag, &work)?;
    let size = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", &tag])
        .output()
        .context("failed to run docker image inspect")?;
    let bytes: u64 = String::from_utf8_lossy(&size.stdout).trim().parse().unwrap_or(0);
    eprintln!("\n{tag}: {:.1} MiB ({bytes} bytes)", bytes as f64 / (1024.0 * 1024.0));
    // Kept after a failure, for a look; the image holds everything once built.
    std::fs::remove_dir_all(&work).with_context(|| format!("failed to remove {}", work.display()))
}

/// Runs the image's `scan` as its non-root user with only `DAC_READ_SEARCH`
/// on a directory holding a `0700` directory it does not own: every entry must
/// be read, which proves the builder kept the binary's file capability (a
/// builder that drops extended attributes would give a partial scan).
fn check_capability(tag: &str, work: &Path) -> anyhow::Result<()> {
    eprintln!("\n==> the binary in {tag} holds DAC_READ_SEARCH");
    let probe = work.join("probe");
    if probe.exists() {
        std::fs::remove_dir_all(&probe)
            .with_context(|| format!("failed to clear {}", probe.display()))?;
    }
    let locked = probe.join("locked");
    std::fs::create_dir_all(&locked).context("failed to create the probe directory")?;
    std::fs::write(locked.join("file"), b"volscan").context("failed to write the probe file")?;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700))
        .context("failed to lock the probe directory")?;
    let mount = format!("{}:/probe:ro", probe.display());
    let output = Command::new("docker")
        .args(["run", "--rm", "--read-only", "--cap-drop", "ALL", "--cap-add", "DAC_READ_SEARCH"])
        .args(["-v", &mount, tag, "scan", "/probe", "--json"])
        .output()
        .context("failed to run docker")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let usage: serde_json::Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!("the probe scan failed: {stdout}{}", String::from_utf8_lossy(&output.stderr))
    })?;
    if usage["error_count"] != 0 || usage["file_count"] != 1 {
        bail!(
            "{tag}'s binary could not read a 0700 directory with DAC_READ_SEARCH ({usage}): the \
             builder dropped its file capability; build with the classic builder \
             (DOCKER_BUILDKIT=0)"
        );
    }
    eprintln!("ok");
    Ok(())
}

/// volscan-server's version and cargo's target directory, from `cargo metadata`.
fn version_and_target_dir() -> anyhow::Result<(String, PathBuf)> {
    let output = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("failed to run cargo metadata")?;
    anyhow::ensure!(output.status.success(), "cargo metadata failed");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let packages = metadata["packages"].as_array().context("no packages in cargo metadata")?;
    let server = packages
        .iter()
        .find(|package| package["name"] == "volscan-server")
        .context("volscan-server is not in the workspace")?;
    let version = server["version"].as_str().context("volscan-server has no version")?;
    let target = metadata["target_directory"].as_str().context("no target directory")?;
    Ok((version.to_owned(), PathBuf::from(target)))
}

/// Copies `binary` to `to` without its debug information and symbol table
/// (95 MB to 14 MB; keeping the symbols alone would take 4 MB more, which the
/// 20 MiB goal has no room for). A backtrace from the image shows addresses,
/// which the unstripped `target/release/volscan-server` of the same build (the
/// same build id) can name.
fn strip(binary: &Path, to: &Path) -> anyhow::Result<()> {
    let mut strip = Command::new("strip");
    strip.arg("--strip-all").arg("-o").arg(to).arg(binary);
    crate::run("strip --strip-all (binutils)", strip)
}

/// The shared objects `binary` loads, the loader included, as `ldd` lists
/// them: the path the loader looks for, which is also where they go in the image.
fn shared_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg(binary).output().context("failed to run ldd")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "ldd {} failed: {listing}", binary.display());
    parse_ldd(&listing)
}

/// The absolute paths in `ldd`'s output; the vDSO has none and is skipped.
fn parse_ldd(listing: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for line in listing.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let target = line.split_once(" => ").map_or(line, |(_, target)| target);
        if target.starts_with("not found") {
            bail!("ldd: {line}");
        }
        let path = target.split(" (").next().unwrap_or(target);
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    anyhow::ensure!(!paths.is_empty(), "ldd listed no library: {listing}");
    Ok(paths)
}

/// The NSS modules `hosts: files dns` loads at run time, which `ldd` cannot
/// see: none with glibc 2.34 and later, which build them into libc; before
/// that, `libnss_files`, `libnss_dns` and `libresolv` from libc's directory.
fn nss_modules(libraries: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("ldd").arg("--version").output().context("failed to run ldd")?;
    let version = String::from_utf8_lossy(&output.stdout);
    let first = version.lines().next().unwrap_or_default();
    let (major, minor) = glibc_version(first)
        .with_context(|| format!("not a glibc ldd ({first:?}); the image needs glibc"))?;
    if (major, minor) >= (2, 34) {
        return Ok(Vec::new());
    }
    let libc = libraries
        .iter()
        .find(|path| path.file_name().is_some_and(|name| name == "libc.so.6"))
        .context("the binary does not link libc.so.6")?;
    let dir = libc.parent().context("libc.so.6 has no directory")?;
    Ok(["libnss_files.so.2", "libnss_dns.so.2", "libresolv.so.2"].map(|name| dir.join(name)).into())
}

/// glibc's version from the first line of `ldd --version`
/// (`ldd (Debian GLIBC 2.36-9+deb12u14) 2.36`).
fn glibc_version(first_line: &str) -> Option<(u32, u32)> {
    if !first_line.to_ascii_lowercase().contains("glibc") && !first_line.contains("GNU libc") {
        return None;
    }
    let (major, minor) = first_line.rsplit(' ').next()?.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Every entry of the image's one layer, parents before children.
fn root_filesystem(binary: &Path, libraries: &[PathBuf]) -> anyhow::Result<Vec<Entry>> {
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))
    };
    let mut files = vec![
        Entry::file("etc/passwd", 0o644, PASSWD.as_bytes().to_vec()),
        Entry::file("etc/group", 0o644, GROUP.as_bytes().to_vec()),
        Entry::file("etc/nsswitch.conf", 0o644, NSSWITCH.as_bytes().to_vec()),
    ];
    for library in libraries {
        let inside = library.strip_prefix("/").unwrap_or(library);
        let inside = inside.to_str().context("a library path that is not UTF-8")?;
        files.push(Entry::file(inside, 0o755, read(library)?));
    }
    let mut server = Entry::file(BINARY_IN_IMAGE, 0o755, read(binary)?);
    server.xattrs.push(("security.capability".to_owned(), CAP_DAC_READ_SEARCH_PERMITTED.to_vec()));
    files.push(server);

    // Sorted, a directory comes before everything below it.
    let mut dirs = std::collections::BTreeSet::new();
    for file in &files {
        for dir in Path::new(&file.path).ancestors().skip(1) {
            if !dir.as_os_str().is_empty() {
                dirs.insert(dir.to_string_lossy().into_owned());
            }
        }
    }
    let mut entries: Vec<Entry> = dirs.iter().map(|dir| Entry::dir(dir, 0o755, (0, 0))).collect();
    entries.push(Entry::dir("data", 0o700, USER));
    entries.extend(files);
    Ok(entries)
}

/// The time every file in the image carries: `SOURCE_DATE_EPOCH` when set
/// (reproducible builds), else the epoch itself, so that the same inputs give
/// the same layer.
fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|value| value.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_every_library_and_the_loader() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd8a5f2000)\n\
             \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
             \tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f2)\n\
             \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3)\n\
             \t/lib64/ld-linux-x86-64.so.2 (0x00007f4)\n";
        let paths = parse_ldd(listing).unwrap();
        let expected = [
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ];
        assert_eq!(paths, expected.map(PathBuf::from));
        let missing = parse_ldd("\tlibpq.so.5 => not found\n").unwrap_err();
        assert!(missing.to_string().contains("libpq.so.5"), "{missing}");
    }

    #[test]
    fn the_glibc_version_decides_whether_nss_modules_are_copied() {
        assert_eq!(glibc_version("ldd (Debian GLIBC 2.36-9+deb12u14) 2.36"), Some((2, 36)));
        assert_eq!(glibc_version("ldd (Ubuntu GLIBC 2.31-0ubuntu9.16) 2.31"), Some((2, 31)));
        assert_eq!(glibc_version("ldd (GNU libc) 2.39"), Some((2, 39)));
        assert_eq!(glibc_version("musl libc (x86_64)"), None);
    }

    #[test]
    fn the_capability_is_permitted_dac_read_search_without_the_effective_bit() {
        let word = |at: usize| {
            u32::from_le_bytes(CAP_DAC_READ_SEARCH_PERMITTED[at..at + 4].try_into().unwrap())
        };
        assert_eq!(word(0), 0x0200_0000, "VFS_CAP_REVISION_2, no VFS_CAP_FLAGS_EFFECTIVE");
        assert_eq!(word(4), 1 << 2, "permitted: CAP_DAC_READ_SEARCH (2)");
        assert_eq!((word(8), word(12), word(16)), (0, 0, 0));
    }
}
