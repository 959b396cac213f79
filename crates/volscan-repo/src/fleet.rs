//! PostgreSQL's side of many hosts on one database: the host lease (a
//! session-level advisory lock, so at most one live process serves a host
//! id, released by the server when its holder dies) and the work signal
//! (`LISTEN` on `WORK_CHANNEL`, so an idle host's workers wake when another
//! node queues a run for it instead of polling).
//!
//! Both hold a connection of their own, outside the pool, for as long as
//! they live. Waiting for a notification reads the socket (libpq's
//! `PQconsumeInput`) and sends no statement.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::{Connection, PgConnection};
use volscan_domain::{HostId, RepoError, WorkSignal};

/// The channel every enqueue notifies, with the run's host id as payload.
pub(crate) const WORK_CHANNEL: &str = "volscan_work";

/// How often a waiting work signal looks at its socket.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The advisory-lock key of a host id: a 64-bit hash computed by the server.
const LOCK_KEY: &str = "hashtextextended('volscan host ' || $1, 0)";

/// Why the host lease could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another live process holds the host id.
    #[error(
        "host id \"{host}\" is already served by a live volscan-server ({holder}); stop that one \
         or give this one another VOLSCAN_HOST_ID"
    )]
    Held {
        /// The id asked for.
        host: HostId,
        /// Where the holder runs, as the `hosts` table says.
        holder: String,
    },
    /// The database could not be reached or refused the query.
    #[error("failed to take the lease on host id \"{host}\"")]
    Database {
        /// The id asked for.
        host: HostId,
        /// diesel's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Exactly one live process per host id: held until dropped (or until the
/// process dies, when PostgreSQL ends its session and frees the lock).
///
/// A PostgreSQL restart ends the session too, and frees the lock while the
/// process lives: [`HostLease::keep`] finds that out and takes it again.
pub struct HostLease {
    host: HostId,
    url: String,
    /// The session holding the lock; `None` after it was found lost.
    conn: Option<PgConnection>,
}

impl std::fmt::Debug for HostLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLease").field("host", &self.host).finish()
    }
}

impl HostLease {
    /// The host id held.
    pub fn host(&self) -> &HostId {
        &self.host
    }

    /// Checks that the lease is still held (one statement on its session),
    /// and takes it again on a new session when that one was lost. Returns
    /// whether it had to be taken again; `Held` when another live process
    /// took it meanwhile (this one must stop serving the id), `Database`
    /// when the database cannot be reached (try again later).
    pub fn keep(&mut self) -> Result<bool, LeaseError> {
        if let Some(conn) = self.conn.as_mut() {
            if diesel::sql_query("SELECT 1").execute(conn).is_ok() {
                return Ok(false);
            }
            self.conn = None;
        }
        self.conn = Some(take(&self.url, &self.host)?);
        Ok(true)
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Text)]
    holder: String,
}

/// Takes `host`'s lease on the PostgreSQL database at `url`.
pub(crate) fn lease(url: &str, host: &HostId) -> Result<HostLease, LeaseError> {
    let conn = take(url, host)?;
    Ok(HostLease { host: host.clone(), url: url.to_owned(), conn: Some(conn) })
}

/// A new session holding `host`'s advisory lock.
fn take(url: &str, host: &HostId) -> Result<PgConnection, LeaseError> {
    let database = |source: diesel::result::Error| LeaseError::Database {
        host: host.clone(),
        source: source.into(),
    };
    let mut conn = PgConnection::establish(url)
        .map_err(|source| LeaseError::Database { host: host.clone(), source: source.into() })?;
    let locked: Locked =
        diesel::sql_query(format!("SELECT pg_try_advisory_lock({LOCK_KEY}) AS locked"))
            .bind::<Text, _>(host.as_str())
            .get_result(&mut conn)
            .map_err(database)?;
    if locked.locked {
        return Ok(conn);
    }
    let holder: Option<Holder> = diesel::sql_query(
        "SELECT 'on machine ' || name || ', volscan ' || volscan_version || ', started ' || \
           to_char(started_at, 'YYYY-MM-DD HH24:MI:SS') || ' UTC, last seen ' || \
           to_char(last_seen_at, 'YYYY-MM-DD HH24:MI:SS') || ' UTC' AS holder \
         FROM hosts WHERE id = $1",
    )
    .bind::<Text, _>(host.as_str())
    .get_result(&mut conn)
    .optional()
    .map_err(database)?;
    let holder =
        holder.map_or_else(|| "it has not written its hosts row yet".to_owned(), |h| h.holder);
    Err(LeaseError::Held { host: host.clone(), holder })
}

/// The work signal of one host over `LISTEN`; reconnects after a lost
/// connection at its next wait.
pub struct PgWorkSignal {
    url: String,
    host: HostId,
    conn: Option<PgConnection>,
}

impl std::fmt::Debug for PgWorkSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWorkSignal")
            .field("host", &self.host)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl PgWorkSignal {
    pub(crate) fn new(url: &str, host: HostId) -> Self {
        Self { url: url.to_owned(), host, conn: None }
    }

    /// A listening connection: the one held, or a new one. A new one
    /// reports `true` as its first wake-up, since work queued while no one
    /// listened would otherwise wait for the fallback poll.
    fn connect(&mut self) -> Result<(&mut PgConnection, bool), RepoError> {
        let fresh = self.conn.is_none();
        if fresh {
            let mut conn = PgConnection::establish(&self.url)
                .map_err(|err| RepoError::Unavailable(err.into()))?;
            diesel::sql_query(format!("LISTEN {WORK_CHANNEL}"))
                .execute(&mut conn)
                .map_err(|err| RepoError::Unavailable(err.into()))?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok((conn, fresh)),
            // Set just above when it was missing.
            None => Err(RepoError::Corrupt("work signal without a connection".into())),
        }
    }
}

impl WorkSignal for PgWorkSignal {
    fn wait(&mut self, timeout: Duration) -> Result<bool, RepoError> {
        let deadline = Instant::now() + timeout;
        let host = self.host.as_str().to_owned();
        let (conn, fresh) = self.connect()?;
        if fresh {
            return Ok(true);
        }
        loop {
            let mut woken = false;
            let mut lost = None;
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(n) => woken |= n.payload == host,
                    Err(err) => {
                        lost = Some(err);
                        break;
                    }
                }
            }
            if let Some(err) = lost {
                self.conn = None;
                return Err(RepoError::Unavailable(err.into()));
            }
            let now = Instant::now();
            if woken || now >= deadline {
                return Ok(woken);
            }
            std::thread::sleep(POLL_EVERY.min(deadline - now));
        }
    }
}
