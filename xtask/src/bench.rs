//! `cargo xtask bench-scan`: wall time and peak memory of the scan methods on
//! generated trees, as ratios to diskus measured in the same run.
//!
//! Trees come from `../shared/bench/mktree.py` and are generated once under
//! `target/bench/trees` (a `.done` marker says a tree is complete). Every
//! candidate runs as its own process: the release `volscan-server scan` for
//! the native method, `diskus`, `du -s -x -B1`, and `floor.c` (one `fstatat`
//! per entry: the syscall floor). Runs are interleaved so that drift of the
//! machine hits every candidate alike; the table shows medians.
//!
//! The directory breakdown (`scan_with_dirs`) is priced on its own: the
//! `walk` example of volscan-scan runs the native walk with and without it on
//! the same tree in the same run, and a second table gives both wall times,
//! their ratio and both peak RSS (goal: at most 3 % and 1 MiB more).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const USAGE: &str = "\
usage: cargo xtask bench-scan [--runs N] [--cold] [--trees 100k,1m] [--native-threads 2,4] [--experiments]

  --runs N             measured runs per candidate and tree (default 5)
  --cold               drop the page cache before every run (root only)
  --trees LIST         which trees: 100k (about 100,000 entries), 1m (about 1,000,000)
  --native-threads L   thread counts to measure the native method with (default 2,4)
  --experiments        only diskus and the native walk in listing order, in inode order, and
                       in inode order at the default priority, at each thread count
                       (docs/performance.md)
  --scaling            only the native walk (default threads), for its wall time and peak RSS
                       per tree; more trees: 10k, 3m, flat1m (one directory of 1,000,000 empty
                       files), deep10k (a chain of 10,000 directories)
";

struct Options {
    runs: usize,
    cold: bool,
    trees: Vec<String>,
    native_threads: Vec<u32>,
    experiments: bool,
    scaling: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        runs: 5,
        cold: false,
        trees: vec!["100k".into(), "1m".into()],
        native_threads: vec![2, 4],
        experiments: false,
        scaling: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--runs" => options.runs = value()?.parse().context("--runs takes a number")?,
            "--cold" => options.cold = true,
            "--experiments" => options.experiments = true,
            "--scaling" => options.scaling = true,
            "--trees" => options.trees = value()?.split(',').map(str::to_owned).collect(),
            "--native-threads" => {
                options.native_threads = value()?
                    .split(',')
                    .map(|n| n.parse().context("--native-threads takes numbers"))
                    .collect::<anyhow::Result<_>>()?;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n{USAGE}"),
        }
    }
    anyhow::ensure!(options.runs > 0, "--runs must be at least 1");
    Ok(options)
}

/// mktree.py arguments for each tree size.
fn tree_args(size: &str) -> anyhow::Result<&'static [&'static str]> {
    Ok(match size {
        "10k" => &["--files", "10000", "--fanout", "10", "--depth", "2", "--seed", "1"],
        "100k" => &["--files", "100000", "--fanout", "10", "--depth", "3", "--seed", "1"],
        "1m" => &["--files", "1000000", "--fanout", "10", "--depth", "4", "--seed", "1"],
        "3m" => &["--files", "3000000", "--fanout", "10", "--depth", "4", "--seed", "1"],
        other => bail!("unknown tree {other:?}: expected 10k, 100k, 1m, 3m, flat1m or deep10k"),
    })
}

/// One thing to measure.
struct Candidate {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
}

/// One run's result.
struct Sample {
    wall: Duration,
    max_rss_kib: u64,
    output: String,
}

pub fn bench_scan(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let root = crate::root();
    let shared = root.join("../shared/bench");
    let work = root.join("target/bench");
    std::fs::create_dir_all(work.join("trees"))?;

    let mut build = crate::cargo();
    build.args(["build", "--release", "--quiet", "-p", "volscan-server"]);
    crate::run("build the release volscan-server", build)?;
    let floor = work.join("floor");
    let mut cc = Command::new("cc");
    cc.args(["-O2", "-pthread", "-o"]).arg(&floor).arg(shared.join("floor.c"));
    crate::run("build floor.c", cc)?;
    let mut build = crate::cargo();
    build.args(["build", "--release", "--quiet", "-p", "volscan-scan", "--example", "walk"]);
    crate::run("build the release walk example", build)?;
    let diskus = which("diskus").context("diskus is not on PATH (cargo install diskus)")?;
    let release = target_dir(&root).join("release");
    let server = release.join("volscan-server");
    let walk = release.join("examples/walk");

    let mut scaled = Vec::new();
    for size in &options.trees {
        let tree = ensure_tree(&shared, &work.join("trees"), size)?;
        if options.scaling {
            let args = vec![OsString::from(tree.clone())];
            let candidates = vec![Candidate { name: "walk".into(), program: walk.clone(), args }];
            let summaries = measure_scaling(size, &candidates, &options)?;
            scaled.extend(summaries);
            continue;
        }
        if options.experiments {
            let mut candidates = vec![Candidate {
                name: "diskus".into(),
                program: diskus.clone(),
                args: vec![tree.clone().into()],
            }];
            for threads in &options.native_threads {
                let variants: [(&str, &[&str]); 3] = [
                    ("listing order, normal priority", &["--readdir-order", "--normal-priority"]),
                    ("inode order, normal priority", &["--normal-priority"]),
                    ("inode order, nice 10 + idle I/O (default)", &[]),
                ];
                for (label, extra) in variants {
                    let mut args: Vec<OsString> =
                        vec!["--threads".into(), threads.to_string().into()];
                    args.extend(extra.iter().map(OsString::from));
                    args.push(tree.clone().into());
                    let name = format!("walk -j {threads}, {label}");
                    candidates.push(Candidate { name, program: walk.clone(), args });
                }
            }
            measure_tree(size, &candidates, &options)?;
            continue;
        }
        let mut candidates = vec![
            Candidate {
                name: "diskus".into(),
                program: diskus.clone(),
                args: vec![tree.clone().into()],
            },
            Candidate {
                name: "du".into(),
                program: "du".into(),
                args: vec![
                    "-s".into(),
                    "-x".into(),
                    "-B1".into(),
                    "--".into(),
                    tree.clone().into(),
                ],
            },
            Candidate {
                name: "floor -j 2".into(),
                program: floor.clone(),
                args: vec!["-j".into(), "2".into(), tree.clone().into()],
            },
        ];
        for threads in &options.native_threads {
            candidates.push(Candidate {
                name: format!("native -j {threads}"),
                program: server.clone(),
                args: vec![
                    "scan".into(),
                    tree.clone().into(),
                    "--method".into(),
                    "native".into(),
                    "--threads".into(),
                    threads.to_string().into(),
                    "--json".into(),
                ],
            });
        }
        // The breakdown's price: pairs of the same walk without and with it.
        let first_walk = candidates.len();
        for threads in &options.native_threads {
            for dirs in [false, true] {
                let mut args: Vec<OsString> = vec!["--threads".into(), threads.to_string().into()];
                if dirs {
                    args.push("--dirs".into());
                }
                args.push(tree.clone().into());
                let name = format!("walk -j {threads}{}", if dirs { " --dirs" } else { "" });
                candidates.push(Candidate { name, program: walk.clone(), args });
            }
        }
        let summaries = measure_tree(size, &candidates, &options)?;
        print_breakdown_cost(size, &summaries[first_walk..]);
    }
    if options.scaling {
        println!(
            "\nThe native walk's cost by tree, {} cache, median of {} runs",
            cache_name(&options),
            options.runs
        );
        println!("| tree | entries | median wall (s) | ns per entry | peak RSS (MiB) |");
        println!("| --- | --- | --- | --- | --- |");
        for (tree, entries, summary) in &scaled {
            println!(
                "| {tree} | {entries} | {:.3} | {:.0} | {:.1} |",
                summary.median,
                summary.median * 1e9 / (*entries).max(1) as f64,
                summary.max_rss_kib as f64 / 1024.0
            );
        }
    }
    Ok(())
}

fn cache_name(options: &Options) -> &'static str {
    if options.cold { "cold" } else { "warm" }
}

/// The native walk alone on one tree: its summary and the entries it counted.
fn measure_scaling(
    size: &str,
    candidates: &[Candidate],
    options: &Options,
) -> anyhow::Result<Vec<(String, u64, Summary)>> {
    eprintln!("\n==> {size} tree, {} page cache, {} runs", cache_name(options), options.runs);
    if !options.cold {
        run_once(&candidates[0])?;
    }
    let mut samples = Vec::new();
    for _ in 0..options.runs {
        if options.cold {
            drop_caches()?;
        }
        samples.push(run_once(&candidates[0])?);
    }
    let entries = samples
        .last()
        .and_then(|s| s.output.split("\"entries\":").nth(1))
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let median = median(samples.iter().map(|s| s.wall.as_secs_f64()).collect());
    let max_rss_kib = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
    Ok(vec![(size.to_owned(), entries, Summary { name: "walk".into(), median, max_rss_kib })])
}

/// Where cargo puts its builds: `CARGO_TARGET_DIR`, else `target` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// The second table: each walk without the breakdown, then with it.
fn print_breakdown_cost(size: &str, pairs: &[Summary]) {
    println!("\n{size} tree, the directory breakdown's cost (goal: at most +3 % and +1 MiB)");
    println!(
        "| walk | wall without (s) | wall with (s) | ratio | RSS without (MiB) | RSS with (MiB) | extra RSS (MiB) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for pair in pairs.chunks_exact(2) {
        let (without, with) = (&pair[0], &pair[1]);
        let mib = |kib: u64| kib as f64 / 1024.0;
        let extra = (with.max_rss_kib as f64 - without.max_rss_kib as f64) / 1024.0;
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {extra:+.2} |",
            without.name,
            without.median,
            with.median,
            with.median / without.median,
            mib(without.max_rss_kib),
            mib(with.max_rss_kib),
        );
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

fn ensure_tree(shared: &Path, trees: &Path, size: &str) -> anyhow::Result<PathBuf> {
    let tree = trees.join(format!("t{size}"));
    let done = trees.join(format!("t{size}.done"));
    if done.exists() {
        return Ok(tree);
    }
    if tree.exists() {
        std::fs::remove_dir_all(&tree)
            .with_context(|| format!("failed to remove {}", tree.display()))?;
    }
    match size {
        "flat1m" => {
            // One directory of 1,000,000 empty files.
            std::fs::create_dir_all(&tree)?;
            for i in 0..1_000_000 {
                std::fs::File::create(tree.join(format!("f{i:07}")))?;
            }
        }
        "deep10k" => {
            // A chain of 10,000 directories, each with one small file, made
            // relative to the previous one (a path this long cannot be used whole).
            use std::os::fd::AsFd;
            std::fs::create_dir_all(&tree)?;
            let mut dir = std::fs::File::open(&tree)?;
            for i in 0..10_000 {
                let fd = dir.as_fd();
                rustix_like_mkdirat(fd, "d")?;
                let file = openat(fd, "f", true)?;
                drop(file);
                dir = openat(fd, "d", false)?;
                let _ = i;
            }
        }
        _ => {
            let mut mktree = Command::new("python3");
            mktree.arg(shared.join("mktree.py")).arg(&tree).args(tree_args(size)?);
            crate::run(&format!("generate the {size} tree (once)"), mktree)?;
        }
    }
    std::fs::write(&done, b"")?;
    Ok(tree)
}

/// `mkdirat(dir, name, 0755)`.
fn rustix_like_mkdirat(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let name = std::ffi::CString::new(name)?;
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string.
    let result = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) };
    anyhow::ensure!(result == 0, "mkdirat: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Opens `name` in `dir`: a new small file, or the directory.
fn openat(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
    create_file: bool,
) -> anyhow::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let name = std::ffi::CString::new(name)?;
    let flags = if create_file {
        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC
    } else {
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC
    };
    // SAFETY: `dir` is an open descriptor and `name` a NUL-terminated string.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o644) };
    anyhow::ensure!(fd >= 0, "openat: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    if create_file {
        std::io::Write::write_all(&mut &file, b"deep")?;
    }
    Ok(file)
}

fn drop_caches() -> anyhow::Result<()> {
    let status = Command::new("sync").status()?;
    anyhow::ensure!(status.success(), "sync failed");
    std::fs::write("/proc/sys/vm/drop_caches", b"3\n")
        .context("--cold needs root to drop the page cache")
}

/// Runs one candidate, returning its wall time and peak RSS (from `wait4`).
fn run_once(candidate: &Candidate) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let child = Command::new(&candidate.program)
        .args(&candidate.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("failed to start {}", candidate.name))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.context("no stdout")?;
    let mut output = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut output)?;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills; `pid` is our own child,
    // which `Child` has not waited for, so it is reaped exactly once here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    anyhow::ensure!(waited == pid, "wait4 failed for {}", candidate.name);
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} failed",
        candidate.name
    );
    Ok(Sample { wall, max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0), output })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The size a candidate printed: diskus and du print it first; floor prints
/// `bytes=`; the native scan prints JSON with `size_bytes`.
fn reported_size(output: &str) -> String {
    if let Some(rest) = output.split("\"size_bytes\":").nth(1) {
        return rest.chars().take_while(char::is_ascii_digit).collect();
    }
    if let Some(rest) = output.split(" bytes=").nth(1) {
        return rest.chars().take_while(char::is_ascii_digit).collect();
    }
    output.split_whitespace().next().unwrap_or("?").to_owned()
}

/// One candidate's result over all runs.
struct Summary {
    name: String,
    /// Median wall time, seconds.
    median: f64,
    /// Highest peak RSS of any run.
    max_rss_kib: u64,
}

fn measure_tree(
    size: &str,
    candidates: &[Candidate],
    options: &Options,
) -> anyhow::Result<Vec<Summary>> {
    let cache = if options.cold { "cold" } else { "warm" };
    eprintln!("\n==> {size} tree, {cache} page cache, {} runs each", options.runs);
    if !options.cold {
        for candidate in candidates {
            run_once(candidate)?;
        }
    }
    let mut samples: Vec<Vec<Sample>> = candidates.iter().map(|_| Vec::new()).collect();
    for _ in 0..options.runs {
        for (candidate, samples) in candidates.iter().zip(&mut samples) {
            if options.cold {
                drop_caches()?;
            }
            samples.push(run_once(candidate)?);
        }
    }
    let medians: Vec<f64> =
        samples.iter().map(|s| median(s.iter().map(|s| s.wall.as_secs_f64()).collect())).collect();
    let diskus = medians[0];
    println!("\n{size} tree, {cache} cache, median of {} runs", options.runs);
    println!("| method | median wall (s) | ratio to diskus | peak RSS (MiB) | size reported |");
    println!("| --- | --- | --- | --- | --- |");
    let mut summaries = Vec::new();
    for ((candidate, samples), median) in candidates.iter().zip(&samples).zip(&medians) {
        let max_rss_kib = samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
        let rss = max_rss_kib as f64 / 1024.0;
        let reported = samples.last().map(|s| reported_size(&s.output)).unwrap_or_default();
        println!(
            "| {} | {median:.3} | {:.2} | {rss:.1} | {reported} |",
            candidate.name,
            median / diskus
        );
        summaries.push(Summary { name: candidate.name.clone(), median: *median, max_rss_kib });
    }
    Ok(summaries)
}
