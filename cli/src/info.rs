//! `tidelog info DIR`: the segments of a log and their totals.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;
use tidelog::SegmentInfo;

use crate::common::{self, bytes, count, format_time_us, CliResult, Ctx};

/// Arguments of `tidelog info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    pub dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct SegmentRow {
    file: String,
    base_offset: u64,
    next_offset: u64,
    records: u64,
    bytes_used: u64,
    bytes_capacity: u64,
    sealed: bool,
    /// `None` for an empty segment.
    first_timestamp_us: Option<u64>,
    last_timestamp_us: Option<u64>,
    first_time: Option<String>,
    last_time: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    closed_cleanly: bool,
    first_offset: u64,
    next_offset: u64,
    records: u64,
    bytes_used: u64,
    bytes_capacity: u64,
    first_time: Option<String>,
    last_time: Option<String>,
    segments: Vec<SegmentRow>,
}

fn row(s: &SegmentInfo) -> SegmentRow {
    let records = s.next_offset - s.base_offset;
    let ts = |t: u64| (records > 0).then_some(t);
    SegmentRow {
        file: s.path.file_name().map_or_else(|| s.path.display().to_string(), |n| n.to_string_lossy().into_owned()),
        base_offset: s.base_offset,
        next_offset: s.next_offset,
        records,
        bytes_used: s.bytes,
        bytes_capacity: s.capacity,
        sealed: s.sealed,
        first_timestamp_us: ts(s.min_timestamp_us),
        last_timestamp_us: ts(s.max_timestamp_us),
        first_time: ts(s.min_timestamp_us).map(format_time_us),
        last_time: ts(s.max_timestamp_us).map(format_time_us),
    }
}

/// Run `tidelog info`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let log = common::open_read_only(&args.dir)?;
    let segments: Vec<SegmentRow> = log.segments().iter().map(row).collect();
    let report = Report {
        dir: args.dir.display().to_string(),
        closed_cleanly: log.open_report().clean_shutdown,
        first_offset: log.first_offset(),
        next_offset: log.next_offset(),
        records: segments.iter().map(|s| s.records).sum(),
        bytes_used: segments.iter().map(|s| s.bytes_used).sum(),
        bytes_capacity: segments.iter().map(|s| s.bytes_capacity).sum(),
        first_time: segments.iter().find_map(|s| s.first_time.clone()),
        last_time: segments.iter().rev().find_map(|s| s.last_time.clone()),
        segments,
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        return common::print_json(&mut out, &report);
    }
    print_human(&mut out, &report)
}

fn print_human(out: &mut impl Write, r: &Report) -> CliResult {
    writeln!(out, "log {}", r.dir)?;
    writeln!(
        out,
        "  {} records in {} segment{}, offsets [{}, {}), {} used of {} reserved",
        count(r.records),
        r.segments.len(),
        if r.segments.len() == 1 { "" } else { "s" },
        r.first_offset,
        r.next_offset,
        bytes(r.bytes_used),
        bytes(r.bytes_capacity),
    )?;
    match (&r.first_time, &r.last_time) {
        (Some(a), Some(b)) => writeln!(out, "  time range {a} .. {b}")?,
        _ => writeln!(out, "  no records")?,
    }
    writeln!(
        out,
        "  last writer {}",
        if r.closed_cleanly { "closed the log cleanly" } else { "is still open or did not close cleanly" }
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<26} {:>12} {:>12} {:>11} {:>23}  {:<6}  {:<27}  last record",
        "segment", "base", "next", "records", "used / capacity", "state", "first record"
    )?;
    for s in &r.segments {
        let dash = || "-".to_owned();
        writeln!(
            out,
            "{:<26} {:>12} {:>12} {:>11} {:>23}  {:<6}  {:<27}  {}",
            s.file,
            s.base_offset,
            s.next_offset,
            count(s.records),
            format!("{} / {}", bytes(s.bytes_used), bytes(s.bytes_capacity)),
            if s.sealed { "sealed" } else { "active" },
            s.first_time.clone().unwrap_or_else(dash),
            s.last_time.clone().unwrap_or_else(dash),
        )?;
    }
    Ok(())
}
