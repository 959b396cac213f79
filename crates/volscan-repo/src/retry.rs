//! Busy retries and error mapping: running a query on a pooled connection
//! (optionally in a transaction), retrying while SQLite reports its lock as
//! held, and turning diesel's errors into `RepoError`.
//!
//! The query modules return `TxError`, so a domain refusal (`RepoError`) can
//! roll a transaction back like a database error; `into_repo` decides which
//! database errors mean "unavailable" and which are plain query failures.

use std::thread;
use std::time::Duration;

use diesel::Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use volscan_domain::RepoError;

use crate::connection::AnyConnection;
use crate::pool::Pool;

/// How often a call that meets a locked SQLite database is tried in all.
const BUSY_ATTEMPTS: u32 = 5;

/// An error inside a transaction: diesel's, or a domain refusal that rolls it back.
pub(crate) enum TxError {
    /// The database or diesel failed.
    Diesel(DieselError),
    /// The domain refused, or a stored value did not convert.
    Repo(RepoError),
}

impl From<DieselError> for TxError {
    fn from(err: DieselError) -> Self {
        TxError::Diesel(err)
    }
}

impl From<RepoError> for TxError {
    fn from(err: RepoError) -> Self {
        TxError::Repo(err)
    }
}

/// Whether SQLite reports its lock as held by another connection.
fn is_busy(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("database is busy")
        }
        _ => false,
    }
}

/// Whether the connection itself was lost: the server closed it (a restart,
/// an administrator's terminate) or it could not be written to.
fn is_lost(err: &DieselError) -> bool {
    matches!(
        err,
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _
        )
    )
}

impl TxError {
    /// Whether trying again later may succeed: SQLite's lock was held.
    pub(crate) fn is_busy(&self) -> bool {
        matches!(self, TxError::Diesel(err) if is_busy(err))
    }

    /// Whether the connection was lost (another one may work).
    pub(crate) fn is_lost(&self) -> bool {
        matches!(self, TxError::Diesel(err) if is_lost(err))
    }

    /// The error callers see.
    pub(crate) fn into_repo(self) -> RepoError {
        match self {
            TxError::Repo(err) => err,
            // A closed connection, or a lock held past every retry: the
            // database is not usable now, which callers (and the API's 503)
            // treat as unavailable.
            TxError::Diesel(err) if is_lost(&err) => RepoError::Unavailable(err.into()),
            TxError::Diesel(err) if is_busy(&err) => RepoError::Unavailable(err.into()),
            TxError::Diesel(err) => RepoError::Query(err.into()),
        }
    }
}

/// Whether a unique index refused an insert.
pub(crate) fn is_unique_violation(err: &TxError) -> bool {
    matches!(
        err,
        TxError::Diesel(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
    )
}

/// Runs `f` on a pooled connection, retrying when SQLite reports a lock
/// that outlasted its busy timeout, and on another connection when this one
/// was lost.
///
/// The pool hands connections out untested, so after a PostgreSQL restart
/// each idle one fails once: it is marked lost (the pool drops it) and the
/// call runs again on the next, at most once per connection the pool may
/// hold and once more on a new one. A lost connection's transaction did not
/// commit, except when the connection dropped between the commit and its
/// answer; every write here then runs again harmlessly (upserts, claims of
/// a run no longer queued, a heartbeat) or is refused by a unique index.
pub(crate) fn with_conn<T>(
    pool: &Pool,
    mut f: impl FnMut(&mut AnyConnection) -> Result<T, TxError>,
) -> Result<T, RepoError> {
    let mut fresh_tries = pool.max_size() + 1;
    loop {
        let mut conn = pool.get()?;
        let mut attempt = 1;
        loop {
            match f(&mut conn) {
                Ok(value) => return Ok(value),
                Err(err) if err.is_busy() && attempt < BUSY_ATTEMPTS => {
                    thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
                    attempt += 1;
                }
                Err(err) if err.is_lost() && fresh_tries > 0 => break,
                Err(err) => return Err(err.into_repo()),
            }
        }
        conn.mark_lost();
        pool.count_lost();
        fresh_tries -= 1;
    }
}

/// Like `with_conn`, inside one transaction; a retry reruns the whole transaction.
pub(crate) fn with_tx<T>(
    pool: &Pool,
    mut f: impl FnMut(&mut AnyConnection) -> Result<T, TxError>,
) -> Result<T, RepoError> {
    with_conn(pool, |conn| conn.transaction(|conn| f(conn)))
}
