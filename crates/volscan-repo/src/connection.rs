//! Connections: one `MultiConnection` over PostgreSQL and SQLite, how r2d2
//! opens and checks them, the SQLite settings, the embedded migrations, and
//! `on_backend!`, which compiles a statement once per backend.
//!
//! The backend is chosen from the URL's scheme alone: a PostgreSQL URL that
//! fails to connect is an error, never a SQLite file named after the URL.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// SQLite migrations, embedded at compile time.
pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../../migrations/sqlite");
/// The advisory-lock key PostgreSQL migrations run under (any fixed number
/// no other lock of volscan's uses; host leases hash their ids).
const MIGRATION_LOCK: i64 = 0x0076_6f6c_7363_616e;

/// PostgreSQL migrations, under the same names as the SQLite ones.
pub(crate) const POSTGRES_MIGRATIONS: EmbeddedMigrations =
    embed_migrations!("../../migrations/postgres");

/// How long a SQLite writer waits for another writer's lock before giving up.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// One database connection of either backend. SQLite is listed last, as
/// diesel's `MultiConnection` docs advise.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A PostgreSQL connection.
    Postgresql(diesel::PgConnection),
    /// A SQLite connection.
    Sqlite(diesel::SqliteConnection),
}

/// Which database a URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://…` or `postgresql://…`, passed to libpq as it is.
    Postgres(String),
    /// `sqlite://PATH`; holds PATH.
    Sqlite(String),
}

/// Why a database URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported database url (expected sqlite://PATH or postgres://…)")]
pub struct UnsupportedUrl;

impl Backend {
    /// Picks the backend from the URL's scheme.
    pub fn from_url(url: &str) -> Result<Self, UnsupportedUrl> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() { Err(UnsupportedUrl) } else { Ok(Backend::Sqlite(path.to_owned())) }
        } else {
            Err(UnsupportedUrl)
        }
    }

    /// `"postgres"` or `"sqlite"`, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Opens one connection, with the SQLite settings applied.
    pub(crate) fn establish(&self) -> ConnectionResult<AnyConnection> {
        match self {
            Backend::Postgres(url) => {
                diesel::PgConnection::establish(url).map(AnyConnection::Postgresql)
            }
            Backend::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)?;
                // WAL lets readers run beside the one writer; the busy timeout makes a
                // writer wait for the lock instead of failing at once.
                let pragmas = format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                );
                conn.batch_execute(&pragmas).map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }
}

/// A pooled connection and whether a call found it lost (the server closed
/// it, or restarted): a lost one is dropped when it goes back to the pool
/// instead of being handed out again.
pub(crate) struct Pooled {
    conn: AnyConnection,
    lost: bool,
}

impl Pooled {
    /// Marks the connection as lost, so the pool drops it.
    pub(crate) fn mark_lost(&mut self) {
        self.lost = true;
    }
}

impl std::ops::Deref for Pooled {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// r2d2's view of how to open and check connections. The pool does not
/// test a connection when handing it out (a `SELECT 1` per call was most of
/// what an idle host sent the database); the caller marks one it found lost
/// and tries another (`retry::with_conn`).
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) backend: Backend,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = ConnectionError;

    fn connect(&self) -> Result<Pooled, ConnectionError> {
        Ok(Pooled { conn: self.backend.establish()?, lost: false })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), ConnectionError> {
        conn.batch_execute("SELECT 1").map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.lost
    }
}

/// Applies the migrations not yet applied; returns their names.
pub(crate) fn run_migrations(
    conn: &mut AnyConnection,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let names = |versions: Vec<diesel::migration::MigrationVersion<'_>>| -> Vec<String> {
        versions.into_iter().map(|version| version.to_string()).collect()
    };
    match conn {
        AnyConnection::Postgresql(conn) => {
            // Several hosts starting at once share one database: one migrates
            // while the others wait for it, then find nothing pending.
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let applied = conn.run_pending_migrations(POSTGRES_MIGRATIONS).map(names);
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            applied
        }
        AnyConnection::Sqlite(conn) => Ok(names(conn.run_pending_migrations(SQLITE_MIGRATIONS)?)),
    }
}

/// Runs `$body` with `$c` bound to the concrete connection (`&mut PgConnection`
/// or `&mut SqliteConnection`), compiled once per backend: for a statement
/// that must be built for a concrete backend, such as `RETURNING` with
/// `as_returning()`, which `MultiBackend` cannot render.
///
/// The second form first binds `$v` to a value given per backend, for the one
/// piece of a statement whose SQL differs (the claim's `FOR UPDATE SKIP
/// LOCKED`, which SQLite lacks): the body is still written once and compiled
/// for each backend.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::connection::AnyConnection::Postgresql($c) => $body,
            $crate::connection::AnyConnection::Sqlite($c) => $body,
        }
    };
    (
        $conn:expr,
        |$c:ident, $v:ident = { postgres: $pg:expr, sqlite: $sqlite:expr $(,)? }| $body:expr
    ) => {
        match $conn {
            $crate::connection::AnyConnection::Postgresql($c) => {
                let $v = $pg;
                $body
            }
            $crate::connection::AnyConnection::Sqlite($c) => {
                let $v = $sqlite;
                $body
            }
        }
    };
}
pub(crate) use on_backend;
