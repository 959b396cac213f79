//! Embedding the scheduler in another service: two directories, SQLite, the
//! native engine, one bulk run, then a clean shutdown. CI builds and runs it.
//!
//! `cargo run -p volscan-scheduler --example embed [DIR…]`

use std::sync::Arc;
use std::time::Duration;

use volscan_domain::{EngineChain, Repository, ScanMethod, VolumeName};
use volscan_scheduler::{SchedulerBuilder, SchedulerOptions, StaticSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The directories to watch: the arguments, or this crate's own sources.
    let mut dirs: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    if dirs.is_empty() {
        dirs = vec![
            concat!(env!("CARGO_MANIFEST_DIR"), "/src").into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples").into(),
        ];
    }
    let mut named = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        named.push((VolumeName::new(format!("dir{i}"))?, dir.clone()));
    }
    let source = Arc::new(StaticSource::new(named));

    let database = std::env::temp_dir().join(format!("volscan-embed-{}.db", std::process::id()));
    let repo =
        volscan_repo::DieselRepository::connect(&format!("sqlite://{}", database.display()), 4)?;
    repo.migrate()?;
    let repo: Arc<dyn Repository> = Arc::new(repo);

    let engines = EngineChain::new(vec![volscan_scan::engine(
        ScanMethod::Native,
        &std::env::var_os("PATH").unwrap_or_default(),
    )]);
    let options = SchedulerOptions { periodic: false, ..SchedulerOptions::default() };
    let scheduler = SchedulerBuilder::new(source, engines, repo.clone(), options).start().await?;

    let batch = scheduler.scan_all().await?;
    while repo.batch_counts(batch.batch_id)?.completed < batch.count {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for stat in repo.latest_stats()? {
        println!(
            "{}: {} bytes in {:?} files ({})",
            stat.volume, stat.usage.size_bytes, stat.usage.file_count, stat.method
        );
    }
    scheduler.stop().await;
    let _ = std::fs::remove_file(&database);
    Ok(())
}
