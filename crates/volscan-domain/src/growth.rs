//! Growth and forecast maths (SPEC §8): how much a volume grew over the last
//! day, week and month, how fast it is growing, and when a filesystem fills.
//!
//! Everything here is pure arithmetic on stored samples. Every window is
//! anchored at the newest sample, not at the wall clock, so a figure does not
//! change while no new data arrives, and `as_of` says how old it is.
//!
//! Rates are least-squares slopes ([`fit`]) over a window of samples, never a
//! difference of two samples: a scheduled scan can land in the middle of a
//! cron job, a build or a log rotation, and one such sample must neither
//! invent a trend nor, worse, a date when the disk fills. That is why a rate
//! needs [`MIN_RATE_POINTS`] samples spread over [`MIN_RATE_SPAN`], why a poor
//! fit (R² below [`MIN_R_SQUARED`]) is reported as
//! [`Trend::Fluctuating`] rather than as a direction, and why the forecast
//! ([`forecast`]) asks for more: a week of samples ([`FORECAST_WINDOW`]), at
//! least [`MIN_FORECAST_POINTS`] of them over [`MIN_FORECAST_SPAN`], and a
//! `Rising` trend of used space. A one-hour window would fire on every cron
//! burst.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{ParseEnumError, Timestamp};

const SECONDS_PER_DAY: u64 = 86_400;
const SECONDS_PER_DAY_F64: f64 = 86_400.0;

/// The window of samples a volume's rate is fitted over: the week before the newest one.
pub const RATE_WINDOW: Duration = Duration::from_secs(7 * SECONDS_PER_DAY);

/// Fewest samples in the window for a rate; two samples are a difference, not a trend.
pub const MIN_RATE_POINTS: usize = 3;

/// Shortest span of the window's samples for a rate: a burst of scans minutes
/// apart says nothing about growth per day.
pub const MIN_RATE_SPAN: Duration = Duration::from_secs(3_600);

/// A fit whose coefficient of determination is below this explains less than
/// half of the variation of the series: the series is `Fluctuating` (or
/// `Flat`, when it barely moves), never `Rising` or `Falling`.
pub const MIN_R_SQUARED: f64 = 0.5;

/// The absolute floor of the flat band: a rate under 1 MiB a day is `Flat`
/// whatever the size, as are movements smaller than 1 MiB (log lines, lock
/// files, metadata).
pub const FLAT_MIN_BYTES_PER_DAY: f64 = 1024.0 * 1024.0;

/// The relative part of the flat band: a rate under 0.1 % of the mean size a
/// day (under 3 % a month) is `Flat`, as is a series whose range stays below
/// 0.1 % of its mean size. The band is the larger of this and
/// [`FLAT_MIN_BYTES_PER_DAY`].
pub const FLAT_FRACTION_PER_DAY: f64 = 0.001;

/// The window of samples a filesystem forecast is fitted over (callers pass it to [`forecast`]).
pub const FORECAST_WINDOW: Duration = Duration::from_secs(7 * SECONDS_PER_DAY);

/// Fewest samples for a `full_at` date; never a date from two or three points.
pub const MIN_FORECAST_POINTS: usize = 4;

/// Shortest span of the samples for a `full_at` date.
pub const MIN_FORECAST_SPAN: Duration = Duration::from_secs(6 * 3_600);

/// Which way a series is heading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trend {
    /// Growing steadily (good fit, rate above the flat band).
    Rising,
    /// Shrinking steadily (good fit, rate below minus the flat band).
    Falling,
    /// Not moving beyond the flat band.
    Flat,
    /// Moving, but no straight line explains it (R² below [`MIN_R_SQUARED`]).
    Fluctuating,
    /// Too few samples, or too close together, for a rate.
    Unknown,
}

impl Trend {
    /// Every variant, in declaration order.
    pub const ALL: &'static [Trend] =
        &[Trend::Rising, Trend::Falling, Trend::Flat, Trend::Fluctuating, Trend::Unknown];

    /// The stable text form used by the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Rising => "rising",
            Trend::Falling => "falling",
            Trend::Flat => "flat",
            Trend::Fluctuating => "fluctuating",
            Trend::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Trend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Trend {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Trend::ALL.iter().copied().find(|trend| trend.as_str() == s).ok_or_else(|| ParseEnumError {
            kind: "trend",
            value: s.to_owned(),
            expected: &["rising", "falling", "flat", "fluctuating", "unknown"],
        })
    }
}

/// A least-squares straight line through a series of samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearFit {
    /// Change of the value per day.
    pub slope_per_day: f64,
    /// Coefficient of determination, 0–1; 1 for a constant series (a flat
    /// line explains it perfectly).
    pub r_squared: f64,
    /// Samples fitted.
    pub points: usize,
    /// Time between the oldest and the newest sample.
    pub span: Duration,
}

/// Fits a straight line through `points` (any order) by least squares.
///
/// `None` with fewer than two distinct timestamps or when a value is not
/// finite. Time and value are centred on their means before multiplying, so
/// Unix-era timestamps and sizes up to 10^15 bytes lose no precision.
pub fn fit(points: &[(Timestamp, f64)]) -> Option<LinearFit> {
    if points.iter().any(|(_, value)| !value.is_finite()) {
        return None;
    }
    let oldest = points.iter().map(|&(ts, _)| ts).min()?;
    let newest = points.iter().map(|&(ts, _)| ts).max()?;
    if oldest == newest {
        return None;
    }
    // Days since the oldest sample, and values relative to the first one:
    // both small before the means are taken.
    let days = |ts: Timestamp| (ts - oldest).as_seconds_f64() / SECONDS_PER_DAY_F64;
    let reference = points.first().map_or(0.0, |&(_, value)| value);
    let count = points.len() as f64;
    let mean_x = points.iter().map(|&(ts, _)| days(ts)).sum::<f64>() / count;
    let mean_y = points.iter().map(|&(_, value)| value - reference).sum::<f64>() / count;

    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for &(ts, value) in points {
        let dx = days(ts) - mean_x;
        let dy = (value - reference) - mean_y;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx <= 0.0 {
        return None;
    }
    let r_squared = if syy > 0.0 { (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0) } else { 1.0 };
    Some(LinearFit {
        slope_per_day: sxy / sxx,
        r_squared,
        points: points.len(),
        span: (newest - oldest).unsigned_abs(),
    })
}

/// How one volume's size changed, from its stored stats (SPEC §8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Growth {
    /// Newest size minus the size of the newest sample at or before `as_of` − 24 h.
    pub delta_24h: Option<i64>,
    /// As `delta_24h`, for 7 days.
    pub delta_7d: Option<i64>,
    /// As `delta_24h`, for 30 days.
    pub delta_30d: Option<i64>,
    /// Least-squares slope over [`RATE_WINDOW`], in bytes per day.
    pub rate_bytes_per_day: Option<f64>,
    /// Which way the size is heading; `Unknown` when there is no rate.
    pub trend: Trend,
    /// Time of the newest sample, which every figure is anchored at; `None` without samples.
    pub as_of: Option<Timestamp>,
}

impl Growth {
    /// The growth of a volume without stats: every figure absent, trend `Unknown`.
    pub const UNKNOWN: Growth = Growth {
        delta_24h: None,
        delta_7d: None,
        delta_30d: None,
        rate_bytes_per_day: None,
        trend: Trend::Unknown,
        as_of: None,
    };
}

/// The growth of one volume from its `(ts, size_bytes)` samples.
///
/// Samples may come in any order and with gaps; of samples with the same
/// timestamp the later one in `points` wins. A delta compares with the newest
/// sample at or before the window's start, however much older it is, and is
/// `None` when there is none. Deltas beyond the range of `i64` saturate.
pub fn growth(points: &[(Timestamp, u64)]) -> Growth {
    let series = sorted_series(points);
    let Some(&(as_of, newest_size)) = series.last() else { return Growth::UNKNOWN };
    let delta = |window: time::Duration| {
        let start = as_of.checked_sub(window)?;
        let before = series.partition_point(|&(ts, _)| ts <= start);
        let (_, old_size) = series.get(before.checked_sub(1)?)?;
        let change = i128::from(newest_size) - i128::from(*old_size);
        Some(i64::try_from(change).unwrap_or(if change > 0 { i64::MAX } else { i64::MIN }))
    };
    let (rate_fit, trend) = windowed_trend(&series, RATE_WINDOW);
    Growth {
        delta_24h: delta(time::Duration::hours(24)),
        delta_7d: delta(time::Duration::days(7)),
        delta_30d: delta(time::Duration::days(30)),
        rate_bytes_per_day: rate_fit.map(|fitted| fitted.slope_per_day),
        trend,
        as_of: Some(as_of),
    }
}

/// When one filesystem is expected to fill (SPEC §8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Growth of used space in bytes per day: minus the slope of the available space.
    pub rate_bytes_per_day: Option<f64>,
    /// Which way used space is heading.
    pub trend: Trend,
    /// When the available space reaches zero at `rate_bytes_per_day`; only
    /// for a `Rising` trend from enough samples, and only in the future of `as_of`.
    pub full_at: Option<Timestamp>,
    /// Time of the newest sample; `None` without samples.
    pub as_of: Option<Timestamp>,
}

/// Forecasts when a filesystem fills from its `(ts, avail_bytes)` samples (any order).
///
/// The line is fitted over the samples within `window` before the newest one
/// (callers pass [`FORECAST_WINDOW`]). `full_at` is newest ts + newest avail ÷
/// the used-space rate, given only when the trend of used space is `Rising`
/// (available space falling with a good fit) from at least
/// [`MIN_FORECAST_POINTS`] samples spanning [`MIN_FORECAST_SPAN`], and when
/// the date is representable and after the newest sample: a full filesystem,
/// a short burst or a handful of samples give no date. The flat band is
/// relative to the mean available space.
pub fn forecast(samples: &[(Timestamp, u64)], window: Duration) -> Forecast {
    let series = sorted_series(samples);
    let Some(&(as_of, newest_avail)) = series.last() else {
        return Forecast {
            rate_bytes_per_day: None,
            trend: Trend::Unknown,
            full_at: None,
            as_of: None,
        };
    };
    // Used space is total − avail with a constant total, so its trend is the
    // mirror image of avail's.
    let (avail_fit, avail_trend) = windowed_trend(&series, window);
    let trend = match avail_trend {
        Trend::Rising => Trend::Falling,
        Trend::Falling => Trend::Rising,
        other => other,
    };
    let rate = avail_fit.map(|fitted| -fitted.slope_per_day);
    let full_at = avail_fit
        .filter(|fitted| {
            trend == Trend::Rising
                && fitted.points >= MIN_FORECAST_POINTS
                && fitted.span >= MIN_FORECAST_SPAN
        })
        .and_then(|fitted| {
            let used_per_day = -fitted.slope_per_day;
            let days_left = newest_avail as f64 / used_per_day;
            let until_full = time::Duration::checked_seconds_f64(days_left * SECONDS_PER_DAY_F64)?;
            as_of.checked_add(until_full)
        })
        .filter(|&full| full > as_of);
    Forecast { rate_bytes_per_day: rate, trend, full_at, as_of: Some(as_of) }
}

/// Sorts samples by time; of samples with the same timestamp the later-stored one is kept.
fn sorted_series(points: &[(Timestamp, u64)]) -> Vec<(Timestamp, u64)> {
    let mut sorted = points.to_vec();
    // Stable: equal timestamps stay in storage order, so the last one is the latest stored.
    sorted.sort_by_key(|&(ts, _)| ts);
    let mut series: Vec<(Timestamp, u64)> = Vec::with_capacity(sorted.len());
    for (ts, value) in sorted {
        match series.last_mut() {
            Some(last) if last.0 == ts => last.1 = value,
            _ => series.push((ts, value)),
        }
    }
    series
}

/// The fit over the samples within `window` before the newest one of a sorted
/// series, when there are enough of them, and the trend it shows.
fn windowed_trend(series: &[(Timestamp, u64)], window: Duration) -> (Option<LinearFit>, Trend) {
    let Some(&(newest, _)) = series.last() else {
        return (None, Trend::Unknown);
    };
    // A window reaching beyond the representable past takes every sample.
    let start = time::Duration::try_from(window).ok().and_then(|span| newest.checked_sub(span));
    let first = start.map_or(0, |start| series.partition_point(|&(ts, _)| ts < start));
    let recent = series.get(first..).unwrap_or_default();
    if recent.len() < MIN_RATE_POINTS {
        return (None, Trend::Unknown);
    }
    let values: Vec<(Timestamp, f64)> =
        recent.iter().map(|&(ts, value)| (ts, value as f64)).collect();
    let Some(fitted) = fit(&values).filter(|fitted| fitted.span >= MIN_RATE_SPAN) else {
        return (None, Trend::Unknown);
    };
    let count = values.len() as f64;
    let mean = values.iter().map(|&(_, value)| value).sum::<f64>() / count;
    let lowest = recent.iter().map(|&(_, value)| value).min().unwrap_or(0);
    let highest = recent.iter().map(|&(_, value)| value).max().unwrap_or(0);
    (Some(fitted), classify(&fitted, mean, (highest - lowest) as f64))
}

/// The trend of a fitted series whose values average `mean` and span `range`.
///
/// The flat band is the larger of [`FLAT_MIN_BYTES_PER_DAY`] and
/// [`FLAT_FRACTION_PER_DAY`] of the mean. A poor fit is `Fluctuating` when
/// the series moves by at least the band (as bytes) and `Flat` otherwise; a
/// good fit is `Flat` inside the band and `Rising` or `Falling` outside it.
fn classify(fitted: &LinearFit, mean: f64, range: f64) -> Trend {
    let band = (mean.abs() * FLAT_FRACTION_PER_DAY).max(FLAT_MIN_BYTES_PER_DAY);
    if fitted.r_squared < MIN_R_SQUARED {
        if range >= band { Trend::Fluctuating } else { Trend::Flat }
    } else if fitted.slope_per_day.abs() < band {
        Trend::Flat
    } else if fitted.slope_per_day > 0.0 {
        Trend::Rising
    } else {
        Trend::Falling
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const GIB: u64 = 1024 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;

    fn start() -> Timestamp {
        datetime!(2024-03-01 00:00 UTC)
    }

    fn at_minutes(minutes: i64) -> Timestamp {
        start() + time::Duration::minutes(minutes)
    }

    fn at_hours(hours: i64) -> Timestamp {
        start() + time::Duration::hours(hours)
    }

    /// Deterministic noise in [-1, 1] (xorshift64), so noisy tests are reproducible.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        }
    }

    fn assert_close(actual: f64, expected: f64, relative: f64) {
        let tolerance = expected.abs() * relative;
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {relative} of {expected}"
        );
    }

    fn empty_growth() -> Growth {
        Growth {
            delta_24h: None,
            delta_7d: None,
            delta_30d: None,
            rate_bytes_per_day: None,
            trend: Trend::Unknown,
            as_of: None,
        }
    }

    #[test]
    fn trend_round_trips_through_text() {
        for &trend in Trend::ALL {
            assert_eq!(trend.as_str().parse::<Trend>(), Ok(trend));
            assert_eq!(trend.to_string(), trend.as_str());
        }
        let texts: Vec<&str> = Trend::ALL.iter().map(|trend| trend.as_str()).collect();
        assert_eq!(texts, ["rising", "falling", "flat", "fluctuating", "unknown"]);
        let err = "Rising".parse::<Trend>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown trend \"Rising\", expected one of: rising, falling, flat, fluctuating, unknown"
        );
    }

    #[test]
    fn fit_matches_hand_computed_slope_and_r_squared() {
        // x = 0..3 days, y = 1, 3, 2, 5: Sxx = 5, Sxy = 5.5, Syy = 8.75.
        let points: Vec<(Timestamp, f64)> = [1.0, 3.0, 2.0, 5.0]
            .iter()
            .enumerate()
            .map(|(day, &y)| (at_hours(24 * day as i64), y))
            .collect();
        let fitted = fit(&points).unwrap();
        assert_close(fitted.slope_per_day, 1.1, 1e-12);
        assert_close(fitted.r_squared, 5.5 * 5.5 / (5.0 * 8.75), 1e-12);
        assert_eq!(fitted.points, 4);
        assert_eq!(fitted.span, Duration::from_secs(3 * 86_400));
    }

    #[test]
    fn fit_keeps_precision_with_unix_timestamps_and_petabyte_sizes() {
        // 1000 bytes every 10 minutes on top of 10^15 bytes: 144 000 bytes a day.
        let points: Vec<(Timestamp, f64)> =
            (0..288).map(|i| (at_minutes(10 * i), 1e15 + 1000.0 * i as f64)).collect();
        let fitted = fit(&points).unwrap();
        assert_close(fitted.slope_per_day, 144_000.0, 1e-9);
        assert!(fitted.r_squared > 0.999_999, "{}", fitted.r_squared);
    }

    #[test]
    fn fit_needs_two_distinct_timestamps_and_finite_values() {
        assert_eq!(fit(&[]), None);
        assert_eq!(fit(&[(start(), 1.0)]), None);
        assert_eq!(fit(&[(start(), 1.0), (start(), 2.0)]), None);
        assert_eq!(fit(&[(start(), 1.0), (at_hours(1), f64::NAN)]), None);
        let fitted = fit(&[(start(), 1.0), (at_hours(1), 2.0)]).unwrap();
        assert_close(fitted.slope_per_day, 24.0, 1e-12);
        assert_close(fitted.r_squared, 1.0, 1e-12);
        assert_eq!(fitted.span, Duration::from_secs(3_600));
    }

    #[test]
    fn no_points_give_nothing() {
        assert_eq!(growth(&[]), empty_growth());
    }

    #[test]
    fn one_point_gives_only_its_time() {
        assert_eq!(growth(&[(start(), 42)]), Growth { as_of: Some(start()), ..empty_growth() });
    }

    #[test]
    fn two_points_give_a_delta_but_no_rate() {
        let result = growth(&[(start(), 100), (at_hours(24), 300)]);
        assert_eq!(
            result,
            Growth { delta_24h: Some(200), as_of: Some(at_hours(24)), ..empty_growth() }
        );
    }

    #[test]
    fn points_within_an_hour_give_no_rate() {
        let result =
            growth(&[(start(), 0), (at_minutes(20), 10 * GIB), (at_minutes(40), 20 * GIB)]);
        assert_eq!(result.rate_bytes_per_day, None);
        assert_eq!(result.trend, Trend::Unknown);
    }

    #[test]
    fn flat_series_is_flat() {
        let points: Vec<(Timestamp, u64)> =
            (0..=40 * 24).map(|h| (at_hours(h), 10 * GIB)).collect();
        let result = growth(&points);
        assert_eq!(result.delta_24h, Some(0));
        assert_eq!(result.delta_7d, Some(0));
        assert_eq!(result.delta_30d, Some(0));
        assert_eq!(result.rate_bytes_per_day, Some(0.0));
        assert_eq!(result.trend, Trend::Flat);
        assert_eq!(result.as_of, Some(at_hours(40 * 24)));
    }

    #[test]
    fn steady_rise_recovers_rate_and_exact_deltas() {
        // 200 MB an hour for 40 days: 4.8 GB a day.
        let points: Vec<(Timestamp, u64)> = (0..=40 * 24)
            .map(|h| (at_hours(h), 1_000_000_000_000 + 200_000_000 * h as u64))
            .collect();
        let result = growth(&points);
        assert_eq!(result.delta_24h, Some(4_800_000_000));
        assert_eq!(result.delta_7d, Some(33_600_000_000));
        assert_eq!(result.delta_30d, Some(144_000_000_000));
        assert_close(result.rate_bytes_per_day.unwrap(), 4.8e9, 1e-9);
        assert_eq!(result.trend, Trend::Rising);
    }

    #[test]
    fn shrinking_series_is_falling() {
        // 100 MB an hour less for 10 days: −2.4 GB a day.
        let points: Vec<(Timestamp, u64)> = (0..=10 * 24)
            .map(|h| (at_hours(h), 500_000_000_000 - 100_000_000 * h as u64))
            .collect();
        let result = growth(&points);
        assert_eq!(result.delta_24h, Some(-2_400_000_000));
        assert_eq!(result.delta_7d, Some(-16_800_000_000));
        assert_eq!(result.delta_30d, None);
        assert_close(result.rate_bytes_per_day.unwrap(), -2.4e9, 1e-9);
        assert_eq!(result.trend, Trend::Falling);
    }

    #[test]
    fn noise_around_a_constant_never_rises() {
        for seed in 1..=20u64 {
            let mut noise = Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let points: Vec<(Timestamp, u64)> = (0..=7 * 24)
                .map(|h| {
                    (at_hours(h), (10.0 * GIB as f64 + 50.0 * MIB as f64 * noise.next()) as u64)
                })
                .collect();
            let result = growth(&points);
            assert!(
                matches!(result.trend, Trend::Flat | Trend::Fluctuating),
                "seed {seed}: {:?}",
                result
            );
        }
    }

    #[test]
    fn jitter_below_the_flat_band_is_flat() {
        let mut noise = Noise(7);
        let points: Vec<(Timestamp, u64)> = (0..=7 * 24)
            .map(|h| (at_hours(h), 10 * GIB + (100_000.0 * (noise.next() + 1.0)) as u64))
            .collect();
        assert_eq!(growth(&points).trend, Trend::Flat);
    }

    #[test]
    fn noisy_rise_with_a_good_fit_is_rising() {
        let mut noise = Noise(42);
        let points: Vec<(Timestamp, u64)> = (0..=7 * 24)
            .map(|h| {
                let size = 100.0 * GIB as f64
                    + GIB as f64 * h as f64 / 24.0
                    + 50.0 * MIB as f64 * noise.next();
                (at_hours(h), size as u64)
            })
            .collect();
        let result = growth(&points);
        assert_eq!(result.trend, Trend::Rising);
        assert_close(result.rate_bytes_per_day.unwrap(), GIB as f64, 0.02);
    }

    #[test]
    fn delta_across_a_gap_uses_the_newest_older_point() {
        let day = 24;
        let result = growth(&[(start(), 100), (at_hours(day), 200), (at_hours(10 * day), 1000)]);
        // 24 h and 7 d before day 10 fall in the gap: both compare with day 1.
        assert_eq!(result.delta_24h, Some(800));
        assert_eq!(result.delta_7d, Some(800));
        assert_eq!(result.delta_30d, None);
        // Only one point in the last week.
        assert_eq!(result.rate_bytes_per_day, None);
        assert_eq!(result.trend, Trend::Unknown);
        assert_eq!(result.as_of, Some(at_hours(10 * day)));
    }

    #[test]
    fn delta_needs_a_point_at_or_before_the_window_start() {
        let recent = growth(&[(start(), 1), (at_hours(6), 2), (at_hours(12), 3)]);
        assert_eq!(recent.delta_24h, None);
        let boundary = growth(&[(start(), 1), (at_hours(6), 2), (at_hours(24), 5)]);
        assert_eq!(boundary.delta_24h, Some(4));
        let just_after = growth(&[(at_minutes(1), 1), (at_hours(6), 2), (at_hours(24), 5)]);
        assert_eq!(just_after.delta_24h, None);
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut noise = Noise(3);
        let sorted: Vec<(Timestamp, u64)> = (0..=35 * 24)
            .map(|h| {
                (at_hours(h), GIB + (h as u64) * MIB + (MIB as f64 * (noise.next() + 1.0)) as u64)
            })
            .collect();
        let mut shuffled = sorted.clone();
        shuffled.reverse();
        let half = shuffled.len() / 2;
        shuffled.rotate_left(half);
        shuffled.swap(3, 400);
        assert_ne!(shuffled, sorted);
        assert_eq!(growth(&shuffled), growth(&sorted));
        assert_eq!(forecast(&shuffled, FORECAST_WINDOW), forecast(&sorted, FORECAST_WINDOW));
    }

    #[test]
    fn duplicate_timestamps_keep_the_later_stored_point() {
        let result = growth(&[(at_hours(25), 5), (start(), 1), (at_hours(25), 7)]);
        assert_eq!(result.delta_24h, Some(6));
        let result = growth(&[(at_hours(25), 7), (start(), 1), (at_hours(25), 5)]);
        assert_eq!(result.delta_24h, Some(4));
    }

    #[test]
    fn only_the_last_week_feeds_the_rate() {
        // A 50 GiB jump 20 days before the newest point, flat since.
        let points: Vec<(Timestamp, u64)> = (0..=30 * 24)
            .map(|h| (at_hours(h), if h < 10 * 24 { 10 * GIB } else { 60 * GIB }))
            .collect();
        let result = growth(&points);
        assert_eq!(result.delta_30d, Some(50 * GIB as i64));
        assert_eq!(result.delta_7d, Some(0));
        assert_eq!(result.rate_bytes_per_day, Some(0.0));
        assert_eq!(result.trend, Trend::Flat);
    }

    /// Available space falling by `per_day` from `initial`, one sample every `step_minutes`.
    fn filling(
        initial: f64,
        per_day: f64,
        step_minutes: i64,
        samples: i64,
    ) -> Vec<(Timestamp, u64)> {
        (0..samples)
            .map(|i| {
                let minutes = step_minutes * i;
                (at_minutes(minutes), (initial - per_day * minutes as f64 / 1440.0) as u64)
            })
            .collect()
    }

    fn assert_full_at_near(result: &Forecast, truth: Timestamp) {
        let as_of = result.as_of.unwrap();
        let full_at = result.full_at.unwrap();
        let remaining = (truth - as_of).as_seconds_f64();
        let error = (full_at - truth).as_seconds_f64().abs();
        assert!(error <= 0.01 * remaining, "full_at {full_at} is {error} s off {truth}");
    }

    #[test]
    fn steady_fill_forecasts_the_true_date() {
        // 2 TB free, 10 GB a day used: full 200 days after the first sample.
        let samples = filling(2e12, 1e10, 30, 3 * 48 + 1);
        let result = forecast(&samples, FORECAST_WINDOW);
        assert_eq!(result.trend, Trend::Rising);
        assert_close(result.rate_bytes_per_day.unwrap(), 1e10, 1e-6);
        assert_eq!(result.as_of, Some(at_hours(72)));
        assert_full_at_near(&result, at_hours(200 * 24));
    }

    #[test]
    fn noisy_steady_fill_forecasts_the_true_date() {
        let mut noise = Noise(11);
        let samples: Vec<(Timestamp, u64)> = filling(2e12, 1e10, 60, 7 * 24 + 1)
            .into_iter()
            .map(|(ts, avail)| (ts, (avail as f64 + 1e9 * noise.next()) as u64))
            .collect();
        let result = forecast(&samples, FORECAST_WINDOW);
        assert_eq!(result.trend, Trend::Rising);
        assert_full_at_near(&result, at_hours(200 * 24));
    }

    #[test]
    fn few_or_close_samples_give_no_date() {
        for count in [2, 3] {
            // A steady fall, one sample every 6 hours.
            let samples = filling(1e12, 1e11, 360, count);
            let result = forecast(&samples, FORECAST_WINDOW);
            assert_eq!(result.full_at, None, "{count} samples");
        }
        // Four samples an hour apart span only 3 hours.
        assert_eq!(forecast(&filling(1e12, 1e11, 60, 4), FORECAST_WINDOW).full_at, None);
        // Four samples two hours apart span 6 hours: enough.
        let enough = forecast(&filling(1e12, 1e11, 120, 4), FORECAST_WINDOW);
        assert_full_at_near(&enough, at_hours(240));
    }

    #[test]
    fn shrinking_usage_gives_no_date() {
        let samples: Vec<(Timestamp, u64)> =
            (0..=72).map(|h| (at_hours(h), 100 * GIB + h as u64 * 100 * MIB)).collect();
        let result = forecast(&samples, FORECAST_WINDOW);
        assert_eq!(result.trend, Trend::Falling);
        assert_close(result.rate_bytes_per_day.unwrap(), -2400.0 * MIB as f64, 1e-9);
        assert_eq!(result.full_at, None);
    }

    #[test]
    fn a_cron_burst_gives_no_date() {
        // 500 GB free, hourly for two days; one sample catches a 50 GB burst.
        for burst_hour in [24, 48] {
            let samples: Vec<(Timestamp, u64)> = (0..=48)
                .map(|h| {
                    (at_hours(h), if h == burst_hour { 450_000_000_000 } else { 500_000_000_000 })
                })
                .collect();
            let result = forecast(&samples, FORECAST_WINDOW);
            assert_ne!(result.trend, Trend::Rising, "burst at hour {burst_hour}");
            assert_eq!(result.full_at, None, "burst at hour {burst_hour}");
        }
    }

    #[test]
    fn constant_free_space_is_flat() {
        let samples: Vec<(Timestamp, u64)> = (0..=72).map(|h| (at_hours(h), 300 * GIB)).collect();
        let result = forecast(&samples, FORECAST_WINDOW);
        assert_eq!(
            result,
            Forecast {
                rate_bytes_per_day: Some(-0.0),
                trend: Trend::Flat,
                full_at: None,
                as_of: Some(at_hours(72)),
            }
        );
    }

    #[test]
    fn an_already_full_filesystem_gets_no_date() {
        // Reaches zero exactly at the newest sample.
        let samples = filling(48e9, 24e9, 60, 49);
        assert_eq!(samples.last(), Some(&(at_hours(48), 0)));
        let result = forecast(&samples, FORECAST_WINDOW);
        assert_eq!(result.trend, Trend::Rising);
        assert_eq!(result.full_at, None);
    }

    #[test]
    fn samples_before_the_window_are_ignored() {
        // A steep fall 10 days ago, flat for the last 8 days.
        let samples: Vec<(Timestamp, u64)> = (0..=10 * 24)
            .map(|h| {
                (at_hours(h), if h < 2 * 24 { 900 * GIB - h as u64 * 10 * GIB } else { 400 * GIB })
            })
            .collect();
        let result = forecast(&samples, FORECAST_WINDOW);
        assert_eq!(result.trend, Trend::Flat);
        assert_eq!(result.full_at, None);
        // With a window reaching back to the fall it is a (poorly fitted) rise.
        let longer = forecast(&samples, Duration::from_secs(30 * 86_400));
        assert_ne!(longer.trend, Trend::Flat);
    }

    #[test]
    fn no_samples_give_no_forecast() {
        assert_eq!(
            forecast(&[], FORECAST_WINDOW),
            Forecast {
                rate_bytes_per_day: None,
                trend: Trend::Unknown,
                full_at: None,
                as_of: None
            }
        );
    }
}
