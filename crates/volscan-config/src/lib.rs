//! volscan's configuration: every variable of SPEC §2, loaded from defaults, an optional TOML file
//! and the environment, and validated once into the typed [`Config`].
//!
//! This is the only library crate that reads environment variables or files.
//! Code downstream never sees a raw string: it gets `Duration`s, `SocketAddr`s, enums, a compiled
//! `Regex`, and secrets wrapped so that they print as `***`.
//! This crate depends on no other volscan crate; other crates take option structs of their own,
//! which the binary fills from a `Config`.
//! It does not touch the filesystem beyond reading the TOML file: allow-listed paths are checked
//! lexically here and canonicalised by the scheduler at start-up.

mod duration;
mod error;
mod render;
mod secret;
mod source;
mod types;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

pub use crate::error::{ConfigError, Origin};
pub use crate::secret::{MASK, Secret};
pub use crate::types::{
    DatabaseKind, DatabaseUrl, DockerHost, DockerHostKind, ScanEnabled, ScanMethodName,
};

use crate::value::{Raw, mask_all, mask_nothing, mask_password};

/// Every configuration variable of SPEC §2, in SPEC order. The TOML keys are these names in lower
/// case.
pub const VARIABLES: &[&str] = &[
    "SCAN_ENABLED",
    "SCAN_INTERVAL",
    "SCAN_CONCURRENCY",
    "SCAN_TIMEOUT_PER_VOLUME",
    "SCAN_METHODS_ORDER",
    "SCAN_BIND_MOUNTS_ENABLED",
    "SCAN_BIND_ALLOWLIST",
    "SCAN_SKIP_PATTERN",
    "SCAN_MAX_RETRIES",
    "SCAN_HOST_PREFIX",
    "LIFECYCLE_ENABLED",
    "SIZES_TTL_DAYS",
    "LIFECYCLE_INTERVAL",
    "DATABASE_URL",
    "DOCKER_HOST",
    "VOLSCAN_BIND",
    "RATE_LIMIT_RPM",
    "AUTH_TOKEN",
    "RUST_LOG",
];

/// The environment variable naming the optional TOML file. An empty value means no file.
pub const CONFIG_FILE_VARIABLE: &str = "VOLSCAN_CONFIG";

/// The default `SCAN_SKIP_PATTERN`.
pub const DEFAULT_SKIP_PATTERN: &str = "^docker_|^builder_|^containerd";

/// The whole configuration, validated. `Default` is the SPEC §2 defaults.
///
/// `Debug` masks `AUTH_TOKEN` and the database password, so a `Config` may be logged.
#[derive(Debug, Clone)]
pub struct Config {
    /// Periodic and manual scans.
    pub scan: ScanConfig,
    /// Retention of old rows.
    pub lifecycle: LifecycleConfig,
    /// Where history is stored.
    pub database: DatabaseConfig,
    /// How the Docker Engine is reached.
    pub docker: DockerConfig,
    /// The HTTP API.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
}

/// The `SCAN_*` variables.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// `SCAN_ENABLED`: whether periodic scans are scheduled.
    pub enabled: ScanEnabled,
    /// `SCAN_INTERVAL`: time between periodic runs; never zero.
    pub interval: Duration,
    /// `SCAN_CONCURRENCY`: worker count, 1 to 64.
    pub concurrency: NonZeroUsize,
    /// `SCAN_TIMEOUT_PER_VOLUME`: hard limit for one scan; never zero.
    pub timeout_per_volume: Duration,
    /// `SCAN_METHODS_ORDER`: methods to try, in order; non-empty, no repeats.
    pub methods_order: Vec<ScanMethodName>,
    /// `SCAN_BIND_MOUNTS_ENABLED`: also scan containers' bind mounts.
    pub bind_mounts_enabled: bool,
    /// `SCAN_BIND_ALLOWLIST`: absolute, lexically normalised host directories under which bind
    /// mounts may be scanned; never `/` nor under `/proc`, `/sys` or `/dev`. Not yet canonicalised:
    /// symlinks are unresolved.
    pub bind_allowlist: Vec<PathBuf>,
    /// `SCAN_SKIP_PATTERN`: volumes whose name matches are never scanned; `None` (set empty) skips
    /// nothing.
    /// `Regex::as_str` gives the pattern as written.
    pub skip_pattern: Option<Regex>,
    /// `SCAN_MAX_RETRIES`: retries after a failed attempt, 0 to 20.
    pub max_retries: u32,
    /// `SCAN_HOST_PREFIX`: absolute, lexically normalised path to put before Docker's `Mountpoint`
    /// when volscan runs in a container; `None` when empty.
    /// The mountpoint is absolute, so prepend it as text: `Path::join` would discard the prefix.
    pub host_prefix: Option<PathBuf>,
}

/// The retention loop's variables.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `LIFECYCLE_ENABLED`: retention loop on or off.
    pub enabled: bool,
    /// `SIZES_TTL_DAYS`: age in days, 1 to 36500, after which rows are deleted.
    pub sizes_ttl_days: NonZeroU32,
    /// `LIFECYCLE_INTERVAL`: time between retention passes; never zero.
    pub interval: Duration,
}

impl LifecycleConfig {
    /// `SIZES_TTL_DAYS` as a `Duration` of whole days.
    pub fn sizes_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.sizes_ttl_days.get()) * 24 * 60 * 60)
    }
}

/// The database.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`.
    pub url: DatabaseUrl,
}

/// The Docker Engine.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `DOCKER_HOST`.
    pub host: DockerHost,
}

/// The HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `VOLSCAN_BIND`: listen address.
    pub bind: SocketAddr,
    /// `RATE_LIMIT_RPM`: `POST` requests a minute per client address, 1 to 1000000.
    pub rate_limit_rpm: NonZeroU32,
    /// `AUTH_TOKEN`: the bearer token that `POST` requests need; `None` when empty.
    pub auth_token: Option<Secret>,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `RUST_LOG`: a non-empty `tracing_subscriber::EnvFilter` filter, such as `info`, whose
    /// every directive `EnvFilter::builder().parse` accepts (checked when loading).
    pub filter: String,
}

/// Builds a `NonZero*` constant at compile time, so that no runtime check can fail.
macro_rules! nonzero {
    ($type:ty, $value:expr) => {
        const {
            match <$type>::new($value) {
                Some(value) => value,
                None => panic!("zero"),
            }
        }
    };
}

impl Default for Config {
    fn default() -> Config {
        Config {
            scan: ScanConfig {
                enabled: ScanEnabled::Auto,
                interval: Duration::from_secs(6 * 60 * 60),
                concurrency: nonzero!(NonZeroUsize, 2),
                timeout_per_volume: Duration::from_secs(2 * 60),
                methods_order: ScanMethodName::ALL.to_vec(),
                bind_mounts_enabled: false,
                bind_allowlist: Vec::new(),
                // The pattern is a constant, and `default_skip_pattern_compiles` tests that it
                // compiles.
                skip_pattern: Some(Regex::new(DEFAULT_SKIP_PATTERN).expect("constant regex")),
                max_retries: 3,
                host_prefix: None,
            },
            lifecycle: LifecycleConfig {
                enabled: true,
                sizes_ttl_days: nonzero!(NonZeroU32, 30),
                interval: Duration::from_secs(24 * 60 * 60),
            },
            database: DatabaseConfig { url: DatabaseUrl::default_sqlite() },
            docker: DockerConfig { host: DockerHost::default_socket() },
            http: HttpConfig {
                bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
                rate_limit_rpm: nonzero!(NonZeroU32, 60),
                auth_token: None,
            },
            log: LogConfig { filter: "info".to_owned() },
        }
    }
}

impl Config {
    /// Loads the configuration of this process.
    ///
    /// Precedence, lowest first:
    /// 1. the defaults of SPEC §2 ([`Config::default`]);
    /// 2. the TOML file named by `VOLSCAN_CONFIG`, if that variable is set and not empty; a missing
    ///    file is an error, and so is an unknown key;
    /// 3. the environment variables of [`VARIABLES`].
    ///
    /// Any invalid value is an error naming the variable, its source and the accepted form: nothing
    /// is silently defaulted. There are no command-line flags yet.
    pub fn load() -> Result<Config, ConfigError> {
        let file = match std::env::var_os(CONFIG_FILE_VARIABLE) {
            Some(path) if path.is_empty() => None,
            Some(path) => Some(PathBuf::from(path)),
            None => None,
        };
        let mut variables = Vec::new();
        for &name in VARIABLES {
            if let Some(value) = std::env::var_os(name) {
                variables.push((name.to_owned(), into_string(name, value)?));
            }
        }
        Config::from_sources(file.as_deref(), variables)
    }

    /// Loads the configuration from `file` (a TOML file, if any) and `env` (environment variables
    /// as name/value pairs), with the precedence of [`Config::load`]. Names in `env` other than
    /// [`VARIABLES`] are ignored.
    ///
    /// Tests use this instead of changing the process environment.
    pub fn from_sources<I, K, V>(file: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut variables = BTreeMap::new();
        for (name, value) in env {
            let name = name.into();
            if let Some(&known) = VARIABLES.iter().find(|&&known| known == name) {
                variables.insert(known, value.into());
            }
        }
        let raw = source::merge(file, &variables)?;
        let origin_of = |variable: &'static str| match file {
            Some(path) if !variables.contains_key(variable) => Origin::File(path.to_owned()),
            _ => Origin::Environment,
        };
        Config::from_raw(raw, &origin_of)
    }

    /// Parses and validates every raw value once, over the defaults.
    fn from_raw(
        raw: source::RawConfig,
        origin_of: &dyn Fn(&'static str) -> Origin,
    ) -> Result<Config, ConfigError> {
        // Destructured completely, so that a new variable cannot be forgotten here.
        let source::RawConfig {
            scan_enabled,
            scan_interval,
            scan_concurrency,
            scan_timeout_per_volume,
            scan_methods_order,
            scan_bind_mounts_enabled,
            scan_bind_allowlist,
            scan_skip_pattern,
            scan_max_retries,
            scan_host_prefix,
            lifecycle_enabled,
            sizes_ttl_days,
            lifecycle_interval,
            database_url,
            docker_host,
            volscan_bind,
            rate_limit_rpm,
            auth_token,
            rust_log,
        } = raw;
        let field = Field { origin_of };
        let mut config = Config::default();
        let scan = &mut config.scan;
        field.set(&mut scan.enabled, "SCAN_ENABLED", scan_enabled, value::scan_enabled)?;
        field.set(&mut scan.interval, "SCAN_INTERVAL", scan_interval, value::duration)?;
        field.set(
            &mut scan.concurrency,
            "SCAN_CONCURRENCY",
            scan_concurrency,
            value::concurrency,
        )?;
        field.set(
            &mut scan.timeout_per_volume,
            "SCAN_TIMEOUT_PER_VOLUME",
            scan_timeout_per_volume,
            value::duration,
        )?;
        field.set(
            &mut scan.methods_order,
            "SCAN_METHODS_ORDER",
            scan_methods_order,
            value::methods,
        )?;
        field.set(
            &mut scan.bind_mounts_enabled,
            "SCAN_BIND_MOUNTS_ENABLED",
            scan_bind_mounts_enabled,
            value::boolean,
        )?;
        field.set(
            &mut scan.bind_allowlist,
            "SCAN_BIND_ALLOWLIST",
            scan_bind_allowlist,
            value::allowlist,
        )?;
        field.set(
            &mut scan.skip_pattern,
            "SCAN_SKIP_PATTERN",
            scan_skip_pattern,
            value::skip_pattern,
        )?;
        field.set(&mut scan.max_retries, "SCAN_MAX_RETRIES", scan_max_retries, |raw| {
            value::small_integer(raw, 0, 20)
        })?;
        field.set(
            &mut scan.host_prefix,
            "SCAN_HOST_PREFIX",
            scan_host_prefix,
            value::host_prefix,
        )?;
        let lifecycle = &mut config.lifecycle;
        field.set(
            &mut lifecycle.enabled,
            "LIFECYCLE_ENABLED",
            lifecycle_enabled,
            value::boolean,
        )?;
        field.set(&mut lifecycle.sizes_ttl_days, "SIZES_TTL_DAYS", sizes_ttl_days, |raw| {
            value::nonzero_u32(raw, 1, 36_500)
        })?;
        field.set(
            &mut lifecycle.interval,
            "LIFECYCLE_INTERVAL",
            lifecycle_interval,
            value::duration,
        )?;
        field.set_masked(
            &mut config.database.url,
            "DATABASE_URL",
            database_url,
            value::database_url,
            mask_password,
        )?;
        field.set_masked(
            &mut config.docker.host,
            "DOCKER_HOST",
            docker_host,
            value::docker_host,
            mask_password,
        )?;
        let http = &mut config.http;
        field.set(&mut http.bind, "VOLSCAN_BIND", volscan_bind, value::socket_addr)?;
        field.set(&mut http.rate_limit_rpm, "RATE_LIMIT_RPM", rate_limit_rpm, |raw| {
            value::nonzero_u32(raw, 1, 1_000_000)
        })?;
        field.set_masked(
            &mut http.auth_token,
            "AUTH_TOKEN",
            auth_token,
            value::auth_token,
            mask_all,
        )?;
        field.set(&mut config.log.filter, "RUST_LOG", rust_log, value::log_filter)?;
        Ok(config)
    }

    /// The effective configuration as `NAME=value` lines, one per variable of [`VARIABLES`], in
    /// SPEC order.
    ///
    /// Values are in the syntax this crate reads (durations as `6h` or `1h 30m`, lists as `a,b,c`),
    /// and in POSIX shell syntax: a value with characters special to the shell is single-quoted, so
    /// the output can be pasted into a shell or an env file.
    /// `AUTH_TOKEN` shows `***` when set and nothing when not; the password in `DATABASE_URL` shows
    /// as `***`.
    pub fn render(&self) -> String {
        render::render(self)
    }
}

/// Sets one typed field from its raw value, adding the variable's name and origin to any error.
struct Field<'a> {
    origin_of: &'a dyn Fn(&'static str) -> Origin,
}

impl Field<'_> {
    fn set<T>(
        &self,
        target: &mut T,
        variable: &'static str,
        raw: Option<Raw>,
        parse: impl FnOnce(&Raw) -> Result<T, String>,
    ) -> Result<(), ConfigError> {
        self.set_masked(target, variable, raw, parse, mask_nothing)
    }

    fn set_masked<T>(
        &self,
        target: &mut T,
        variable: &'static str,
        raw: Option<Raw>,
        parse: impl FnOnce(&Raw) -> Result<T, String>,
        mask: fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        let Some(raw) = raw else { return Ok(()) };
        *target = parse(&raw).map_err(|reason| ConfigError::Invalid {
            variable,
            value: raw.display_masked(mask),
            origin: (self.origin_of)(variable),
            reason,
        })?;
        Ok(())
    }
}

fn into_string(variable: &'static str, value: OsString) -> Result<String, ConfigError> {
    value.into_string().map_err(|_| ConfigError::NotUnicode { variable })
}
