//! The parsers that turn one value as the operator wrote it (a figment [`Value`]) into a typed
//! value, once, and [`shown`], which writes such a value in an error message.
//!
//! A value is always a string in the environment, and a string, integer, boolean or array in the
//! TOML file.
//! Each parser accepts every spelling SPEC §2 allows and returns, on failure, the reason shown to
//! the operator, ending with the accepted form.
//! Parsers know nothing of variable names or where a value came from; `variable.rs` adds that
//! context.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use figment::value::{Num, Value};
use regex::Regex;

use crate::duration;
use crate::secret::{Mask, Secret};
use crate::types::{DatabaseUrl, DockerHost, IoClassName, ScanEnabled, ScanMethodName};

/// `value` as written, for an error message, with every string in it passed through `mask`.
///
/// Strings are quoted so that an empty or space-padded value is visible; arrays show as
/// `["a",1]`, tables as `{...}`.
pub(crate) fn shown(value: &Value, mask: Mask) -> String {
    match value {
        Value::String(_, text) => format!("{:?}", mask.apply(text)),
        Value::Char(_, c) => format!("{:?}", mask.apply(&c.to_string())),
        Value::Bool(_, flag) => flag.to_string(),
        Value::Num(_, number) => number_text(*number),
        Value::Empty(..) => "nothing".to_owned(),
        Value::Dict(..) => "{...}".to_owned(),
        Value::Array(_, items) => {
            let items: Vec<String> = items.iter().map(|item| shown(item, mask)).collect();
            format!("[{}]", items.join(","))
        }
    }
}

/// A number as written: `5`, `-5` or `1.5`.
fn number_text(number: Num) -> String {
    match (number.to_i128(), number.to_u128(), number.to_f64()) {
        (Some(signed), _, _) => signed.to_string(),
        (_, Some(unsigned), _) => unsigned.to_string(),
        (_, _, Some(float)) => float.to_string(),
        // Every `Num` is signed, unsigned or a float, so this is never reached.
        (None, None, None) => format!("{number:?}"),
    }
}

/// The integer that `value` holds, if it is a number without a fraction that fits an `i128`.
fn integer_of(value: &Value) -> Option<i128> {
    let number = value.to_num()?;
    number.to_i128().or_else(|| number.to_u128().and_then(|number| i128::try_from(number).ok()))
}

/// The accepted form of booleans.
pub(crate) const BOOL_EXPECTED: &str = "expected true or false (also 1/0, yes/no)";

/// `true`/`false`, `1`/`0`, `yes`/`no` (any case), or a TOML boolean or 0/1.
pub(crate) fn boolean(value: &Value) -> Result<bool, String> {
    let parsed = match value {
        Value::Bool(_, flag) => Some(*flag),
        Value::String(_, text) => parse_bool_word(text),
        number => match integer_of(number) {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
    };
    parsed.ok_or_else(|| BOOL_EXPECTED.to_owned())
}

fn parse_bool_word(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// `auto`, or any boolean spelling.
pub(crate) fn scan_enabled(value: &Value) -> Result<ScanEnabled, String> {
    if value.as_str().is_some_and(|text| text.trim().eq_ignore_ascii_case("auto")) {
        return Ok(ScanEnabled::Auto);
    }
    match boolean(value) {
        Ok(true) => Ok(ScanEnabled::Always),
        Ok(false) => Ok(ScanEnabled::Never),
        Err(_) => Err("expected auto, true or false".to_owned()),
    }
}

/// `idle` or `best-effort`, in any case.
pub(crate) fn io_class(value: &Value) -> Result<IoClassName, String> {
    match value.as_str().map(|text| text.trim().to_ascii_lowercase()).as_deref() {
        Some("idle") => Ok(IoClassName::Idle),
        Some("best-effort") => Ok(IoClassName::BestEffort),
        _ => Err("expected idle or best-effort".to_owned()),
    }
}

/// A duration greater than zero, as text or as a TOML integer of seconds.
pub(crate) fn duration(value: &Value) -> Result<Duration, String> {
    if let Some(text) = value.as_str() {
        return duration::parse(text);
    }
    match integer_of(value).map(u128::try_from) {
        Some(Ok(seconds)) => duration::from_seconds(seconds),
        _ => Err(duration::EXPECTED.to_owned()),
    }
}

/// `VOLSCAN_HEARTBEAT_INTERVAL`: a duration of 1 s to 10 minutes.
pub(crate) fn heartbeat(value: &Value) -> Result<Duration, String> {
    let every = duration(value)?;
    if (Duration::from_secs(1)..=Duration::from_secs(600)).contains(&every) {
        Ok(every)
    } else {
        Err(format!("must be from 1s to 10m; {}", duration::EXPECTED))
    }
}

/// An integer in `min..=max`, as text or as a TOML integer.
pub(crate) fn integer(value: &Value, min: u64, max: u64) -> Result<u64, String> {
    let number = match value.as_str() {
        Some(text) => {
            let text = text.trim();
            // `str::parse` would also accept a leading `+`; plain digits are the documented form.
            match text.bytes().all(|byte| byte.is_ascii_digit()) {
                true => text.parse::<i128>().ok(),
                false => None,
            }
        }
        None => integer_of(value),
    };
    match number.map(u64::try_from) {
        Some(Ok(number)) if (min..=max).contains(&number) => Ok(number),
        _ => Err(format!("expected an integer from {min} to {max}")),
    }
}

/// `SCAN_CONCURRENCY`: 1 to 64 workers.
pub(crate) fn concurrency(value: &Value) -> Result<NonZeroUsize, String> {
    let number = integer(value, 1, 64)?;
    usize::try_from(number)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| "expected an integer from 1 to 64".to_owned())
}

/// An integer in `min..=max` (with `min >= 1`) as a `NonZeroU32`.
pub(crate) fn nonzero_u32(value: &Value, min: u32, max: u32) -> Result<NonZeroU32, String> {
    let number = integer(value, u64::from(min.max(1)), u64::from(max))?;
    u32::try_from(number)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| format!("expected an integer from {min} to {max}"))
}

/// An integer in `min..=max` as a `u32`.
pub(crate) fn small_integer(value: &Value, min: u32, max: u32) -> Result<u32, String> {
    let number = integer(value, u64::from(min), u64::from(max))?;
    u32::try_from(number).map_err(|_| format!("expected an integer from {min} to {max}"))
}

/// A list: `a,b,c` (items trimmed), `["a","b","c"]` in a string, or a TOML array of strings.
///
/// An empty string, `[]` or an empty array is the empty list; an empty item is an error.
/// `expected` is the accepted form for this particular list.
pub(crate) fn list(value: &Value, expected: &str) -> Result<Vec<String>, String> {
    match value {
        Value::Array(_, items) => items
            .iter()
            .map(|item| match item.as_str() {
                Some(text) => list_item(text, expected),
                None => Err(format!(
                    "the list item {} is not a string; {expected}",
                    shown(item, Mask::Nothing)
                )),
            })
            .collect(),
        Value::String(_, text) => list_in_text(text, expected),
        _ => Err(expected.to_owned()),
    }
}

/// A list written in one string: `a,b,c`, `["a","b","c"]`, or empty for none.
fn list_in_text(text: &str, expected: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if text.starts_with('[') {
        let items: Vec<String> = serde_json::from_str(text)
            .map_err(|_| format!("the JSON-style list is not an array of strings; {expected}"))?;
        return items.iter().map(|item| list_item(item, expected)).collect();
    }
    text.split(',').map(|item| list_item(item, expected)).collect()
}

/// One item of a list, trimmed; an empty item is an error.
fn list_item(text: &str, expected: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err(format!("the list has an empty item; {expected}")),
        item => Ok(item.to_owned()),
    }
}

/// The accepted form of `SCAN_METHODS_ORDER`.
pub(crate) const METHODS_EXPECTED: &str = "expected a non-empty list of distinct methods from \
    diskus, du, native, such as native,diskus,du or [\"du\",\"native\"]";

/// `SCAN_METHODS_ORDER`: a non-empty list of distinct method names.
pub(crate) fn methods(value: &Value) -> Result<Vec<ScanMethodName>, String> {
    let names = list(value, METHODS_EXPECTED)?;
    if names.is_empty() {
        return Err(format!("the list is empty; {METHODS_EXPECTED}"));
    }
    let mut methods = Vec::with_capacity(names.len());
    for name in &names {
        let method = ScanMethodName::from_name(name)
            .ok_or_else(|| format!("unknown method {name:?}; {METHODS_EXPECTED}"))?;
        if methods.contains(&method) {
            return Err(format!("{name:?} is listed twice; {METHODS_EXPECTED}"));
        }
        methods.push(method);
    }
    Ok(methods)
}

/// The accepted form of `SCAN_BIND_ALLOWLIST`.
pub(crate) const ALLOWLIST_EXPECTED: &str = "expected a list of absolute directories, none of them \
    /, /proc, /sys, /dev or under /proc, /sys, /dev, such as /srv/data,/home/app or [\"/srv/data\"], \
    or empty for none";

/// Directories that may never be allow-listed, nor anything under them.
const REFUSED_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// `SCAN_BIND_ALLOWLIST`: absolute paths, lexically normalised, none of them `/` or a kernel
/// pseudo-filesystem.
///
/// This only checks the text. The scheduler canonicalises the paths (resolving symlinks) at
/// start-up and must check the result again.
pub(crate) fn allowlist(value: &Value) -> Result<Vec<PathBuf>, String> {
    let items = list(value, ALLOWLIST_EXPECTED)?;
    let mut paths = Vec::with_capacity(items.len());
    for item in &items {
        let path = normalize_absolute(item)
            .map_err(|problem| format!("{problem}; {ALLOWLIST_EXPECTED}"))?;
        let refused =
            path == Path::new("/") || REFUSED_TREES.iter().any(|tree| path.starts_with(tree));
        if refused {
            return Err(format!("{item:?} is refused; {ALLOWLIST_EXPECTED}"));
        }
        paths.push(path);
    }
    Ok(paths)
}

/// Lexically normalises an absolute path: repeated and trailing slashes and `.` are removed, `..`
/// is an error.
///
/// It does not touch the filesystem, so symlinks are not resolved.
pub(crate) fn normalize_absolute(text: &str) -> Result<PathBuf, String> {
    let path = Path::new(text);
    if !path.is_absolute() {
        return Err(format!("{text:?} is not an absolute path"));
    }
    let mut normalized = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => normalized.push(part),
            Component::ParentDir => return Err(format!("{text:?} contains ..")),
            Component::Prefix(_) => return Err(format!("{text:?} is not a unix path")),
        }
    }
    Ok(normalized)
}

/// `SCAN_SKIP_PATTERN`: a regular expression, or empty for none (an empty regex would match every
/// volume).
pub(crate) fn skip_pattern(value: &Value) -> Result<Option<Regex>, String> {
    const EXPECTED: &str =
        "expected a regular expression such as ^docker_|^builder_, or empty to skip nothing";
    let Some(pattern) = value.as_str() else {
        return Err(EXPECTED.to_owned());
    };
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(pattern).map(Some).map_err(|error| {
        // The regex error spans several lines, pointing at the pattern; its last line is the
        // problem.
        let text = error.to_string();
        let problem = text.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("");
        let problem = problem.trim().trim_start_matches("error: ");
        format!("the regex does not compile ({problem}); {EXPECTED}")
    })
}

/// `SCAN_HOST_PREFIX`: empty for none, else an absolute path, lexically normalised.
pub(crate) fn host_prefix(value: &Value) -> Result<Option<PathBuf>, String> {
    const EXPECTED: &str = "expected an absolute path such as /host, or empty for none";
    let Some(text) = value.as_str() else {
        return Err(EXPECTED.to_owned());
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    normalize_absolute(text).map(Some).map_err(|problem| format!("{problem}; {EXPECTED}"))
}

/// `VOLSCAN_HOST_ID`: empty for the hostname, else a host id (lower-cased).
pub(crate) fn host_id(value: &Value) -> Result<Option<String>, String> {
    const EXPECTED: &str = "expected 1-63 characters of a-z, 0-9, '_', '.', '-' starting with \
        a letter or digit (such as web-01), or empty for the hostname";
    let Some(text) = value.as_str() else {
        return Err(EXPECTED.to_owned());
    };
    let id = text.trim().to_lowercase();
    if id.is_empty() {
        return Ok(None);
    }
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && id.len() <= 63 && id.chars().all(valid_char) {
        Ok(Some(id))
    } else {
        Err(EXPECTED.to_owned())
    }
}

/// `DATABASE_URL`.
pub(crate) fn database_url(value: &Value) -> Result<DatabaseUrl, String> {
    match value.as_str() {
        Some(text) => DatabaseUrl::parse(text),
        None => Err(DatabaseUrl::EXPECTED.to_owned()),
    }
}

/// `DOCKER_HOST`.
pub(crate) fn docker_host(value: &Value) -> Result<DockerHost, String> {
    match value.as_str() {
        Some(text) => DockerHost::parse(text),
        None => Err(DockerHost::EXPECTED.to_owned()),
    }
}

/// `VOLSCAN_BIND`: an IP address and a port.
pub(crate) fn socket_addr(value: &Value) -> Result<SocketAddr, String> {
    const EXPECTED: &str = "expected an ip address and port such as 127.0.0.1:8080 or [::]:8080";
    match value.as_str() {
        Some(text) => text.trim().parse().map_err(|_| EXPECTED.to_owned()),
        None => Err(EXPECTED.to_owned()),
    }
}

/// `AUTH_TOKEN`: empty for none, else printable ASCII without spaces (it must fit an
/// `Authorization` header).
pub(crate) fn auth_token(value: &Value) -> Result<Option<Secret>, String> {
    const EXPECTED: &str = "expected printable ascii without spaces, or empty for none";
    let Some(token) = value.as_str() else {
        return Err(EXPECTED.to_owned());
    };
    if token.is_empty() {
        return Ok(None);
    }
    match token.bytes().all(|byte| byte.is_ascii_graphic()) {
        true => Ok(Some(Secret::new(token))),
        false => Err(EXPECTED.to_owned()),
    }
}

/// The accepted form of `RUST_LOG`.
pub(crate) const LOG_FILTER_EXPECTED: &str = "expected a non-empty log filter such as info or \
    info,volscan=debug: comma-separated directives, each LEVEL or TARGET[SPAN{FIELD=VALUE}]=LEVEL, \
    where LEVEL is off, error, warn, info, debug, trace or 0 to 5";

/// `RUST_LOG`: a non-empty `tracing_subscriber::EnvFilter` filter, trimmed.
///
/// Each directive is parsed here exactly as the binary's logging setup parses it
/// (`EnvFilter::builder().parse`), so a filter accepted here is never refused, nor silently
/// ignored, at start-up. Empty directives (`info,,`) are skipped, as `EnvFilter` skips them, but
/// a filter of nothing but commas is refused.
pub(crate) fn log_filter(value: &Value) -> Result<String, String> {
    let Some(text) = value.as_str() else {
        return Err(LOG_FILTER_EXPECTED.to_owned());
    };
    let text = text.trim();
    let mut directives = text.split(',').filter(|directive| !directive.is_empty()).peekable();
    if directives.peek().is_none() {
        return Err(LOG_FILTER_EXPECTED.to_owned());
    }
    for directive in directives {
        if let Err(error) = tracing_subscriber::EnvFilter::builder().parse(directive) {
            return Err(format!(
                "the directive {directive:?} is invalid ({error}); {LOG_FILTER_EXPECTED}"
            ));
        }
    }
    Ok(text.to_owned())
}
