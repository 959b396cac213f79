//! The one error type of this crate, [`ConfigError`], and [`Origin`], which says where a bad value
//! came from.
//!
//! Every message is meant to be read by an operator at start-up: it names the variable, shows the
//! offending value (with secrets masked before they ever reach this module) and states the accepted
//! form.
//! Nothing here decides what is valid; the parsers in `value.rs` do.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A process environment variable (or the map given to [`crate::Config::from_sources`]).
    Environment,
    /// The TOML file named by `VOLSCAN_CONFIG`.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Environment => f.write_str("from the environment"),
            Origin::File(path) => write!(f, "from {}", path.display()),
        }
    }
}

/// Why the configuration could not be loaded.
///
/// Values shown in messages are already masked: `AUTH_TOKEN` is always `***`, and the password in
/// `DATABASE_URL` or `DOCKER_HOST` is replaced by `***`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A variable has a value that does not parse or is out of range.
    #[error("invalid {variable}={value} ({origin}): {reason}")]
    Invalid {
        /// The variable, as named in SPEC §2 (`SCAN_INTERVAL`), also for values from the file.
        variable: &'static str,
        /// The offending value as written, quoted, with secrets masked.
        value: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong, ending with the accepted form (`expected a duration such as …`).
        reason: String,
    },
    /// The TOML file has a key that is not a known variable.
    #[error(
        "unknown key {key:?} in {}: keys are the variable names in lower case ({})",
        path.display(),
        crate::VARIABLES.iter().map(|name| name.to_ascii_lowercase()).collect::<Vec<_>>().join(", ")
    )]
    UnknownKey {
        /// The key as written in the file.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// `VOLSCAN_CONFIG` names a file that does not exist.
    #[error("config file {} named by VOLSCAN_CONFIG does not exist", path.display())]
    FileMissing {
        /// The path as given in `VOLSCAN_CONFIG`.
        path: PathBuf,
    },
    /// The TOML file could not be read or is not valid TOML.
    ///
    /// `detail` is the parser's message with the quoted source lines removed, because those could
    /// hold a secret.
    #[error("failed to read config file {}: {detail}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong, without any line of the file.
        detail: String,
    },
    /// A variable (or `VOLSCAN_CONFIG`) is set to something that is not UTF-8.
    #[error("invalid {variable} (from the environment): the value is not valid utf-8")]
    NotUnicode {
        /// The variable.
        variable: &'static str,
    },
}
