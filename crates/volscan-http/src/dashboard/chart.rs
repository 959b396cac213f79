//! Charts drawn as inline SVG on the server: a sparkline per table row and
//! the time chart of a volume's size and apparent size. No script draws
//! anything; each point of the time chart carries its value in an SVG
//! `<title>`, which browsers show on hover. Colours come from the
//! stylesheet (classes), so the charts follow the light or dark theme.

use std::fmt::Write;

use maud::{Markup, html};
use volscan_domain::Timestamp;

use super::format;

/// Width and height of a sparkline, in CSS pixels.
const SPARK: (f64, f64) = (120.0, 24.0);

/// Most points a chart draws; longer series keep the newest point of each
/// of this many equal time buckets (a measured value, never an average).
pub(crate) const MAX_POINTS: usize = 240;

/// A sparkline of `points` (oldest first): the line scaled between the
/// lowest and highest value, and a title naming the first and last value.
/// Fewer than two points draw nothing but that title.
pub(crate) fn sparkline(points: &[(Timestamp, u64)]) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! { span.muted title="no stored sizes yet" { "—" } };
    };
    let title = format!(
        "{} → {} over {}",
        format::size(first.1),
        format::size(last.1),
        format::span(std::time::Duration::try_from(last.0 - first.0).unwrap_or_default())
    );
    if points.len() < 2 {
        return html! { span.muted title=(title) { "one scan" } };
    }
    let scale = Scale::new(points, SPARK.0, SPARK.1, 2.0);
    // Whole pixels: a 120 × 24 line needs no finer steps, and a table of
    // 1,000 rows stays light.
    let mut line = String::with_capacity(points.len() * 7);
    for &(ts, value) in points {
        if !line.is_empty() {
            line.push(' ');
        }
        // Within 0..=120 and 0..=24: the conversions cannot overflow.
        let _ = write!(line, "{},{}", scale.x(ts).round() as i32, scale.y(value).round() as i32);
    }
    html! {
        svg.spark viewBox={ "0 0 " (SPARK.0) " " (SPARK.1) } role="img" {
            title { (title) }
            polyline points=(line) {}
        }
    }
}

/// Maps times and values onto a drawing area.
struct Scale {
    t0: i128,
    t1: i128,
    lo: u64,
    hi: u64,
    width: f64,
    height: f64,
    pad: f64,
}

impl Scale {
    fn new(points: &[(Timestamp, u64)], width: f64, height: f64, pad: f64) -> Self {
        let t0 = points.first().map_or(0, |p| p.0.unix_timestamp_nanos());
        let t1 = points.last().map_or(0, |p| p.0.unix_timestamp_nanos());
        let lo = points.iter().map(|p| p.1).min().unwrap_or(0);
        let hi = points.iter().map(|p| p.1).max().unwrap_or(0);
        Scale { t0, t1, lo, hi, width, height, pad }
    }

    fn x(&self, ts: Timestamp) -> f64 {
        let span = (self.t1 - self.t0) as f64;
        if span <= 0.0 {
            return self.width / 2.0;
        }
        let at = (ts.unix_timestamp_nanos() - self.t0) as f64;
        self.pad + at / span * (self.width - 2.0 * self.pad)
    }

    fn y(&self, value: u64) -> f64 {
        let span = self.hi.saturating_sub(self.lo) as f64;
        if span <= 0.0 {
            return self.height / 2.0;
        }
        let above = value.saturating_sub(self.lo) as f64;
        self.height - self.pad - above / span * (self.height - 2.0 * self.pad)
    }
}

/// One measured point of the time chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChartPoint {
    /// When it was measured.
    pub ts: Timestamp,
    /// Disk usage.
    pub size: u64,
    /// Apparent size, when the method reported one.
    pub apparent: Option<u64>,
}

/// Keeps at most `max` points of `points` (oldest first): the newest of
/// each of `max` equal time buckets between the first and the last point.
pub(crate) fn thin<T: Copy>(points: &[T], ts: impl Fn(&T) -> Timestamp, max: usize) -> Vec<T> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return Vec::new() };
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let (t0, t1) = (ts(first).unix_timestamp_nanos(), ts(last).unix_timestamp_nanos());
    let width = ((t1 - t0) / max as i128).max(1);
    let bucket = |p: &T| ((ts(p).unix_timestamp_nanos() - t0) / width).min(max as i128 - 1);
    let mut kept: Vec<T> = Vec::with_capacity(max);
    for (i, point) in points.iter().enumerate() {
        let next_in_same = points.get(i + 1).is_some_and(|next| bucket(next) == bucket(point));
        if !next_in_same {
            kept.push(*point);
        }
    }
    kept
}

/// Chart geometry: the whole picture and the plot inside its axes.
const CHART: (f64, f64) = (720.0, 260.0);
const LEFT: f64 = 72.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;
const RIGHT: f64 = 16.0;

/// The time chart of `points` (oldest first): size as a line, apparent
/// size as a dashed line, the value axis in binary units from zero, dates on
/// the time axis, and each point's values in its hover title.
pub(crate) fn time_chart(points: &[ChartPoint], range_label: &str) -> Markup {
    if points.is_empty() {
        return html! { p.empty { "No completed scan in this range." } };
    }
    let hi = points.iter().map(|p| p.size.max(p.apparent.unwrap_or(0))).max().unwrap_or(0);
    let (top, step) = nice_ceiling(hi);
    let (t0, t1) = (points[0].ts, points[points.len() - 1].ts);
    let plot_w = CHART.0 - LEFT - RIGHT;
    let plot_h = CHART.1 - TOP - BOTTOM;
    let x = |ts: Timestamp| {
        let span = (t1 - t0).whole_nanoseconds() as f64;
        if span <= 0.0 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + (ts - t0).whole_nanoseconds() as f64 / span * plot_w
        }
    };
    let y = |value: u64| TOP + plot_h - (value as f64 / top as f64) * plot_h;
    let line = |values: &mut dyn Iterator<Item = (Timestamp, u64)>| {
        values.map(|(ts, v)| format!("{:.1},{:.1}", x(ts), y(v))).collect::<Vec<_>>().join(" ")
    };
    let size_line = line(&mut points.iter().map(|p| (p.ts, p.size)));
    let apparent: Vec<(Timestamp, u64)> =
        points.iter().filter_map(|p| Some((p.ts, p.apparent?))).collect();
    let apparent_line = line(&mut apparent.iter().copied());
    let ticks = if (t1 - t0) <= time::Duration::days(7) { 4 } else { 5 };
    let x_ticks: Vec<Timestamp> =
        if t1 > t0 { (0..=ticks).map(|i| t0 + (t1 - t0) * i / ticks).collect() } else { vec![t0] };
    let label = format!("Size over {range_label}: {} points", points.len());
    html! {
        svg.chart viewBox={ "0 0 " (CHART.0) " " (CHART.1) } role="img" aria-label=(label)
            preserveAspectRatio="xMidYMid meet" {
            title { (label) }
            @for i in 0..=4u64 {
                @let value = step * i;
                line.grid x1=(LEFT) x2=(CHART.0 - RIGHT) y1=(y(value)) y2=(y(value)) {}
                text.axis x=(LEFT - 6.0) y=(y(value) + 4.0) text-anchor="end" { (format::size(value)) }
            }
            @for (i, tick) in x_ticks.iter().enumerate() {
                @let anchor = if x_ticks.len() == 1 { "middle" } else if i == 0 { "start" } else if i + 1 == x_ticks.len() { "end" } else { "middle" };
                text.axis x=(x(*tick)) y=(CHART.1 - 8.0) text-anchor=(anchor) {
                    (format::axis_time(*tick, t1 - t0))
                }
            }
            @if apparent.len() >= 2 {
                polyline.apparent points=(apparent_line) {}
            }
            @if points.len() >= 2 {
                polyline.size points=(size_line) {}
            }
            @for point in points {
                circle.point cx=(format!("{:.1}", x(point.ts))) cy=(format!("{:.1}", y(point.size))) r="3" {
                    title {
                        (format::utc(point.ts)) ": " (format::size(point.size))
                        @if let Some(apparent) = point.apparent {
                            ", apparent " (format::size(apparent))
                        }
                    }
                }
            }
        }
    }
}

/// A top for the value axis at or above `hi` made of four equal steps of a
/// round number of binary units (1, 2 or 5 × 10ᵐ × 1024ⁿ, under 1024 of the
/// unit), and that step.
fn nice_ceiling(hi: u64) -> (u64, u64) {
    let quarter = hi.div_ceil(4).max(1);
    let mut unit = 1u64;
    loop {
        for factor in [1u64, 2, 5, 10, 20, 50, 100, 200, 500] {
            let step = unit.saturating_mul(factor);
            if step >= quarter {
                return (step.saturating_mul(4), step);
            }
        }
        if unit > u64::MAX / 1024 {
            return (u64::MAX, u64::MAX / 4);
        }
        unit *= 1024;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + time::Duration::days(20_000) + time::Duration::hours(hours)
    }

    #[test]
    fn the_value_axis_ends_on_round_steps() {
        assert_eq!(nice_ceiling(0), (4, 1));
        assert_eq!(nice_ceiling(1000), (2000, 500));
        assert_eq!(nice_ceiling(3 << 30), (4 << 30, 1 << 30));
        assert_eq!(nice_ceiling(5 << 30), (8 << 30, 2 << 30));
        let (top, step) = nice_ceiling(700 << 20);
        assert!(top >= 700 << 20 && step * 4 == top, "{top} {step}");
    }

    #[test]
    fn thinning_keeps_the_newest_point_of_each_bucket() {
        let points: Vec<(Timestamp, u64)> = (0..1000).map(|h| (at(h), h as u64)).collect();
        let kept = thin(&points, |p| p.0, 100);
        assert!(kept.len() <= 100 && kept.len() >= 95, "{}", kept.len());
        assert_eq!(kept.last(), points.last(), "the newest point is always kept");
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(thin(&points[..10], |p| p.0, 100).len(), 10);
    }

    #[test]
    fn charts_carry_each_value_in_a_title() {
        let points = [
            ChartPoint { ts: at(0), size: 1 << 20, apparent: Some(900 << 10) },
            ChartPoint { ts: at(6), size: 3 << 20, apparent: None },
        ];
        let svg = time_chart(&points, "7 days").into_string();
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("1.00 MiB, apparent 900 KiB</title>"), "{svg}");
        assert!(svg.contains("3.00 MiB</title>"), "{svg}");
        assert!(svg.contains("polyline class=\"size\""), "{svg}");
        assert!(!svg.contains("class=\"apparent\""), "one apparent point draws no line");
        let spark = sparkline(&[(at(0), 1), (at(24), 5)]).into_string();
        assert!(spark.contains("<polyline"), "{spark}");
        assert!(sparkline(&[]).into_string().contains("no stored sizes"));
    }
}
