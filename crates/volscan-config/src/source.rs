//! Merging the sources with figment: the optional TOML file, then the environment, into one
//! [`RawConfig`].
//!
//! The environment provider here is our own, not figment's `Env`: it yields only the known
//! variables, and always as strings, exactly as given.
//! `Env` guesses types, so it would read the regex `[ab]` as an array, or a token `123` as a
//! number.
//! Nothing here validates values; that happens once, in `lib.rs`, on the merged [`RawConfig`].

use std::collections::BTreeMap;
use std::path::Path;

use figment::error::Kind;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;

use crate::error::ConfigError;
use crate::value::Raw;

/// Every variable of SPEC §2 as a raw value, `None` when no source sets it.
///
/// Field names are the TOML keys: the variable names in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) scan_enabled: Option<Raw>,
    pub(crate) scan_interval: Option<Raw>,
    pub(crate) scan_concurrency: Option<Raw>,
    pub(crate) scan_timeout_per_volume: Option<Raw>,
    pub(crate) scan_methods_order: Option<Raw>,
    pub(crate) scan_bind_mounts_enabled: Option<Raw>,
    pub(crate) scan_bind_allowlist: Option<Raw>,
    pub(crate) scan_skip_pattern: Option<Raw>,
    pub(crate) scan_max_retries: Option<Raw>,
    pub(crate) scan_host_prefix: Option<Raw>,
    pub(crate) lifecycle_enabled: Option<Raw>,
    pub(crate) sizes_ttl_days: Option<Raw>,
    pub(crate) lifecycle_interval: Option<Raw>,
    pub(crate) database_url: Option<Raw>,
    pub(crate) docker_host: Option<Raw>,
    pub(crate) volscan_bind: Option<Raw>,
    pub(crate) rate_limit_rpm: Option<Raw>,
    pub(crate) auth_token: Option<Raw>,
    pub(crate) rust_log: Option<Raw>,
}

/// A figment provider of the known environment variables, as strings, under their lower-case names.
struct EnvironmentProvider<'a> {
    variables: &'a BTreeMap<&'static str, String>,
}

impl Provider for EnvironmentProvider<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variables")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict: Dict = self
            .variables
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), Value::from(value.clone())))
            .collect();
        Ok(Profile::Default.collect(dict))
    }
}

/// Merges `file` (if any) and then `variables` over nothing: missing values stay `None`, and the
/// caller applies the defaults.
pub(crate) fn merge(
    file: Option<&Path>,
    variables: &BTreeMap<&'static str, String>,
) -> Result<RawConfig, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        // `Toml::file` would silently yield nothing for a missing file, and would search parent
        // directories for a relative path; a file the operator named must exist exactly there.
        if !path.exists() {
            return Err(ConfigError::FileMissing { path: path.to_owned() });
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(EnvironmentProvider { variables });
    figment.extract::<RawConfig>().map_err(|error| match (file, &error.kind) {
        (Some(path), Kind::UnknownField(key, _)) => {
            ConfigError::UnknownKey { key: key.clone(), path: path.to_owned() }
        }
        (Some(path), _) => {
            ConfigError::File { path: path.to_owned(), detail: without_source_lines(&error) }
        }
        // Without a file, every value is a string from our own provider, which `Raw` always
        // accepts.
        (None, _) => ConfigError::File {
            path: Path::new("(no file)").to_owned(),
            detail: without_source_lines(&error),
        },
    })
}

/// The error's message without the lines of the file that a TOML parse error quotes, since they
/// could hold a secret.
fn without_source_lines(error: &figment::Error) -> String {
    let text = match &error.kind {
        Kind::Message(message) => message.clone(),
        kind => kind.to_string(),
    };
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.contains('|'))
        .collect::<Vec<_>>()
        .join(": ")
}
