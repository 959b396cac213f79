//! `GET /volumes` and `GET /volumes/{name}`: every volume with its latest
//! stats, its growth (SPEC §8), whether containers use it, and the
//! containers Docker reports as using it now.
//!
//! The list is rendered once per data version and query (`cache.rs`), the
//! growth once per data version for all volumes (`growth.rs`), and the
//! container users are fetched at most every `USERS_TTL`.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use volscan_domain::{HostId, RunFilter, VolumeName, VolumeStat, VolumeUsers};

use crate::cache::{self, Version};
use crate::hosts::{HostQuery, Named};
use crate::json::{RunJson, VolumeDetailJson, VolumeJson};
use crate::routes::{block, volume_name};
use crate::{ApiError, AppState, growth};

/// How long container users stay cached: listing containers costs Docker a
/// round trip per request otherwise. A failure is remembered as long, so a
/// Docker outage does not slow every request down.
const USERS_TTL: Duration = Duration::from_secs(5);

/// Which containers use which volume, cached briefly; `None` when Docker
/// does not answer.
pub(crate) async fn users(state: &AppState) -> Option<Arc<Vec<VolumeUsers>>> {
    {
        let cache = state.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, users)) = cache.as_ref()
            && at.elapsed() < USERS_TTL
        {
            return users.clone();
        }
    }
    let source = Arc::clone(&state.source);
    let fetched =
        actix_web::rt::time::timeout(Duration::from_secs(3), web::block(move || source.users()))
            .await;
    let users = match fetched {
        Ok(Ok(Ok(users))) => Some(Arc::new(users)),
        _ => None,
    };
    *state.users.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((Instant::now(), users.clone()));
    users
}

/// What `GET /volumes` sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SortKey {
    Name,
    SizeBytes,
    Delta24h,
    Delta7d,
    RateBytesPerDay,
}

impl SortKey {
    const ALL: [(&'static str, SortKey); 5] = [
        ("name", SortKey::Name),
        ("size_bytes", SortKey::SizeBytes),
        ("delta_24h", SortKey::Delta24h),
        ("delta_7d", SortKey::Delta7d),
        ("rate_bytes_per_day", SortKey::RateBytesPerDay),
    ];

    /// `key:asc` or `key:desc` (default `name:asc`), and whether descending.
    fn parse(sort: Option<&str>) -> Result<(SortKey, bool), ApiError> {
        let (key, order) = sort.unwrap_or("name:asc").split_once(':').unwrap_or(("", ""));
        let key = Self::ALL.iter().find(|(text, _)| *text == key).map(|&(_, key)| key);
        match (key, order) {
            (Some(key), "asc" | "desc") => Ok((key, order == "desc")),
            _ => Err(ApiError::InvalidQuery(
                "sort is name, size_bytes, delta_24h, delta_7d or rate_bytes_per_day, then :asc \
                 or :desc"
                    .to_owned(),
            )),
        }
    }
}

/// Orders two optional figures: known ones by `order` (reversed when
/// `descending`), and an unknown one after every known one in both directions.
pub(crate) fn nulls_last<T>(
    a: Option<T>,
    b: Option<T>,
    descending: bool,
    order: impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) if descending => order(&b, &a),
        (Some(a), Some(b)) => order(&a, &b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts a list that is in name order. By name or size as before (ties of
/// size keep the name order, reversed with it); by a growth figure with the
/// volumes whose figure is null last in both directions, ties by name.
fn sort(listed: &mut [VolumeJson], key: SortKey, descending: bool) {
    let growth = |key: SortKey| {
        move |a: &VolumeJson, b: &VolumeJson| {
            let (x, y) = (a.growth(), b.growth());
            let order = match key {
                SortKey::Delta24h => nulls_last(x.delta_24h, y.delta_24h, descending, Ord::cmp),
                SortKey::Delta7d => nulls_last(x.delta_7d, y.delta_7d, descending, Ord::cmp),
                _ => nulls_last(
                    x.rate_bytes_per_day,
                    y.rate_bytes_per_day,
                    descending,
                    f64::total_cmp,
                ),
            };
            order.then_with(|| a.name().cmp(b.name()))
        }
    };
    match key {
        SortKey::Name | SortKey::SizeBytes => {
            if key == SortKey::SizeBytes {
                listed.sort_by_key(VolumeJson::size);
            } else {
                listed.sort_by(|a, b| a.name().cmp(b.name()));
            }
            if descending {
                listed.reverse();
            }
        }
        SortKey::Delta24h | SortKey::Delta7d | SortKey::RateBytesPerDay => {
            listed.sort_by(growth(key));
        }
    }
}

/// Query of `GET /volumes`.
#[derive(Deserialize)]
pub(crate) struct VolumesQuery {
    sort: Option<String>,
    removed: Option<bool>,
    unused: Option<bool>,
}

/// What a rendered `GET /volumes` answer depends on besides the data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct VolumesKey {
    sort: SortKey,
    descending: bool,
    removed: bool,
    unused: Option<bool>,
    hosts: Named,
}

/// `GET /volumes?sort=size_bytes:desc&removed=true&unused=true`.
///
/// `unused=true` keeps the present volumes no container references
/// (`in_use` false), `unused=false` the present ones some container
/// references; volumes whose use is not known yet (`in_use` null) match
/// neither. The rendered answer is kept while the data version stays the
/// same (see `cache.rs`), so repeated reads cost a copy instead of 1,000
/// index seeks and the JSON encoding.
pub(crate) async fn list_volumes(
    state: web::Data<AppState>,
    query: web::Query<VolumesQuery>,
    host: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let VolumesQuery { sort: sort_text, removed, unused } = query.into_inner();
    let (sort_key, descending) = SortKey::parse(sort_text.as_deref())?;
    let include_removed = removed.unwrap_or(false);
    let (named, repo) = host.repo(&state, true)?;
    // The data version counts this process's writes, not other hosts', so
    // an answer covering another host is kept only for `cache::TTL`: it
    // shows their scans at most that late (10,000 volumes of 200 hosts take
    // a quarter of a second to read and encode). One other host's answer is
    // not kept: any text can name one, and the keys must stay few.
    let cached = !matches!(named, Named::Other(_));
    let key =
        VolumesKey { sort: sort_key, descending, removed: include_removed, unused, hosts: named };
    let version = Version::data(&state);
    if cached && let Some(body) = state.volumes.fresh(&key, version) {
        return Ok(cache::ok(body));
    }
    // Growth and the containers using a volume are this host's; another
    // host's volumes show growth unknown (null figures) and no containers.
    let growth = growth::all(&state).await?;
    let (volumes, stats) =
        block(move || Ok((repo.volumes(include_removed)?, repo.latest_stats()?))).await?;
    let users = users(&state).await;
    let latest: HashMap<(&HostId, &VolumeName), &VolumeStat> =
        stats.iter().map(|s| ((&s.host, &s.volume), s)).collect();
    let used: HashMap<&VolumeName, &VolumeUsers> =
        users.iter().flat_map(|u| u.iter()).map(|u| (&u.volume, u)).collect();
    let none = volscan_domain::Growth::UNKNOWN;
    let here = state.repo.local_host();
    let mut listed: Vec<VolumeJson> = volumes
        .iter()
        .filter(|volume| {
            unused
                .is_none_or(|unused| volume.removed_at.is_none() && volume.in_use == Some(!unused))
        })
        .map(|volume| {
            let mine = &volume.host == here;
            VolumeJson::new(
                volume,
                latest.get(&(&volume.host, &volume.name)).copied(),
                growth.get(&volume.name).filter(|_| mine).unwrap_or(&none),
                used.get(&volume.name).copied().filter(|_| mine),
            )
        })
        .collect();
    sort(&mut listed, sort_key, descending);
    let body = cache::json_body(&listed)?;
    if cached {
        state.volumes.store(key, version, body.clone());
    }
    Ok(cache::ok(body))
}

/// `GET /volumes/{name}?host=H`. Another host's volume has its growth read
/// from that host's stats and no containers (Docker's answer is this host's).
pub(crate) async fn get_volume(
    state: web::Data<AppState>,
    path: web::Path<String>,
    host: web::Query<HostQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = volume_name(&path)?;
    let (named, repo) = host.repo(&state, false)?;
    let lookup = name.clone();
    let read = Arc::clone(&repo);
    let (volume, latest, runs) = block(move || {
        let filter =
            RunFilter { volume: Some(lookup.clone()), limit: Some(10), ..RunFilter::default() };
        Ok((read.volume(&lookup)?, read.latest_stat(&lookup)?, read.runs(&filter)?))
    })
    .await?;
    let volume = volume.ok_or_else(|| ApiError::VolumeNotFound(name.to_string()))?;
    let (growth, users) = if named == Named::Local {
        (growth::of(&state, &volume.name).await?, users(&state).await)
    } else {
        (growth::of_in(repo, &volume.name).await?, None)
    };
    let used = users.as_ref().and_then(|u| u.iter().find(|u| u.volume == volume.name));
    Ok(HttpResponse::Ok().json(VolumeDetailJson {
        volume: VolumeJson::new(&volume, latest.as_ref(), &growth, used),
        runs: runs.iter().map(RunJson::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_and_orders_are_parsed() {
        assert_eq!(SortKey::parse(None).unwrap(), (SortKey::Name, false));
        assert_eq!(SortKey::parse(Some("delta_7d:desc")).unwrap(), (SortKey::Delta7d, true));
        assert_eq!(
            SortKey::parse(Some("rate_bytes_per_day:asc")).unwrap(),
            (SortKey::RateBytesPerDay, false)
        );
        for bad in ["size", "delta_24h", "delta_24h:up", ":asc", "trend:asc", "name:asc:x"] {
            assert!(SortKey::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_figures_sort_last_both_ways() {
        let mut values = vec![None, Some(3), Some(-1), None, Some(7)];
        values.sort_by(|a, b| nulls_last(*a, *b, false, Ord::cmp));
        assert_eq!(values, [Some(-1), Some(3), Some(7), None, None]);
        values.sort_by(|a, b| nulls_last(*a, *b, true, Ord::cmp));
        assert_eq!(values, [Some(7), Some(3), Some(-1), None, None]);
    }
}
