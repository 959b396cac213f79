//! `volscan-server healthcheck`: asks the local server's `GET /api/v1/health`
//! and succeeds unless it answers `unhealthy` or does not answer within 3 s.
//! It is the container image's `HEALTHCHECK`, where there is no curl.
//!
//! A tiny HTTP/1.1 client over std's `TcpStream` (one request, `Connection:
//! close`, read to the end); it knows just enough HTTP for the server's own answer.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The longest the whole check may take, connecting included.
pub const BUDGET: Duration = Duration::from_secs(3);

/// The largest answer read; the health document is a few hundred bytes.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Asks the server listening on `bind` (`VOLSCAN_BIND`; a wildcard address is
/// asked on loopback) for its health within `budget`. Returns the one-line
/// summary to print when it is `healthy` or `degraded`, an error otherwise.
pub fn check(bind: SocketAddr, budget: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + budget;
    let address = SocketAddr::new(loopback_for(bind.ip()), bind.port());
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut stream = TcpStream::connect_timeout(&address, left())
        .with_context(|| format!("no answer from {address}"))?;
    stream.set_write_timeout(Some(left())).context("failed to set a timeout")?;
    write!(
        stream,
        "GET /api/v1/health HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\
         Connection: close\r\n\r\n"
    )
    .with_context(|| format!("failed to ask {address}"))?;
    let mut answer = Vec::new();
    let mut reader = (&stream).take(MAX_ANSWER_BYTES);
    let mut chunk = [0_u8; 4096];
    loop {
        if Instant::now() >= deadline {
            bail!("no answer from {address} within {}s", budget.as_secs());
        }
        stream.set_read_timeout(Some(left())).context("failed to set a timeout")?;
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(err).with_context(|| format!("no complete answer from {address}"));
            }
        }
    }
    verdict(&answer)
}

/// Where to reach a server bound to `ip`: loopback for a wildcard address.
fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

/// Reads a health answer: `Ok(summary)` for a 200 whose `status` is not
/// `unhealthy`, an error naming the reason otherwise.
fn verdict(answer: &[u8]) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").context("the answer has no end of headers")?;
    let code = head.split(' ').nth(1).unwrap_or_default();
    let health: serde_json::Value = serde_json::from_str(body.trim())
        .with_context(|| format!("HTTP {code}: the body is not the health document"))?;
    let status = health["status"].as_str().unwrap_or("missing");
    let problems: Vec<String> = ["database", "docker", "scheduler"]
        .iter()
        .filter_map(|name| {
            let message = health["components"][name]["message"].as_str()?;
            Some(format!("{name}: {message}"))
        })
        .collect();
    let summary = if problems.is_empty() {
        status.to_owned()
    } else {
        format!("{status} ({})", problems.join("; "))
    };
    match (code, status) {
        ("200", "healthy" | "degraded") => Ok(summary),
        _ => bail!("HTTP {code}: {summary}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_verdict(answer: &str, expected: Result<&str, &str>) {
        let got = verdict(answer.as_bytes()).map_err(|err| format!("{err:#}"));
        match expected {
            Ok(summary) => assert_eq!(got.as_deref(), Ok(summary)),
            Err(part) => {
                let err = got.expect_err("an error");
                assert!(err.contains(part), "{err:?} should contain {part:?}");
            }
        }
    }

    #[test]
    fn healthy_and_degraded_pass_unhealthy_and_garbage_fail() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n";
        check_verdict(
            &format!("{ok}{{\"status\":\"healthy\",\"components\":{{}}}}"),
            Ok("healthy"),
        );
        check_verdict(
            &format!(
                "{ok}{{\"status\":\"degraded\",\"components\":{{\"docker\":\
                 {{\"status\":\"degraded\",\"message\":\"/host/x is missing\"}}}}}}"
            ),
            Ok("degraded (docker: /host/x is missing)"),
        );
        check_verdict(
            "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"status\":\"unhealthy\",\"components\":\
             {\"database\":{\"status\":\"unhealthy\",\"message\":\"down\"}}}",
            Err("HTTP 503: unhealthy (database: down)"),
        );
        check_verdict(
            "HTTP/1.1 200 OK\r\n\r\n{\"status\":\"unhealthy\"}",
            Err("HTTP 200: unhealthy"),
        );
        check_verdict("HTTP/1.1 404 Not Found\r\n\r\nnope", Err("not the health document"));
        check_verdict("HTTP/1.1 200 OK\r\n", Err("no end of headers"));
    }

    #[test]
    fn a_wildcard_bind_is_asked_on_loopback() {
        assert_eq!(loopback_for("0.0.0.0".parse().unwrap()), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(loopback_for("::".parse().unwrap()), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            loopback_for("10.0.0.5".parse().unwrap()),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn nothing_listening_fails_within_the_budget() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let started = Instant::now();
        assert!(check(port, BUDGET).is_err());
        assert!(started.elapsed() < BUDGET);
    }

    #[test]
    fn a_server_that_never_answers_fails_within_the_budget() {
        // Accepts (the kernel does, from the backlog) and then says nothing.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let started = Instant::now();
        let err = check(address, Duration::from_millis(300)).unwrap_err();
        assert!(format!("{err:#}").contains("no"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        drop(listener);
    }
}
