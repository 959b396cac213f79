//! Measures the scheduler's cost per scan beyond the engine's own time: 1,000
//! small directories through manual triggers and one worker, on SQLite, with
//! the native engine wrapped in a timer. Run it optimised:
//! `cargo xtask bench-scheduler`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use volscan_domain::{
    EngineChain, Repository, ScanContext, ScanEngine, ScanError, ScanMethod, Usage, VolumeName,
};
use volscan_scheduler::{SchedulerBuilder, SchedulerError, SchedulerOptions, StaticSource};

const DIRECTORIES: usize = 1000;

/// An engine adding up the time spent inside it.
struct Timed {
    engine: Arc<dyn ScanEngine>,
    nanos: AtomicU64,
}

impl ScanEngine for Timed {
    fn method(&self) -> ScanMethod {
        self.engine.method()
    }

    fn availability(&self, root: &Path) -> Result<(), ScanError> {
        self.engine.availability(root)
    }

    fn scan(&self, root: &Path, context: &ScanContext<'_>) -> Result<Usage, ScanError> {
        let clock = Instant::now();
        let usage = self.engine.scan(root, context);
        self.nanos.fetch_add(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
        usage
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::temp_dir().join(format!("volscan-overhead-{}", std::process::id()));
    let mut dirs = Vec::new();
    for i in 0..DIRECTORIES {
        let dir = base.join(format!("d{i:04}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("file"), b"x")?;
        dirs.push((VolumeName::new(format!("d{i:04}"))?, dir));
    }
    let names: Vec<VolumeName> = dirs.iter().map(|(name, _)| name.clone()).collect();
    let source = Arc::new(StaticSource::new(dirs));
    let url = format!("sqlite://{}", base.join("volscan.db").display());
    let repo = volscan_repo::DieselRepository::connect(&url, 4)?;
    repo.migrate()?;
    let repo: Arc<dyn Repository> = Arc::new(repo);
    let timed = Arc::new(Timed {
        engine: volscan_scan::engine(
            ScanMethod::Native,
            &std::env::var_os("PATH").unwrap_or_default(),
        ),
        nanos: AtomicU64::new(0),
    });
    let engines = EngineChain::new(vec![timed.clone() as Arc<dyn ScanEngine>]);
    let options = SchedulerOptions {
        periodic: false,
        concurrency: 1,
        retention: None,
        ..SchedulerOptions::default()
    };
    let scheduler = SchedulerBuilder::new(source, engines, repo, options).start().await?;

    let started = Instant::now();
    for name in names {
        // The queue holds 100 runs; wait whenever it is full.
        loop {
            match scheduler.scan_volume(name.clone()).await {
                Ok(_) => break,
                Err(SchedulerError::QueueFull { .. }) => {
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    while scheduler.status().total_completed < DIRECTORIES as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wall = started.elapsed();
    let engine = Duration::from_nanos(timed.nanos.load(Ordering::Relaxed));
    let overhead = wall.saturating_sub(engine) / DIRECTORIES as u32;
    println!(
        "{DIRECTORIES} scans through 1 worker on SQLite: wall {wall:.2?}, engine {engine:.2?}, \
         overhead per scan {overhead:.2?} (goal: at most 2 ms)"
    );
    scheduler.stop().await;
    std::fs::remove_dir_all(&base)?;
    Ok(())
}
