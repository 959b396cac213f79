//! `DOCKER_HOST` checked and normalised before `docker-api` sees it.

use crate::DockerError;

/// Checks the endpoint before `docker-api` sees it, for a clearer message, and
/// returns it in the form `docker-api` reads: the scheme in lower case (URL
/// schemes are case-insensitive, `docker-api` matches them exactly) and no `/`
/// after a TCP endpoint's port (`docker-api` appends each request's path).
///
/// It accepts what `volscan-config` accepts for `DOCKER_HOST`, so a
/// configuration that passes `check-config` also starts: `unix:///PATH`,
/// `tcp://HOST:PORT` and `http://HOST:PORT` (plain HTTP). `https://` is
/// refused: TLS is not supported.
pub(crate) fn check_host(host: &str) -> Result<String, DockerError> {
    const SUPPORTED: &str = "expected unix:///PATH, tcp://HOST:PORT or http://HOST:PORT \
        (plain HTTP; TLS is not supported)";
    let bad =
        |reason: &str| DockerError::BadHost { host: host.to_owned(), reason: reason.to_owned() };
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(SUPPORTED));
    }
    let Some((scheme, rest)) = host.split_once("://") else {
        return Err(bad(SUPPORTED));
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "unix" if rest.starts_with('/') && rest.len() > 1 => Ok(format!("unix://{rest}")),
        "unix" => {
            Err(bad("a unix socket needs an absolute path, as in unix:///var/run/docker.sock"))
        }
        "tcp" | "http" => {
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            match tcp_authority_problem(authority) {
                None => Ok(format!("{scheme}://{authority}")),
                Some(problem) => Err(bad(problem)),
            }
        }
        "https" => Err(bad(&format!("https:// (TLS) endpoints are not supported; {SUPPORTED}"))),
        _ => Err(bad(&format!("unsupported scheme; {SUPPORTED}"))),
    }
}

/// What is wrong with a TCP endpoint's `[USER[:PASSWORD]@]HOST:PORT`, if anything.
fn tcp_authority_problem(authority: &str) -> Option<&'static str> {
    if authority.contains(['/', '?', '#']) {
        return Some("a TCP endpoint takes no path, as in tcp://127.0.0.1:2375");
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let Some((host, port)) = host_port.rsplit_once(':') else {
        return Some("a TCP endpoint needs a port, as in tcp://127.0.0.1:2375");
    };
    if host.is_empty() {
        return Some("a TCP endpoint needs a host, as in tcp://127.0.0.1:2375");
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => None,
        _ => Some("the port must be a number from 1 to 65535, as in tcp://127.0.0.1:2375"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DockerSource, DockerSourceOptions};

    fn source(host: &str) -> Result<DockerSource, DockerError> {
        DockerSource::new(DockerSourceOptions { host: host.to_owned(), ..Default::default() })
    }

    /// Every value `volscan-config` accepts for `DOCKER_HOST` (also before its
    /// canonicalisation) builds a source, and what it refuses is refused here too.
    #[test]
    fn the_hosts_the_configuration_accepts_are_accepted() {
        for (host, canonical) in [
            ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
            ("UNIX:///var/run/docker.sock", "unix:///var/run/docker.sock"),
            ("Unix:///Run/Docker.sock", "unix:///Run/Docker.sock"),
            ("tcp://127.0.0.1:2375", "tcp://127.0.0.1:2375"),
            ("TCP://host:2375", "tcp://host:2375"),
            ("tcp://[::1]:2375", "tcp://[::1]:2375"),
            ("tcp://user:pw@docker:2375", "tcp://user:pw@docker:2375"),
            ("tcp://host:2375/", "tcp://host:2375"),
            ("http://docker:2375", "http://docker:2375"),
            ("HTTP://Docker:2375/", "http://Docker:2375"),
        ] {
            assert_eq!(check_host(host).unwrap(), canonical, "{host}");
            let source = source(host).unwrap_or_else(|err| panic!("{host}: {err}"));
            assert_eq!(source.host, canonical);
        }
        for host in [
            "",
            "/var/run/docker.sock",
            "unix://",
            "unix://var/run/docker.sock",
            "tcp://",
            "tcp://:2375",
            "tcp://host",
            "tcp://host:0",
            "tcp://host:70000",
            "tcp://host:port",
            "tcp://host:2375/path",
            "ssh://user@host",
            "npipe:////./pipe/docker_engine",
            "https://docker.example.com",
            "HTTPS://docker:2376",
        ] {
            assert!(source(host).is_err(), "{host} was accepted");
        }
        let err = source("https://docker:2376").err().unwrap().to_string();
        assert!(err.contains("https:// (TLS) endpoints are not supported"), "{err}");
        assert!(err.contains("tcp://HOST:PORT or http://HOST:PORT"), "{err}");
    }
}
