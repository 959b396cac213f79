//! `volscan-server`: the composition root. It loads the configuration, builds
//! one value per port, wires them together and runs; it makes no decisions of
//! its own.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use volscan_config::Config;
use volscan_domain::Repository;
use volscan_repo::DieselRepository;

/// Measures how much disk every Docker volume uses, keeps the history in SQLite
/// or PostgreSQL, and serves it over HTTP.
///
/// Configuration comes from environment variables (SCAN_INTERVAL, DATABASE_URL,
/// VOLSCAN_BIND, ...; see README.md), over an optional TOML file named by
/// VOLSCAN_CONFIG, over the defaults. `volscan-server check-config` shows the
/// effective values.
#[derive(Parser)]
#[command(name = "volscan-server", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the HTTP API (the default).
    Serve,
    /// Apply the database migrations and exit; running it twice changes nothing.
    Migrate,
    /// Validate the configuration and print the effective values, secrets masked.
    CheckConfig,
}

/// Connections in the pool: enough for the HTTP handlers and the workers.
const POOL_SIZE: u32 = 16;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Command::Serve)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    let config = Config::load().context("invalid configuration")?;
    match command {
        Command::CheckConfig => {
            print!("{}", config.render());
            Ok(())
        }
        Command::Migrate => {
            let repo = open_database(&config)?;
            report_migrations(&repo, &repo.migrate().context("failed to migrate the database")?);
            Ok(())
        }
        Command::Serve => serve(config),
    }
}

fn open_database(config: &Config) -> anyhow::Result<DieselRepository> {
    DieselRepository::connect(config.database.url.as_str(), POOL_SIZE)
        .with_context(|| format!("failed to open the database {}", config.database.url))
}

fn report_migrations(repo: &DieselRepository, applied: &[String]) {
    if applied.is_empty() {
        println!("{}: database schema is up to date", repo.backend_name());
    } else {
        println!("{}: applied migrations {}", repo.backend_name(), applied.join(", "));
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log.filter))
        .init();
    let repo = open_database(&config)?;
    let applied = repo.migrate().context("failed to migrate the database")?;
    tracing::info!(backend = repo.backend_name(), applied = applied.len(), "database ready");
    let repo: Arc<dyn Repository> = Arc::new(repo);
    let state = volscan_http::AppState { repo };
    let bind = config.http.bind;
    tracing::info!(%bind, "serving the HTTP API");
    actix_web::rt::System::new()
        .block_on(volscan_http::serve(bind, state))
        .with_context(|| format!("HTTP server on {bind} failed"))
}
