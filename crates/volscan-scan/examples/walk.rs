//! `walk [--dirs] [--threads N] [--readdir-order] [--widened] ROOT`: one native walk of
//! `ROOT`, as a plain `scan` or, with `--dirs`, as `scan_with_dirs`, printing
//! `{"size_bytes":N,"entries":E,"dirs":K}`. `cargo xtask bench-scan` runs it both ways on
//! the same tree to price the directory breakdown (its time and peak RSS)
//! without the rest of the server in the process, and with
//! `--readdir-order` (entries measured in listing order instead of inode
//! order), `--normal-priority` (without `Priority::GENTLE`) and `--widened`
//! (every worker and inode order from the start, as on a cold cache) for
//! `--experiments`.

use std::path::PathBuf;
use std::process::ExitCode;

use volscan_domain::{CancelToken, ScanContext, ScanEngine};
use volscan_scan::NativeEngine;

const USAGE: &str =
    "usage: walk [--dirs] [--threads N] [--readdir-order] [--normal-priority] [--widened] ROOT";

fn main() -> ExitCode {
    let mut dirs = false;
    let mut inode_order = true;
    let mut widened = false;
    let mut priority = volscan_scan::Priority::default();
    let mut threads = volscan_scan::NativeEngine::default().threads();
    let mut root = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dirs" => dirs = true,
            "--readdir-order" => inode_order = false,
            "--widened" => widened = true,
            "--normal-priority" => priority = volscan_scan::Priority::UNCHANGED,
            "--threads" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => threads = n,
                None => return fail("--threads takes a number"),
            },
            _ if root.is_none() => root = Some(PathBuf::from(arg)),
            other => return fail(&format!("unexpected argument {other:?}")),
        }
    }
    let Some(root) = root else { return fail("no ROOT") };
    let engine = NativeEngine::with_threads(threads)
        .inode_order(inode_order)
        .widened_from_start(widened)
        .priority(priority);
    let cancel = CancelToken::new();
    let context = ScanContext { cancel: &cancel, progress: &|_| {} };
    let result = if dirs {
        engine.scan_with_dirs(&root, &context).map(|(usage, dirs)| (usage, dirs.map(|d| d.len())))
    } else {
        engine.scan(&root, &context).map(|usage| (usage, None))
    };
    match result {
        Ok((usage, dirs)) => {
            let dirs = dirs.map_or_else(|| "null".to_owned(), |n| n.to_string());
            let entries = usage.entries().unwrap_or(0);
            println!(
                "{{\"size_bytes\":{},\"entries\":{entries},\"dirs\":{dirs}}}",
                usage.size_bytes
            );
            ExitCode::SUCCESS
        }
        Err(err) => fail(&volscan_domain::error_chain(&err)),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("walk: {message}\n{USAGE}");
    ExitCode::FAILURE
}
