//! volscan's integration tests: one test binary that drives the real server
//! binary and the HTTP app factory against real SQLite and PostgreSQL.
//!
//! PostgreSQL comes from `VOLSCAN_TEST_PG_URL` (see `volscan_testing`); the
//! README's test command starts a server and sets it.

// Helpers outside `#[test]` functions panic on purpose too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod alerts;
mod api;
mod browser;
mod cli;
mod crash;
mod dashboard;
mod e2e;
mod engines;
mod fleet;
mod fuzz;
mod guarantees;
mod health;
mod hostile;
mod hung_tool;
mod image;
mod insights;
mod outage;
mod scheduler;
mod security;
mod support;
mod unprivileged;
mod webdriver;
