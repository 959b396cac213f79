//! Printing the effective configuration as `NAME=value` lines, for `volscan-server check-config`.
//!
//! Every value is written in the syntax this crate parses, so the output can be pasted back as
//! environment variables (tests check the round trip).
//! Secrets never appear: `AUTH_TOKEN` prints as `***`, and passwords in URLs as `***`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::secret::MASK;
use crate::{
    Config, DatabaseConfig, DockerConfig, HttpConfig, LifecycleConfig, LogConfig, ScanConfig,
    duration,
};

/// See [`Config::render`].
pub(crate) fn render(config: &Config) -> String {
    // Destructured completely, so that a new field is a compile error until it is rendered.
    let Config { scan, lifecycle, database, docker, http, log } = config;
    let ScanConfig {
        enabled,
        interval,
        concurrency,
        timeout_per_volume,
        methods_order,
        bind_mounts_enabled,
        bind_allowlist,
        skip_pattern,
        max_retries,
        host_prefix,
    } = scan;
    let LifecycleConfig {
        enabled: lifecycle_enabled,
        sizes_ttl_days,
        interval: lifecycle_interval,
    } = lifecycle;
    let DatabaseConfig { url } = database;
    let DockerConfig { host } = docker;
    let HttpConfig { bind, rate_limit_rpm, auth_token } = http;
    let LogConfig { filter } = log;

    let methods: Vec<&str> = methods_order.iter().map(|method| method.as_str()).collect();
    let lines: [(&str, String); 19] = [
        ("SCAN_ENABLED", enabled.as_str().to_owned()),
        ("SCAN_INTERVAL", duration::format(*interval)),
        ("SCAN_CONCURRENCY", concurrency.to_string()),
        ("SCAN_TIMEOUT_PER_VOLUME", duration::format(*timeout_per_volume)),
        ("SCAN_METHODS_ORDER", methods.join(",")),
        ("SCAN_BIND_MOUNTS_ENABLED", bind_mounts_enabled.to_string()),
        ("SCAN_BIND_ALLOWLIST", path_list(bind_allowlist)),
        ("SCAN_SKIP_PATTERN", skip_pattern.as_ref().map_or("", |regex| regex.as_str()).to_owned()),
        ("SCAN_MAX_RETRIES", max_retries.to_string()),
        ("SCAN_HOST_PREFIX", host_prefix.as_deref().map_or(String::new(), path_text)),
        ("LIFECYCLE_ENABLED", lifecycle_enabled.to_string()),
        ("SIZES_TTL_DAYS", sizes_ttl_days.to_string()),
        ("LIFECYCLE_INTERVAL", duration::format(*lifecycle_interval)),
        ("DATABASE_URL", url.to_string()),
        ("DOCKER_HOST", host.to_string()),
        ("VOLSCAN_BIND", bind.to_string()),
        ("RATE_LIMIT_RPM", rate_limit_rpm.to_string()),
        ("AUTH_TOKEN", auth_token.as_ref().map_or(String::new(), |_| MASK.to_owned())),
        ("RUST_LOG", filter.clone()),
    ];
    let mut out = String::new();
    for (name, value) in lines {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{name}={}", shell_quote(&value));
    }
    out
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `a,b` when no path contains a comma (or starts with `[`), else the JSON form, which is always
/// unambiguous.
fn path_list(paths: &[PathBuf]) -> String {
    let texts: Vec<String> = paths.iter().map(|path| path_text(path)).collect();
    if texts.iter().any(|text| text.contains(',') || text.starts_with('[')) {
        // Serialising a list of strings cannot fail.
        serde_json::to_string(&texts).unwrap_or_default()
    } else {
        texts.join(",")
    }
}

/// Single-quotes `value` unless every character is safe unquoted in a POSIX shell.
pub(crate) fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:,@%+=".contains(c);
    if value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}
