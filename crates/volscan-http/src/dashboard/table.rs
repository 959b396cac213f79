//! The overview's table of volumes: its columns and their sort order, the
//! filter form, and one row per volume (name with its failed or active
//! badge, size, deltas, sparkline, files, use, last scan and method).

use std::cmp::Ordering;
use std::sync::Arc;

use maud::{Markup, html};
use volscan_domain::{Growth, ScanRun, Timestamp, Volume, VolumeStat};

use super::overview::OverviewQuery;
use super::{chart, encode, format};
use crate::volumes::nulls_last;

/// What the volume table sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Column {
    Name,
    Size,
    Delta24h,
    Delta7d,
    Files,
    Scanned,
}

impl Column {
    const ALL: [(&'static str, Column); 6] = [
        ("name", Column::Name),
        ("size", Column::Size),
        ("delta_24h", Column::Delta24h),
        ("delta_7d", Column::Delta7d),
        ("files", Column::Files),
        ("scanned", Column::Scanned),
    ];

    fn key(self) -> &'static str {
        Self::ALL.iter().find(|(_, c)| *c == self).map_or("name", |(key, _)| key)
    }

    /// `key:asc|desc`; anything else falls back to size, largest first.
    pub(crate) fn parse(text: Option<&str>) -> (Column, bool) {
        let parsed = text.and_then(|text| {
            let (key, order) = text.split_once(':')?;
            let column = Self::ALL.iter().find(|(k, _)| *k == key)?.1;
            match order {
                "asc" => Some((column, false)),
                "desc" => Some((column, true)),
                _ => None,
            }
        });
        parsed.unwrap_or((Column::Size, true))
    }
}

/// One row of the volume table.
pub(crate) struct Row<'a> {
    pub volume: &'a Volume,
    pub stat: Option<&'a VolumeStat>,
    pub growth: Growth,
    pub spark: Option<Arc<[(Timestamp, u64)]>>,
    pub failed: bool,
    pub active: Option<&'a ScanRun>,
}

impl Row<'_> {
    pub(crate) fn compare(&self, other: &Self, column: Column, descending: bool) -> Ordering {
        let figure = |row: &Self| -> Option<i128> {
            match column {
                Column::Name => None,
                Column::Size => row.stat.map(|s| i128::from(s.usage.size_bytes)),
                Column::Delta24h => row.growth.delta_24h.map(i128::from),
                Column::Delta7d => row.growth.delta_7d.map(i128::from),
                Column::Files => row.stat.and_then(|s| s.usage.file_count).map(i128::from),
                Column::Scanned => row.stat.map(|s| s.ts.unix_timestamp_nanos()),
            }
        };
        let by_name = self.volume.name.cmp(&other.volume.name);
        if column == Column::Name {
            return if descending { by_name.reverse() } else { by_name };
        }
        // The API's rule: unknown figures last in both directions.
        nulls_last(figure(self), figure(other), descending, Ord::cmp).then(by_name)
    }
}

pub(crate) fn filters(query: &OverviewQuery, show: &str) -> Markup {
    html! {
        form.filters method="get" action="/" role="search" {
            label { span.visually-hidden { "Filter by name" }
                input type="search" name="q" placeholder="Filter by name" value=(query.q.as_deref().unwrap_or("")); }
            label { "Show "
                select name="show" {
                    option value="all" selected[show == "all"] { "all" }
                    option value="unused" selected[show == "unused"] { "unused" }
                    option value="in_use" selected[show == "in_use"] { "in use" }
                }
            }
            @if let Some(sort) = &query.sort { input type="hidden" name="sort" value=(sort); }
            @if let Some(host) = &query.host { input type="hidden" name="host" value=(host); }
            button.secondary type="submit" { "Apply" }
        }
    }
}

/// A sortable column header: a link that sorts by it (descending first for
/// figures, ascending for the name; again to reverse).
fn header(
    label: &str,
    col: Column,
    current: (Column, bool),
    query: &OverviewQuery,
    class: &str,
) -> Markup {
    let (column, descending) = current;
    let next_desc = if column == col { !descending } else { col != Column::Name };
    let mut href = format!("/?sort={}:{}", col.key(), if next_desc { "desc" } else { "asc" });
    if let Some(q) = query.q.as_deref().filter(|q| !q.is_empty()) {
        href.push_str(&format!("&q={}", encode(q)));
    }
    if let Some(show) = query.show.as_deref() {
        href.push_str(&format!("&show={}", encode(show)));
    }
    if let Some(host) = query.host.as_deref() {
        href.push_str(&format!("&host={}", encode(host)));
    }
    let sort = (column == col).then_some(if descending { "descending" } else { "ascending" });
    html! {
        th scope="col" class=(class) aria-sort=[sort] {
            a href=(href) data-sort=(col.key()) aria-sort=[sort] { (label)
                @if column == col { @if descending { " ↓" } @else { " ↑" } } }
        }
    }
}

fn delta_cell(delta: Option<i64>) -> Markup {
    match delta {
        Some(d) => {
            let class = match d.signum() {
                1 => "num up",
                -1 => "num down",
                _ => "num",
            };
            html! { td class=(class) { (format::delta(d)) } }
        }
        None => html! { td.num.muted title="not enough history" { "—" } },
    }
}

pub(crate) fn table(
    rows: &[Row<'_>],
    column: Column,
    descending: bool,
    query: &OverviewQuery,
    now: Timestamp,
) -> Markup {
    let current = (column, descending);
    let host_link =
        query.host.as_deref().map(|h| format!("?host={}", encode(h))).unwrap_or_default();
    html! {
        @if rows.is_empty() {
            p.muted { "No volume matches." }
        } @else {
            div.scroll { table #volumes {
                caption.visually-hidden { "Volumes, " (rows.len()) " shown" }
                thead { tr {
                    (header("Name", Column::Name, current, query, ""))
                    (header("Size", Column::Size, current, query, "num"))
                    (header("Δ24h", Column::Delta24h, current, query, "num"))
                    (header("Δ7d", Column::Delta7d, current, query, "num"))
                    th scope="col" class="wide-only" { "30 days" }
                    (header("Files", Column::Files, current, query, "num wide-only"))
                    th scope="col" { "Use" }
                    (header("Scanned", Column::Scanned, current, query, ""))
                    th scope="col" class="wide-only" { "Method" }
                } }
                tbody {
                    @for row in rows { (table_row(row, &host_link, now)) }
                }
            } }
        }
    }
}

/// One volume's row; its link carries `host_link` (`?host=ID` or nothing).
fn table_row(row: &Row<'_>, host_link: &str, now: Timestamp) -> Markup {
    let name = row.volume.name.as_str();
    html! {
        tr data-volume=(name) {
            td.name {
                a href={ "/volumes/" (encode(name)) (host_link) } { (name) }
                @if row.failed { " " span.badge.failed title="the last scan failed; the size shown is the last measured one" { "failed" } }
                @if let Some(run) = row.active { " " span class={ "badge " (run.status.as_str()) } { (run.status.as_str()) } }
            }
            @match row.stat {
                Some(stat) => {
                    td.num data-bytes=(stat.usage.size_bytes) {
                        @if stat.usage.is_partial() {
                            span title={ (stat.usage.error_count) " entries could not be read: at least this much" } { "≥ " }
                        }
                        (format::size(stat.usage.size_bytes))
                    }
                }
                None => td.num.muted title="not measured yet" { "—" },
            }
            (delta_cell(row.growth.delta_24h))
            (delta_cell(row.growth.delta_7d))
            td.wide-only { (chart::sparkline(row.spark.as_deref().unwrap_or(&[]))) }
            td.num.wide-only {
                @match row.stat.and_then(|s| s.usage.file_count) {
                    Some(files) => (format::count(files)),
                    None => span.muted title="this method does not count files" { "—" },
                }
            }
            td {
                (super::use_of(row.volume, now))
            }
            td { (format::when_or(row.stat.map(|s| s.ts), now, "never")) }
            td.wide-only { @if let Some(stat) = row.stat { (stat.method.as_str()) } }
        }
    }
}
