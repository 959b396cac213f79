//! How the dashboard writes figures: sizes in binary units, signed deltas,
//! rates, durations, and times as "3 h ago" with the exact UTC time kept for
//! the hover title.

use std::time::Duration;

use maud::{Markup, html};
use volscan_domain::Timestamp;

/// Binary units, from bytes up.
const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// `bytes` in the largest binary unit that keeps the number at 1 or more,
/// with three significant digits: `0 B`, `512 B`, `1.50 KiB`, `12.3 GiB`.
pub(crate) fn size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    // Rounding can carry to 1024 (1023.99 KiB shows as "1024 KiB"); say the next unit.
    if value >= 999.5 && unit + 1 < UNITS.len() && value.round() >= 1024.0 {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {}", UNITS[unit])
}

/// A signed change in bytes: `+1.50 MiB`, `−3.00 KiB`, `±0 B`.
pub(crate) fn delta(bytes: i64) -> String {
    match bytes.signum() {
        0 => "±0 B".to_owned(),
        1 => format!("+{}", size(bytes.unsigned_abs())),
        _ => format!("−{}", size(bytes.unsigned_abs())),
    }
}

/// A signed rate per day: `+1.50 MiB/day`.
pub(crate) fn rate(bytes_per_day: f64) -> String {
    let rounded = bytes_per_day.round();
    // Saturating conversion: no stored size is near i64::MAX bytes a day.
    format!("{}/day", delta(rounded as i64))
}

/// A count with thin groups of thousands: `1 234 567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// A span in the largest whole units that say it in at most two parts:
/// `45 s`, `3 min 20 s`, `5 h 10 min`, `12 d 4 h`.
pub(crate) fn span(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => two(secs / 60, "min", secs % 60, "s"),
        3_600..86_400 => two(secs / 3_600, "h", secs % 3_600 / 60, "min"),
        _ => two(secs / 86_400, "d", secs % 86_400 / 3_600, "h"),
    }
}

fn two(big: u64, big_unit: &str, small: u64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big} {big_unit}")
    } else {
        format!("{big} {big_unit} {small} {small_unit}")
    }
}

/// How long a run took: milliseconds under a second, else a span.
pub(crate) fn took(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else if duration < Duration::from_secs(60) {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        span(duration)
    }
}

/// `at` relative to `now`: "just now", "3 h ago", "in 5 min".
pub(crate) fn relative(at: Timestamp, now: Timestamp) -> String {
    let diff = now - at;
    let ago = diff.is_positive() || diff.is_zero();
    let abs = Duration::try_from(diff.abs()).unwrap_or(Duration::MAX);
    if abs < Duration::from_secs(5) {
        return "just now".to_owned();
    }
    if ago { format!("{} ago", span(abs)) } else { format!("in {}", span(abs)) }
}

/// A `<time>` element: the relative text, the exact UTC time as its
/// `datetime` and hover title.
pub(crate) fn when(at: Timestamp, now: Timestamp) -> Markup {
    let (date, clock) = parts(at);
    html! { time datetime={ (date) "T" (clock) "Z" } title={ (date) " " (clock) " UTC" } { (relative(at, now)) } }
}

/// `at` in UTC as `YYYY-MM-DD` and `HH:MM:SS`, written by hand: the page
/// writes a few thousand of them, and this is several times faster than a
/// format description.
fn parts(at: Timestamp) -> (String, String) {
    let at = at.to_offset(time::UtcOffset::UTC);
    let date = format!("{:04}-{:02}-{:02}", at.year(), u8::from(at.month()), at.day());
    let clock = format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second());
    (date, clock)
}

/// As `when`, or a dash with `absent` as its title.
pub(crate) fn when_or(at: Option<Timestamp>, now: Timestamp, absent: &str) -> Markup {
    match at {
        Some(at) => when(at, now),
        None => html! { span.muted title=(absent) { "—" } },
    }
}

/// The exact time in UTC, to the second: `2026-12-01 14:03:09 UTC`.
pub(crate) fn utc(at: Timestamp) -> String {
    let (date, clock) = parts(at);
    format!("{date} {clock} UTC")
}

/// A date for chart axes, as precise as the chart's `span` needs: `14:00`
/// within a day, `Dec 1 14:00` within a week, else `Dec 1`.
pub(crate) fn axis_time(at: Timestamp, span: time::Duration) -> String {
    let format: &[time::format_description::BorrowedFormatItem<'_>] = if span
        <= time::Duration::days(1)
    {
        time::macros::format_description!("[hour]:[minute]")
    } else if span <= time::Duration::days(7) {
        time::macros::format_description!("[month repr:short] [day padding:none] [hour]:[minute]")
    } else {
        time::macros::format_description!("[month repr:short] [day padding:none]")
    };
    at.format(format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units_and_three_digits() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.00 KiB"),
            (1536, "1.50 KiB"),
            (10 * 1024 + 512, "10.5 KiB"),
            (1024 * 1024 - 1, "1.00 MiB"),
            (5 * (1 << 30), "5.00 GiB"),
            (123 * (1 << 30), "123 GiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn deltas_and_rates_carry_their_sign() {
        assert_eq!(delta(0), "±0 B");
        assert_eq!(delta(2048), "+2.00 KiB");
        assert_eq!(delta(-3 * 1024 * 1024), "−3.00 MiB");
        assert_eq!(delta(i64::MIN), "−8.00 EiB");
        assert_eq!(rate(12_000.4), "+11.7 KiB/day");
        assert_eq!(rate(-1.0), "−1 B/day");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1\u{2009}000");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
    }

    #[test]
    fn times_are_relative_with_the_exact_utc_kept() {
        let now = Timestamp::UNIX_EPOCH + time::Duration::days(20_000);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - time::Duration::seconds(45), now), "45 s ago");
        assert_eq!(relative(now - time::Duration::minutes(200), now), "3 h 20 min ago");
        assert_eq!(relative(now - time::Duration::hours(50), now), "2 d 2 h ago");
        assert_eq!(relative(now + time::Duration::minutes(5), now), "in 5 min");
        let markup = when(now - time::Duration::hours(3), now).into_string();
        assert!(markup.contains(">3 h ago<"), "{markup}");
        assert!(markup.contains("title=\"2024-10-03 21:00:00 UTC\""), "{markup}");
        assert!(markup.contains("datetime=\"2024-10-03T21:00:00Z\""), "{markup}");
        assert_eq!(took(Duration::from_millis(250)), "250 ms");
        assert_eq!(took(Duration::from_millis(2500)), "2.5 s");
    }
}
