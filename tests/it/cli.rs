//! The server binary's subcommands: `migrate`, `check-config`, and `serve`
//! (start-up, refusal of bad config, SIGTERM).

use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use volscan_testing::{PgDatabase, TempDir};

use crate::support::{free_port, http_get, run_server, server, text};

#[track_caller]
fn check_migrate_twice(url: &str) {
    let first = run_server(&["migrate"], &[("DATABASE_URL", url)]);
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "migrate failed: {stderr}");
    assert!(stdout.contains("applied migrations"), "{stdout}");
    let second = run_server(&["migrate"], &[("DATABASE_URL", url)]);
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "second migrate failed: {stderr}");
    assert!(stdout.contains("up to date"), "the second run must change nothing: {stdout}");
}

#[test]
fn migrate_twice_changes_nothing_on_sqlite() {
    let dir = TempDir::new("it-migrate");
    check_migrate_twice(&dir.sqlite_url());
}

#[test]
fn migrate_twice_changes_nothing_on_postgres() {
    let database = PgDatabase::create();
    check_migrate_twice(database.url());
}

#[test]
fn check_config_prints_every_variable_with_secrets_masked() {
    let output = run_server(
        &["check-config"],
        &[
            ("AUTH_TOKEN", "tok-very-secret"),
            ("DATABASE_URL", "postgres://volscan:hunter2@db:5432/volscan"),
            ("SCAN_INTERVAL", "1h 30m"),
        ],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    for name in volscan_config::VARIABLES {
        assert!(stdout.contains(&format!("{name}=")), "{name} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains("SCAN_INTERVAL=1h 30m") || stdout.contains("SCAN_INTERVAL='1h 30m'"),
        "{stdout}"
    );
    assert!(!stdout.contains("tok-very-secret") && !stdout.contains("hunter2"), "{stdout}");
    assert!(stdout.contains("volscan:***@db"), "{stdout}");
}

#[test]
fn an_invalid_value_stops_start_up_with_a_message_naming_it() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let dir = TempDir::new("it-badconfig");
    let url = dir.sqlite_url();
    let output = run_server(
        &[],
        &[("SCAN_INTERVAL", "abc"), ("VOLSCAN_BIND", &bind), ("DATABASE_URL", &url)],
    );
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SCAN_INTERVAL=\"abc\""), "{stderr}");
    assert!(stderr.contains("expected a duration"), "{stderr}");
    assert!(http_get(port, "/api/v1/health").is_none(), "nothing may listen");
    assert!(!dir.path().join("volscan.db").exists(), "nothing may be created");
}

#[test]
fn serve_migrates_answers_health_and_stops_on_sigterm() {
    let dir = TempDir::new("it-serve");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let url = dir.sqlite_url();
    let mut child =
        server(&[("DATABASE_URL", &url), ("VOLSCAN_BIND", &bind), ("RUST_LOG", "warn")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        if let Some(answer) = http_get(port, "/api/v1/health") {
            break answer;
        }
        assert!(Instant::now() < deadline, "the server did not answer within 20 s");
        assert!(child.try_wait().unwrap().is_none(), "the server exited early");
        sleep(Duration::from_millis(50));
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"healthy""#), "{body}");
    let unknown = http_get(port, "/api/v1/nope").unwrap();
    assert_eq!(unknown.0, 404);
    assert!(unknown.1.contains(r#""code":"not_found""#), "{}", unknown.1);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(stopped.elapsed() < Duration::from_secs(10), "the server ignored SIGTERM for 10 s");
        sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
}

#[test]
fn scan_prints_human_units_or_json_and_fails_clearly_on_a_missing_path() {
    let tree = TempDir::new("it-scan");
    std::fs::write(tree.path().join("file"), vec![b'x'; 10_000]).unwrap();
    let root = tree.path().to_str().unwrap();
    let human = run_server(&["scan", root, "--method", "native"], &[]);
    let (stdout, stderr) = text(&human);
    assert!(human.status.success(), "{stderr}");
    assert!(stdout.contains("files:     1\n") && stdout.contains("dirs:      1\n"), "{stdout}");
    assert!(stdout.contains("method:    native"), "{stdout}");
    let json = run_server(&["scan", root, "--method", "du", "--json"], &[]);
    let (stdout, _) = text(&json);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value["scan_method"], "du");
    assert_eq!(value["file_count"], serde_json::Value::Null, "du does not know the file count");
    assert!(value["size_bytes"].as_u64().unwrap() >= 10_000);

    let missing = run_server(&["scan", &format!("{root}/missing"), "--method", "native"], &[]);
    let (_, stderr) = text(&missing);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn check_config_and_serve_accept_and_refuse_the_same_values() {
    let dir = TempDir::new("it-same-values");
    let url = dir.sqlite_url();
    for (name, value, expected) in [
        ("DOCKER_HOST", "https://127.0.0.1:2376", "TLS is not supported"),
        ("RUST_LOG", "foo=bar=baz,,[", "invalid RUST_LOG="),
    ] {
        let bind = format!("127.0.0.1:{}", free_port());
        let vars = [(name, value), ("DATABASE_URL", url.as_str()), ("VOLSCAN_BIND", &bind)];
        for command in [&["check-config"][..], &["serve"][..]] {
            let output = run_server(command, &vars);
            let (_, stderr) = text(&output);
            assert_eq!(output.status.code(), Some(1), "{command:?} {name}={value}: {stderr}");
            assert!(stderr.contains(&format!("{name}=")), "{command:?}: {stderr}");
            assert!(stderr.contains(expected), "{command:?}: {stderr}");
        }
    }
    // An upper-case scheme is a scheme: check-config shows it normalised and serve starts.
    let output = run_server(&["check-config"], &[("DOCKER_HOST", "TCP://127.0.0.1:1/")]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("DOCKER_HOST=tcp://127.0.0.1:1"), "{stdout}");
    let vars = [("DOCKER_HOST", "TCP://127.0.0.1:1/"), ("DATABASE_URL", url.as_str())];
    let server = crate::support::ServerProcess::start(&vars, dir.path());
    let (status, _, _) = server.call("GET", "/api/v1/health");
    assert_eq!(status, 200, "serve runs with the value check-config accepted");
}
