//! A private PostgreSQL server for one test, which the test may stop and
//! start again (to take the database away from a running volscan).
//!
//! The cluster is `initdb`'d into a temporary directory from the newest
//! `/usr/lib/postgresql/*/bin` (Debian package `postgresql`; `scripts/test.sh`
//! installs it) and listens on its own port of 127.0.0.1. Run as root, the
//! server runs as the `postgres` user, since PostgreSQL refuses root. Missing
//! binaries make `start` panic with what to install: the test never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TempDir;

/// A throwaway PostgreSQL server, stopped and deleted on drop.
#[derive(Debug)]
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// Whether the server's programs must run as `postgres` (we are root).
    as_postgres: bool,
}

impl PgCluster {
    /// Creates a cluster and starts it.
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = TempDir::new("pg-cluster");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap_or_else(|err| panic!("no free port for PostgreSQL: {err}"))
            .port();
        let cluster = PgCluster { dir, bin, port, as_postgres: is_root() };
        if cluster.as_postgres {
            run(Command::new("chown").arg("postgres").arg(cluster.dir.path()));
        }
        let data = cluster.data();
        cluster.pg(&["initdb", "-D", &data, "-A", "trust", "-U", "postgres"]);
        cluster.resume();
        cluster
    }

    /// The admin URL: `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (`pg_ctl stop -m fast`: open sessions are terminated).
    pub fn stop(&self) {
        let data = self.data();
        self.pg(&["pg_ctl", "-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// Starts the (stopped) server again and waits until it accepts connections.
    pub fn resume(&self) {
        let (data, log) = (self.data(), self.path("log"));
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg(&["pg_ctl", "-D", &data, "-l", &log, "-o", &options, "-w", "start"]);
    }

    fn data(&self) -> String {
        self.path("data")
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Runs one of the server's programs, as `postgres` when we are root.
    fn pg(&self, args: &[&str]) {
        run(self.command(args).current_dir(self.dir.path()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let program = self.bin.join(args[0]);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command.args(&args[1..]);
        command
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.command(&["pg_ctl", "-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// The newest installed PostgreSQL's binary directory.
fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(Path::file_name)
            .and_then(|version| version.to_str()?.parse::<u32>().ok())
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server under /usr/lib/postgresql; this test starts its own: run \
             `apt-get install postgresql` (scripts/test.sh does)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
