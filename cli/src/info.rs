//! `tidelog info DIR`: the segments of a log and their totals.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;
use tidelog::SegmentInfo;

use crate::checkpoint;
use crate::disk;
use crate::error::{CliError, CliResult};
use crate::locate::open_log;
use crate::render::{self, count, plural, size};
use crate::time::format_time_us;
use crate::Ctx;

/// Arguments of `tidelog info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    pub dir: PathBuf,
}

/// One segment; the table's headings are these field names.
#[derive(Debug, Serialize)]
struct SegmentRow {
    file: String,
    base_offset: u64,
    next_offset: u64,
    records: u64,
    bytes_used: u64,
    bytes_capacity: u64,
    sealed: bool,
    /// `sealed` or `active`.
    state: &'static str,
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
    /// `clean`, or why not: `not_closed` (a writer has it open or stopped without closing),
    /// `checkpoint_missing`, `checkpoint_unreadable`, `checkpoint_damaged`.
    shutdown: &'static str,
    /// The details of `shutdown` for humans (`None` after a clean shutdown).
    shutdown_detail: Option<String>,
    first_offset: u64,
    next_offset: u64,
    records: u64,
    bytes_used: u64,
    /// The length of the segment files: space reserved for them (preallocated).
    bytes_capacity: u64,
    /// Space the directory takes on disk, as `du` counts it (allocated blocks).
    bytes_on_disk: u64,
    first_time: Option<String>,
    last_time: Option<String>,
    segments: Vec<SegmentRow>,
}

fn row(s: &SegmentInfo) -> SegmentRow {
    let records = s.records;
    let ts = |t: u64| (records > 0).then_some(t);
    SegmentRow {
        file: s.path.file_name().map_or_else(|| s.path.display().to_string(), |n| n.to_string_lossy().into_owned()),
        base_offset: s.base_offset,
        next_offset: s.next_offset,
        records,
        bytes_used: s.bytes,
        bytes_capacity: s.capacity,
        sealed: s.sealed,
        state: if s.sealed { "sealed" } else { "active" },
        first_timestamp_us: ts(s.min_timestamp_us),
        last_timestamp_us: ts(s.max_timestamp_us),
        first_time: ts(s.min_timestamp_us).map(format_time_us),
        last_time: ts(s.max_timestamp_us).map(format_time_us),
    }
}

/// Run `tidelog info`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let log = open_log(&args.dir)?;
    let segments: Vec<SegmentRow> = log.segments().iter().map(row).collect();
    let clean = log.open_report().clean_shutdown;
    let unclean = (!clean).then(|| checkpoint::why_unclean(&args.dir));
    let report = Report {
        dir: args.dir.display().to_string(),
        closed_cleanly: clean,
        shutdown: unclean.as_ref().map_or("clean", checkpoint::Unclean::name),
        shutdown_detail: unclean.as_ref().map(checkpoint::Unclean::describe),
        first_offset: log.first_offset(),
        next_offset: log.next_offset(),
        records: segments.iter().map(|s| s.records).sum(),
        bytes_used: segments.iter().map(|s| s.bytes_used).sum(),
        bytes_capacity: segments.iter().map(|s| s.bytes_capacity).sum(),
        bytes_on_disk: disk::allocated_bytes(&args.dir).map_err(CliError::io(&args.dir))?,
        first_time: segments.iter().find_map(|s| s.first_time.clone()),
        last_time: segments.iter().rev().find_map(|s| s.last_time.clone()),
        segments,
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        return render::print_json(&mut out, &report);
    }
    print_human(&mut out, &report)
}

fn print_human(out: &mut impl Write, r: &Report) -> CliResult {
    writeln!(out, "log {}", r.dir)?;
    writeln!(
        out,
        "  {} in {}, offsets [{}, {}), {} used of {} reserved, {} on disk",
        plural(r.records, "record"),
        plural(r.segments.len() as u64, "segment"),
        r.first_offset,
        r.next_offset,
        size(r.bytes_used),
        size(r.bytes_capacity),
        size(r.bytes_on_disk),
    )?;
    match (&r.first_time, &r.last_time) {
        (Some(a), Some(b)) => writeln!(out, "  time range {a} .. {b}")?,
        _ => writeln!(out, "  no records")?,
    }
    match &r.shutdown_detail {
        None => writeln!(out, "  last writer closed the log cleanly")?,
        Some(why) => writeln!(out, "  {why}")?,
    }
    writeln!(out)?;
    let file_w = r.segments.iter().map(|s| s.file.len()).max().unwrap_or(0).max("file".len());
    writeln!(
        out,
        "{:<file_w$}  {:>12}  {:>12}  {:>9}  {:>10}  {:>14}  {:<6}  {:<27}  last_time",
        "file", "base_offset", "next_offset", "records", "bytes_used", "bytes_capacity", "state", "first_time"
    )?;
    for s in &r.segments {
        let dash = || "-".to_owned();
        writeln!(
            out,
            "{:<file_w$}  {:>12}  {:>12}  {:>9}  {:>10}  {:>14}  {:<6}  {:<27}  {}",
            s.file,
            s.base_offset,
            s.next_offset,
            count(s.records),
            size(s.bytes_used),
            size(s.bytes_capacity),
            s.state,
            s.first_time.clone().unwrap_or_else(dash),
            s.last_time.clone().unwrap_or_else(dash),
        )?;
    }
    Ok(())
}
