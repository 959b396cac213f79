//! `VolumeName`: a Docker volume name that has passed Docker's own rule.
//!
//! Names reach volscan from the HTTP API, Docker and the database; each of
//! them is validated here once, so no other code handles an unchecked name.

use std::fmt;
use std::str::FromStr;

/// The longest name accepted, in bytes.
pub const MAX_VOLUME_NAME_BYTES: usize = 255;

/// A Docker volume name: `^[A-Za-z0-9][A-Za-z0-9_.-]+$`, at most 255 bytes.
///
/// The rule admits no `/`, no `..` path of its own (a name may contain dots,
/// but never starts with one), no NUL and no whitespace, so a name is safe to
/// use as a single path component or a metric label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeName(String);

/// Why a string is not a valid volume name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidVolumeName {
    /// Fewer than two characters.
    #[error("a volume name has at least 2 characters")]
    TooShort,
    /// More than [`MAX_VOLUME_NAME_BYTES`].
    #[error("a volume name has at most {MAX_VOLUME_NAME_BYTES} bytes, this one has {0}")]
    TooLong(usize),
    /// The first character is not a letter or a digit.
    #[error("a volume name starts with a letter or a digit")]
    BadStart,
    /// A character outside `[A-Za-z0-9_.-]`.
    #[error("a volume name may only contain letters, digits, '_', '.' and '-'")]
    BadCharacter,
}

impl VolumeName {
    /// Validates `name` against Docker's rule.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidVolumeName> {
        let name = name.into();
        Self::check(&name)?;
        Ok(Self(name))
    }

    fn check(name: &str) -> Result<(), InvalidVolumeName> {
        let bytes = name.as_bytes();
        if bytes.len() > MAX_VOLUME_NAME_BYTES {
            return Err(InvalidVolumeName::TooLong(bytes.len()));
        }
        if bytes.len() < 2 {
            return Err(InvalidVolumeName::TooShort);
        }
        if !bytes[0].is_ascii_alphanumeric() {
            return Err(InvalidVolumeName::BadStart);
        }
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        if !bytes[1..].iter().all(allowed) {
            return Err(InvalidVolumeName::BadCharacter);
        }
        Ok(())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for VolumeName {
    type Err = InvalidVolumeName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for VolumeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<(), InvalidVolumeName>) {
        assert_eq!(VolumeName::new(input).map(|_| ()), expected, "input {input:?}");
    }

    #[test]
    fn volume_names_follow_dockers_rule() {
        check("pgdata", Ok(()));
        check("my_vol.v2-x", Ok(()));
        check("0a", Ok(()));
        check(&"a".repeat(255), Ok(()));
        check("a", Err(InvalidVolumeName::TooShort));
        check("", Err(InvalidVolumeName::TooShort));
        check(&"a".repeat(256), Err(InvalidVolumeName::TooLong(256)));
        check("..", Err(InvalidVolumeName::BadStart));
        check(".hidden", Err(InvalidVolumeName::BadStart));
        check("_x", Err(InvalidVolumeName::BadStart));
        check("a/b", Err(InvalidVolumeName::BadCharacter));
        check("a b", Err(InvalidVolumeName::BadCharacter));
        check("a\0b", Err(InvalidVolumeName::BadCharacter));
        check("a%2e", Err(InvalidVolumeName::BadCharacter));
        check("vé", Err(InvalidVolumeName::BadCharacter));
    }
}
