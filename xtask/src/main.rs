//! `cargo xtask`: volscan's project automation, in Rust so it runs wherever cargo does.
//!
//! `ci` runs exactly what CI runs; `migrate` applies the embedded migrations;
//! `image` builds the container image (`image.rs`).
//! The tidy tests (`tidy.rs`) run as part of `cargo test`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

mod bench;
mod bench_cycle;
mod bench_dashboard;
mod bench_fleet;
mod bench_http;
mod image;
mod rootfs;
mod tidy;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                              fmt --check, clippy -D warnings, the whole test suite,
                                  cargo deny (offline advisories) and the dependency checks
  bench-scan [--cold] [--runs N]  time the scan methods on generated trees (see --help)
  bench-scheduler                 the scheduler's cost per scan beyond engine time
                                  (1,000 small directories, SQLite, one worker)
  bench-http [--database-url URL] load on the HTTP API with wrk (1,000 volumes, 1M stats rows)
  bench-dashboard                 the overview's render time and weight (1,000 volumes, 30 days)
  bench-cycle [--runs N] [--cold] one host cycle (200 volumes) through the scheduler, per method
  bench-fleet --database-url URL  200 simulated hosts on one PostgreSQL: idle statements/s,
                                  GET /volumes?host=* latency, trigger-to-start time
  migrate [--database-url URL]    apply the embedded migrations (default: DATABASE_URL
                                  from the environment or VOLSCAN_CONFIG, else sqlite://volscan.db)
  image [--tag NAME:TAG]          build the container image (default volscan:<version>) from
                                  the release binary, FROM scratch, with no registry access
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("migrate") => migrate(&args[1..]),
        Some("image") => image::image(&args[1..]),
        Some("bench-scan") => bench::bench_scan(&args[1..]),
        Some("bench-http") => bench_http::bench_http(&args[1..]),
        Some("bench-dashboard") => bench_dashboard::bench_dashboard(),
        Some("bench-cycle") => bench_cycle::bench_cycle(&args[1..]),
        Some("bench-fleet") => bench_fleet::bench_fleet(&args[1..]),
        Some("bench-scheduler") => {
            let mut example = cargo();
            example.args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "volscan-scheduler",
                "--example",
                "overhead",
            ]);
            run("the scheduler overhead benchmark", example)
        }
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask's parent directory).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(root());
    command
}

fn run(step: &str, mut command: Command) -> anyhow::Result<()> {
    eprintln!("\n==> {step}");
    let status = command.status().with_context(|| format!("failed to start {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", fmt)?;

    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run("cargo clippy", clippy)?;

    // The container image test (tests/it/image.rs) packs the release binary
    // with `cargo xtask image`; built here, its build shows and is not timed as a test.
    let mut release = cargo();
    release.args(["build", "--release", "-p", "volscan-server"]);
    run("cargo build --release (for the image test)", release)?;

    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run("cargo test", test)?;

    // Another service embedding the scheduler, built and run as a user would.
    let mut embed = cargo();
    embed.args(["run", "--quiet", "-p", "volscan-scheduler", "--example", "embed"]);
    run("the embedding example", embed)?;

    deny()?;
    dependency_checks()?;
    Ok(())
}

/// `cargo deny check` with the advisory database shipped beside the repository,
/// unpacked where cargo-deny looks for it, so no network is needed.
fn deny() -> anyhow::Result<()> {
    let archive = root().join("../shared/advisory-db.tar.gz");
    if !archive.exists() {
        bail!("{} is missing: cargo deny needs the shipped advisory database", archive.display());
    }
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|home| Path::new(&home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let db_path = cargo_home.join("advisory-dbs");
    std::fs::create_dir_all(&db_path)
        .with_context(|| format!("failed to create {}", db_path.display()))?;
    let mut untar = Command::new("tar");
    untar.arg("-xzf").arg(&archive).arg("-C").arg(&db_path);
    run("unpack the advisory database", untar)?;

    // `--offline` also keeps cargo-deny's `cargo metadata` from downloading, so
    // every platform's crates are fetched first.
    let mut fetch = cargo();
    fetch.args(["fetch", "--quiet"]);
    run("cargo fetch", fetch)?;
    let mut deny = cargo();
    deny.args(["deny", "--offline", "check"]);
    run("cargo deny check", deny)
}

/// The domain must not reach diesel, actix-web or tokio even transitively, and
/// the scheduler must not reach actix-web or docker-api.
fn dependency_checks() -> anyhow::Result<()> {
    let forbidden: &[(&str, &[&str])] = &[
        ("volscan-domain", &["diesel", "actix-web", "tokio"]),
        ("volscan-scheduler", &["actix-web", "docker-api"]),
    ];
    eprintln!("\n==> dependency checks");
    let workspace = tidy::workspace_packages()?;
    for (krate, banned) in forbidden {
        if !workspace.iter().any(|p| p.name == *krate) {
            continue;
        }
        for dep in *banned {
            let output = cargo()
                .args(["tree", "-p", krate, "-e", "normal", "-i", dep])
                .output()
                .context("failed to run cargo tree")?;
            // `cargo tree -i` fails when the package is not in the graph at all: that is the pass.
            if output.status.success() && !output.stdout.is_empty() {
                bail!("{krate} depends on {dep}:\n{}", String::from_utf8_lossy(&output.stdout));
            }
        }
    }
    eprintln!("ok");
    Ok(())
}

fn migrate(args: &[String]) -> anyhow::Result<()> {
    let url = match args {
        [] => volscan_config::Config::load()
            .context("failed to load configuration")?
            .database
            .url
            .as_str()
            .to_owned(),
        [flag, url] if flag == "--database-url" => url.clone(),
        [flag] if flag.starts_with("--database-url=") => flag["--database-url=".len()..].to_owned(),
        _ => bail!("usage: cargo xtask migrate [--database-url URL]"),
    };
    let repo =
        volscan_repo::DieselRepository::connect(&url, 1).context("failed to open the database")?;
    let applied = repo.migrate().context("failed to migrate the database")?;
    if applied.is_empty() {
        println!("{}: up to date", repo.backend_name());
    } else {
        println!("{}: applied {}", repo.backend_name(), applied.join(", "));
    }
    Ok(())
}
