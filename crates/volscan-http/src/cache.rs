//! Rendered answers kept while the data they were derived from stays the
//! same: `GET /volumes`, `GET /filesystems` and `GET /summary` are read far
//! more often than the scheduler writes, so a repeated read costs a copy of
//! the body instead of the queries and the JSON encoding.
//!
//! An answer is keyed by what the request asked (sort, filters) and tagged
//! with the [`Version`] it was rendered at; a different version makes it
//! stale at once. An answer of the current version is still re-rendered
//! after a time to live, for what the version does not cover (the container
//! users Docker reports, the filesystem sample a scan stores just after its
//! stats): one request refreshes it while the others keep answering from it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;

use crate::AppState;

/// What a rendered answer was derived from: the scheduler's data version
/// (volumes and stats written) and its count of failed runs (a failure
/// writes no stats but changes `GET /summary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    data: u64,
    failures: u64,
}

impl Version {
    /// The version now, failures included. Read it before reading the
    /// repository, so that a write during the rendering leaves the answer
    /// tagged as older than it.
    pub(crate) fn now(state: &AppState) -> Self {
        Version {
            data: state.scheduler.data_version(),
            failures: state.scheduler.status().total_failed,
        }
    }

    /// As `now`, for an answer that failures do not change (the volume list):
    /// only the data version, one atomic load.
    pub(crate) fn data(state: &AppState) -> Self {
        Version { data: state.scheduler.data_version(), failures: 0 }
    }
}

/// How long an answer of the current version is served before one request
/// renders it again.
pub(crate) const TTL: Duration = Duration::from_secs(5);

/// One rendered answer (or, for the dashboard, the data a page is drawn from).
struct Entry<V> {
    version: Version,
    at: Instant,
    body: V,
}

/// Rendered answers by key. Keys come from validated query parameters, so
/// there are only a few of them.
pub(crate) struct Rendered<K, V = Bytes> {
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K, V> Default for Rendered<K, V> {
    fn default() -> Self {
        Rendered { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, V: Clone> Rendered<K, V> {
    /// The answer for `key` when it was rendered at `version` less than
    /// [`TTL`] ago. An answer of `version` that is older than that is
    /// `None` once: the caller renders it again, while other requests keep
    /// getting the old one until it does.
    pub(crate) fn fresh(&self, key: &K, version: Version) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get_mut(key).filter(|entry| entry.version == version)?;
        if entry.at.elapsed() < TTL {
            return Some(entry.body.clone());
        }
        entry.at = Instant::now();
        None
    }

    /// Keeps `body`, rendered from data read at `version`, for `key`, and
    /// drops the answers of other versions (stale, and up to a few hundred
    /// kilobytes each).
    pub(crate) fn store(&self, key: K, version: Version, body: V) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|_, entry| entry.version == version);
        entries.insert(key, Entry { version, at: Instant::now(), body });
    }
}

/// A JSON answer's body.
pub(crate) fn json_body(value: &impl serde::Serialize) -> Result<Bytes, crate::ApiError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| crate::ApiError::Internal(err.to_string()))
}

/// `200` with a rendered JSON body.
pub(crate) fn ok(body: Bytes) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().content_type("application/json").body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_served_only_at_its_version() {
        let cache = Rendered::<&str>::default();
        let (v1, v2) = (Version { data: 1, failures: 0 }, Version { data: 1, failures: 1 });
        assert_eq!(cache.fresh(&"a", v1), None);
        cache.store("a", v1, Bytes::from_static(b"one"));
        assert_eq!(cache.fresh(&"a", v1), Some(Bytes::from_static(b"one")));
        assert_eq!(cache.fresh(&"b", v1), None);
        assert_eq!(cache.fresh(&"a", v2), None, "a failure makes it stale");
        cache.store("b", v2, Bytes::from_static(b"two"));
        assert_eq!(cache.entries.lock().unwrap().len(), 1, "the stale answer is dropped");
        assert_eq!(cache.fresh(&"b", v2), Some(Bytes::from_static(b"two")));
    }

    #[test]
    fn an_expired_answer_is_rendered_again_by_one_request() {
        let cache = Rendered::<u8>::default();
        let version = Version { data: 7, failures: 0 };
        cache.store(0, version, Bytes::from_static(b"old"));
        cache.entries.lock().unwrap().get_mut(&0).unwrap().at = Instant::now() - TTL;
        assert_eq!(cache.fresh(&0, version), None, "this request renders");
        assert_eq!(cache.fresh(&0, version), Some(Bytes::from_static(b"old")), "others wait");
    }
}
