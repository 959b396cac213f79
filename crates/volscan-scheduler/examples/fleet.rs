//! Many hosts on one PostgreSQL, simulated in one process for
//! `cargo xtask bench-fleet`: `fleet URL HOSTS VOLUMES DIR` starts HOSTS
//! real schedulers, `sim-000` onwards, each with its own host id on a
//! repository sharing one connection pool, its own work signal (a `LISTEN`
//! connection each, as a real host has), its heartbeat, two workers and a
//! static source of VOLUMES volumes (`vol-00` onwards) that all measure the
//! small directory DIR with the native engine. Periodic runs and retention
//! are off, so the hosts are idle until something is queued for them.
//!
//! It prints `ready` once every scheduler has started, then runs until its
//! standard input closes. Host leases are not taken: a lease is one idle
//! connection that sends nothing.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use volscan_domain::{EngineChain, HostId, HostInfo, Repository, ScanMethod, VolumeName};
use volscan_scheduler::{SchedulerBuilder, SchedulerOptions, StaticSource};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, hosts, volumes, dir] = args.as_slice() else {
        return Err("usage: fleet POSTGRES_URL HOSTS VOLUMES DIR".into());
    };
    let (hosts, volumes): (usize, usize) = (hosts.parse()?, volumes.parse()?);
    let dir = PathBuf::from(dir);
    let shared = volscan_repo::DieselRepository::connect(url, 16)?;
    shared.migrate()?;
    let mut running = Vec::new();
    for h in 0..hosts {
        let id: HostId = format!("sim-{h:03}").parse()?;
        let repo = shared.clone().for_host(id.clone());
        let signal = repo.work_signal().ok_or("the simulation needs PostgreSQL")?;
        let listed: Vec<(VolumeName, PathBuf)> = (0..volumes)
            .map(|v| Ok((VolumeName::new(format!("vol-{v:02}"))?, dir.clone())))
            .collect::<Result<_, volscan_domain::InvalidVolumeName>>()?;
        let engines = EngineChain::new(vec![volscan_scan::engine(
            ScanMethod::Native,
            &std::env::var_os("PATH").unwrap_or_default(),
        )]);
        let options =
            SchedulerOptions { periodic: false, retention: None, ..SchedulerOptions::default() };
        let info = HostInfo {
            id,
            name: "simulated".to_owned(),
            docker_engine_id: None,
            docker_version: None,
            volscan_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let repo: Arc<dyn Repository> = Arc::new(repo);
        let scheduler =
            SchedulerBuilder::new(Arc::new(StaticSource::new(listed)), engines, repo, options)
                .host(info)
                .work_signal(signal)
                .start()
                .await?;
        running.push(scheduler);
    }
    println!("ready");
    // Runs until the parent closes our standard input.
    let stdin = tokio::task::spawn_blocking(|| {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
    });
    stdin.await?;
    for scheduler in running {
        scheduler.stop().await;
    }
    Ok(())
}
