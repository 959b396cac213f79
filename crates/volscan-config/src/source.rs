//! Merging the sources with figment: the optional TOML file, then the environment, into one
//! [`Merged`] set of values, each with the [`Origin`] that figment's metadata records for it.
//!
//! The environment provider here is our own, not figment's `Env`: it yields only the known
//! variables, and always as strings, exactly as given.
//! `Env` guesses types, so it would read the regex `[ab]` as an array, or a token `123` as a
//! number.
//! Nothing here validates values; `variable.rs` does that, once, on the merged values.

use std::collections::BTreeMap;
use std::path::Path;

use figment::error::Kind;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::error::{ConfigError, Origin};
use crate::variable::Variable;
use crate::variables::TABLE;

/// The values that the file and the environment set, the environment's over the file's, keyed by
/// the variable names in lower case. A variable that no source sets is absent.
pub(crate) struct Merged {
    /// The merged sources, kept for the metadata that says where each value came from.
    figment: Figment,
    /// Every value, by key.
    values: Dict,
}

impl Merged {
    /// The value of `variable`, with where it came from, or `None` when no source sets it.
    pub(crate) fn get(&self, variable: &Variable) -> Option<(&Value, Origin)> {
        let value = self.values.get(&variable.key())?;
        let source = self.figment.get_metadata(value.tag()).and_then(|meta| meta.source.as_ref());
        let origin = match source.and_then(Source::file_path) {
            Some(path) => Origin::File(path.to_owned()),
            None => Origin::Environment,
        };
        Some((value, origin))
    }
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

/// Merges `file` (if any) and then `variables` over nothing: the caller applies the defaults.
///
/// A key of the file that is not a known variable is an error.
pub(crate) fn merge(
    file: Option<&Path>,
    variables: &BTreeMap<&'static str, String>,
) -> Result<Merged, ConfigError> {
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
    // The empty path is the whole merged dictionary.
    let values = match figment.find_value("") {
        Ok(Value::Dict(_, values)) => values,
        Ok(_) => Dict::new(),
        Err(error) => return Err(file_error(file, &error)),
    };
    if let Some(path) = file {
        check_keys(&values, path)?;
    }
    Ok(Merged { figment, values })
}

/// Refuses the first key, in sorted order, that is not a known variable.
fn check_keys(values: &Dict, path: &Path) -> Result<(), ConfigError> {
    let unknown = values.keys().find(|&key| !TABLE.iter().any(|variable| variable.key() == *key));
    match unknown {
        Some(key) => Err(ConfigError::UnknownKey { key: key.clone(), path: path.to_owned() }),
        None => Ok(()),
    }
}

/// The error of a file that could not be read or parsed.
fn file_error(file: Option<&Path>, error: &figment::Error) -> ConfigError {
    // Without a file, every value is a string from our own provider, which cannot fail; the
    // fallback path only keeps this total.
    let path = file.unwrap_or(Path::new("(no file)"));
    ConfigError::File { path: path.to_owned(), detail: without_source_lines(error) }
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
