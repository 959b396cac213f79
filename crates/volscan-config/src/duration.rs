//! The duration syntax of SPEC §2: `90s`, `2m`, `6h`, `1d`, `1h 30m`, `1h30m`, or a plain number of
//! seconds.
//!
//! Parsing and formatting are inverse: [`format`] writes the form [`parse`] reads, so `render()`
//! can be pasted back.
//! Durations are whole seconds; there is no `ms` unit because nothing in volscan is configured that
//! finely.

use std::time::Duration;

/// The accepted form, for error messages.
pub(crate) const EXPECTED: &str =
    "expected a duration such as 90s, 2m, 6h, 1h 30m or a number of seconds";

/// The longest duration accepted, 36500 days.
///
/// Larger values are almost certainly typos, and they would overflow `Instant` arithmetic
/// downstream.
pub(crate) const MAX_SECONDS: u64 = 36_500 * DAY;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Units from largest to smallest; a duration must use them in this order, each at most once.
const UNITS: [(&str, u64); 4] = [("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1)];

/// Parses a duration that must be greater than zero; the error is the reason shown to the operator.
pub(crate) fn parse(input: &str) -> Result<Duration, String> {
    let seconds = parse_seconds(input.trim()).ok_or_else(|| EXPECTED.to_owned())?;
    from_seconds(u128::from(seconds))
}

/// Checks the range of a number of seconds given as an integer (for example `scan_interval = 90` in
/// TOML).
pub(crate) fn from_seconds(seconds: u128) -> Result<Duration, String> {
    if seconds == 0 {
        return Err(format!("must be greater than zero; {EXPECTED}"));
    }
    match u64::try_from(seconds) {
        Ok(seconds) if seconds <= MAX_SECONDS => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("must be at most 36500d; {EXPECTED}")),
    }
}

/// The number of seconds, or `None` when `input` is not in the syntax or overflows `u64`.
fn parse_seconds(input: &str) -> Option<u64> {
    if input.is_empty() {
        return None;
    }
    if input.bytes().all(|byte| byte.is_ascii_digit()) {
        return input.parse().ok();
    }
    let mut rest = input;
    let mut total: u64 = 0;
    // Index into `UNITS` of the next unit allowed, so units come in descending order and never
    // repeat.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let position = UNITS[next_unit..].iter().position(|(name, _)| *name == unit)?;
        let (_, scale) = UNITS[next_unit + position];
        next_unit += position + 1;
        total = total.checked_add(number.checked_mul(scale)?)?;
    }
    Some(total)
}

/// Formats `duration` (whole seconds) as `6h`, `24h`, `1h 30m` or `1m 30s`.
///
/// Days are written as hours, as SPEC §2 writes its defaults (`24h`).
pub(crate) fn format(duration: Duration) -> String {
    let mut seconds = duration.as_secs();
    if seconds == 0 {
        return "0s".to_owned();
    }
    let mut parts = Vec::new();
    for (name, scale) in &UNITS[1..] {
        let count = seconds / scale;
        if count > 0 {
            parts.push(format!("{count}{name}"));
            seconds %= scale;
        }
    }
    parts.join(" ")
}
