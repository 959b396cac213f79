//! The r2d2 pool and outage handling: how long a call waits for a
//! connection, which is much shorter once the database is known to be down.
//!
//! During an outage callers get their `RepoError::Unavailable` quickly instead
//! of each waiting the full `POOL_TIMEOUT`; the pool keeps trying to connect
//! in the background, so the first call after the database returns finds a
//! connection ready and the normal wait comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use volscan_domain::RepoError;

use crate::connection::{Backend, Manager};

/// How long a call waits for a pooled connection while the database answers.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long it waits once the last attempt found the database unreachable.
const POOL_TIMEOUT_WHILE_DOWN: Duration = Duration::from_millis(250);

/// A connection taken from the pool; returned to it when dropped.
pub(crate) type PooledConnection = r2d2::PooledConnection<Manager>;

/// The pool of connections and whether the database was down at the last
/// wait. Clones share both.
#[derive(Clone)]
pub(crate) struct Pool {
    pool: r2d2::Pool<Manager>,
    /// Set when the last wait for a connection failed.
    down: Arc<AtomicBool>,
    /// How many pooled connections calls found lost (a database restart
    /// loses them all), for the lease's watcher.
    lost: Arc<AtomicU64>,
}

impl Pool {
    /// Opens a pool of at most `max_connections` (at least one) to `backend`;
    /// fails unless a first connection can be made within `POOL_TIMEOUT`.
    pub(crate) fn build(backend: Backend, max_connections: u32) -> Result<Self, r2d2::Error> {
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(POOL_TIMEOUT)
            .build(Manager { backend })?;
        Ok(Self { pool, down: Arc::new(AtomicBool::new(false)), lost: Arc::new(AtomicU64::new(0)) })
    }

    /// Counts a connection found lost.
    pub(crate) fn count_lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    /// How many connections calls found lost so far.
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The most connections the pool opens.
    pub(crate) fn max_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// A pooled connection; waits `POOL_TIMEOUT` for one, or only
    /// `POOL_TIMEOUT_WHILE_DOWN` while the database is known to be unreachable.
    pub(crate) fn get(&self) -> Result<PooledConnection, RepoError> {
        let timeout =
            if self.down.load(Ordering::Relaxed) { POOL_TIMEOUT_WHILE_DOWN } else { POOL_TIMEOUT };
        match self.pool.get_timeout(timeout) {
            Ok(conn) => {
                self.down.store(false, Ordering::Relaxed);
                Ok(conn)
            }
            Err(err) => {
                self.down.store(true, Ordering::Relaxed);
                Err(RepoError::Unavailable(err.into()))
            }
        }
    }
}
