//! Tests of loading, parsing, rendering and masking, mostly as tables run by one `check` function
//! per feature.
//!
//! No test changes the process environment: they all go through `Config::from_sources`.
//! Files are written under `std::env::temp_dir()` with unique names and removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// A TOML file under the temp directory, removed on drop.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir()
            .join(format!("volscan-config-test-{}-{unique}.toml", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn from_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_sources(None, pairs.iter().copied())
}

fn from_file(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let file = TempFile::new(toml);
    Config::from_sources(Some(file.path()), pairs.iter().copied())
}

/// The typed value of one variable, as `Debug`, so tables can state parsed results as data.
fn parsed(config: &Config, variable: &str) -> String {
    let Config { scan, lifecycle, database, docker, http, log } = config;
    match variable {
        "SCAN_ENABLED" => format!("{:?}", scan.enabled),
        "SCAN_INTERVAL" => format!("{:?}", scan.interval),
        "SCAN_CONCURRENCY" => format!("{:?}", scan.concurrency),
        "SCAN_TIMEOUT_PER_VOLUME" => format!("{:?}", scan.timeout_per_volume),
        "SCAN_METHODS_ORDER" => format!("{:?}", scan.methods_order),
        "SCAN_BIND_MOUNTS_ENABLED" => format!("{:?}", scan.bind_mounts_enabled),
        "SCAN_BIND_ALLOWLIST" => format!("{:?}", scan.bind_allowlist),
        "SCAN_SKIP_PATTERN" => format!("{:?}", scan.skip_pattern.as_ref().map(|r| r.as_str())),
        "SCAN_MAX_RETRIES" => format!("{:?}", scan.max_retries),
        "SCAN_HOST_PREFIX" => format!("{:?}", scan.host_prefix),
        "LIFECYCLE_ENABLED" => format!("{:?}", lifecycle.enabled),
        "SIZES_TTL_DAYS" => format!("{:?}", lifecycle.sizes_ttl_days),
        "LIFECYCLE_INTERVAL" => format!("{:?}", lifecycle.interval),
        "DATABASE_URL" => format!("{:?} {:?}", database.url.kind(), database.url),
        "VOLSCAN_HOST_ID" => format!("{:?}", database.host_id),
        "VOLSCAN_HEARTBEAT_INTERVAL" => format!("{:?}", database.heartbeat_interval),
        "SCAN_NICE" => format!("{:?}", scan.nice),
        "SCAN_IO_CLASS" => format!("{:?}", scan.io_class),
        "DOCKER_HOST" => format!("{:?} {:?}", docker.host.kind(), docker.host),
        "VOLSCAN_BIND" => format!("{:?}", http.bind),
        "RATE_LIMIT_RPM" => format!("{:?}", http.rate_limit_rpm),
        "AUTH_TOKEN" => format!("{:?}", http.auth_token),
        "AUTH_READ" => format!("{:?}", http.auth_read),
        "VOLSCAN_DASHBOARD" => format!("{:?}", http.dashboard),
        "RUST_LOG" => format!("{:?}", log.filter),
        _ => panic!("no such variable {variable}"),
    }
}

/// The line of `render()` for `variable`, without the name.
fn rendered(config: &Config, variable: &str) -> String {
    let prefix = format!("{variable}=");
    let rendered = config.render();
    let line = rendered.lines().find(|line| line.starts_with(&prefix)).unwrap();
    line[prefix.len()..].to_owned()
}

/// Sets `variable=input` in the environment and checks the parsed value's `Debug`.
#[track_caller]
fn check(variable: &str, input: &str, expected: &str) {
    let config = from_env(&[(variable, input)])
        .unwrap_or_else(|error| panic!("{variable}={input:?} failed: {error}"));
    assert_eq!(parsed(&config, variable), expected, "{variable}={input:?}");
}

/// Sets `variable=input` in the environment and checks the whole error message.
#[track_caller]
fn check_error(variable: &str, input: &str, expected: &str) {
    match from_env(&[(variable, input)]) {
        Ok(config) => panic!("{variable}={input:?} parsed as {}", parsed(&config, variable)),
        Err(error) => assert_eq!(error.to_string(), expected, "{variable}={input:?}"),
    }
}

/// Sets `variable=input` and checks that loading fails with a message naming the variable and
/// saying `expected`.
#[track_caller]
fn check_rejected(variable: &str, input: &str) {
    match from_env(&[(variable, input)]) {
        Ok(config) => panic!("{variable}={input:?} parsed as {}", parsed(&config, variable)),
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with(&format!("invalid {variable}=")), "{message}");
            assert!(message.contains("(from the environment)"), "{message}");
            assert!(message.contains("expected"), "{message}");
        }
    }
}

/// One row per variable: a valid value and its parse, an invalid value and its whole error message.
struct Case {
    variable: &'static str,
    valid: &'static str,
    parsed: &'static str,
    invalid: &'static str,
    error: &'static str,
}

const CASES: &[Case] = &[
    Case {
        variable: "SCAN_ENABLED",
        valid: "false",
        parsed: "Never",
        invalid: "sometimes",
        error: r#"invalid SCAN_ENABLED="sometimes" (from the environment): expected auto, true or false"#,
    },
    Case {
        variable: "SCAN_INTERVAL",
        valid: "1h 30m",
        parsed: "5400s",
        invalid: "abc",
        error: r#"invalid SCAN_INTERVAL="abc" (from the environment): expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds"#,
    },
    Case {
        variable: "SCAN_CONCURRENCY",
        valid: "8",
        parsed: "8",
        invalid: "65",
        error: r#"invalid SCAN_CONCURRENCY="65" (from the environment): expected an integer from 1 to 64"#,
    },
    Case {
        variable: "SCAN_TIMEOUT_PER_VOLUME",
        valid: "90",
        parsed: "90s",
        invalid: "0s",
        error: r#"invalid SCAN_TIMEOUT_PER_VOLUME="0s" (from the environment): must be greater than zero; expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds"#,
    },
    Case {
        variable: "SCAN_METHODS_ORDER",
        valid: r#"["native","du"]"#,
        parsed: "[Native, Du]",
        invalid: "du,ncdu",
        error: r#"invalid SCAN_METHODS_ORDER="du,ncdu" (from the environment): unknown method "ncdu"; expected a non-empty list of distinct methods from diskus, du, native, such as native,diskus,du or ["du","native"]"#,
    },
    Case {
        variable: "SCAN_BIND_MOUNTS_ENABLED",
        valid: "yes",
        parsed: "true",
        invalid: "maybe",
        error: r#"invalid SCAN_BIND_MOUNTS_ENABLED="maybe" (from the environment): expected true or false (also 1/0, yes/no)"#,
    },
    Case {
        variable: "SCAN_BIND_ALLOWLIST",
        valid: "/srv/data/, /home//app",
        parsed: r#"["/srv/data", "/home/app"]"#,
        invalid: "/srv,/proc/1",
        error: r#"invalid SCAN_BIND_ALLOWLIST="/srv,/proc/1" (from the environment): "/proc/1" is refused; expected a list of absolute directories, none of them /, /proc, /sys, /dev or under /proc, /sys, /dev, such as /srv/data,/home/app or ["/srv/data"], or empty for none"#,
    },
    Case {
        variable: "SCAN_SKIP_PATTERN",
        valid: "[ab]_tmp$",
        parsed: r#"Some("[ab]_tmp$")"#,
        invalid: "^(docker_",
        error: r#"invalid SCAN_SKIP_PATTERN="^(docker_" (from the environment): the regex does not compile (unclosed group); expected a regular expression such as ^docker_|^builder_, or empty to skip nothing"#,
    },
    Case {
        variable: "SCAN_MAX_RETRIES",
        valid: "0",
        parsed: "0",
        invalid: "-1",
        error: r#"invalid SCAN_MAX_RETRIES="-1" (from the environment): expected an integer from 0 to 20"#,
    },
    Case {
        variable: "SCAN_HOST_PREFIX",
        valid: "/host/",
        parsed: r#"Some("/host")"#,
        invalid: "host",
        error: r#"invalid SCAN_HOST_PREFIX="host" (from the environment): "host" is not an absolute path; expected an absolute path such as /host, or empty for none"#,
    },
    Case {
        variable: "SCAN_NICE",
        valid: "19",
        parsed: "19",
        invalid: "20",
        error: r#"invalid SCAN_NICE="20" (from the environment): expected an integer from 0 to 19"#,
    },
    Case {
        variable: "SCAN_IO_CLASS",
        valid: "Best-Effort",
        parsed: "BestEffort",
        invalid: "realtime",
        error: r#"invalid SCAN_IO_CLASS="realtime" (from the environment): expected idle or best-effort"#,
    },
    Case {
        variable: "LIFECYCLE_ENABLED",
        valid: "0",
        parsed: "false",
        invalid: "off",
        error: r#"invalid LIFECYCLE_ENABLED="off" (from the environment): expected true or false (also 1/0, yes/no)"#,
    },
    Case {
        variable: "SIZES_TTL_DAYS",
        valid: "365",
        parsed: "365",
        invalid: "0",
        error: r#"invalid SIZES_TTL_DAYS="0" (from the environment): expected an integer from 1 to 36500"#,
    },
    Case {
        variable: "LIFECYCLE_INTERVAL",
        valid: "1d",
        parsed: "86400s",
        invalid: "24 hours",
        error: r#"invalid LIFECYCLE_INTERVAL="24 hours" (from the environment): expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds"#,
    },
    Case {
        variable: "DATABASE_URL",
        valid: "postgres://volscan:hunter2@db:5432/volscan",
        parsed: r#"Postgres DatabaseUrl("postgres://volscan:***@db:5432/volscan")"#,
        invalid: "mysql://volscan:hunter2@db/volscan",
        error: r#"invalid DATABASE_URL="mysql://volscan:***@db/volscan" (from the environment): expected sqlite://PATH (such as sqlite://volscan.db or sqlite:///var/lib/volscan/volscan.db) or postgres://USER:PASSWORD@HOST:PORT/DATABASE"#,
    },
    Case {
        variable: "VOLSCAN_HOST_ID",
        valid: " Web-01 ",
        parsed: r#"Some("web-01")"#,
        invalid: "web 01",
        error: r#"invalid VOLSCAN_HOST_ID="web 01" (from the environment): expected 1-63 characters of a-z, 0-9, '_', '.', '-' starting with a letter or digit (such as web-01), or empty for the hostname"#,
    },
    Case {
        variable: "VOLSCAN_HEARTBEAT_INTERVAL",
        valid: "2s",
        parsed: "2s",
        invalid: "11m",
        error: r#"invalid VOLSCAN_HEARTBEAT_INTERVAL="11m" (from the environment): must be from 1s to 10m; expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds"#,
    },
    Case {
        variable: "DOCKER_HOST",
        valid: "tcp://10.0.0.5:2375",
        parsed: r#"Tcp DockerHost("tcp://10.0.0.5:2375")"#,
        invalid: "tcp://10.0.0.5",
        error: r#"invalid DOCKER_HOST="tcp://10.0.0.5" (from the environment): the port is missing; expected unix:///ABSOLUTE/PATH, tcp://HOST:PORT or http://HOST:PORT (plain HTTP; TLS is not supported), such as unix:///var/run/docker.sock or tcp://127.0.0.1:2375"#,
    },
    Case {
        variable: "VOLSCAN_BIND",
        valid: "[::]:9000",
        parsed: "[::]:9000",
        invalid: "localhost:8080",
        error: r#"invalid VOLSCAN_BIND="localhost:8080" (from the environment): expected an ip address and port such as 127.0.0.1:8080 or [::]:8080"#,
    },
    Case {
        variable: "RATE_LIMIT_RPM",
        valid: "600",
        parsed: "600",
        invalid: "1000001",
        error: r#"invalid RATE_LIMIT_RPM="1000001" (from the environment): expected an integer from 1 to 1000000"#,
    },
    Case {
        variable: "AUTH_TOKEN",
        valid: "s3cr3t-t0ken",
        parsed: "Some(***)",
        invalid: "s3cr3t t0ken",
        error: r#"invalid AUTH_TOKEN="***" (from the environment): expected printable ascii without spaces, or empty for none"#,
    },
    Case {
        variable: "AUTH_READ",
        valid: "yes",
        parsed: "true",
        invalid: "sometimes",
        error: r#"invalid AUTH_READ="sometimes" (from the environment): expected true or false (also 1/0, yes/no)"#,
    },
    Case {
        variable: "VOLSCAN_DASHBOARD",
        valid: "0",
        parsed: "false",
        invalid: "off",
        error: r#"invalid VOLSCAN_DASHBOARD="off" (from the environment): expected true or false (also 1/0, yes/no)"#,
    },
    Case {
        variable: "RUST_LOG",
        valid: "info,volscan=debug",
        parsed: r#""info,volscan=debug""#,
        invalid: "info,volscan=loud",
        error: r#"invalid RUST_LOG="info,volscan=loud" (from the environment): the directive "volscan=loud" is invalid (error parsing level filter: expected one of "off", "error", "warn", "info", "debug", "trace", or a number 0-5); expected a non-empty log filter such as info or info,volscan=debug: comma-separated directives, each LEVEL or TARGET[SPAN{FIELD=VALUE}]=LEVEL, where LEVEL is off, error, warn, info, debug, trace or 0 to 5"#,
    },
];

#[test]
fn every_variable_has_a_valid_and_an_invalid_case() {
    let names: Vec<&str> = CASES.iter().map(|case| case.variable).collect();
    assert_eq!(names, VARIABLES);
    for case in CASES {
        check(case.variable, case.valid, case.parsed);
        check_error(case.variable, case.invalid, case.error);
    }
}

/// The README's configuration table documents exactly [`VARIABLES`], each once, in SPEC order,
/// with the default this crate really applies.
#[test]
fn the_readme_table_lists_every_variable_once_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let table = readme
        .split("\n| variable | default | meaning |\n| --- | --- | --- |\n")
        .nth(1)
        .expect("README.md has a `| variable | default | meaning |` table");
    let mut rows = Vec::new();
    for line in table.lines().take_while(|line| line.starts_with('|')) {
        // Cells are split at `|` but not at the escaped `\|` of the skip pattern.
        let line = line.replace("\\|", "\u{0}");
        let cells: Vec<String> =
            line.split('|').map(|cell| cell.trim().replace('\u{0}', "|")).collect();
        let [_, name, default, ..] = cells.as_slice() else { panic!("bad row {line:?}") };
        rows.push((name.trim_matches('`').to_owned(), default.clone()));
    }
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, VARIABLES, "README.md's table must list VARIABLES, each once, in order");
    let defaults = Config::default();
    for (name, documented) in &rows {
        let expected = match rendered(&defaults, name) {
            value if value == "''" || value.is_empty() => "empty".to_owned(),
            value => format!("`{}`", shell_unquote(&value)),
        };
        assert_eq!(documented, &expected, "README.md's default of {name}");
    }
}

/// The README's table is the one generated from the declarations of `variables.rs`, meanings
/// included.
#[test]
fn the_readme_table_is_generated_from_the_declarations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let table = Config::markdown_table();
    assert!(
        readme.contains(&format!("\n{table}\n")),
        "README.md's configuration table must be `Config::markdown_table()`:\n{table}"
    );
}

/// A variable whose name says it is a secret cannot be declared unmasked by mistake.
#[test]
fn every_secret_variable_is_masked_whole() {
    for variable in variables::TABLE {
        let secret =
            ["TOKEN", "SECRET", "PASSWORD"].iter().any(|word| variable.name.contains(word));
        if secret {
            assert_eq!(variable.mask, secret::Mask::Whole, "{}", variable.name);
        }
    }
}

#[test]
fn default_skip_pattern_compiles() {
    assert!(regex::Regex::new(DEFAULT_SKIP_PATTERN).is_ok());
}

#[test]
fn no_sources_give_the_spec_defaults() {
    let config = from_env(&[]).unwrap();
    assert_eq!(config.render(), Config::default().render());
    assert_eq!(
        config.render(),
        "SCAN_ENABLED=auto\n\
         SCAN_INTERVAL=6h\n\
         SCAN_CONCURRENCY=2\n\
         SCAN_TIMEOUT_PER_VOLUME=2m\n\
         SCAN_METHODS_ORDER=native,diskus,du\n\
         SCAN_BIND_MOUNTS_ENABLED=false\n\
         SCAN_BIND_ALLOWLIST=\n\
         SCAN_SKIP_PATTERN='^docker_|^builder_|^containerd'\n\
         SCAN_MAX_RETRIES=3\n\
         SCAN_HOST_PREFIX=\n\
         SCAN_NICE=10\n\
         SCAN_IO_CLASS=idle\n\
         LIFECYCLE_ENABLED=true\n\
         SIZES_TTL_DAYS=30\n\
         LIFECYCLE_INTERVAL=24h\n\
         DATABASE_URL=sqlite://volscan.db\n\
         VOLSCAN_HOST_ID=\n\
         VOLSCAN_HEARTBEAT_INTERVAL=15s\n\
         DOCKER_HOST=unix:///var/run/docker.sock\n\
         VOLSCAN_BIND=127.0.0.1:8080\n\
         RATE_LIMIT_RPM=60\n\
         AUTH_TOKEN=\n\
         AUTH_READ=false\n\
         VOLSCAN_DASHBOARD=true\n\
         RUST_LOG=info\n"
    );
    let Config { scan, lifecycle, database, docker, http, log } = config;
    assert_eq!(scan.enabled, ScanEnabled::Auto);
    assert_eq!(scan.interval, Duration::from_secs(6 * 3600));
    assert_eq!(scan.concurrency.get(), 2);
    assert_eq!(scan.timeout_per_volume, Duration::from_secs(120));
    assert_eq!(
        scan.methods_order,
        [ScanMethodName::Native, ScanMethodName::Diskus, ScanMethodName::Du]
    );
    assert!(!scan.bind_mounts_enabled);
    assert!(scan.bind_allowlist.is_empty());
    let skip = scan.skip_pattern.unwrap();
    assert!(
        skip.is_match("docker_abc") && skip.is_match("containerd-x") && !skip.is_match("app_data")
    );
    assert_eq!(scan.max_retries, 3);
    assert_eq!(scan.host_prefix, None);
    assert!(lifecycle.enabled);
    assert_eq!(lifecycle.sizes_ttl_days.get(), 30);
    assert_eq!(lifecycle.sizes_ttl(), Duration::from_secs(30 * 86_400));
    assert_eq!(lifecycle.interval, Duration::from_secs(86_400));
    assert_eq!(database.url.kind(), DatabaseKind::Sqlite);
    assert_eq!(database.url.sqlite_path(), Some(Path::new("volscan.db")));
    assert_eq!(docker.host.kind(), DockerHostKind::Unix);
    assert_eq!(docker.host.unix_socket_path(), Some(Path::new("/var/run/docker.sock")));
    assert_eq!(http.bind, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(http.rate_limit_rpm.get(), 60);
    assert!(http.auth_token.is_none());
    assert!(!http.auth_read && http.dashboard);
    assert_eq!(log.filter, "info");
}

#[test]
fn durations_in_every_form() {
    let valid = [
        ("90s", 90),
        ("2m", 120),
        ("6h", 6 * 3600),
        ("1d", 86_400),
        ("1h 30m", 5400),
        ("1h30m", 5400),
        ("1h  30m", 5400),
        ("1d 2h 3m 4s", 93_784),
        ("90", 90),
        (" 90 ", 90),
        (" 2m ", 120),
        ("36500d", 36_500 * 86_400),
    ];
    for (input, seconds) in valid {
        for variable in ["SCAN_INTERVAL", "SCAN_TIMEOUT_PER_VOLUME", "LIFECYCLE_INTERVAL"] {
            check(variable, input, &format!("{:?}", Duration::from_secs(seconds)));
        }
    }
    let invalid = [
        "",
        " ",
        "abc",
        "0",
        "0s",
        "0h 0m",
        "-5m",
        "-90",
        "1.5h",
        "5 m",
        "5x",
        "5ms",
        "1H",
        "h",
        "30m 1h",
        "1h 1h",
        "1h,30m",
        "36501d",
        "18446744073709551616",
        "99999999999999999999d",
        "18446744073709551615s",
    ];
    for input in invalid {
        for variable in ["SCAN_INTERVAL", "SCAN_TIMEOUT_PER_VOLUME", "LIFECYCLE_INTERVAL"] {
            check_rejected(variable, input);
        }
    }
    check_error(
        "SCAN_INTERVAL",
        "36501d",
        r#"invalid SCAN_INTERVAL="36501d" (from the environment): must be at most 36500d; expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds"#,
    );
    check_error(
        "SCAN_INTERVAL",
        "",
        r#"invalid SCAN_INTERVAL="" (from the environment): expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds"#,
    );
}

#[test]
fn durations_from_toml_integers_and_strings() {
    let config = from_file("scan_interval = 90\nlifecycle_interval = \"1h 30m\"", &[]).unwrap();
    assert_eq!(config.scan.interval, Duration::from_secs(90));
    assert_eq!(config.lifecycle.interval, Duration::from_secs(5400));
    for toml in
        ["scan_interval = 0", "scan_interval = -5", "scan_interval = 1.5", "scan_interval = true"]
    {
        let error = from_file(toml, &[]).unwrap_err().to_string();
        assert!(error.starts_with("invalid SCAN_INTERVAL="), "{toml}: {error}");
        assert!(error.contains("expected a duration"), "{toml}: {error}");
    }
}

#[test]
fn durations_render_in_the_syntax_they_parse() {
    #[track_caller]
    fn check_format(seconds: u64, expected: &str) {
        let formatted = duration::format(Duration::from_secs(seconds));
        assert_eq!(formatted, expected);
        assert_eq!(duration::parse(&formatted), Ok(Duration::from_secs(seconds)));
    }
    check_format(90, "1m 30s");
    check_format(120, "2m");
    check_format(5400, "1h 30m");
    check_format(6 * 3600, "6h");
    check_format(86_400, "24h");
    check_format(93_784, "26h 3m 4s");
    check_format(36_500 * 86_400, "876000h");
}

#[test]
fn lists_in_every_form() {
    let order = "SCAN_METHODS_ORDER";
    check(order, "du,native", "[Du, Native]");
    check(order, " du , native ", "[Du, Native]");
    check(order, "native", "[Native]");
    check(order, r#"["du","native"]"#, "[Du, Native]");
    check(order, r#" [ "du" , "native" ] "#, "[Du, Native]");
    for input in [
        "",
        "[]",
        "du,,native",
        "du,",
        ",du",
        r#"["du",]"#,
        "[1]",
        r#"["du",""]"#,
        "du,du",
        "Du",
        "du native",
    ] {
        check_rejected(order, input);
    }
    check_error(
        order,
        "du,du",
        r#"invalid SCAN_METHODS_ORDER="du,du" (from the environment): "du" is listed twice; expected a non-empty list of distinct methods from diskus, du, native, such as native,diskus,du or ["du","native"]"#,
    );
    check_error(
        order,
        "",
        r#"invalid SCAN_METHODS_ORDER="" (from the environment): the list is empty; expected a non-empty list of distinct methods from diskus, du, native, such as native,diskus,du or ["du","native"]"#,
    );

    let allowlist = "SCAN_BIND_ALLOWLIST";
    check(allowlist, "", "[]");
    check(allowlist, "[]", "[]");
    check(allowlist, "/srv", r#"["/srv"]"#);
    check(allowlist, r#"["/srv/a,b", "/home"]"#, r#"["/srv/a,b", "/home"]"#);
    check_rejected(allowlist, "/srv,,/home");

    let config = from_file(r#"scan_methods_order = ["du", "native"]"#, &[]).unwrap();
    assert_eq!(config.scan.methods_order, [ScanMethodName::Du, ScanMethodName::Native]);
    let config = from_file(r#"scan_methods_order = "native,du""#, &[]).unwrap();
    assert_eq!(config.scan.methods_order, [ScanMethodName::Native, ScanMethodName::Du]);
    let config = from_file(r#"scan_bind_allowlist = ["/srv/", "/home/app"]"#, &[]).unwrap();
    assert_eq!(config.scan.bind_allowlist, [PathBuf::from("/srv"), PathBuf::from("/home/app")]);
    for toml in [
        "scan_methods_order = []",
        "scan_methods_order = [1]",
        r#"scan_methods_order = ["du", ""]"#,
        "scan_methods_order = 3",
    ] {
        let error = from_file(toml, &[]).unwrap_err().to_string();
        assert!(error.starts_with("invalid SCAN_METHODS_ORDER="), "{toml}: {error}");
        assert!(error.contains("expected a non-empty list"), "{toml}: {error}");
    }
}

#[test]
fn booleans_in_every_form() {
    for variable in
        ["SCAN_BIND_MOUNTS_ENABLED", "LIFECYCLE_ENABLED", "AUTH_READ", "VOLSCAN_DASHBOARD"]
    {
        for input in ["true", "TRUE", "True", "1", "yes", "YES", " true "] {
            check(variable, input, "true");
        }
        for input in ["false", "FALSE", "0", "no", "No"] {
            check(variable, input, "false");
        }
        for input in ["", "on", "off", "2", "t", "enabled", "auto"] {
            check_rejected(variable, input);
        }
    }
    let config = from_file("scan_bind_mounts_enabled = true\nlifecycle_enabled = 0", &[]).unwrap();
    assert!(config.scan.bind_mounts_enabled);
    assert!(!config.lifecycle.enabled);
    let error = from_file("lifecycle_enabled = 2", &[]).unwrap_err().to_string();
    assert!(error.starts_with("invalid LIFECYCLE_ENABLED=2 (from "), "{error}");
}

#[test]
fn scan_enabled_values() {
    for (input, expected) in [
        ("auto", "Auto"),
        ("AUTO", "Auto"),
        ("true", "Always"),
        ("yes", "Always"),
        ("1", "Always"),
        ("false", "Never"),
        ("no", "Never"),
        ("0", "Never"),
    ] {
        check("SCAN_ENABLED", input, expected);
    }
    check_rejected("SCAN_ENABLED", "");
    let config = from_file("scan_enabled = false", &[]).unwrap();
    assert_eq!(config.scan.enabled, ScanEnabled::Never);
    assert_eq!(rendered(&config, "SCAN_ENABLED"), "false");
}

#[test]
fn integers_and_their_ranges() {
    for (variable, min, max) in [
        ("SCAN_CONCURRENCY", 1u64, 64u64),
        ("SCAN_MAX_RETRIES", 0, 20),
        ("SIZES_TTL_DAYS", 1, 36_500),
        ("RATE_LIMIT_RPM", 1, 1_000_000),
    ] {
        check(variable, &min.to_string(), &min.to_string());
        check(variable, &max.to_string(), &max.to_string());
        check(variable, &format!(" {max} "), &max.to_string());
        check_rejected(variable, &(max + 1).to_string());
        if min > 0 {
            check_rejected(variable, &(min - 1).to_string());
        }
        for input in
            ["", "-1", "+5", "1.0", "1e3", "ten", "99999999999999999999999999999999999999999"]
        {
            check_rejected(variable, input);
        }
    }
    let config = from_file("scan_concurrency = 4\nrate_limit_rpm = \"120\"", &[]).unwrap();
    assert_eq!(config.scan.concurrency.get(), 4);
    assert_eq!(config.http.rate_limit_rpm.get(), 120);
    for toml in ["scan_concurrency = 4.5", "scan_concurrency = true", "scan_concurrency = 0"] {
        let error = from_file(toml, &[]).unwrap_err().to_string();
        assert!(error.starts_with("invalid SCAN_CONCURRENCY="), "{toml}: {error}");
        assert!(error.ends_with("expected an integer from 1 to 64"), "{toml}: {error}");
    }
}

#[test]
fn allowlist_paths_are_normalised_and_pseudo_filesystems_refused() {
    let variable = "SCAN_BIND_ALLOWLIST";
    for (input, expected) in [
        ("/srv/data/", r#"["/srv/data"]"#),
        ("/srv/./data", r#"["/srv/data"]"#),
        ("//srv//data//", r#"["/srv/data"]"#),
        ("/procfs,/devices,/system", r#"["/procfs", "/devices", "/system"]"#),
        ("/var/lib/docker/volumes", r#"["/var/lib/docker/volumes"]"#),
    ] {
        check(variable, input, expected);
    }
    for input in [
        "/",
        "//",
        "/.",
        "/proc",
        "/proc/",
        "/proc/1/root",
        "/sys",
        "/sys/fs",
        "/dev",
        "/dev/shm",
        "/./proc",
    ] {
        check_error(
            variable,
            input,
            &format!(
                "invalid {variable}={input:?} (from the environment): {input:?} is refused; {}",
                value::ALLOWLIST_EXPECTED
            ),
        );
    }
    check_error(
        variable,
        "/srv/../proc",
        &format!(
            r#"invalid {variable}="/srv/../proc" (from the environment): "/srv/../proc" contains ..; {}"#,
            value::ALLOWLIST_EXPECTED
        ),
    );
    for input in ["srv", "./srv", "~/data", "/srv,relative"] {
        check_rejected(variable, input);
    }
}

#[test]
fn host_prefix_values() {
    let variable = "SCAN_HOST_PREFIX";
    check(variable, "", "None");
    check(variable, "/host", r#"Some("/host")"#);
    check(variable, "/host//root/./", r#"Some("/host/root")"#);
    for input in ["host", "./host", "/host/../etc"] {
        check_rejected(variable, input);
    }
}

#[test]
fn skip_pattern_is_a_string_never_a_guessed_type() {
    let variable = "SCAN_SKIP_PATTERN";
    // figment's `Env` provider would read these as an array, a number and a boolean.
    check(variable, "[ab]", r#"Some("[ab]")"#);
    check(variable, "123", r#"Some("123")"#);
    check(variable, "true", r#"Some("true")"#);
    check(variable, "", "None");
    let config = from_env(&[(variable, "^tmp_|_cache$")]).unwrap();
    let pattern = config.scan.skip_pattern.unwrap();
    assert!(pattern.is_match("tmp_1") && pattern.is_match("x_cache") && !pattern.is_match("data"));
    for input in ["(", "[a", "a{2,1}"] {
        check_rejected(variable, input);
    }
    let config = from_file(r"scan_skip_pattern = '^a\d+$'", &[]).unwrap();
    assert_eq!(config.scan.skip_pattern.unwrap().as_str(), r"^a\d+$");
    let error = from_file("scan_skip_pattern = ['^a']", &[]).unwrap_err().to_string();
    assert!(error.starts_with(r#"invalid SCAN_SKIP_PATTERN=["^a"] (from "#), "{error}");
}

#[test]
fn database_urls() {
    let variable = "DATABASE_URL";
    check(variable, "sqlite://volscan.db", r#"Sqlite DatabaseUrl("sqlite://volscan.db")"#);
    check(
        variable,
        "sqlite:///var/lib/volscan/v.db",
        r#"Sqlite DatabaseUrl("sqlite:///var/lib/volscan/v.db")"#,
    );
    check(
        variable,
        "postgresql://db/volscan",
        r#"Postgres DatabaseUrl("postgresql://db/volscan")"#,
    );
    check(
        variable,
        "postgres://u@db/volscan",
        r#"Postgres DatabaseUrl("postgres://u@db/volscan")"#,
    );
    check(
        variable,
        "postgres://u:p%40ss@db/volscan?sslmode=require&password=x",
        r#"Postgres DatabaseUrl("postgres://u:***@db/volscan?sslmode=require&password=***")"#,
    );
    for input in [
        "",
        "sqlite://",
        "sqlite://:memory:",
        "volscan.db",
        "sqlite:volscan.db",
        "mysql://db",
        "postgres://db/ x",
    ] {
        check_rejected(variable, input);
    }

    let config = from_env(&[(variable, "postgres://volscan:hunter2@db:5432/volscan")]).unwrap();
    let url = &config.database.url;
    assert_eq!(url.kind(), DatabaseKind::Postgres);
    assert_eq!(url.as_str(), "postgres://volscan:hunter2@db:5432/volscan");
    assert_eq!(url.to_string(), "postgres://volscan:***@db:5432/volscan");
    assert_eq!(url.sqlite_path(), None);
    let config = from_env(&[(variable, "sqlite:///data/v.db")]).unwrap();
    assert_eq!(config.database.url.sqlite_path(), Some(Path::new("/data/v.db")));
}

#[test]
fn docker_hosts() {
    let variable = "DOCKER_HOST";
    // Input, kind, canonical value: the scheme in lower case, no `/` after the port.
    for (input, kind, canonical) in [
        ("unix:///var/run/docker.sock", "Unix", "unix:///var/run/docker.sock"),
        ("unix:///run/user/1000/docker.sock", "Unix", "unix:///run/user/1000/docker.sock"),
        ("UNIX:///var/run/docker.sock", "Unix", "unix:///var/run/docker.sock"),
        ("Unix:///Var/Run/Docker.sock", "Unix", "unix:///Var/Run/Docker.sock"),
        ("tcp://127.0.0.1:2375", "Tcp", "tcp://127.0.0.1:2375"),
        ("tcp://docker:2376", "Tcp", "tcp://docker:2376"),
        ("tcp://[::1]:2375", "Tcp", "tcp://[::1]:2375"),
        ("TCP://host:2375", "Tcp", "tcp://host:2375"),
        ("tcp://host:2375/", "Tcp", "tcp://host:2375"),
        ("http://docker:2375", "Http", "http://docker:2375"),
        ("http://docker:2375/", "Http", "http://docker:2375"),
        ("HTTP://Docker:2375", "Http", "http://Docker:2375"),
    ] {
        check(variable, input, &format!("{kind} DockerHost({canonical:?})"));
        // The canonical value renders and parses back to itself.
        let config = from_env(&[(variable, input)]).unwrap();
        assert_eq!(config.docker.host.as_str(), canonical);
        assert_eq!(shell_unquote(&rendered(&config, variable)), canonical);
    }
    for input in [
        "",
        "/var/run/docker.sock",
        "unix://",
        "unix://var/run/docker.sock",
        "tcp://",
        "tcp://:2375",
        "tcp://host:0",
        "tcp://host:70000",
        "tcp://host:port",
        "tcp://host:2375/path",
        "tcp://[::1",
        "ssh://user@host",
        "npipe:////./pipe/docker_engine",
        "https://docker.example.com",
        "https://docker.example.com:2376",
        "HTTPS://docker:2376",
    ] {
        check_rejected(variable, input);
    }
    let config = from_env(&[(variable, "tcp://user:pw@docker:2375")]).unwrap();
    assert_eq!(config.docker.host.as_str(), "tcp://user:pw@docker:2375");
    assert_eq!(config.docker.host.to_string(), "tcp://user:***@docker:2375");
    assert_eq!(config.docker.host.unix_socket_path(), None);
    let config = from_env(&[(variable, "UNIX:///run/docker.sock")]).unwrap();
    assert_eq!(config.docker.host.unix_socket_path(), Some(Path::new("/run/docker.sock")));
}

/// `check-config` and `serve` must agree: TLS endpoints, which the Docker source cannot reach,
/// are refused here with a message that names the variable and what is supported.
#[test]
fn docker_hosts_over_tls_are_refused_saying_what_is_supported() {
    check_error(
        "DOCKER_HOST",
        "https://docker.example.com:2376",
        r#"invalid DOCKER_HOST="https://docker.example.com:2376" (from the environment): https:// (TLS) endpoints are not supported; expected unix:///ABSOLUTE/PATH, tcp://HOST:PORT or http://HOST:PORT (plain HTTP; TLS is not supported), such as unix:///var/run/docker.sock or tcp://127.0.0.1:2375"#,
    );
    check_error(
        "DOCKER_HOST",
        "SSH://docker",
        r#"invalid DOCKER_HOST="SSH://docker" (from the environment): unsupported scheme ssh://; expected unix:///ABSOLUTE/PATH, tcp://HOST:PORT or http://HOST:PORT (plain HTTP; TLS is not supported), such as unix:///var/run/docker.sock or tcp://127.0.0.1:2375"#,
    );
    // What is not a scheme is not echoed as one.
    let error = from_env(&[("DOCKER_HOST", "me:pw@docker://x")]).unwrap_err().to_string();
    assert!(!error.contains("scheme"), "{error}");
}

#[test]
fn bind_addresses() {
    check("VOLSCAN_BIND", "0.0.0.0:80", "0.0.0.0:80");
    check("VOLSCAN_BIND", " 127.0.0.1:8080 ", "127.0.0.1:8080");
    for input in ["", "8080", ":8080", "127.0.0.1", "127.0.0.1:99999", "::1:8080", "localhost:8080"]
    {
        check_rejected("VOLSCAN_BIND", input);
    }
}

#[test]
fn auth_tokens() {
    check("AUTH_TOKEN", "", "None");
    // A token of digits stays a string: the environment provider never guesses types.
    let config = from_env(&[("AUTH_TOKEN", "0123")]).unwrap();
    assert_eq!(config.http.auth_token.as_ref().map(Secret::expose), Some("0123"));
    let config = from_env(&[("AUTH_TOKEN", "abc~DEF-123_=/+.")]).unwrap();
    assert_eq!(config.http.auth_token.as_ref().map(Secret::expose), Some("abc~DEF-123_=/+."));
    for input in [" token", "token\n", "to ken", "tökén"] {
        check_rejected("AUTH_TOKEN", input);
    }
}

#[test]
fn log_filters() {
    for (input, parsed) in [
        ("debug", "debug"),
        (" warn ", "warn"),
        ("INFO", "INFO"),
        ("off", "off"),
        ("3", "3"),
        ("info,volscan=debug", "info,volscan=debug"),
        ("volscan_scan::du=trace", "volscan_scan::du=trace"),
        ("volscan[scan{volume=pgdata}]=debug", "volscan[scan{volume=pgdata}]=debug"),
        ("[scan]=debug", "[scan]=debug"),
        // `EnvFilter` skips empty directives, so repeated and trailing commas are harmless.
        ("info,,volscan=debug,", "info,,volscan=debug,"),
        // A bare target means every level of it.
        ("volscan", "volscan"),
    ] {
        check("RUST_LOG", input, &format!("{parsed:?}"));
    }
    for input in [
        "",
        " ",
        ",",
        ",,,",
        "foo=bar=baz,,[",
        "foo=bar=baz",
        "volscan=loud",
        "info,volscan=verbose",
        "[",
        "volscan[",
        "=info",
        "info,[scan{",
    ] {
        check_rejected("RUST_LOG", input);
    }
}

/// `RUST_LOG` is validated when the configuration loads, so `check-config` refuses what the
/// logging setup would refuse (or silently drop), naming the variable and the bad directive.
#[test]
fn an_invalid_log_directive_is_refused_naming_the_variable() {
    let error = from_env(&[("RUST_LOG", "foo=bar=baz,,[")]).unwrap_err().to_string();
    assert!(
        error.starts_with(r#"invalid RUST_LOG="foo=bar=baz,,[" (from the environment): the directive "foo=bar=baz" is invalid ("#),
        "{error}"
    );
    let error = from_env(&[("RUST_LOG", "info,,[")]).unwrap_err().to_string();
    assert!(
        error.starts_with(r#"invalid RUST_LOG="info,,[" (from the environment): the directive "[" is invalid (invalid filter directive); expected"#),
        "{error}"
    );
    // From the file, too.
    let error = from_file("rust_log = \"info,volscan=loud\"", &[]).unwrap_err().to_string();
    assert!(error.starts_with("invalid RUST_LOG=\"info,volscan=loud\" (from "), "{error}");
    // Every directive accepted here is accepted by the binary's logging setup.
    for filter in ["info", "info,,volscan=debug,", "volscan[scan{volume=pgdata}]=debug"] {
        let config = from_env(&[("RUST_LOG", filter)]).unwrap();
        assert!(tracing_subscriber::EnvFilter::builder().parse(&config.log.filter).is_ok());
    }
}

#[test]
fn file_overrides_defaults_and_environment_overrides_file() {
    let file = TempFile::new(
        "scan_interval = \"1h\"\nscan_concurrency = 4\nrust_log = \"debug\"\nscan_methods_order = [\"native\"]\n",
    );
    let config = Config::from_sources(Some(file.path()), [("SCAN_CONCURRENCY", "8")]).unwrap();
    // From the file.
    assert_eq!(config.scan.interval, Duration::from_secs(3600));
    assert_eq!(config.log.filter, "debug");
    assert_eq!(config.scan.methods_order, [ScanMethodName::Native]);
    // From the environment, over the file.
    assert_eq!(config.scan.concurrency.get(), 8);
    // From the defaults.
    assert_eq!(config.scan.timeout_per_volume, Duration::from_secs(120));
    assert_eq!(config.http.rate_limit_rpm.get(), 60);

    // An environment variable set to a valid value hides an invalid one in the file.
    let file = TempFile::new("scan_interval = \"abc\"\n");
    let config = Config::from_sources(Some(file.path()), [("SCAN_INTERVAL", "2h")]).unwrap();
    assert_eq!(config.scan.interval, Duration::from_secs(7200));
}

#[test]
fn errors_say_where_the_value_came_from() {
    let file = TempFile::new("scan_interval = \"abc\"\n");
    let error = Config::from_sources(Some(file.path()), [("SCAN_CONCURRENCY", "4")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            r#"invalid SCAN_INTERVAL="abc" (from {}): expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds"#,
            file.path().display()
        )
    );
    assert!(matches!(error, ConfigError::Invalid { origin: Origin::File(_), .. }));

    let file = TempFile::new("scan_interval = \"2h\"\n");
    let error = Config::from_sources(Some(file.path()), [("SCAN_INTERVAL", "abc")]).unwrap_err();
    assert!(matches!(error, ConfigError::Invalid { origin: Origin::Environment, .. }));
    assert!(error.to_string().contains("(from the environment)"), "{error}");
}

#[test]
fn unknown_names_in_the_environment_are_ignored() {
    let config =
        from_env(&[("PATH", "/usr/bin"), ("SCAN_INTERVALL", "abc"), ("scan_interval", "abc")])
            .unwrap();
    assert_eq!(config.render(), Config::default().render());
}

#[test]
fn unknown_keys_in_the_file_are_errors() {
    for (toml, key) in [
        ("scan_intervall = \"6h\"", "scan_intervall"),
        ("SCAN_INTERVAL = \"6h\"", "SCAN_INTERVAL"),
        ("[scan]\ninterval = \"6h\"", "scan"),
        ("volscan_config = \"x.toml\"", "volscan_config"),
    ] {
        let file = TempFile::new(toml);
        let error =
            Config::from_sources(Some(file.path()), Vec::<(String, String)>::new()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "unknown key {key:?} in {}: keys are",
                file.path().display()
            )),
            "{message}"
        );
        assert!(message.contains("scan_interval, scan_concurrency"), "{message}");
    }
}

#[test]
fn a_missing_file_is_an_error() {
    let path = std::env::temp_dir().join("volscan-config-test-does-not-exist.toml");
    let error = Config::from_sources(Some(&path), [("SCAN_INTERVAL", "6h")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("config file {} named by VOLSCAN_CONFIG does not exist", path.display())
    );
}

#[test]
fn invalid_toml_is_an_error_that_does_not_quote_the_file() {
    let error = from_file("auth_token = \"hunter2\nscan_interval = \"6h\"\n", &[]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, ConfigError::File { .. }), "{message}");
    assert!(message.starts_with("failed to read config file "), "{message}");
    assert!(message.contains("line 1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn secrets_never_show_in_render_debug_or_errors() {
    let token = "t0ps3cr3t-token";
    let password = "hunter2-password";
    let url = format!("postgres://volscan:{password}@db:5432/volscan");
    let config = from_env(&[("AUTH_TOKEN", token), ("DATABASE_URL", url.as_str())]).unwrap();
    assert_eq!(config.http.auth_token.as_ref().unwrap().expose(), token);
    assert_eq!(config.database.url.as_str(), url);

    let render = config.render();
    assert!(render.contains("\nAUTH_TOKEN='***'\n"), "{render}");
    assert!(
        render.contains("\nDATABASE_URL='postgres://volscan:***@db:5432/volscan'\n"),
        "{render}"
    );
    let debug = format!("{config:?} {config:#?}");
    let auth = format!("{} {:?}", config.http.auth_token.as_ref().unwrap(), config.http.auth_token);
    for shown in [&render, &debug, &auth] {
        assert!(!shown.contains(token) && !shown.contains(password), "{shown}");
    }

    // Errors: the secret variable itself invalid, and in the file.
    let mut errors = vec![
        from_env(&[("AUTH_TOKEN", "t0ps3cr3t token")]).unwrap_err(),
        from_env(&[("DATABASE_URL", format!("mysql://volscan:{password}@db/volscan").as_str())])
            .unwrap_err(),
        from_env(&[(
            "DATABASE_URL",
            format!("postgres://volscan:{password}@db/vol scan").as_str(),
        )])
        .unwrap_err(),
        from_env(&[("DOCKER_HOST", format!("https://user:{password}@docker:port").as_str())])
            .unwrap_err(),
        from_env(&[("DOCKER_HOST", format!("tcp://user:{password}@docker:port").as_str())])
            .unwrap_err(),
        from_file(&format!("auth_token = [\"{token}\"]"), &[]).unwrap_err(),
        from_file(&format!("auth_token = \"{token}\"\nbogus = 1"), &[]).unwrap_err(),
    ];
    errors.push(from_file(&format!("database_url = \"mysql://u:{password}@h\""), &[]).unwrap_err());
    for error in errors {
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("t0ps3cr3t") && !shown.contains(password), "{shown}");
    }
    // Without a token, nothing is shown.
    assert!(Config::default().render().contains("\nAUTH_TOKEN=\n"));
}

#[test]
fn masking_urls() {
    #[track_caller]
    fn check_mask(url: &str, expected: &str) {
        assert_eq!(secret::mask_url(url), expected);
    }
    check_mask("postgres://u:p@h/db", "postgres://u:***@h/db");
    check_mask("postgres://u:p@ss@h:5432/db", "postgres://u:***@h:5432/db");
    check_mask("postgres://u@h/db", "postgres://u@h/db");
    check_mask(
        "postgres://h/db?user=u&password=p&sslmode=disable",
        "postgres://h/db?user=u&password=***&sslmode=disable",
    );
    check_mask("postgres://u:p@h", "postgres://u:***@h");
    check_mask("sqlite://volscan.db", "sqlite://volscan.db");
    check_mask("not a url", "not a url");
    check_mask("u:p@h", "u:p@h");
}

#[test]
fn the_example_file_holds_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("volscan.example.toml");
    let config = Config::from_sources(Some(&path), Vec::<(String, String)>::new()).unwrap();
    assert_eq!(config.render(), Config::default().render());

    // And it sets every key, so that it documents every variable.
    let text = std::fs::read_to_string(&path).unwrap();
    let keys: Vec<String> = text
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains(" = "))
        .map(|line| line.split(" = ").next().unwrap().to_uppercase())
        .collect();
    assert_eq!(keys, VARIABLES);
}

/// Reads one value of `render()` back, undoing its single quotes as a POSIX shell would.
fn shell_unquote(value: &str) -> String {
    match value.strip_prefix('\'').and_then(|value| value.strip_suffix('\'')) {
        Some(inner) => inner.replace(r"'\''", "'"),
        None => value.to_owned(),
    }
}

#[test]
fn render_can_be_pasted_back() {
    let env = [
        ("SCAN_ENABLED", "true"),
        ("SCAN_INTERVAL", "1d 90s"),
        ("SCAN_CONCURRENCY", "7"),
        ("SCAN_TIMEOUT_PER_VOLUME", "90"),
        ("SCAN_METHODS_ORDER", "native,diskus"),
        ("SCAN_BIND_MOUNTS_ENABLED", "yes"),
        ("SCAN_BIND_ALLOWLIST", r#"["/srv/a,b", "/srv/it's"]"#),
        ("SCAN_SKIP_PATTERN", r"^tmp_\d+ 'x'$"),
        ("SCAN_MAX_RETRIES", "20"),
        ("SCAN_HOST_PREFIX", "/host/"),
        ("LIFECYCLE_ENABLED", "no"),
        ("SIZES_TTL_DAYS", "7"),
        ("LIFECYCLE_INTERVAL", "1h 30m"),
        ("DATABASE_URL", "sqlite:///var/lib/volscan db/v.db"),
        ("DOCKER_HOST", "tcp://[::1]:2375"),
        ("VOLSCAN_BIND", "[::]:9000"),
        ("RATE_LIMIT_RPM", "1000000"),
        ("RUST_LOG", "info,volscan_http=debug"),
    ];
    let config = from_env(&env).unwrap();
    let render = config.render();
    let expected = r#"SCAN_ENABLED=true
SCAN_INTERVAL='24h 1m 30s'
SCAN_CONCURRENCY=7
SCAN_TIMEOUT_PER_VOLUME='1m 30s'
SCAN_METHODS_ORDER=native,diskus
SCAN_BIND_MOUNTS_ENABLED=true
SCAN_BIND_ALLOWLIST='["/srv/a,b","/srv/it'\''s"]'
SCAN_SKIP_PATTERN='^tmp_\d+ '\''x'\''$'
SCAN_MAX_RETRIES=20
SCAN_HOST_PREFIX=/host
SCAN_NICE=10
SCAN_IO_CLASS=idle
LIFECYCLE_ENABLED=false
SIZES_TTL_DAYS=7
LIFECYCLE_INTERVAL='1h 30m'
DATABASE_URL='sqlite:///var/lib/volscan db/v.db'
VOLSCAN_HOST_ID=
VOLSCAN_HEARTBEAT_INTERVAL=15s
DOCKER_HOST='tcp://[::1]:2375'
VOLSCAN_BIND='[::]:9000'
RATE_LIMIT_RPM=1000000
AUTH_TOKEN=
AUTH_READ=false
VOLSCAN_DASHBOARD=true
RUST_LOG=info,volscan_http=debug
"#;
    assert_eq!(render, expected);
    let pasted: Vec<(String, String)> = render
        .lines()
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.to_owned(), shell_unquote(value))
        })
        .collect();
    let reloaded = Config::from_sources(None, pasted).unwrap();
    assert_eq!(reloaded.render(), render);

    // The defaults round-trip too.
    let pasted: Vec<(String, String)> = Config::default()
        .render()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.to_owned(), shell_unquote(value))
        })
        .collect();
    assert_eq!(Config::from_sources(None, pasted).unwrap().render(), Config::default().render());
}
