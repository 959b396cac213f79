//! The one declaration of every configuration variable of SPEC §2: its name, meaning, default,
//! parser, rendering and mask, in SPEC order.
//!
//! Everything else follows from this table: [`VARIABLES`], `Config::default`, loading, error
//! messages, `Config::render` and the README table.
//! To add a variable, add its typed field to a section struct in `lib.rs` and one entry here, in
//! the section of that struct; the compiler refuses a field without an entry.
//! Parsers live in `value.rs`, renderings in `render.rs`; the order of the entries is the order of
//! the output of `check-config`.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use regex::Regex;

use crate::secret::Mask;
use crate::types::{DatabaseUrl, DockerHost, IoClassName, ScanEnabled, ScanMethodName};
use crate::variable::declare_variables;
use crate::{
    DEFAULT_SKIP_PATTERN, DatabaseConfig, DockerConfig, HttpConfig, LifecycleConfig, LogConfig,
    ScanConfig, render, value,
};

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

/// The default of `SCAN_SKIP_PATTERN`, compiled.
fn default_skip_pattern() -> Option<Regex> {
    // The pattern is a constant, and `default_skip_pattern_compiles` tests that it compiles.
    Some(Regex::new(DEFAULT_SKIP_PATTERN).expect("constant regex"))
}

declare_variables! {
    scan: ScanConfig {
        enabled: {
            name: "SCAN_ENABLED",
            doc: "periodic scheduling: `auto` (on when the Docker daemon answers at start-up), \
                `true`, `false`",
            default: ScanEnabled::Auto,
            parse: value::scan_enabled,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        interval: {
            name: "SCAN_INTERVAL",
            doc: "time between periodic runs",
            default: Duration::from_secs(6 * 60 * 60),
            parse: value::duration,
            render: render::duration,
            mask: Mask::Nothing,
        },
        concurrency: {
            name: "SCAN_CONCURRENCY",
            doc: "scan workers, 1–64",
            default: nonzero!(NonZeroUsize, 2),
            parse: value::concurrency,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        timeout_per_volume: {
            name: "SCAN_TIMEOUT_PER_VOLUME",
            doc: "hard limit for one scan",
            default: Duration::from_secs(2 * 60),
            parse: value::duration,
            render: render::duration,
            mask: Mask::Nothing,
        },
        methods_order: {
            name: "SCAN_METHODS_ORDER",
            doc: "methods in order of preference, distinct",
            default: ScanMethodName::DEFAULT_ORDER.to_vec(),
            parse: value::methods,
            render: |methods| render::comma_list(methods),
            mask: Mask::Nothing,
        },
        bind_mounts_enabled: {
            name: "SCAN_BIND_MOUNTS_ENABLED",
            doc: "also scan containers' bind mounts",
            default: false,
            parse: value::boolean,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        bind_allowlist: {
            name: "SCAN_BIND_ALLOWLIST",
            doc: "absolute host directories under which bind mounts may be scanned; `/`, `/proc`, \
                `/sys`, `/dev` (and below) are refused",
            default: Vec::new(),
            parse: value::allowlist,
            render: |paths| render::path_list(paths),
            mask: Mask::Nothing,
        },
        skip_pattern: {
            name: "SCAN_SKIP_PATTERN",
            doc: "regex; matching volumes are never scanned; empty skips nothing",
            default: default_skip_pattern(),
            parse: value::skip_pattern,
            render: render::optional_regex,
            mask: Mask::Nothing,
        },
        max_retries: {
            name: "SCAN_MAX_RETRIES",
            doc: "retries after a failed attempt, 0–20",
            default: 3,
            parse: |value| value::small_integer(value, 0, 20),
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        host_prefix: {
            name: "SCAN_HOST_PREFIX",
            doc: "absolute path put before Docker's `Mountpoint` when volscan runs in a container",
            default: None,
            parse: value::host_prefix,
            render: render::optional_path,
            mask: Mask::Nothing,
        },
        nice: {
            name: "SCAN_NICE",
            doc: "CPU niceness of scan threads and tools, 0 (unchanged) to 19 (lowest priority)",
            default: 10,
            // At most 19: the conversion cannot fail.
            parse: |value| value::small_integer(value, 0, 19).map(|n| n as u8),
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        io_class: {
            name: "SCAN_IO_CLASS",
            doc: "I/O class of scan threads and tools: `idle` (disk time nobody else wants, \
                where the I/O scheduler honours classes, as BFQ does) or `best-effort` (the \
                kernel's default)",
            default: IoClassName::Idle,
            parse: value::io_class,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
    },
    lifecycle: LifecycleConfig {
        enabled: {
            name: "LIFECYCLE_ENABLED",
            doc: "retention loop on or off",
            default: true,
            parse: value::boolean,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        sizes_ttl_days: {
            name: "SIZES_TTL_DAYS",
            doc: "age after which stats and finished runs are deleted, 1–36500",
            default: nonzero!(NonZeroU32, 30),
            parse: |value| value::nonzero_u32(value, 1, 36_500),
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        interval: {
            name: "LIFECYCLE_INTERVAL",
            doc: "time between retention passes",
            default: Duration::from_secs(24 * 60 * 60),
            parse: value::duration,
            render: render::duration,
            mask: Mask::Nothing,
        },
    },
    database: DatabaseConfig {
        url: {
            name: "DATABASE_URL",
            doc: "`sqlite://PATH` (`sqlite:///abs/path` for an absolute one) or \
                `postgres://USER:PASSWORD@HOST:PORT/DB`",
            default: DatabaseUrl::default_sqlite(),
            parse: value::database_url,
            render: |url| url.as_str().to_owned(),
            mask: Mask::UrlPassword,
        },
        host_id: {
            name: "VOLSCAN_HOST_ID",
            doc: "this host's identity in a database shared by several hosts: 1-63 of \
                `a-z 0-9 _ . -`, starting with a letter or digit (lower-cased); empty for the \
                machine's hostname",
            default: None,
            parse: value::host_id,
            render: |id| id.clone().unwrap_or_default(),
            mask: Mask::Nothing,
        },
        heartbeat_interval: {
            name: "VOLSCAN_HEARTBEAT_INTERVAL",
            doc: "how often this host writes its liveness to the database (1s to 10m); every \
                node judges a host `online` when seen within 3 intervals and `stale` until 20, \
                so the hosts sharing a database use one value",
            default: Duration::from_secs(15),
            parse: value::heartbeat,
            render: render::duration,
            mask: Mask::Nothing,
        },
    },
    docker: DockerConfig {
        host: {
            name: "DOCKER_HOST",
            doc: "Docker Engine endpoint: `unix:///PATH`, `tcp://HOST:PORT` or `http://HOST:PORT` \
                (plain HTTP; `https://` is refused, TLS is not supported); the scheme is \
                case-insensitive",
            default: DockerHost::default_socket(),
            parse: value::docker_host,
            render: |host| host.as_str().to_owned(),
            mask: Mask::UrlPassword,
        },
    },
    http: HttpConfig {
        bind: {
            name: "VOLSCAN_BIND",
            doc: "HTTP listen address (IP and port)",
            default: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            parse: value::socket_addr,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        rate_limit_rpm: {
            name: "RATE_LIMIT_RPM",
            doc: "`POST` requests a minute per client address; every `POST` counts, one with a \
                wrong token too",
            default: nonzero!(NonZeroU32, 60),
            parse: |value| value::nonzero_u32(value, 1, 1_000_000),
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        auth_token: {
            name: "AUTH_TOKEN",
            doc: "bearer token required on `POST` when set; printable ASCII without spaces",
            default: None,
            parse: value::auth_token,
            render: render::secret,
            mask: Mask::Whole,
        },
        auth_read: {
            name: "AUTH_READ",
            doc: "when `true` and `AUTH_TOKEN` is set, every page, API read and the metrics need \
                the token too (the bearer header for the API, a login for the dashboard); \
                `/api/v1/health` stays open",
            default: false,
            parse: value::boolean,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
        dashboard: {
            name: "VOLSCAN_DASHBOARD",
            doc: "serve the dashboard (`/`, `/volumes/NAME`, `/scans`); the API is the same \
                either way",
            default: true,
            parse: value::boolean,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
    },
    log: LogConfig {
        filter: {
            name: "RUST_LOG",
            doc: "log filter (`tracing_subscriber` syntax); an invalid directive stops start-up \
                (and `check-config`) naming the variable",
            default: "info".to_owned(),
            parse: value::log_filter,
            render: ToString::to_string,
            mask: Mask::Nothing,
        },
    },
}
