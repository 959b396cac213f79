//! One full cycle of a host through the real scheduler: every directory
//! under `HOST` is a volume, triggered one by one (waiting whenever the
//! queue of 100 is full, as a batch larger than the queue would skip the
//! rest) with the default two workers and one method, on a fresh SQLite
//! database, timed until every run is final. `cargo xtask bench-cycle` generates the host and runs this
//! for each method, cold and warm.
//!
//! `cycle METHOD HOST` prints `{"method":…,"volumes":N,"completed":N,"wall_s":S}`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use volscan_domain::{EngineChain, Repository, ScanMethod, VolumeName};
use volscan_scheduler::{SchedulerBuilder, SchedulerError, SchedulerOptions, StaticSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(method), Some(host)) = (args.next(), args.next()) else {
        return Err("usage: cycle native|diskus|du HOST".into());
    };
    let method: ScanMethod = method.parse()?;
    let host = PathBuf::from(host);
    let mut volumes: Vec<(VolumeName, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&host)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            volumes.push((VolumeName::new(name)?, entry.path()));
        }
    }
    let count = volumes.len() as u64;
    let names: Vec<VolumeName> = volumes.iter().map(|(name, _)| name.clone()).collect();
    let database = std::env::temp_dir().join(format!("volscan-cycle-{}.db", std::process::id()));
    let url = format!("sqlite://{}", database.display());
    let repo = volscan_repo::DieselRepository::connect(&url, 4)?;
    repo.migrate()?;
    let repo: Arc<dyn Repository> = Arc::new(repo);
    let engines = EngineChain::new(vec![volscan_scan::engine(
        method,
        &std::env::var_os("PATH").unwrap_or_default(),
    )]);
    let options = SchedulerOptions {
        periodic: false,
        retention: None,
        timeout_per_volume: Duration::from_secs(600),
        ..SchedulerOptions::default()
    };
    let scheduler =
        SchedulerBuilder::new(Arc::new(StaticSource::new(volumes)), engines, repo, options)
            .start()
            .await?;
    let started = Instant::now();
    for name in names {
        loop {
            match scheduler.scan_volume(name.clone()).await {
                Ok(_) => break,
                Err(SchedulerError::QueueFull { .. }) => {
                    tokio::time::sleep(Duration::from_millis(5)).await
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
    let status = loop {
        let status = scheduler.status();
        if status.total_completed + status.total_failed + status.total_canceled >= count {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let wall = started.elapsed();
    println!(
        "{{\"method\":\"{method}\",\"volumes\":{count},\"completed\":{},\"wall_s\":{:.3}}}",
        status.total_completed,
        wall.as_secs_f64()
    );
    scheduler.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    Ok(())
}
