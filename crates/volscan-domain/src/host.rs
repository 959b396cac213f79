//! Docker hosts sharing one database (SPEC §10): a host's identity
//! (`HostId`, `VOLSCAN_HOST_ID`), what is stored about it (`Host`), how alive
//! it is (`Liveness`, from the database's clock), and which hosts a read
//! covers (`HostScope`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::Timestamp;

/// How often a live host writes `last_seen_at` by default (SPEC §10).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);
/// A host counts as `online` when seen within this many heartbeat
/// intervals (45 s at the default interval).
pub const ONLINE_BEATS: u32 = 3;
/// A host counts as `stale` (not `offline`) when seen within this many
/// heartbeat intervals (5 minutes at the default interval).
pub const STALE_BEATS: u32 = 20;

/// A host's identity in the database: 1–63 characters of `a-z`, `0-9`,
/// `_`, `.` and `-`, starting with a letter or digit, after lower-casing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(String);

/// Why a text is not a `HostId`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid host id {0:?}: expected 1-63 characters of a-z, 0-9, '_', '.', '-', \
     starting with a letter or digit"
)]
pub struct InvalidHostId(pub String);

impl HostId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A host id made of the first valid characters of `text` (a hostname,
    /// say), lower-cased, with every other character replaced by `-`; `None`
    /// when nothing usable is left.
    pub fn sanitized(text: &str) -> Option<HostId> {
        let cleaned: String = text
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| if valid_char(c) { c } else { '-' })
            .skip_while(|c| !c.is_ascii_alphanumeric())
            .take(63)
            .collect();
        cleaned.parse().ok()
    }
}

fn valid_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
}

impl Default for HostId {
    /// `local`: the host of a repository or scheduler not told its id (an
    /// embedder with one host).
    fn default() -> Self {
        HostId("local".to_owned())
    }
}

impl FromStr for HostId {
    type Err = InvalidHostId;

    fn from_str(text: &str) -> Result<Self, InvalidHostId> {
        let lower = text.to_ascii_lowercase();
        let first_ok = lower.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if first_ok && lower.len() <= 63 && lower.chars().all(valid_char) {
            Ok(HostId(lower))
        } else {
            Err(InvalidHostId(text.to_owned()))
        }
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which hosts a read covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostScope {
    /// One host's data.
    One(HostId),
    /// Every host's data (`host=*`).
    All,
}

impl HostScope {
    /// The one host, or `None` for every host.
    pub fn host(&self) -> Option<&HostId> {
        match self {
            HostScope::One(host) => Some(host),
            HostScope::All => None,
        }
    }
}

/// What a live host says of itself at start-up and with each heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// Its id.
    pub id: HostId,
    /// The machine's name (where the process runs).
    pub name: String,
    /// The Docker Engine's `ID`, when the daemon answered.
    pub docker_engine_id: Option<String>,
    /// The Docker Engine's version, when the daemon answered.
    pub docker_version: Option<String>,
    /// volscan's version.
    pub volscan_version: String,
}

/// A host as stored in `hosts`, with the database's time of the read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// What it says of itself.
    pub info: HostInfo,
    /// When its current process started (the database's clock).
    pub started_at: Timestamp,
    /// Its last heartbeat (the database's clock).
    pub last_seen_at: Timestamp,
    /// The host's clock minus the database's at its last heartbeat, in
    /// milliseconds; `None` before one was measured.
    pub clock_skew_ms: Option<i64>,
    /// The database's clock when this row was read: liveness is judged
    /// against it, never against the reader's clock.
    pub read_at: Timestamp,
}

impl Host {
    /// How alive the host is, by the database's clock, for hosts that beat
    /// every `HEARTBEAT_EVERY`.
    pub fn liveness(&self) -> Liveness {
        self.liveness_under(HEARTBEAT_EVERY)
    }

    /// How alive the host is, by the database's clock, for hosts that beat
    /// every `heartbeat` (a fleet shares one interval).
    pub fn liveness_under(&self, heartbeat: Duration) -> Liveness {
        Liveness::under(self.last_seen_at, self.read_at, heartbeat)
    }
}

/// How recently a host was seen (SPEC §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Seen within `ONLINE_BEATS` heartbeat intervals.
    Online,
    /// Seen within `STALE_BEATS` intervals, not within `ONLINE_BEATS`.
    Stale,
    /// Not seen for `STALE_BEATS` intervals or longer.
    Offline,
}

impl Liveness {
    /// The liveness of a host last seen at `last_seen` when the clock says
    /// `now`, at the default heartbeat interval.
    pub fn of(last_seen: Timestamp, now: Timestamp) -> Liveness {
        Liveness::under(last_seen, now, HEARTBEAT_EVERY)
    }

    /// The liveness of a host that beats every `heartbeat`, last seen at
    /// `last_seen` when the clock says `now`.
    pub fn under(last_seen: Timestamp, now: Timestamp, heartbeat: Duration) -> Liveness {
        let age = now - last_seen;
        if age < heartbeat * ONLINE_BEATS {
            Liveness::Online
        } else if age < heartbeat * STALE_BEATS {
            Liveness::Stale
        } else {
            Liveness::Offline
        }
    }

    /// `online`, `stale` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Online => "online",
            Liveness::Stale => "stale",
            Liveness::Offline => "offline",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn host_ids_follow_the_rule_after_lower_casing() {
        assert_eq!("Web-01".parse::<HostId>().map(|h| h.0), Ok("web-01".to_owned()));
        assert!("a".parse::<HostId>().is_ok());
        assert!("a.b_c-d".parse::<HostId>().is_ok());
        assert!("a".repeat(63).parse::<HostId>().is_ok());
        for bad in ["", "-a", ".a", "a b", "a/b", "é", &"a".repeat(64)] {
            assert!(bad.parse::<HostId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sanitized_turns_a_hostname_into_an_id() {
        assert_eq!(HostId::sanitized("Build Box#2").map(|h| h.0), Some("build-box-2".into()));
        assert_eq!(HostId::sanitized("--x").map(|h| h.0), Some("x".into()));
        assert_eq!(HostId::sanitized("%%%"), None);
        assert_eq!(HostId::sanitized(&"b".repeat(80)).map(|h| h.0.len()), Some(63));
    }

    #[test]
    fn liveness_follows_the_age_of_the_last_heartbeat() {
        let now = datetime!(2026-12-07 12:00 UTC);
        let ago = |s: i64| now - time::Duration::seconds(s);
        assert_eq!(Liveness::of(ago(0), now), Liveness::Online);
        assert_eq!(Liveness::of(ago(44), now), Liveness::Online);
        assert_eq!(Liveness::of(ago(45), now), Liveness::Stale);
        assert_eq!(Liveness::of(ago(299), now), Liveness::Stale);
        assert_eq!(Liveness::of(ago(300), now), Liveness::Offline);
        // A heartbeat "from the future" (clock skew between readers) is online.
        assert_eq!(Liveness::of(now + time::Duration::seconds(5), now), Liveness::Online);
        // A shorter interval shortens both limits alike: 3 and 20 beats.
        let beat = Duration::from_secs(1);
        assert_eq!(Liveness::under(ago(2), now, beat), Liveness::Online);
        assert_eq!(Liveness::under(ago(3), now, beat), Liveness::Stale);
        assert_eq!(Liveness::under(ago(19), now, beat), Liveness::Stale);
        assert_eq!(Liveness::under(ago(20), now, beat), Liveness::Offline);
    }
}
