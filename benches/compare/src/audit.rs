//! The fsync audit: run one workload on one store in a child process under
//! `strace -f -y -e trace=fsync,fdatasync,msync,sync_file_range`, twice with different
//! operation counts, and count the sync calls per operation from the difference (which
//! cancels what opening and closing the store cost).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::bench::runs;
use crate::stores::Kind;
use crate::Result;

/// The system calls counted.
pub const SYNC_CALLS: [&str; 4] = ["fsync", "fdatasync", "msync", "sync_file_range"];

/// One (workload, store) audited.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    /// Workload.
    pub workload: String,
    /// Store.
    pub store: String,
    /// Operations in the small and the large run.
    pub ops: (u64, u64),
    /// Calls per system call in the large run (the whole child process).
    pub calls_large: BTreeMap<String, u64>,
    /// (large − small) / (ops large − ops small), per system call.
    pub per_op: BTreeMap<String, f64>,
    /// Files passed to fsync/fdatasync (digits replaced by `#`).
    pub files: Vec<String>,
    /// Summary.
    pub verdict: String,
}

/// True if `strace` can be run.
pub fn strace_available() -> bool {
    Command::new("strace").arg("-V").output().map(|o| o.status.success()).unwrap_or(false)
}

struct Trace {
    calls: BTreeMap<String, u64>,
    files: Vec<String>,
}

fn trace(exe: &Path, dir: &Path, workload: &str, kind: Kind, ops: u64, records: u64) -> Result<Trace> {
    let out = dir.join("strace.out");
    let child_dir = dir.join("child");
    let _ = std::fs::remove_dir_all(&child_dir);
    let status = Command::new("strace")
        .args(["-f", "-y", "-qq", "-e", &format!("trace={}", SYNC_CALLS.join(",")), "-o"])
        .arg(&out)
        .arg("--")
        .arg(exe)
        .args(["--only", workload, "--stores", kind.name(), "--no-audit", "--no-settle", "--quiet"])
        .args([
            "--durable-ops",
            &ops.to_string(),
            "--records",
            &records.to_string(),
            "--reopen-runs",
            "1",
            "--bulk-trials",
            "1",
            "--idle-before",
            "0",
        ])
        .arg("--dir")
        .arg(&child_dir)
        .stdout(std::process::Stdio::null())
        .status()?;
    let _ = std::fs::remove_dir_all(&child_dir);
    if !status.success() {
        return Err(format!("audit child failed for {workload} {}", kind.name()).into());
    }
    let text = std::fs::read_to_string(&out)?;
    let _ = std::fs::remove_file(&out);
    let mut calls = BTreeMap::new();
    let mut files = Vec::new();
    for line in text.lines() {
        // "PID name(args) = ret", or "PID <... name resumed>..." (not a new call).
        let Some((_, rest)) = line.split_once(' ') else { continue };
        let rest = rest.trim_start();
        if rest.starts_with("<...") {
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else { continue };
        if !SYNC_CALLS.contains(&name) {
            continue;
        }
        *calls.entry(name.to_string()).or_insert(0) += 1;
        if let Some(path) = args.split_once('<').and_then(|(_, p)| p.split_once('>')).map(|(p, _)| p) {
            let base = path.rsplit('/').next().unwrap_or(path);
            // Random temporary names (fjall's `.tmpXXXXXX`) collapse to one entry.
            let base = if base.starts_with(".tmp") { ".tmp*" } else { base };
            let mut norm = String::new();
            for ch in base.chars() {
                if ch.is_ascii_digit() {
                    if !norm.ends_with('#') {
                        norm.push('#');
                    }
                } else {
                    norm.push(ch);
                }
            }
            let entry = format!("{name}:{norm}");
            if !files.contains(&entry) {
                files.push(entry);
            }
        }
    }
    Ok(Trace { calls, files })
}

/// Audit every write workload on every store in `stores` that takes part in it.
pub fn run(exe: &Path, dir: &Path, stores: &[Kind], ops: u64, progress: bool) -> Result<Vec<AuditRow>> {
    std::fs::create_dir_all(dir)?;
    let mut rows = Vec::new();
    let (small, large) = (ops, 3 * ops);
    for (workload, family) in [("durable-b1", "durable"), ("durable-b64", "durable"), ("position", "position")] {
        for &kind in stores {
            if !runs(kind, family) {
                continue;
            }
            if progress {
                eprintln!("audit: {workload} {}", kind.name());
            }
            let a = trace(exe, dir, workload, kind, small, 1000)?;
            let b = trace(exe, dir, workload, kind, large, 1000)?;
            let mut per_op = BTreeMap::new();
            for (name, &n) in &b.calls {
                let m = a.calls.get(name).copied().unwrap_or(0);
                per_op.insert(name.clone(), ((n as f64 - m as f64) / (large - small) as f64).max(0.0));
            }
            let total: f64 = per_op.values().sum::<f64>().max(0.0);
            let verdict = if total >= 0.95 {
                format!("syncs every operation ({total:.2} calls/op)")
            } else {
                format!("does NOT sync every operation ({total:.2} calls/op)")
            };
            rows.push(AuditRow {
                workload: workload.into(),
                store: kind.name().into(),
                ops: (small, large),
                calls_large: b.calls,
                per_op,
                files: b.files,
                verdict,
            });
        }
    }
    // Bulk: one load of `records` 1 KiB records; the whole run's calls (open, load, final
    // sync, close).
    let records = 4 * 20_000;
    for &kind in stores {
        if !runs(kind, "bulk") {
            continue;
        }
        if progress {
            eprintln!("audit: bulk-1KiB-b1024 {}", kind.name());
        }
        let t = trace(exe, dir, "bulk-1KiB-b1024", kind, 1, records)?;
        let n: u64 = t.calls.values().sum();
        let verdict = if n == 0 {
            "NO sync at all".to_string()
        } else if t.files.is_empty() {
            format!("{n} calls, msync only")
        } else {
            format!("{n} sync calls for the whole load")
        };
        rows.push(AuditRow {
            workload: "bulk-1KiB-b1024".into(),
            store: kind.name().into(),
            ops: (records / 4, records / 4),
            calls_large: t.calls,
            per_op: BTreeMap::new(),
            files: t.files,
            verdict,
        });
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(rows)
}
