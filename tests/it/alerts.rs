//! The Prometheus alerting rules shipped in `deploy/prometheus`: `promtool
//! check rules` accepts them and `promtool test rules` passes their unit tests
//! (series that must fire, at the right time, and series that must not: a
//! cron-like burst, a slow steady fill, a shrinking volume).
//!
//! promtool comes from `PATH` (Debian package `prometheus`; `scripts/test.sh`
//! installs it). A missing promtool fails these tests; they never skip.

use std::path::PathBuf;
use std::process::Command;

/// The rules, relative to the workspace root.
const RULES: &str = "deploy/prometheus/volscan-alerts.yml";
/// Their promtool unit tests, relative to the workspace root.
const RULE_TESTS: &str = "deploy/prometheus/volscan-alerts.test.yml";

/// The workspace root: this test binary belongs to `bin/volscan-server`.
fn workspace_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(root.join(RULES).is_file(), "{RULES} not found under {}", root.display());
    root
}

/// Runs `promtool <args>` from the workspace root and returns whether it
/// succeeded and everything it printed (stdout, then stderr).
fn promtool(args: &[&str]) -> (bool, String) {
    let output =
        Command::new("promtool").args(args).current_dir(workspace_root()).output().unwrap_or_else(
            |error| {
                panic!(
                    "cannot run promtool ({error}): install the Debian package prometheus \
                     (scripts/test.sh does)"
                )
            },
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn promtool_check_rules_accepts_the_alerting_rules() {
    let (success, text) = promtool(&["check", "rules", RULES]);
    assert!(success, "promtool check rules {RULES} failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn the_alerting_rules_pass_their_promtool_unit_tests() {
    let (success, text) = promtool(&["test", "rules", RULE_TESTS]);
    assert!(success, "promtool test rules {RULE_TESTS} failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}
