//! Keeping secrets out of logs: the [`Secret`] newtype, the masking of passwords inside URLs, and
//! [`Mask`], which each variable declares to say how its value is hidden when printed.
//!
//! This module only hides values when they are printed.
//! It does not encrypt or zero memory, and it does not compare secrets: the HTTP layer does that in
//! constant time.

use std::fmt;

/// The mask printed in place of a secret.
pub const MASK: &str = "***";

/// A secret string, such as `AUTH_TOKEN`, whose `Debug` and `Display` print `***`.
///
/// Read the real value with [`Secret::expose`], only where it is needed.
/// `Secret` deliberately has no `PartialEq`: compare with a constant-time function instead of `==`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value` as a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The real value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// How a variable's value is hidden wherever it is printed: in [`crate::Config::render`] and in
/// error messages. Each variable declares one in `variables.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mask {
    /// Not a secret: shown as written.
    Nothing,
    /// A URL that may hold a password, shown as `***` (see [`mask_url`]).
    UrlPassword,
    /// A secret: every value is shown as `***`.
    Whole,
}

impl Mask {
    /// `text` with what this mask hides replaced by `***`.
    pub(crate) fn apply(self, text: &str) -> String {
        match self {
            Mask::Nothing => text.to_owned(),
            Mask::UrlPassword => mask_url(text),
            Mask::Whole => MASK.to_owned(),
        }
    }
}

/// Replaces the password of a `scheme://user:password@host/…` URL, and any `password=` query
/// parameter, with `***`.
///
/// It works on any string, valid URL or not, so that it can mask values that failed to parse.
pub(crate) fn mask_url(url: &str) -> String {
    let mut masked = String::with_capacity(url.len());
    let rest = match url.find("://") {
        Some(at) => {
            let (scheme, rest) = url.split_at(at + 3);
            masked.push_str(scheme);
            let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, rest) = rest.split_at(authority_len);
            // The userinfo ends at the last `@`, since a password may itself contain `@`.
            match authority.rfind('@') {
                Some(at_sign) => {
                    let (userinfo, host) = authority.split_at(at_sign);
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            masked.push_str(user);
                            masked.push(':');
                            masked.push_str(MASK);
                        }
                        None => masked.push_str(userinfo),
                    }
                    masked.push_str(host);
                }
                None => masked.push_str(authority),
            }
            rest
        }
        None => url,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            masked.push_str(path);
            masked.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((query, fragment)) => (query, Some(fragment)),
                None => (query, None),
            };
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}={MASK}")
                    }
                    _ => parameter.to_owned(),
                })
                .collect();
            masked.push_str(&parameters.join("&"));
            if let Some(fragment) = fragment {
                masked.push('#');
                masked.push_str(fragment);
            }
        }
        None => masked.push_str(rest),
    }
    masked
}
