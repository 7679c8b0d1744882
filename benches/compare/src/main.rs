//! `tidelog-compare`: tidelog against the physical baselines (a buffered file, a bare memory
//! map), SQLite, fjall and commitlog, in one run.
//!
//! ```text
//! cargo run --release -p tidelog-compare -- --json target/compare.json --md target/compare.md --svg docs/img
//! ```

use std::path::PathBuf;

use clap::Parser;

use tidelog_compare::bench::{self, workload_names, Config};
use tidelog_compare::machine::Machine;
use tidelog_compare::report::{self, Report};
use tidelog_compare::stores::Kind;
use tidelog_compare::{audit, svg, Result};

#[derive(Parser, Debug)]
#[command(
    about = "Side-by-side benchmark: tidelog vs a buffered file, a bare mmap, SQLite (WAL, FULL/NORMAL), fjall and commitlog"
)]
struct Cli {
    /// Records of the 100 B bulk dataset (the 1 KiB, 4 KiB and 16 KiB datasets get 1/4, 1/5 and
    /// 1/16).
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Durable operations per durable workload (and steps of the position workload).
    #[arg(long, default_value_t = 2_000)]
    durable_ops: u64,
    /// Random reads per dataset (default: one per record).
    #[arg(long)]
    reads: Option<u64>,
    /// Reopen measurements; the median is reported.
    #[arg(long, default_value_t = 5)]
    reopen_runs: usize,
    /// Bulk loads per dataset, chunk size and store, interleaved over the stores; the median is
    /// reported.
    #[arg(long, default_value_t = 5)]
    bulk_trials: usize,
    /// Sleep this many seconds (untimed, store open) right before each bulk load, so that each
    /// load starts after the machine has been idle that long. 0 = back to back.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    idle_before: f64,
    /// tidelog's `Options::index_interval_bytes` (default: tidelog's default, 4096).
    #[arg(long)]
    tidelog_index_interval: Option<u32>,
    /// Tiny run (20,000 records, 100 durable operations, one bulk trial, short audit).
    #[arg(long)]
    quick: bool,
    /// Only these workloads (comma-separated names or prefixes, e.g. `bulk,reopen`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Only these stores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    stores: Vec<String>,
    /// Directory for the stores (default: a fresh temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the results as a Markdown table here.
    #[arg(long)]
    md: Option<PathBuf>,
    /// Write SVG charts (compare-*.svg) into this directory.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Skip the fsync audit (otherwise run when `strace` is installed).
    #[arg(long)]
    no_audit: bool,
    /// Operations in the audit's small run (the large run does three times as many).
    #[arg(long, default_value_t = 100)]
    audit_ops: u64,
    /// Do not run `sync` between stores.
    #[arg(long, hide = true)]
    no_settle: bool,
    /// No progress output and no table (for the audit's child runs).
    #[arg(long, hide = true)]
    quiet: bool,
    /// List the workloads and stores, then exit.
    #[arg(long)]
    list: bool,
    /// Measure nothing: redraw the charts (`--svg`) from the rows of a JSON file written by
    /// `--json`.
    #[arg(long)]
    charts_from: Option<PathBuf>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    if cli.list {
        println!("workloads: {}", workload_names().join(", "));
        println!("stores: {}", Kind::ALL.map(Kind::name).join(", "));
        return Ok(());
    }
    if let Some(path) = &cli.charts_from {
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let rows: Vec<tidelog_compare::bench::Row> = serde_json::from_value(json["rows"].clone())?;
        let dir = cli.svg.as_ref().ok_or("--charts-from needs --svg DIR")?;
        for f in svg::write_all(&rows, dir)? {
            eprintln!("wrote {f}");
        }
        return Ok(());
    }
    let stores = if cli.stores.is_empty() {
        Kind::ALL.to_vec()
    } else {
        cli.stores
            .iter()
            .map(|s| Kind::parse(s).ok_or_else(|| format!("unknown store {s}")))
            .collect::<std::result::Result<_, _>>()?
    };
    for o in &cli.only {
        if !workload_names().iter().any(|w| w == o || w.starts_with(o.as_str())) {
            return Err(format!("unknown workload {o} (see --list)").into());
        }
    }
    let tmp;
    let dir = match &cli.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("tidelog-compare-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let (records, durable_ops, reopen_runs, audit_ops, bulk_trials) = if cli.quick {
        (20_000, 100, 3, 20, 1)
    } else {
        (cli.records, cli.durable_ops, cli.reopen_runs, cli.audit_ops, cli.bulk_trials)
    };
    if let Some(n) = cli.tidelog_index_interval {
        tidelog_compare::stores::TIDELOG_INDEX_INTERVAL.store(n, std::sync::atomic::Ordering::Relaxed);
    }
    let cfg = Config {
        records,
        durable_ops,
        reads: cli.reads,
        reopen_runs,
        bulk_trials,
        idle_before: cli.idle_before.max(0.0),
        tidelog_index_interval: cli.tidelog_index_interval,
        only: cli.only.clone(),
        stores: stores.clone(),
        dir: dir.join("stores"),
        settle: !cli.no_settle,
        progress: !cli.quiet,
    };
    let machine = Machine::collect(&dir);
    if !cli.quiet {
        eprint!("{}{}", report::machine_lines(&machine), report::run_line(&cfg));
    }
    let outcome = bench::run(&cfg)?;
    let load_at_end = tidelog_compare::machine::loadavg();
    let audit_rows = if cli.no_audit || cli.quiet {
        Vec::new()
    } else if audit::strace_available() {
        let exe = std::env::current_exe()?;
        audit::run(&exe, &dir.join("audit"), &stores, audit_ops, !cli.quiet)?
    } else {
        eprintln!("strace not found: fsync audit skipped (apt-get install -y strace)");
        Vec::new()
    };
    let _ = std::fs::remove_dir_all(dir.join("stores"));
    let rep =
        Report { machine, config: cfg, rows: outcome.rows, checks: outcome.checks, audit: audit_rows, load_at_end };
    if !cli.quiet {
        println!(
            "\n{}{}load average at end: {}\n",
            report::machine_lines(&rep.machine),
            report::run_line(&rep.config),
            rep.load_at_end
        );
        println!("{}", report::table(&rep.rows));
        println!("{}\n{}\n", report::summary_table(&rep.rows), report::RATIO_LEGEND);
        if !rep.audit.is_empty() {
            println!("fsync audit (strace):\n{}", report::audit_markdown(&rep.audit));
        }
        let failed = rep.checks.iter().filter(|c| !c.ok).count();
        println!(
            "checks: {} passed, {failed} failed (counts and checksums of what each store read back)",
            rep.checks.len() - failed
        );
    }
    if let Some(p) = &cli.json {
        std::fs::write(p, serde_json::to_string_pretty(&rep)?)?;
    }
    if let Some(p) = &cli.md {
        let mut md = format!(
            "```text\n{}{}load average at end: {}\n```\n\n{}\n{}\n\n{}",
            report::machine_lines(&rep.machine),
            report::run_line(&rep.config),
            rep.load_at_end,
            report::summary_markdown(&rep.rows),
            report::RATIO_LEGEND,
            report::markdown(&rep.rows)
        );
        if !rep.audit.is_empty() {
            md.push('\n');
            md.push_str(&report::audit_markdown(&rep.audit));
        }
        std::fs::write(p, md)?;
    }
    if let Some(d) = &cli.svg {
        for f in svg::write_all(&rep.rows, d)? {
            if !cli.quiet {
                eprintln!("wrote {f}");
            }
        }
    }
    if rep.checks.iter().any(|c| !c.ok) {
        return Err("some stores returned different data (see CHECK FAILED above)".into());
    }
    Ok(())
}
