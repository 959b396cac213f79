//! `volscan-server scan PATH`: a one-shot scan printing the `Usage`, in human
//! units or as JSON with the field names of SPEC §1.
//!
//! SIGINT and SIGTERM cancel the scan through its `CancelToken`, so an
//! external tool running in its own process group is killed too.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use volscan_domain::{CancelReason, CancelToken, EngineChain, ScanContext, ScanMethod, Usage};

/// Scans `root` with the first engine of `chain` available for it.
pub fn run(root: &Path, chain: EngineChain, json: bool) -> anyhow::Result<()> {
    let engine = chain.select(root).with_context(|| format!("cannot scan {}", root.display()))?;
    let cancel = cancel_on_signals()?;
    let show_progress = !json && std::io::stderr().is_terminal();
    let progress = move |entries: u64| {
        if show_progress {
            eprint!("\rscanned {entries} entries…");
        }
    };
    let started = Instant::now();
    let result = engine.scan(root, &ScanContext { cancel: &cancel, progress: &progress });
    if show_progress {
        eprint!("\r\x1b[K");
    }
    let usage = result
        .with_context(|| format!("failed to scan {} with {}", root.display(), engine.method()))?;
    let elapsed = started.elapsed();
    if json {
        println!("{}", to_json(&usage, engine.method(), elapsed));
    } else {
        print!("{}", to_text(root, &usage, engine.method(), elapsed));
    }
    Ok(())
}

/// A token that SIGINT or SIGTERM cancels.
fn cancel_on_signals() -> anyhow::Result<CancelToken> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .context("failed to install a signal handler")?;
    }
    let cancel = CancelToken::new();
    let watched = cancel.clone();
    std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
        watched.cancel(CancelReason::User);
    });
    Ok(cancel)
}

fn to_json(usage: &Usage, method: ScanMethod, elapsed: Duration) -> serde_json::Value {
    serde_json::json!({
        "size_bytes": usage.size_bytes,
        "apparent_bytes": usage.apparent_bytes,
        "file_count": usage.file_count,
        "dir_count": usage.dir_count,
        "error_count": usage.error_count,
        "scan_method": method.as_str(),
        "duration_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    })
}

fn to_text(root: &Path, usage: &Usage, method: ScanMethod, elapsed: Duration) -> String {
    let unknown = || "unknown (this method does not measure it)".to_owned();
    let mut text = format!("{}\n", root.display());
    text += &format!("  size:      {}\n", human_bytes(usage.size_bytes));
    text += &format!(
        "  apparent:  {}\n",
        usage.apparent_bytes.map(human_bytes).unwrap_or_else(unknown)
    );
    text += &format!(
        "  files:     {}\n",
        usage.file_count.map(|n| n.to_string()).unwrap_or_else(unknown)
    );
    text += &format!(
        "  dirs:      {}\n",
        usage.dir_count.map(|n| n.to_string()).unwrap_or_else(unknown)
    );
    text += &format!("  errors:    {}\n", usage.error_count);
    text += &format!("  method:    {method}, {:.2} s\n", elapsed.as_secs_f64());
    if usage.is_partial() {
        text += "  partial: some entries could not be read, so the totals are a lower bound\n";
    }
    text
}

/// `1536` → `1.5 KiB (1536 bytes)`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_shown_in_binary_units_with_the_exact_count() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB (5368709120 bytes)");
    }
}
