//! The typed values that the configuration holds beyond std types: enums for choices, and checked
//! URLs.
//!
//! Each type is parsed once, here, from the operator's text, and renders back to text that parses
//! to the same value.
//! These types know nothing of Docker or SQL clients: they only check the shape of what the
//! operator wrote.
//! Other crates map them to their own types (the domain crate has its own scan method enum).

use std::fmt;
use std::path::Path;

use crate::secret::mask_url;

/// `SCAN_ENABLED`: whether periodic scans are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanEnabled {
    /// `auto`: schedule scans when the Docker daemon answers at start-up.
    Auto,
    /// `true`: always schedule scans.
    Always,
    /// `false`: never schedule scans; manual triggers still work.
    Never,
}

impl ScanEnabled {
    /// The value as written in the configuration: `auto`, `true` or `false`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanEnabled::Auto => "auto",
            ScanEnabled::Always => "true",
            ScanEnabled::Never => "false",
        }
    }
}

impl fmt::Display for ScanEnabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SCAN_IO_CLASS`: the I/O scheduling class scans run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoClassName {
    /// `idle`: only disk time nobody else wants (where the I/O scheduler honours classes).
    Idle,
    /// `best-effort`: the kernel's default, left as it is.
    BestEffort,
}

impl IoClassName {
    /// The value as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            IoClassName::Idle => "idle",
            IoClassName::BestEffort => "best-effort",
        }
    }
}

impl fmt::Display for IoClassName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `SCAN_METHODS_ORDER`: a way to measure a directory (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScanMethodName {
    /// The `diskus` binary.
    Diskus,
    /// GNU `du`.
    Du,
    /// The in-process walker.
    Native,
}

impl ScanMethodName {
    /// Every method, in the origin's order (still accepted as a setting).
    pub const ALL: [ScanMethodName; 3] =
        [ScanMethodName::Diskus, ScanMethodName::Du, ScanMethodName::Native];

    /// The default `SCAN_METHODS_ORDER`: native first, as it reports all five
    /// fields, real progress and the directory breakdown, and is the fastest.
    pub const DEFAULT_ORDER: [ScanMethodName; 3] =
        [ScanMethodName::Native, ScanMethodName::Diskus, ScanMethodName::Du];

    /// The stable name: `diskus`, `du` or `native`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanMethodName::Diskus => "diskus",
            ScanMethodName::Du => "du",
            ScanMethodName::Native => "native",
        }
    }

    /// The method named `name` exactly, if any.
    pub fn from_name(name: &str) -> Option<ScanMethodName> {
        ScanMethodName::ALL.into_iter().find(|method| method.as_str() == name)
    }
}

impl fmt::Display for ScanMethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which database backend a [`DatabaseUrl`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatabaseKind {
    /// `sqlite://PATH`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

/// `DATABASE_URL`: `sqlite://PATH` or `postgres://…`.
///
/// `Display` and `Debug` replace the password with `***`; [`DatabaseUrl::as_str`] is the real URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    /// The accepted form, for error messages.
    pub(crate) const EXPECTED: &str = "expected sqlite://PATH (such as sqlite://volscan.db or \
        sqlite:///var/lib/volscan/volscan.db) or postgres://USER:PASSWORD@HOST:PORT/DATABASE";

    /// Checks the shape of `url`; the error is the reason shown to the operator.
    pub(crate) fn parse(url: &str) -> Result<DatabaseUrl, String> {
        let url = url.trim();
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("the path is empty; {}", DatabaseUrl::EXPECTED));
            }
            if path == ":memory:" || path.starts_with("file::memory:") {
                // Every pooled connection would open its own empty in-memory database.
                return Err(format!(
                    "in-memory databases are refused because each pooled connection would see a \
                     different empty database; {}",
                    DatabaseUrl::EXPECTED
                ));
            }
            return Ok(DatabaseUrl { url: url.to_owned(), kind: DatabaseKind::Sqlite });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("the url contains whitespace; {}", DatabaseUrl::EXPECTED));
            }
            return Ok(DatabaseUrl { url: url.to_owned(), kind: DatabaseKind::Postgres });
        }
        Err(DatabaseUrl::EXPECTED.to_owned())
    }

    /// The backend.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The real URL, password included, for connecting. Never log it; log the `Display` form
    /// instead.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// For SQLite, the database file as written after `sqlite://` (relative paths are relative to
    /// the working directory); `None` for PostgreSQL.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self.kind {
            DatabaseKind::Sqlite => self.url.strip_prefix("sqlite://").map(Path::new),
            DatabaseKind::Postgres => None,
        }
    }

    /// The default, `sqlite://volscan.db`.
    pub(crate) fn default_sqlite() -> DatabaseUrl {
        DatabaseUrl { url: "sqlite://volscan.db".to_owned(), kind: DatabaseKind::Sqlite }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&mask_url(&self.url)).finish()
    }
}

/// How a [`DockerHost`] reaches the Docker Engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DockerHostKind {
    /// `unix:///path/to/docker.sock`.
    Unix,
    /// `tcp://host:port`, plain HTTP.
    Tcp,
    /// `http://host:port`, the same as `tcp://`.
    Http,
}

/// `DOCKER_HOST`: the Docker Engine endpoint.
///
/// Exactly the endpoints the Docker source (`volscan-docker`) can reach: a unix socket, or plain
/// HTTP over TCP (`tcp://` or `http://`). TLS (`https://`, `DOCKER_TLS_VERIFY`) is not supported.
/// The value is kept in a canonical form: the scheme in lower case (URL schemes are
/// case-insensitive, `TCP://` is `tcp://`), and no trailing `/` after a TCP endpoint's port.
///
/// `Display` and `Debug` mask a password in the URL, should one be there; [`DockerHost::as_str`] is
/// the real value.
#[derive(Clone, PartialEq, Eq)]
pub struct DockerHost {
    url: String,
    kind: DockerHostKind,
}

impl DockerHost {
    /// The accepted form, for error messages.
    pub(crate) const EXPECTED: &str = "expected unix:///ABSOLUTE/PATH, tcp://HOST:PORT or \
        http://HOST:PORT (plain HTTP; TLS is not supported), such as unix:///var/run/docker.sock or \
        tcp://127.0.0.1:2375";

    /// Checks the shape of `url` and puts it in canonical form; the error is the reason shown to
    /// the operator.
    pub(crate) fn parse(url: &str) -> Result<DockerHost, String> {
        let url = url.trim();
        let expected = || DockerHost::EXPECTED.to_owned();
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(expected());
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(expected)?;
        let scheme = scheme.to_ascii_lowercase();
        let kind = match scheme.as_str() {
            "unix" => DockerHostKind::Unix,
            "tcp" => DockerHostKind::Tcp,
            "http" => DockerHostKind::Http,
            "https" => {
                return Err(format!(
                    "https:// (TLS) endpoints are not supported; {}",
                    DockerHost::EXPECTED
                ));
            }
            // Echo the scheme only when it is one, so a mistyped value cannot leak a password.
            _ if is_scheme(&scheme) => {
                return Err(format!("unsupported scheme {scheme}://; {}", DockerHost::EXPECTED));
            }
            _ => return Err(expected()),
        };
        let rest = match kind {
            DockerHostKind::Unix => {
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(format!(
                        "the socket path must be absolute; {}",
                        DockerHost::EXPECTED
                    ));
                }
                rest
            }
            DockerHostKind::Tcp | DockerHostKind::Http => {
                let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                let (authority, path) = rest.split_at(authority_len);
                check_authority(authority)
                    .map_err(|problem| format!("{problem}; {}", DockerHost::EXPECTED))?;
                if !(path.is_empty() || path == "/") {
                    return Err(format!("a path is not allowed here; {}", DockerHost::EXPECTED));
                }
                // The Docker client puts each request's path right after the value, so a
                // trailing `/` would double it.
                authority
            }
        };
        Ok(DockerHost { url: format!("{scheme}://{rest}"), kind })
    }

    /// The transport.
    pub fn kind(&self) -> DockerHostKind {
        self.kind
    }

    /// The real value, in canonical form (lower-case scheme, no trailing `/` after a port).
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// For `unix://`, the socket's path.
    pub fn unix_socket_path(&self) -> Option<&Path> {
        match self.kind {
            DockerHostKind::Unix => self.url.split_once("://").map(|(_, path)| Path::new(path)),
            _ => None,
        }
    }

    /// The default, `unix:///var/run/docker.sock`.
    pub(crate) fn default_socket() -> DockerHost {
        DockerHost { url: "unix:///var/run/docker.sock".to_owned(), kind: DockerHostKind::Unix }
    }
}

/// Whether `text` is a URL scheme: a letter, then letters, digits, `+`, `-` or `.` (RFC 3986).
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Checks `[user[:password]@]host:port`, where host may be a bracketed IPv6 address.
fn check_authority(authority: &str) -> Result<(), &'static str> {
    let host_port = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or("the ipv6 address lacks its ]")?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("expected :PORT after the ]")?)),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty");
    }
    match port {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Ok(()),
            _ => Err("the port must be a number from 1 to 65535"),
        },
        None => Err("the port is missing"),
    }
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url(&self.url))
    }
}

impl fmt::Debug for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DockerHost").field(&mask_url(&self.url)).finish()
    }
}
