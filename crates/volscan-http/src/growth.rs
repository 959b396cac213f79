//! Growth of every volume (SPEC §8), for `GET /volumes`, `GET /volumes/{name}`
//! and `GET /summary`: the stored sizes grouped by volume and handed to the
//! domain's `growth` maths.
//!
//! Reading the sizes of every volume is the most expensive query of the API
//! (a month of stats of every volume), so the result is kept while the
//! scheduler's data version stays the same, and one request computes it for
//! all when the version moves: the others wait for it instead of running the
//! same query at once. When the version moves, only the volumes whose newest
//! stat changed are read again (a scan changes one volume), unless many did,
//! retention deleted old stats since the last full read (the scheduler's
//! history version moved: a delta measured against a deleted stat must go),
//! or that read is older than [`FULL_REFRESH`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use volscan_domain::{Growth, ReadRepository, RepoError, SizePoint, Timestamp, VolumeName, growth};

use crate::routes::block;
use crate::{ApiError, AppState};

/// How far back from each volume's newest stat its sizes are read: the
/// longest delta (`delta_30d`) needs that much, the rate only a week.
pub(crate) const WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// A version change reads every volume's sizes again when the last such
/// read is older than this.
pub(crate) const FULL_REFRESH: Duration = Duration::from_secs(3_600);

/// A version change that changed the newest stat of more volumes than this
/// reads every volume's sizes in one query instead of one query each.
const MAX_ONE_BY_ONE: usize = 20;

/// Growth by volume; a volume without stats is absent.
pub(crate) type GrowthMap = HashMap<VolumeName, Growth>;

/// `points` (ordered by volume, as the repository returns them; any order
/// works) grouped by volume, as (time, size) pairs.
fn series(points: &[SizePoint]) -> HashMap<&VolumeName, Vec<(Timestamp, u64)>> {
    let mut series: HashMap<&VolumeName, Vec<(Timestamp, u64)>> = HashMap::new();
    for point in points {
        series.entry(&point.volume).or_default().push((point.ts, point.size_bytes));
    }
    series
}

/// Groups `points` by volume and computes each volume's growth.
pub(crate) fn by_volume(points: &[SizePoint]) -> GrowthMap {
    series(points).into_iter().map(|(volume, sizes)| (volume.clone(), growth(&sizes))).collect()
}

/// Each volume's sizes over the [`WINDOW`] before its newest stat, thinned
/// to at most [`SPARK_POINTS`] measured points, oldest first: the dashboard's
/// sparklines.
pub(crate) type SparkMap = HashMap<VolumeName, Arc<[(Timestamp, u64)]>>;

/// Most points of one sparkline.
pub(crate) const SPARK_POINTS: usize = 30;

/// One volume's sparkline from its sizes; the point before the window that
/// deltas are measured against is left out.
fn spark(mut sizes: Vec<(Timestamp, u64)>) -> Arc<[(Timestamp, u64)]> {
    let window = time::Duration::try_from(WINDOW).unwrap_or(time::Duration::ZERO);
    sizes.sort_by_key(|&(ts, _)| ts);
    let start = sizes.last().map(|&(newest, _)| newest - window);
    sizes.retain(|&(ts, _)| start.is_none_or(|start| ts >= start));
    Arc::from(crate::dashboard::thin(&sizes, |p| p.0, SPARK_POINTS))
}

/// Groups `points` by volume once, for both each volume's growth and its sparkline.
fn analyse(points: &[SizePoint]) -> (GrowthMap, SparkMap) {
    let (mut map, mut sparks) = (GrowthMap::new(), SparkMap::new());
    for (volume, sizes) in series(points) {
        map.insert(volume.clone(), growth(&sizes));
        sparks.insert(volume.clone(), spark(sizes));
    }
    (map, sparks)
}

/// Every volume's growth at one data version, and what it was computed from.
struct Snapshot {
    version: u64,
    map: Arc<GrowthMap>,
    sparks: Arc<SparkMap>,
    /// Each volume's newest stat (id and time) when the map was computed.
    newest: HashMap<VolumeName, (i64, Timestamp)>,
    /// When every volume's sizes were last read.
    full_at: Instant,
    /// The scheduler's history version at that read.
    history: u64,
}

/// The growth of every volume, as of one data version.
#[derive(Default)]
pub(crate) struct GrowthCache {
    current: Mutex<Option<Arc<Snapshot>>>,
    /// Held by the request computing a new snapshot.
    computing: futures_util::lock::Mutex<()>,
}

impl GrowthCache {
    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn at(&self, version: u64) -> Option<Arc<Snapshot>> {
        self.snapshot().filter(|s| s.version == version)
    }
}

/// The two reads a refresh makes: each volume's newest stat (id and time),
/// and the sizes growth is computed from (one volume's, or every volume's).
trait Sizes {
    fn newest(&self) -> Result<HashMap<VolumeName, (i64, Timestamp)>, RepoError>;
    fn sizes(&self, volume: Option<&VolumeName>) -> Result<Vec<SizePoint>, RepoError>;
}

impl Sizes for dyn ReadRepository {
    fn newest(&self) -> Result<HashMap<VolumeName, (i64, Timestamp)>, RepoError> {
        Ok(self.latest_stats()?.into_iter().map(|stat| (stat.volume, (stat.id, stat.ts))).collect())
    }

    fn sizes(&self, volume: Option<&VolumeName>) -> Result<Vec<SizePoint>, RepoError> {
        self.size_points(volume, WINDOW)
    }
}

/// Computes the snapshot at `version` from the repository, reusing
/// `previous` for the volumes whose newest stat did not change.
fn refresh<S: Sizes + ?Sized>(
    repo: &S,
    previous: Option<&Snapshot>,
    version: u64,
    history: u64,
) -> Result<Snapshot, RepoError> {
    // Read first: a stat written after this is read again at the next version.
    let newest = repo.newest()?;
    let changed: Option<Vec<&VolumeName>> = previous
        .filter(|p| p.full_at.elapsed() < FULL_REFRESH && p.history == history)
        .and_then(|previous| {
            let changed: Vec<&VolumeName> = newest
                .iter()
                .filter(|(volume, stat)| previous.newest.get(*volume) != Some(stat))
                .map(|(volume, _)| volume)
                .collect();
            (changed.len() <= MAX_ONE_BY_ONE).then_some(changed)
        });
    let (map, sparks, full_at, history) = match (changed, previous) {
        (Some(changed), Some(previous)) => {
            let mut map: GrowthMap = previous
                .map
                .iter()
                .filter(|(volume, _)| newest.contains_key(*volume))
                .map(|(volume, growth)| (volume.clone(), *growth))
                .collect();
            let mut sparks: SparkMap = previous
                .sparks
                .iter()
                .filter(|(volume, _)| newest.contains_key(*volume))
                .map(|(volume, spark)| (volume.clone(), Arc::clone(spark)))
                .collect();
            for volume in changed {
                let (mut growth, mut spark) = analyse(&repo.sizes(Some(volume))?);
                match growth.remove(volume) {
                    Some(growth) => map.insert(volume.clone(), growth),
                    None => map.remove(volume),
                };
                match spark.remove(volume) {
                    Some(spark) => sparks.insert(volume.clone(), spark),
                    None => sparks.remove(volume),
                };
            }
            (map, sparks, previous.full_at, previous.history)
        }
        _ => {
            let (map, sparks) = analyse(&repo.sizes(None)?);
            (map, sparks, Instant::now(), history)
        }
    };
    Ok(Snapshot { version, map: Arc::new(map), sparks: Arc::new(sparks), newest, full_at, history })
}

/// The growth of every volume (removed ones too), computed at most once per
/// data version.
pub(crate) async fn all(state: &AppState) -> Result<Arc<GrowthMap>, ApiError> {
    Ok(Arc::clone(&current(state).await?.map))
}

/// The growth and sparkline of every volume, of one data version.
pub(crate) async fn with_sparks(
    state: &AppState,
) -> Result<(Arc<GrowthMap>, Arc<SparkMap>), ApiError> {
    let snapshot = current(state).await?;
    Ok((Arc::clone(&snapshot.map), Arc::clone(&snapshot.sparks)))
}

/// The snapshot of the current data version, computed by one request when
/// the version moved while the others wait for it.
async fn current(state: &AppState) -> Result<Arc<Snapshot>, ApiError> {
    let cache = &state.growth;
    if let Some(snapshot) = cache.at(state.scheduler.data_version()) {
        return Ok(snapshot);
    }
    let _computing = cache.computing.lock().await;
    // Read before the queries: a write during them leaves the map tagged older.
    let version = state.scheduler.data_version();
    if let Some(snapshot) = cache.at(version) {
        return Ok(snapshot);
    }
    let history = state.scheduler.history_version();
    let (repo, previous) = (Arc::clone(&state.repo), cache.snapshot());
    let snapshot =
        Arc::new(block(move || refresh(&*repo, previous.as_deref(), version, history)).await?);
    *cache.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&snapshot));
    Ok(snapshot)
}

/// The growth of every volume of another host, read afresh: the shared map
/// and its data version are this host's.
pub(crate) async fn all_of(repo: Arc<dyn ReadRepository>) -> Result<Arc<GrowthMap>, ApiError> {
    block(move || Ok(Arc::new(by_volume(&repo.size_points(None, WINDOW)?)))).await
}

/// The growth of one volume of this host: from the shared map when it is
/// current, else from that volume's sizes alone (one volume's query is cheap).
pub(crate) async fn of(state: &AppState, volume: &VolumeName) -> Result<Growth, ApiError> {
    if let Some(snapshot) = state.growth.at(state.scheduler.data_version()) {
        return Ok(snapshot.map.get(volume).copied().unwrap_or(Growth::UNKNOWN));
    }
    of_in(Arc::clone(&state.repo), volume).await
}

/// The growth of one volume read from `repo`'s sizes alone (for another
/// host's volume, or when the shared map is not current).
pub(crate) async fn of_in(
    repo: Arc<dyn ReadRepository>,
    volume: &VolumeName,
) -> Result<Growth, ApiError> {
    let lookup = volume.clone();
    block(move || {
        let points = repo.size_points(Some(&lookup), WINDOW)?;
        Ok(by_volume(&points).remove(&lookup).unwrap_or(Growth::UNKNOWN))
    })
    .await
}

#[cfg(test)]
mod tests {
    use volscan_domain::Trend;

    use super::*;

    fn point(volume: &str, hours: i64, size_bytes: u64) -> SizePoint {
        SizePoint {
            host: Default::default(),
            volume: VolumeName::new(volume).unwrap(),
            ts: Timestamp::UNIX_EPOCH + time::Duration::days(20_000) + time::Duration::hours(hours),
            size_bytes,
        }
    }

    #[test]
    fn points_are_grouped_by_volume_before_the_maths() {
        let gib = 1 << 30;
        let points = vec![
            point("aa", -48, gib),
            point("aa", -24, 2 * gib),
            point("aa", 0, 3 * gib),
            point("bb", -30, 5 * gib),
            point("bb", 0, 4 * gib),
        ];
        let map = by_volume(&points);
        assert_eq!(map.len(), 2);
        let aa = map[&VolumeName::new("aa").unwrap()];
        assert_eq!((aa.delta_24h, aa.delta_7d), (Some(gib as i64), None));
        assert_eq!(aa.trend, Trend::Rising);
        let rate = aa.rate_bytes_per_day.unwrap();
        assert!((rate - gib as f64).abs() < 1.0, "{rate}");
        let bb = map[&VolumeName::new("bb").unwrap()];
        assert_eq!((bb.delta_24h, bb.rate_bytes_per_day), (Some(-(gib as i64)), None));
        assert_eq!(bb.as_of, Some(points[4].ts));
        assert!(by_volume(&[]).is_empty());
        assert_eq!(Growth::UNKNOWN.trend, Trend::Unknown);
    }

    /// Stats in memory; records which volumes `size_points` was asked for.
    #[derive(Default)]
    struct Fake {
        /// (volume, id, hours, size)
        stats: Mutex<Vec<(VolumeName, i64, i64, u64)>>,
        asked: Mutex<Vec<Option<VolumeName>>>,
    }

    impl Fake {
        fn add(&self, volume: &str, hours: i64, size: u64) {
            let mut stats = self.stats.lock().unwrap();
            let id = stats.len() as i64 + 1;
            stats.push((VolumeName::new(volume).unwrap(), id, hours, size));
        }

        fn asked(&self) -> Vec<Option<VolumeName>> {
            std::mem::take(&mut *self.asked.lock().unwrap())
        }
    }

    impl Fake {
        /// The sizes of `volume`, or of every volume (the window is all of them).
        fn size_points(
            &self,
            volume: Option<&VolumeName>,
            _: Duration,
        ) -> Result<Vec<SizePoint>, RepoError> {
            self.asked.lock().unwrap().push(volume.cloned());
            let stats = self.stats.lock().unwrap();
            Ok(stats
                .iter()
                .filter(|stat| volume.is_none_or(|v| *v == stat.0))
                .map(|(v, _, hours, size)| point(v.as_str(), *hours, *size))
                .collect())
        }
    }

    impl Sizes for Fake {
        fn newest(&self) -> Result<HashMap<VolumeName, (i64, Timestamp)>, RepoError> {
            let stats = self.stats.lock().unwrap();
            let mut newest: HashMap<VolumeName, (i64, i64)> = HashMap::new();
            for (volume, id, hours, _) in stats.iter() {
                let slot = newest.entry(volume.clone()).or_insert((*hours, *id));
                if (*hours, *id) > *slot {
                    *slot = (*hours, *id);
                }
            }
            Ok(newest
                .into_iter()
                .map(|(volume, (hours, id))| {
                    let ts = point(volume.as_str(), hours, 0).ts;
                    (volume, (id, ts))
                })
                .collect())
        }

        fn sizes(&self, volume: Option<&VolumeName>) -> Result<Vec<SizePoint>, RepoError> {
            self.size_points(volume, WINDOW)
        }
    }

    fn name(text: &str) -> VolumeName {
        VolumeName::new(text).unwrap()
    }

    #[test]
    fn a_version_change_reads_again_only_the_volumes_whose_newest_stat_changed() {
        let repo = Fake::default();
        for volume in ["aa", "bb", "cc"] {
            repo.add(volume, -24, 100);
            repo.add(volume, 0, 200);
        }
        let first = refresh(&repo, None, 1, 0).unwrap();
        assert_eq!(repo.asked(), [None], "the first computation reads every volume");
        assert_eq!(first.map.len(), 3);

        repo.add("bb", 1, 500);
        let second = refresh(&repo, Some(&first), 2, 0).unwrap();
        assert_eq!(repo.asked(), [Some(name("bb"))]);
        assert_eq!(second.map[&name("bb")].delta_24h, Some(400));
        assert_eq!(second.map[&name("aa")], first.map[&name("aa")]);
        assert_eq!((second.version, second.full_at), (2, first.full_at));
        // The same as reading everything again.
        assert_eq!(*second.map, by_volume(&repo.size_points(None, WINDOW).unwrap()));
        repo.asked();

        let third = refresh(&repo, Some(&second), 3, 0).unwrap();
        assert_eq!(repo.asked(), [], "nothing changed");
        assert_eq!(third.map, second.map);

        // All of a volume's stats deleted: it has no growth any more.
        repo.stats.lock().unwrap().retain(|stat| stat.0 != name("cc"));
        let fourth = refresh(&repo, Some(&third), 4, 0).unwrap();
        assert_eq!(repo.asked(), []);
        assert!(!fourth.map.contains_key(&name("cc")));
    }

    #[test]
    fn many_changes_or_an_old_full_read_read_every_volume_again() {
        let repo = Fake::default();
        repo.add("aa", 0, 1);
        let first = refresh(&repo, None, 1, 0).unwrap();
        for i in 0..=MAX_ONE_BY_ONE {
            repo.add(&format!("v{i}"), 0, 1);
        }
        repo.asked();
        let second = refresh(&repo, Some(&first), 2, 0).unwrap();
        assert_eq!(repo.asked(), [None]);
        assert_eq!(second.map.len(), MAX_ONE_BY_ONE + 2);

        repo.add("aa", 1, 2);
        let old = Snapshot {
            version: 2,
            map: Arc::clone(&second.map),
            sparks: Arc::clone(&second.sparks),
            newest: second.newest.clone(),
            full_at: Instant::now().checked_sub(FULL_REFRESH).unwrap(),
            history: 0,
        };
        let third = refresh(&repo, Some(&old), 3, 0).unwrap();
        assert_eq!(repo.asked(), [None], "retention may have deleted old stats meanwhile");
        assert!(third.full_at > old.full_at);

        // Retention deleted old stats (the history version moved): every
        // volume again, even right after a full read.
        repo.add("aa", 2, 3);
        let fourth = refresh(&repo, Some(&third), 4, 0).unwrap();
        assert_eq!(repo.asked(), [Some(name("aa"))]);
        repo.add("aa", 3, 4);
        let fifth = refresh(&repo, Some(&fourth), 5, 1).unwrap();
        assert_eq!(repo.asked(), [None], "the history version moved");
        assert_eq!(fifth.history, 1);
    }
}
