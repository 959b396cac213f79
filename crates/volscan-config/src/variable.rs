//! What a configuration variable is ([`Variable`]), and `declare_variables!`, the macro with which
//! `variables.rs` declares every variable once.
//!
//! A [`Variable`] ties a name of SPEC §2 to its field of [`Config`]: how a value is parsed into
//! the field, how the field is written back as text, how it is masked, and one line of
//! documentation.
//! The macro builds, from one entry per variable, the [`Variable`]s, the list of names and
//! `Config::default`, so that no variable can be half-declared.

use figment::value::Value;

use crate::Config;
use crate::error::{ConfigError, Origin};
use crate::secret::Mask;
use crate::value::shown;

/// One configuration variable, built by `declare_variables!`.
pub(crate) struct Variable {
    /// The name, as in SPEC §2 (`SCAN_INTERVAL`). The TOML key is this name in lower case.
    pub(crate) name: &'static str,
    /// What the variable means, in one line of Markdown: the "meaning" column of README.md.
    pub(crate) doc: &'static str,
    /// How the value is hidden wherever it is printed.
    pub(crate) mask: Mask,
    /// Parses a value into the variable's field of a [`Config`]; the error is the reason shown to
    /// the operator.
    pub(crate) parse_into: fn(&mut Config, &Value) -> Result<(), String>,
    /// The variable's field of a [`Config`] as text that `parse_into` reads back, before masking.
    pub(crate) format: fn(&Config) -> String,
}

impl Variable {
    /// The TOML key: the name in lower case.
    pub(crate) fn key(&self) -> String {
        self.name.to_ascii_lowercase()
    }

    /// Sets the variable's field of `config` from `value`, which came from `origin`.
    ///
    /// The error names the variable and the origin, and shows the value masked.
    pub(crate) fn set(
        &self,
        config: &mut Config,
        value: &Value,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        (self.parse_into)(config, value).map_err(|reason| ConfigError::Invalid {
            variable: self.name,
            value: shown(value, self.mask),
            origin,
            reason,
        })
    }

    /// The variable's value in `config` as text, masked; an empty value (unset) stays empty.
    pub(crate) fn masked_text(&self, config: &Config) -> String {
        let text = (self.format)(config);
        if text.is_empty() { text } else { self.mask.apply(&text) }
    }
}

/// Calls `parse` on `value`.
///
/// `declare_variables!` passes each entry's parser through here so that a closure there gets its
/// argument type from this signature.
pub(crate) fn parse_with<T>(
    value: &Value,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> Result<T, String> {
    parse(value)
}

/// Calls `format` on `field`, for the same reason as [`parse_with`].
pub(crate) fn format_with<T>(field: &T, format: impl FnOnce(&T) -> String) -> String {
    format(field)
}

/// Declares every configuration variable, grouped by the section of [`Config`] whose field it
/// fills; see `variables.rs` for the one invocation.
///
/// Each entry is `field: { name, doc, default, parse, render, mask }`, where `parse` is a function
/// or closure from `&Value` to `Result<T, String>`, `render` one from `&T` to `String`, and `T` is
/// the field's type. From the entries the macro builds, in their order:
/// - `VARIABLES`, the names;
/// - `TABLE`, one [`Variable`] per entry;
/// - `impl Default for Config`, from each `default`: a field of a section struct that has no
///   entry, or two, is a compile error there.
macro_rules! declare_variables {
    ($(
        $section:ident: $Section:ident {
            $(
                $field:ident: {
                    name: $name:literal,
                    doc: $doc:literal,
                    default: $default:expr,
                    parse: $parse:expr,
                    render: $render:expr,
                    mask: $mask:expr $(,)?
                }
            ),* $(,)?
        }
    ),* $(,)?) => {
        /// Every configuration variable of SPEC §2, in SPEC order. The TOML keys are these names
        /// in lower case.
        pub const VARIABLES: &[&str] = &[$($($name,)*)*];

        /// Every configuration variable, in the order of [`VARIABLES`].
        pub(crate) static TABLE: &[$crate::variable::Variable] = &[$($(
            $crate::variable::Variable {
                name: $name,
                doc: $doc,
                mask: $mask,
                parse_into: |config, value| {
                    config.$section.$field = $crate::variable::parse_with(value, $parse)?;
                    Ok(())
                },
                format: |config| $crate::variable::format_with(&config.$section.$field, $render),
            },
        )*)*];

        impl Default for $crate::Config {
            fn default() -> $crate::Config {
                $crate::Config { $($section: $Section { $($field: $default,)* },)* }
            }
        }
    };
}

pub(crate) use declare_variables;
