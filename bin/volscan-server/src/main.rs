//! `volscan-server`: the composition root. It loads the configuration, builds
//! one value per port, wires them together and runs; it makes no decisions of
//! its own.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use volscan_config::Config;
use volscan_domain::{EngineChain, Repository, ScanMethod};
use volscan_repo::DieselRepository;

mod scan_command;

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
    /// Measure one directory once and print its usage (size, apparent size,
    /// files, directories, unreadable entries).
    Scan {
        /// The directory to measure; symlinks are not followed and other
        /// filesystems mounted below it are not counted.
        path: PathBuf,
        /// Use this method instead of SCAN_METHODS_ORDER's first available one.
        #[arg(long, value_enum)]
        method: Option<MethodArg>,
        /// Print JSON with the field names of the API instead of human units.
        #[arg(long)]
        json: bool,
        /// Worker threads of the native method (default: 4).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
    },
}

/// `--method` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum MethodArg {
    /// The in-process parallel walker: every field, real progress.
    Native,
    /// GNU `du -s -x -B1`: size only.
    Du,
    /// The `diskus` binary: size only; unavailable with a mount below the path.
    Diskus,
}

impl From<MethodArg> for ScanMethod {
    fn from(method: MethodArg) -> Self {
        match method {
            MethodArg::Native => ScanMethod::Native,
            MethodArg::Du => ScanMethod::Du,
            MethodArg::Diskus => ScanMethod::Diskus,
        }
    }
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
        Command::Scan { path, method, json, threads } => {
            let chain = match (method.map(ScanMethod::from), threads) {
                (Some(ScanMethod::Native), Some(threads)) => EngineChain::new(vec![Arc::new(
                    volscan_scan::NativeEngine::with_threads(usize::from(threads)),
                )]),
                (Some(method), _) => EngineChain::new(vec![volscan_scan::engine(method)]),
                (None, _) => engine_chain(&config),
            };
            scan_command::run(&path, chain, json)
        }
    }
}

/// SCAN_METHODS_ORDER as engines.
fn engine_chain(config: &Config) -> EngineChain {
    let method = |name: volscan_config::ScanMethodName| match name {
        volscan_config::ScanMethodName::Diskus => ScanMethod::Diskus,
        volscan_config::ScanMethodName::Du => ScanMethod::Du,
        volscan_config::ScanMethodName::Native => ScanMethod::Native,
    };
    EngineChain::new(
        config.scan.methods_order.iter().map(|name| volscan_scan::engine(method(*name))).collect(),
    )
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
