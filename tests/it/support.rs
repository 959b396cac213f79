//! Helpers for driving the real `volscan-server` binary: a clean environment,
//! a free port, and a minimal HTTP client over a TCP stream.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

/// The server binary cargo built for these tests.
pub const SERVER: &str = env!("CARGO_BIN_EXE_volscan-server");

/// A command for the server binary with an empty environment plus `vars`, so
/// the caller's environment cannot change what a test sees.
pub fn server(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(SERVER);
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Runs the server binary to completion.
pub fn run_server(args: &[&str], vars: &[(&str, &str)]) -> Output {
    server(vars).args(args).output().expect("failed to run volscan-server")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:port; returns the status code and body, or `None`
/// when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

/// Text of a process's stdout and stderr.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What GNU `du ARGS -- path` prints first: a number.
pub fn du(args: &[&str], path: &std::path::Path) -> u64 {
    let output = Command::new("du").args(args).arg("--").arg(path).output().expect("du");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du {args:?}: {text:?}"))
}

/// `du -sB1 -x`: the disk usage every engine must report.
pub fn du_bytes(path: &std::path::Path) -> u64 {
    du(&["-sB1", "-x"], path)
}
