//! Printing the configuration: the effective values as `NAME=value` lines, for
//! `volscan-server check-config`, and the variables as the Markdown table of README.md.
//!
//! Every value is written in the syntax this crate parses, so the output can be pasted back as
//! environment variables (tests check the round trip).
//! Secrets never appear: each variable's declared mask applies, so `AUTH_TOKEN` prints as `***`,
//! and passwords in URLs as `***`.
//! The functions that write one typed value are named in `variables.rs`.

use std::fmt::{Display, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

use crate::secret::{MASK, Secret};
use crate::variables::TABLE;
use crate::{Config, duration};

/// See [`Config::render`].
pub(crate) fn render(config: &Config) -> String {
    let mut out = String::new();
    for variable in TABLE {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}={}", variable.name, shell_quote(&variable.masked_text(config)));
    }
    out
}

/// See [`Config::markdown_table`].
pub(crate) fn markdown_table() -> String {
    let defaults = Config::default();
    let mut out = String::from("| variable | default | meaning |\n| --- | --- | --- |\n");
    for variable in TABLE {
        let default = match variable.masked_text(&defaults) {
            text if text.is_empty() => "empty".to_owned(),
            text => format!("`{}`", text.replace('|', "\\|")),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "| `{}` | {default} | {} |", variable.name, variable.doc);
    }
    out
}

/// A duration as `6h` or `1h 30m`.
pub(crate) fn duration(duration: &Duration) -> String {
    duration::format(*duration)
}

/// Items as `a,b,c`.
pub(crate) fn comma_list<T: Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The pattern as written, or nothing.
pub(crate) fn optional_regex(regex: &Option<Regex>) -> String {
    regex.as_ref().map_or("", Regex::as_str).to_owned()
}

/// The path, or nothing.
pub(crate) fn optional_path(path: &Option<PathBuf>) -> String {
    path.as_deref().map_or(String::new(), path_text)
}

/// `***` when a secret is set, nothing when not: the secret itself is never read here.
pub(crate) fn secret(secret: &Option<Secret>) -> String {
    secret.as_ref().map_or(String::new(), |_| MASK.to_owned())
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `a,b` when no path contains a comma (or starts with `[`), else the JSON form, which is always
/// unambiguous.
pub(crate) fn path_list(paths: &[PathBuf]) -> String {
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
