//! `cargo xtask bench-cycle [--runs N] [--cold]`: one full cycle of a
//! realistic host through the real scheduler, with each method.
//!
//! The host (generated once under `target/bench/host`) has 200 volumes:
//! 196 small ones of 10 to 1,000 files (sizes 0 to 16 KiB, a few
//! subdirectories each) and 4 large ones made by `mktree.py` (100k, 100k,
//! 100k and 300k entries). Each run is the `cycle` example of
//! volscan-scheduler (real scheduler, two workers, SQLite) with one method;
//! methods are interleaved and, with `--cold`, the page cache is dropped
//! before every run. The table gives the median wall time until every run
//! is final and its ratio to diskus measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask bench-cycle [--runs N] [--cold]";

const SMALL: usize = 196;
const LARGE: [u32; 4] = [100_000, 100_000, 100_000, 300_000];

/// A small deterministic generator (xorshift), so the host is the same every time.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn generate(host: &Path, shared: &Path) -> anyhow::Result<()> {
    let done = host.with_extension("done");
    if done.exists() {
        return Ok(());
    }
    if host.exists() {
        std::fs::remove_dir_all(host)?;
    }
    std::fs::create_dir_all(host)?;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for v in 0..SMALL {
        let volume = host.join(format!("small{v:03}"));
        let files = 10 + rng.below(991);
        let dirs = 1 + rng.below(8);
        for d in 0..dirs {
            std::fs::create_dir_all(volume.join(format!("d{d}")))?;
        }
        for f in 0..files {
            let size = rng.below(16 * 1024) as usize;
            let dir = volume.join(format!("d{}", rng.below(dirs)));
            std::fs::write(dir.join(format!("f{f:04}")), vec![b'x'; size])?;
        }
    }
    for (i, entries) in LARGE.iter().enumerate() {
        let volume = host.join(format!("large{i}"));
        let mut mktree = Command::new("python3");
        mktree.arg(shared.join("mktree.py")).arg(&volume).args([
            "--files",
            &entries.to_string(),
            "--fanout",
            "10",
            "--depth",
            "3",
            "--seed",
            &(i + 10).to_string(),
        ]);
        crate::run(&format!("generate large volume {i} ({entries} files)"), mktree)?;
        // mktree writes its manifest beside the tree; keep it out of the host.
        let manifest = host.join(format!("large{i}.manifest.json"));
        let _ = std::fs::remove_file(manifest);
    }
    std::fs::write(&done, b"")?;
    Ok(())
}

fn drop_caches() -> anyhow::Result<()> {
    let status = Command::new("sync").status()?;
    anyhow::ensure!(status.success(), "sync failed");
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n")
        .context("--cold needs root to drop the page cache")
}

/// One cycle with `method`; its wall time in seconds.
fn cycle(program: &Path, method: &str, host: &Path) -> anyhow::Result<f64> {
    let output = Command::new(program)
        .args([method.as_ref(), host.as_os_str()])
        .output()
        .with_context(|| format!("failed to run the cycle with {method}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "the cycle with {method} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let field = |name: &str| -> Option<&str> {
        text.split(&format!("\"{name}\":")).nth(1)?.split([',', '}']).next()
    };
    let (volumes, completed) = (field("volumes"), field("completed"));
    anyhow::ensure!(volumes == completed, "not every run completed with {method}: {text}");
    field("wall_s").and_then(|s| s.parse().ok()).with_context(|| format!("no wall_s in {text}"))
}

pub fn bench_cycle(args: &[String]) -> anyhow::Result<()> {
    let (mut runs, mut cold) = (3, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().context(USAGE)?.parse().context(USAGE)?,
            "--cold" => cold = true,
            _ => bail!("{USAGE}"),
        }
    }
    let root = crate::root();
    let host: PathBuf = root.join("target/bench/host");
    generate(&host, &root.join("../shared/bench"))?;
    let mut build = crate::cargo();
    build.args(["build", "--release", "--quiet", "-p", "volscan-scheduler", "--example", "cycle"]);
    crate::run("build the cycle example", build)?;
    let program = root.join("target/release/examples/cycle");
    let methods = ["diskus", "native", "du"];
    let mut walls: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    if !cold {
        for method in methods {
            cycle(&program, method, &host)?;
        }
    }
    for run in 0..runs {
        for (method, walls) in methods.iter().zip(&mut walls) {
            if cold {
                drop_caches()?;
            }
            let wall = cycle(&program, method, &host)?;
            eprintln!("run {run}: {method} {wall:.3} s");
            walls.push(wall);
        }
    }
    let median = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let diskus = median(&walls[0]);
    let cache = if cold { "cold" } else { "warm" };
    println!(
        "\nOne host cycle ({} volumes: {SMALL} small, 4 large), {cache} cache, median of {runs}",
        SMALL + LARGE.len()
    );
    println!("| method | median wall (s) | ratio to diskus |");
    println!("| --- | --- | --- |");
    for (method, walls) in methods.iter().zip(&walls) {
        let wall = median(walls);
        println!("| {method} | {wall:.3} | {:.2} |", wall / diskus);
    }
    Ok(())
}
