//! Rendering: terminal table, Markdown table, JSON.

use serde::Serialize;

use crate::audit::AuditRow;
use crate::bench::{Check, Config, Row};
use crate::machine::Machine;

/// Everything written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where and when.
    pub machine: Machine,
    /// What was run.
    pub config: Config,
    /// Measurements.
    pub rows: Vec<Row>,
    /// Correctness checks (counts and checksums per store).
    pub checks: Vec<Check>,
    /// fsync audit (strace), if run.
    pub audit: Vec<AuditRow>,
    /// `/proc/loadavg` when the measurements ended.
    pub load_at_end: String,
}

/// `1234567.0` → `1.23 M`.
pub fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.1} ")
    }
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

/// The cells of one row: workload, store, records, result, MB/s, latency, durable, ratio, note.
pub fn cells(r: &Row) -> [String; 9] {
    let result = match r.unit.as_str() {
        "records/s" => format!("{}rec/s", si(r.value)),
        "ms" => format!("{:.2} ms", r.value),
        "bytes" => format!("{:.1} MB", r.value / 1e6),
        u => format!("{} {u}", r.value),
    };
    let mbs = r.mb_per_s().map(|m| format!("{m:.1}")).unwrap_or_default();
    let lat = match (r.p50_us, r.p99_us) {
        (Some(a), Some(b)) => format!("{} / {}", us(a), us(b)),
        _ => String::new(),
    };
    let durable = match r.durable {
        Some(true) => "yes".to_string(),
        Some(false) => "NO".to_string(),
        None => String::new(),
    };
    let ratio = match r.tidelog_ratio {
        // A ratio against a store that did not reach stable storage is not a like-for-like
        // comparison: shown in parentheses.
        Some(x) if r.durable == Some(false) => format!("({x:.2}×)"),
        Some(x) => format!("{x:.2}×"),
        None if r.store == "tidelog" => "(ref)".into(),
        None => String::new(),
    };
    [r.workload.clone(), r.store.clone(), r.records.to_string(), result, mbs, lat, durable, ratio, r.note.clone()]
}

const HEADERS: [&str; 9] =
    ["workload", "store", "records", "result", "MB/s", "p50 / p99", "durable", "tidelog ×", "notes"];

/// Fixed-width table for the terminal.
pub fn table(rows: &[Row]) -> String {
    let all: Vec<[String; 9]> = rows.iter().map(cells).collect();
    let mut width = HEADERS.map(|h| h.chars().count());
    for c in &all {
        for (w, s) in width.iter_mut().zip(c.iter()).take(8) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        for (i, s) in cells.iter().enumerate() {
            let pad = if i < 8 { width[i].saturating_sub(s.chars().count()) } else { 0 };
            // Numbers right-aligned, text left-aligned.
            if (2..=5).contains(&i) || i == 7 {
                out.push_str(&" ".repeat(pad));
                out.push_str(s);
            } else {
                out.push_str(s);
                out.push_str(&" ".repeat(pad));
            }
            out.push_str("  ");
        }
        out.push('\n');
    };
    line(&HEADERS.map(String::from), &mut out);
    let mut prev = String::new();
    for (r, c) in rows.iter().zip(&all) {
        if !prev.is_empty() && prev != r.workload {
            out.push('\n');
        }
        prev = r.workload.clone();
        line(c, &mut out);
    }
    out
}

/// Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        ["---|", "---|", "---:|", "---:|", "---:|", "---:|", "---|", "---:|", "---|"].concat()
    ));
    for r in rows {
        let c = cells(r);
        let bold = r.store == "tidelog";
        let c: Vec<String> = c
            .iter()
            .enumerate()
            .map(|(i, s)| if bold && i == 3 { format!("**{s}**") } else { s.replace('|', "\\|") })
            .collect();
        out.push_str(&format!("| {} |\n", c.join(" | ")));
    }
    out
}

/// The stores of the summary's ratio columns: the two physical baselines, SQLite (WAL, FULL)
/// and fjall.
pub const SUMMARY_STORES: [(&str, &str); 4] =
    [("file", "buffered file"), ("mmap", "bare mmap"), ("sqlite-full", "SQLite (WAL, FULL)"), ("fjall", "fjall")];

/// One line per workload: tidelog's result and tidelog ÷ each of [`SUMMARY_STORES`] ("times
/// better": above 1 tidelog is faster or smaller). In the disk workloads the bytes written
/// (`(used)` rows) are compared where a store preallocates.
pub fn summary(rows: &[Row]) -> Vec<[String; 6]> {
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    let find = |w: &str, store: &str| {
        let used = format!("{store} (used)");
        let in_w = |s: &str| rows.iter().find(|r| r.workload == w && r.store == s);
        in_w(&used).or_else(|| in_w(store))
    };
    workloads
        .into_iter()
        .filter_map(|w| {
            let t = find(w, "tidelog")?;
            let mut line: [String; 6] = Default::default();
            line[0] = w.to_string();
            line[1] = cells(t)[3].clone();
            for (i, (store, _)) in SUMMARY_STORES.iter().enumerate() {
                line[2 + i] = find(w, store).map(|r| cells(r)[7].clone()).unwrap_or_default();
            }
            Some(line)
        })
        .collect()
}

fn summary_headers() -> [String; 6] {
    let mut h: [String; 6] = Default::default();
    h[0] = "workload".into();
    h[1] = "tidelog".into();
    for (i, (_, label)) in SUMMARY_STORES.iter().enumerate() {
        h[2 + i] = format!("tidelog ÷ {label}");
    }
    h
}

/// The summary as a fixed-width table for the terminal.
pub fn summary_table(rows: &[Row]) -> String {
    let lines = summary(rows);
    let head = summary_headers();
    let mut width = head.clone().map(|h| h.chars().count());
    for l in &lines {
        for (w, s) in width.iter_mut().zip(l.iter()) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    for l in std::iter::once(&head).chain(&lines) {
        for (i, s) in l.iter().enumerate() {
            let pad = " ".repeat(width[i].saturating_sub(s.chars().count()));
            if i == 0 {
                out.push_str(&format!("{s}{pad}  "));
            } else {
                out.push_str(&format!("{pad}{s}  "));
            }
        }
        out.push('\n');
    }
    out
}

/// The summary as a Markdown table.
pub fn summary_markdown(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n|---|{}\n", summary_headers().join(" | "), "---:|".repeat(5));
    for l in summary(rows) {
        out.push_str(&format!("| {} |\n", l.join(" | ")));
    }
    out
}

/// What the ratio columns mean, under the tables.
pub const RATIO_LEGEND: &str =
    "tidelog ÷ X: how many times better tidelog is than X (records/s: tidelog ÷ X; times and \
sizes: X ÷ tidelog); above 1 tidelog is faster or smaller. In parentheses: X did not reach stable storage, not \
like-for-like.";

/// Markdown table of the fsync audit.
pub fn audit_markdown(rows: &[AuditRow]) -> String {
    let mut out = String::from(
        "| workload | store | sync calls per operation | calls in the whole run | files synced | verdict |\n",
    );
    out.push_str("|---|---|---|---|---|---|\n");
    for a in rows {
        let per_op = a.per_op.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>().join(", ");
        let total = a.calls_large.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            a.workload,
            a.store,
            if per_op.is_empty() { "0".into() } else { per_op },
            if total.is_empty() { "0".into() } else { total },
            a.files.join(", "),
            a.verdict
        ));
    }
    out
}

/// The header line describing the run's settings that shape the numbers.
pub fn run_line(c: &Config) -> String {
    format!(
        "run: {} records of 100 B (1 KiB: /4, 4 KiB: /5, 16 KiB: /16); bulk trials per chunk size: {}; idle before each bulk load: {} s; durable operations: {}\n",
        c.records, c.bulk_trials, c.idle_before, c.durable_ops
    )
}

/// The header lines describing the machine.
pub fn machine_lines(m: &Machine) -> String {
    let dirty =
        if m.git_dirty.is_empty() { "clean".to_string() } else { format!("modified: {}", m.git_dirty.join(", ")) };
    format!(
        "date: {}\ncpu: {} ({} cores)\nmemory: {}\nkernel: {}\nfile system: {}\ntidelog: {} ({dirty})\nsqlite: {}; {}\nload average at start: {}\n",
        m.date, m.cpu, m.cores, m.memory, m.kernel, m.filesystem, m.git_rev, m.sqlite, m.crates, m.load_at_start
    )
}
