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
//!
//! Each variable is declared once, in `variables.rs` (name, meaning, default, parser, rendering,
//! mask); loading, the defaults, error messages, [`Config::render`] and the README table follow
//! from that declaration.

mod duration;
mod error;
mod render;
mod secret;
mod source;
mod types;
mod value;
mod variable;
mod variables;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

pub use crate::error::{ConfigError, Origin};
pub use crate::secret::{MASK, Secret};
pub use crate::types::{
    DatabaseKind, DatabaseUrl, DockerHost, DockerHostKind, IoClassName, ScanEnabled, ScanMethodName,
};
pub use crate::variables::VARIABLES;

use crate::variables::TABLE;

/// The environment variable naming the optional TOML file. An empty value means no file.
pub const CONFIG_FILE_VARIABLE: &str = "VOLSCAN_CONFIG";

/// The default `SCAN_SKIP_PATTERN`.
pub const DEFAULT_SKIP_PATTERN: &str = "^docker_|^builder_|^containerd";

/// The whole configuration, validated. `Default` is the SPEC §2 defaults, as declared in
/// `variables.rs`.
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
    /// `SCAN_NICE`: the CPU niceness scans run at, 0 (unchanged) to 19.
    pub nice: u8,
    /// `SCAN_IO_CLASS`: the I/O class scans run in.
    pub io_class: IoClassName,
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
    /// `VOLSCAN_HOST_ID`: this host's identity in the database, lower-cased
    /// and checked against `^[a-z0-9][a-z0-9_.-]{0,62}$`; `None` when empty,
    /// meaning the machine's hostname (which the binary reads).
    pub host_id: Option<String>,
    /// `VOLSCAN_HEARTBEAT_INTERVAL`: how often the host writes its
    /// liveness; the liveness limits are 3 and 20 of these.
    pub heartbeat_interval: Duration,
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
    /// `AUTH_READ`: reads need the token too (when one is set).
    pub auth_read: bool,
    /// `VOLSCAN_DASHBOARD`: serve the dashboard pages.
    pub dashboard: bool,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `RUST_LOG`: a non-empty `tracing_subscriber::EnvFilter` filter, such as `info`, whose
    /// every directive `EnvFilter::builder().parse` accepts (checked when loading).
    pub filter: String,
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
        let merged = source::merge(file, &variables)?;
        let mut config = Config::default();
        for variable in TABLE {
            if let Some((value, origin)) = merged.get(variable) {
                variable.set(&mut config, value, origin)?;
            }
        }
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

    /// The Markdown table of every variable of [`VARIABLES`] that README.md holds: one row per
    /// variable, in SPEC order, with its default (as [`Config::render`] writes it, unquoted, or
    /// `empty`) and its meaning. A test keeps README.md equal to it.
    pub fn markdown_table() -> String {
        render::markdown_table()
    }
}

fn into_string(variable: &'static str, value: OsString) -> Result<String, ConfigError> {
    value.into_string().map_err(|_| ConfigError::NotUnicode { variable })
}
