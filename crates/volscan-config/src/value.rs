//! Loosely typed raw values ([`Raw`]) and the parsers that turn them into typed values, once.
//!
//! A raw value is whatever the operator wrote: always a string in the environment, and a string,
//! integer, boolean or array in the TOML file.
//! Each parser accepts every spelling SPEC §2 allows and returns, on failure, the reason shown to
//! the operator, ending with the accepted form.
//! Parsers know nothing of variable names or where a value came from; `lib.rs` adds that context.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::duration;
use crate::secret::{MASK, Secret, mask_url};
use crate::types::{DatabaseUrl, DockerHost, ScanEnabled, ScanMethodName};

/// One value as written by the operator, before validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// A string: every environment variable, and quoted TOML values.
    Str(String),
    /// A TOML integer.
    Int(i128),
    /// A TOML boolean.
    Bool(bool),
    /// A TOML array.
    List(Vec<Raw>),
    /// Anything else (a float, a table, a date), as shown in error messages: `1.5`, `{...}`.
    Other(String),
}

impl fmt::Display for Raw {
    /// Shows the value as it was written, strings quoted, so that an empty or space-padded value is
    /// visible.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Str(text) => write!(f, "{text:?}"),
            Raw::Int(number) => write!(f, "{number}"),
            Raw::Bool(flag) => write!(f, "{flag}"),
            Raw::List(items) => {
                f.write_str("[")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Raw::Other(description) => f.write_str(description),
        }
    }
}

impl Raw {
    /// The value for an error message, with every string passed through `mask`.
    pub(crate) fn display_masked(&self, mask: fn(&str) -> String) -> String {
        self.map_strings(mask).to_string()
    }

    fn map_strings(&self, mask: fn(&str) -> String) -> Raw {
        match self {
            Raw::Str(text) => Raw::Str(mask(text)),
            Raw::List(items) => {
                Raw::List(items.iter().map(|item| item.map_strings(mask)).collect())
            }
            other => other.clone(),
        }
    }
}

/// Masks a whole value, for `AUTH_TOKEN`.
pub(crate) fn mask_all(_: &str) -> String {
    MASK.to_owned()
}

/// Masks the password of a URL, for `DATABASE_URL` and `DOCKER_HOST`.
pub(crate) fn mask_password(url: &str) -> String {
    mask_url(url)
}

/// Shows a value unchanged.
pub(crate) fn mask_nothing(text: &str) -> String {
    text.to_owned()
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, integer, boolean or array")
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Raw, E> {
        Ok(Raw::Int(i128::from(number)))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Raw, E> {
        Ok(Raw::Int(i128::from(number)))
    }

    fn visit_i128<E: de::Error>(self, number: i128) -> Result<Raw, E> {
        Ok(Raw::Int(number))
    }

    fn visit_u128<E: de::Error>(self, number: u128) -> Result<Raw, E> {
        Ok(i128::try_from(number).map_or_else(|_| Raw::Other(number.to_string()), Raw::Int))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Raw, E> {
        Ok(Raw::Other(number.to_string()))
    }

    fn visit_char<E: de::Error>(self, c: char) -> Result<Raw, E> {
        Ok(Raw::Str(c.to_string()))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Raw, E> {
        Ok(Raw::Str(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Raw, E> {
        Ok(Raw::Str(text))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Other("nothing".to_owned()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Other("nothing".to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Raw::Other("{...}".to_owned()))
    }
}

/// The accepted form of booleans.
pub(crate) const BOOL_EXPECTED: &str = "expected true or false (also 1/0, yes/no)";

/// `true`/`false`, `1`/`0`, `yes`/`no` (any case), or a TOML boolean or 0/1.
pub(crate) fn boolean(raw: &Raw) -> Result<bool, String> {
    let parsed = match raw {
        Raw::Bool(flag) => Some(*flag),
        Raw::Int(0) => Some(false),
        Raw::Int(1) => Some(true),
        Raw::Str(text) => parse_bool_word(text),
        _ => None,
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
pub(crate) fn scan_enabled(raw: &Raw) -> Result<ScanEnabled, String> {
    if let Raw::Str(text) = raw
        && text.trim().eq_ignore_ascii_case("auto")
    {
        return Ok(ScanEnabled::Auto);
    }
    match boolean(raw) {
        Ok(true) => Ok(ScanEnabled::Always),
        Ok(false) => Ok(ScanEnabled::Never),
        Err(_) => Err("expected auto, true or false".to_owned()),
    }
}

/// A duration greater than zero, as text or as a TOML integer of seconds.
pub(crate) fn duration(raw: &Raw) -> Result<Duration, String> {
    match raw {
        Raw::Str(text) => duration::parse(text),
        Raw::Int(seconds) => match u128::try_from(*seconds) {
            Ok(seconds) => duration::from_seconds(seconds),
            Err(_) => Err(duration::EXPECTED.to_owned()),
        },
        _ => Err(duration::EXPECTED.to_owned()),
    }
}

/// An integer in `min..=max`, as text or as a TOML integer.
pub(crate) fn integer(raw: &Raw, min: u64, max: u64) -> Result<u64, String> {
    let number = match raw {
        Raw::Int(number) => Some(*number),
        Raw::Str(text) => {
            let text = text.trim();
            // `str::parse` would also accept a leading `+`; plain digits are the documented form.
            match text.bytes().all(|byte| byte.is_ascii_digit()) {
                true => text.parse::<i128>().ok(),
                false => None,
            }
        }
        _ => None,
    };
    match number.map(u64::try_from) {
        Some(Ok(number)) if (min..=max).contains(&number) => Ok(number),
        _ => Err(format!("expected an integer from {min} to {max}")),
    }
}

/// `SCAN_CONCURRENCY`: 1 to 64 workers.
pub(crate) fn concurrency(raw: &Raw) -> Result<NonZeroUsize, String> {
    let number = integer(raw, 1, 64)?;
    usize::try_from(number)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| "expected an integer from 1 to 64".to_owned())
}

/// An integer in `min..=max` (with `min >= 1`) as a `NonZeroU32`.
pub(crate) fn nonzero_u32(raw: &Raw, min: u32, max: u32) -> Result<NonZeroU32, String> {
    let number = integer(raw, u64::from(min.max(1)), u64::from(max))?;
    u32::try_from(number)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| format!("expected an integer from {min} to {max}"))
}

/// An integer in `min..=max` as a `u32`.
pub(crate) fn small_integer(raw: &Raw, min: u32, max: u32) -> Result<u32, String> {
    let number = integer(raw, u64::from(min), u64::from(max))?;
    u32::try_from(number).map_err(|_| format!("expected an integer from {min} to {max}"))
}

/// A list: `a,b,c` (items trimmed), `["a","b","c"]` in a string, or a TOML array of strings.
///
/// An empty string, `[]` or an empty array is the empty list; an empty item is an error.
/// `expected` is the accepted form for this particular list.
pub(crate) fn list(raw: &Raw, expected: &str) -> Result<Vec<String>, String> {
    match raw {
        Raw::List(items) => items
            .iter()
            .map(|item| match item {
                Raw::Str(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
                Raw::Str(_) => Err(format!("the list has an empty item; {expected}")),
                other => Err(format!("the list item {other} is not a string; {expected}")),
            })
            .collect(),
        Raw::Str(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Ok(Vec::new());
            }
            if text.starts_with('[') {
                let items: Vec<String> = serde_json::from_str(text).map_err(|_| {
                    format!("the JSON-style list is not an array of strings; {expected}")
                })?;
                return list(&Raw::List(items.into_iter().map(Raw::Str).collect()), expected);
            }
            text.split(',')
                .map(|item| match item.trim() {
                    "" => Err(format!("the list has an empty item; {expected}")),
                    item => Ok(item.to_owned()),
                })
                .collect()
        }
        _ => Err(expected.to_owned()),
    }
}

/// The accepted form of `SCAN_METHODS_ORDER`.
pub(crate) const METHODS_EXPECTED: &str = "expected a non-empty list of distinct methods from \
    diskus, du, native, such as diskus,du,native or [\"du\",\"native\"]";

/// `SCAN_METHODS_ORDER`: a non-empty list of distinct method names.
pub(crate) fn methods(raw: &Raw) -> Result<Vec<ScanMethodName>, String> {
    let names = list(raw, METHODS_EXPECTED)?;
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
pub(crate) fn allowlist(raw: &Raw) -> Result<Vec<PathBuf>, String> {
    let items = list(raw, ALLOWLIST_EXPECTED)?;
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
pub(crate) fn skip_pattern(raw: &Raw) -> Result<Option<Regex>, String> {
    const EXPECTED: &str =
        "expected a regular expression such as ^docker_|^builder_, or empty to skip nothing";
    let Raw::Str(pattern) = raw else {
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
pub(crate) fn host_prefix(raw: &Raw) -> Result<Option<PathBuf>, String> {
    const EXPECTED: &str = "expected an absolute path such as /host, or empty for none";
    let Raw::Str(text) = raw else {
        return Err(EXPECTED.to_owned());
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    normalize_absolute(text).map(Some).map_err(|problem| format!("{problem}; {EXPECTED}"))
}

/// `DATABASE_URL`.
pub(crate) fn database_url(raw: &Raw) -> Result<DatabaseUrl, String> {
    match raw {
        Raw::Str(text) => DatabaseUrl::parse(text),
        _ => Err(DatabaseUrl::EXPECTED.to_owned()),
    }
}

/// `DOCKER_HOST`.
pub(crate) fn docker_host(raw: &Raw) -> Result<DockerHost, String> {
    match raw {
        Raw::Str(text) => DockerHost::parse(text),
        _ => Err(DockerHost::EXPECTED.to_owned()),
    }
}

/// `VOLSCAN_BIND`: an IP address and a port.
pub(crate) fn socket_addr(raw: &Raw) -> Result<SocketAddr, String> {
    const EXPECTED: &str = "expected an ip address and port such as 127.0.0.1:8080 or [::]:8080";
    match raw {
        Raw::Str(text) => text.trim().parse().map_err(|_| EXPECTED.to_owned()),
        _ => Err(EXPECTED.to_owned()),
    }
}

/// `AUTH_TOKEN`: empty for none, else printable ASCII without spaces (it must fit an
/// `Authorization` header).
pub(crate) fn auth_token(raw: &Raw) -> Result<Option<Secret>, String> {
    const EXPECTED: &str = "expected printable ascii without spaces, or empty for none";
    let Raw::Str(token) = raw else {
        return Err(EXPECTED.to_owned());
    };
    if token.is_empty() {
        return Ok(None);
    }
    match token.bytes().all(|byte| byte.is_ascii_graphic()) {
        true => Ok(Some(Secret::new(token.clone()))),
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
pub(crate) fn log_filter(raw: &Raw) -> Result<String, String> {
    let Raw::Str(text) = raw else {
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
