//! Test fixtures shared by volscan's test suites: a temporary directory, a
//! throwaway PostgreSQL database, a private PostgreSQL server a test can stop
//! (`PgCluster`) and (module `docker`) uniquely named Docker volumes and
//! containers and a private Docker daemon, each removed when dropped.
//!
//! This crate is a dev-dependency only. PostgreSQL comes from
//! `VOLSCAN_TEST_PG_URL`, an admin URL such as
//! `postgres://postgres@127.0.0.1:55432/postgres`; `scripts/test.sh` starts a
//! server and sets it. Without it, `PgDatabase::create` panics with a message
//! saying how to start one: tests that need PostgreSQL never skip.

pub mod docker;
mod pg_cluster;

pub use pg_cluster::PgCluster;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The environment variable naming the PostgreSQL server tests use.
pub const PG_URL_VARIABLE: &str = "VOLSCAN_TEST_PG_URL";

/// A fresh directory under the system temp dir, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `volscan-<label>-<uuid>` under the temp dir.
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("volscan-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A `sqlite://` URL for a database file inside the directory.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.0.join("volscan.db").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A PostgreSQL database created for one test and dropped (with its
/// connections) when the value is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates a uniquely named database on the `VOLSCAN_TEST_PG_URL` server.
    pub fn create() -> Self {
        let admin_url = std::env::var(PG_URL_VARIABLE).unwrap_or_else(|_| {
            panic!(
                "{PG_URL_VARIABLE} is not set, and this test needs PostgreSQL. Run \
                 scripts/test.sh, which installs and starts a throwaway server, or set \
                 {PG_URL_VARIABLE} to an admin URL such as postgres://postgres@127.0.0.1:5432/postgres"
            )
        });
        let name = format!("volscan_test_{}", uuid::Uuid::new_v4().simple());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin_url
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{PG_URL_VARIABLE} must end in /DATABASE"));
        let url = format!("{base}/{name}");
        PgDatabase { admin_url, name, url }
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database now, terminating its connections (to simulate an outage
    /// of the database a running repository uses).
    pub fn drop_now(&self) {
        psql(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &self.admin_url, "-c"])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .output();
    }
}

fn psql(admin_url: &str, sql: &str) {
    let output = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c", sql])
        .output()
        .unwrap_or_else(|err| panic!("cannot run psql (install postgresql-client): {err}"));
    assert!(
        output.status.success(),
        "psql {sql:?} against {PG_URL_VARIABLE} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
