//! `volscan-server`: the composition root. It loads the configuration, builds
//! one value per port, wires them together and runs; it makes no decisions of
//! its own.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use volscan_config::{Config, ScanEnabled};
use volscan_domain::{EngineChain, HostId, HostInfo, Repository, ScanMethod, VolumeSource};
use volscan_repo::DieselRepository;
use volscan_scheduler::{RetentionOptions, SchedulerBuilder, SchedulerOptions};

mod capabilities;
mod healthcheck;
mod lease;
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
    /// Ask the server at VOLSCAN_BIND (0.0.0.0 is asked on 127.0.0.1) for its
    /// health: exit 0 when it is healthy or degraded, 1 when it is unhealthy or
    /// does not answer within 3 s. The container image's HEALTHCHECK.
    Healthcheck,
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
    // First, while this is the only thread: threads inherit the capabilities
    // of the thread that creates them.
    let raised = capabilities::make_permitted_effective();
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Command::Serve), raised) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// What `capabilities::make_permitted_effective` did, for the log.
type Raised = std::io::Result<rustix::thread::CapabilitySet>;

fn run(command: Command, raised: Raised) -> anyhow::Result<()> {
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
        Command::Healthcheck => {
            println!("{}", healthcheck::check(config.http.bind, healthcheck::BUDGET)?);
            Ok(())
        }
        Command::Serve => serve(config, raised),
        Command::Scan { path, method, json, threads } => {
            let priority = priority(&config);
            let chain = match (method.map(ScanMethod::from), threads) {
                (Some(ScanMethod::Native), Some(threads)) => EngineChain::new(vec![Arc::new(
                    volscan_scan::NativeEngine::with_threads(usize::from(threads))
                        .priority(priority),
                )]),
                (Some(method), _) => {
                    // The engines read no environment: external tools are looked up in our PATH.
                    let search_path = std::env::var_os("PATH").unwrap_or_default();
                    EngineChain::new(vec![volscan_scan::engine_with(
                        method,
                        &search_path,
                        priority,
                    )])
                }
                (None, _) => engine_chain(&config),
            };
            scan_command::run(&path, chain, json)
        }
    }
}

/// SCAN_NICE and SCAN_IO_CLASS as the engines' priority.
fn priority(config: &Config) -> volscan_scan::Priority {
    volscan_scan::Priority {
        nice: config.scan.nice,
        io_class: match config.scan.io_class {
            volscan_config::IoClassName::Idle => volscan_scan::IoClass::Idle,
            volscan_config::IoClassName::BestEffort => volscan_scan::IoClass::BestEffort,
        },
    }
}

/// SCAN_METHODS_ORDER as engines, with external tools looked up in `PATH`
/// (the engines read no environment, so it is read here).
fn engine_chain(config: &Config) -> EngineChain {
    let method = |name: volscan_config::ScanMethodName| match name {
        volscan_config::ScanMethodName::Diskus => ScanMethod::Diskus,
        volscan_config::ScanMethodName::Du => ScanMethod::Du,
        volscan_config::ScanMethodName::Native => ScanMethod::Native,
    };
    let search_path = std::env::var_os("PATH").unwrap_or_default();
    EngineChain::new(
        config
            .scan
            .methods_order
            .iter()
            .map(|name| volscan_scan::engine_with(method(*name), &search_path, priority(config)))
            .collect(),
    )
}

fn open_database(config: &Config) -> anyhow::Result<DieselRepository> {
    DieselRepository::connect(config.database.url.as_str(), POOL_SIZE)
        .with_context(|| format!("failed to open the database {}", config.database.url))
}

/// This host's id (`VOLSCAN_HOST_ID`, else the machine's hostname) and the
/// machine's name.
fn host_identity(config: &Config) -> anyhow::Result<(HostId, String)> {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    let id = match &config.database.host_id {
        Some(id) => id.parse().context("invalid VOLSCAN_HOST_ID")?,
        None => machine.parse().with_context(|| {
            format!(
                "the hostname {machine:?} is not a valid host id; set VOLSCAN_HOST_ID \
                 (1-63 of a-z 0-9 _ . - starting with a letter or digit)"
            )
        })?,
    };
    Ok((id, machine))
}

fn report_migrations(repo: &DieselRepository, applied: &[String]) {
    if applied.is_empty() {
        println!("{}: database schema is up to date", repo.backend_name());
    } else {
        println!("{}: applied migrations {}", repo.backend_name(), applied.join(", "));
    }
}

fn serve(config: Config, raised: Raised) -> anyhow::Result<()> {
    // Colours only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        // `volscan-config` validated RUST_LOG with this same parser, so this cannot fail;
        // `EnvFilter::new` would silently drop a bad directive instead.
        .with_env_filter(
            tracing_subscriber::EnvFilter::builder()
                .parse(&config.log.filter)
                .context("invalid RUST_LOG")?,
        )
        .with_ansi(ansi)
        .init();
    match raised {
        Ok(added) if !added.is_empty() => {
            tracing::info!(capabilities = ?added, "permitted capabilities made effective");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "failed to make permitted capabilities effective"),
    }
    let (host_id, machine) = host_identity(&config)?;
    let repo = open_database(&config)?.for_host(host_id.clone());
    let applied = repo.migrate().context("failed to migrate the database")?;
    tracing::info!(backend = repo.backend_name(), applied = applied.len(), host = %host_id, "database ready");
    // Held for the process's life: a second process with this host id is
    // refused. Kept through database restarts by `lease::keep`.
    let lease = repo.lease().context("refusing to start")?;
    let lost = {
        let repo = repo.clone();
        move || repo.connections_lost()
    };
    let signal = repo.work_signal();
    let repo: Arc<dyn Repository> = Arc::new(repo);

    let exporter = install_metrics()?;
    let docker = Arc::new(
        volscan_docker::DockerSource::new(docker_options(&config))
            .context("invalid Docker source settings")?,
    );
    let periodic = match config.scan.enabled {
        ScanEnabled::Always => true,
        ScanEnabled::Never => false,
        ScanEnabled::Auto => match docker.ping() {
            Ok(version) => {
                tracing::info!(%version, host = %config.docker.host, "Docker answers; periodic scans on");
                if let Some(problem) = docker.volumes_dir_problem() {
                    tracing::warn!(%problem, "volumes cannot be scanned");
                }
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, host = %config.docker.host, "Docker does not answer; periodic scans off (SCAN_ENABLED=auto)");
                false
            }
        },
    };
    let (docker_engine_id, docker_version) = docker.engine_identity().unwrap_or_default();
    let host_info = HostInfo {
        id: host_id,
        name: machine,
        docker_engine_id,
        docker_version,
        volscan_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let source: Arc<dyn VolumeSource> = docker.clone();
    let host_check: volscan_http::HostCheck = Arc::new(move || docker.volumes_dir_problem());
    let engines = engine_chain(&config);
    let options = scheduler_options(&config, periodic);
    let probe = Arc::new(volscan_scan::StatvfsProbe::new(config.scan.host_prefix.clone()));
    let bind = config.http.bind;
    // Everything that can fail is done before the scheduler starts, so that
    // once it runs, the only way out is through its shutdown.
    let listener =
        std::net::TcpListener::bind(bind).with_context(|| format!("failed to listen on {bind}"))?;

    let runner = actix_web::rt::System::new();
    let result = runner.block_on(async move {
        let mut signals = ShutdownSignals::install()?;
        let mut builder =
            SchedulerBuilder::new(Arc::clone(&source), engines, Arc::clone(&repo), options)
                .filesystems(probe)
                .host(host_info);
        if let Some(signal) = signal {
            builder = builder.work_signal(signal);
        }
        let scheduler = builder.start().await.context("failed to start the scheduler")?;
        let lease_lost = Box::pin(lease::keep(lease, lost, scheduler.heartbeat_interval()));
        let parts =
            Parts { repo, source, host_check, scheduler: scheduler.clone(), exporter, lease_lost };
        let served = serve_until_signal(listener, &config, parts, &mut signals).await;
        // Every way out of serving passes here.
        scheduler.stop().await;
        served
    });
    // Not dropped: dropping the runtime would wait for blocking threads still
    // inside a call that hangs (a Docker daemon that stopped answering), past
    // the 10 s a shutdown may take. Every final state is written by now, and
    // the process exits right after.
    std::mem::forget(runner);
    result
}

/// What the HTTP API is given.
struct Parts {
    repo: Arc<dyn Repository>,
    source: Arc<dyn VolumeSource>,
    host_check: volscan_http::HostCheck,
    scheduler: volscan_scheduler::SchedulerHandle,
    exporter: metrics_exporter_prometheus::PrometheusHandle,
    /// Resolves if another live process took this host's id.
    lease_lost: std::pin::Pin<Box<dyn std::future::Future<Output = volscan_repo::LeaseError>>>,
}

/// Serves HTTP until SIGINT or SIGTERM (or the server fails), then stops the
/// server; the caller stops the scheduler.
async fn serve_until_signal(
    listener: std::net::TcpListener,
    config: &Config,
    parts: Parts,
    signals: &mut ShutdownSignals,
) -> anyhow::Result<()> {
    let Parts { repo, source, host_check, scheduler, exporter, mut lease_lost } = parts;
    let auth_token = config.http.auth_token.as_ref().map(|token| token.expose().to_owned());
    let volumes = scheduler.clone();
    let metrics: volscan_http::MetricsRenderer = Arc::new(move || {
        let mut text = exporter.render();
        volumes.render_volume_metrics(&mut text);
        volumes.render_capacity_metrics(&mut text);
        text
    });
    let state = volscan_http::AppState::new(
        repo,
        source,
        scheduler,
        auth_token,
        config.http.rate_limit_rpm.get(),
        Some(metrics),
    )
    .with_host_check(host_check)
    .with_dashboard(config.http.dashboard)
    .with_auth_read(config.http.auth_read);
    if config.http.auth_read && config.http.auth_token.is_none() {
        tracing::warn!("AUTH_READ=true has no effect without AUTH_TOKEN: reads stay open");
    }
    let bind = config.http.bind;
    let server = volscan_http::server(listener, state)
        .with_context(|| format!("failed to serve on {bind}"))?;
    let server_handle = server.handle();
    let mut server_task = actix_web::rt::spawn(server);
    if config.http.dashboard {
        tracing::info!(%bind, "serving the HTTP API and the dashboard at http://{bind}/");
    } else {
        tracing::info!(%bind, "serving the HTTP API (the dashboard is off)");
    }
    let mut lost = None;
    tokio::select! {
        signal = signals.recv() => tracing::info!(signal, "shutting down"),
        result = &mut server_task => {
            return result.context("HTTP server task failed")?.context("HTTP server failed");
        }
        err = &mut lease_lost => {
            tracing::error!(error = %err, "another process took this host id while the database restarted; shutting down");
            lost = Some(err);
        }
    }
    // The caller's scheduler shutdown requeues running scans while this drains requests.
    server_handle.stop(true).await;
    let _ = server_task.await;
    tracing::info!("HTTP server stopped");
    match lost {
        Some(err) => Err(anyhow::Error::new(err).context("lost the host lease")),
        None => Ok(()),
    }
}

/// Installs the process-wide Prometheus recorder; scan durations get histogram buckets.
fn install_metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let buckets = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0];
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(volscan_scheduler::metrics::SCAN_DURATION.to_owned()),
            &buckets,
        )
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("failed to install the metrics recorder")
}

/// SIGINT and SIGTERM, watched from before the scheduler starts.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("failed to watch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("failed to watch SIGTERM")?,
        })
    }

    /// Waits for either; returns its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// The Docker source's settings from the configuration.
fn docker_options(config: &Config) -> volscan_docker::DockerSourceOptions {
    volscan_docker::DockerSourceOptions {
        host: config.docker.host.as_str().to_owned(),
        host_prefix: config.scan.host_prefix.clone(),
        skip_pattern: config.scan.skip_pattern.clone(),
        bind_mounts_enabled: config.scan.bind_mounts_enabled,
        bind_allowlist: config.scan.bind_allowlist.clone(),
    }
}

/// The scheduler's options from the configuration. Every field of the scan
/// and lifecycle sections is named, so a new one does not go unnoticed.
fn scheduler_options(config: &Config, periodic: bool) -> SchedulerOptions {
    let volscan_config::ScanConfig {
        enabled: _,
        interval,
        concurrency,
        timeout_per_volume,
        methods_order: _,
        bind_mounts_enabled: _,
        bind_allowlist: _,
        skip_pattern: _,
        max_retries,
        host_prefix: _,
        nice: _,
        io_class: _,
    } = &config.scan;
    let volscan_config::LifecycleConfig {
        enabled: lifecycle_enabled,
        sizes_ttl_days: _,
        interval: lifecycle_interval,
    } = &config.lifecycle;
    SchedulerOptions {
        periodic,
        interval: *interval,
        concurrency: concurrency.get(),
        timeout_per_volume: *timeout_per_volume,
        max_retries: *max_retries,
        retention: lifecycle_enabled.then(|| RetentionOptions {
            ttl: config.lifecycle.sizes_ttl(),
            interval: *lifecycle_interval,
            ..RetentionOptions::default()
        }),
        heartbeat_interval: config.database.heartbeat_interval,
        ..SchedulerOptions::default()
    }
}
