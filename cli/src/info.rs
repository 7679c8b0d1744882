//! `tidelog info DIR`: the segments of a log and their totals.

use std::io::{self, Write};
use std::path::PathBuf;

use serde::Serialize;
use tidelog::{Location, Log, SegmentInfo};

use crate::disk;
use crate::error::{CliError, CliResult};
use crate::locate::open_log_for_inspection;
use crate::render::{self, count, plural, size};
use crate::time::format_time_us;
use crate::Ctx;

/// Arguments of `tidelog info`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory, or a store directory (one row per topic and per consumer group).
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
    /// How the log was opened; after a damaged open, the open's located error (see
    /// `Inspected::json_fields`).
    #[serde(flatten)]
    open: serde_json::Value,
    closed_cleanly: bool,
    /// `clean`, or why not: `not_closed` (a writer has it open or stopped without closing),
    /// `checkpoint_missing`, `checkpoint_damaged`.
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
    /// Damage the open stopped at (the log is shown up to it): none or one, a list as in
    /// `verify`.
    damage: Vec<DamageRow>,
    /// Records no segment file holds: none or one range, a list as in `verify`.
    missing: Vec<MissingRow>,
    segments: Vec<SegmentRow>,
}

#[derive(Debug, Serialize)]
struct DamageRow {
    file: String,
    position: u64,
}

#[derive(Debug, Serialize)]
struct MissingRow {
    log: String,
    /// The first offset missing.
    offset: u64,
}

/// Why the last writer did not close the log cleanly, as far as the open report tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unclean {
    /// A valid checkpoint without the clean mark: a writer has the log open, or stopped
    /// without closing it (a crash, a kill).
    WriterOpenOrCrashed,
    /// There is no checkpoint file.
    Missing,
    /// The checkpoint file is present but not a valid checkpoint.
    Damaged,
}

impl Unclean {
    /// What the open report says, and whether the checkpoint file (named in `docs/format.md`)
    /// exists: a log without one is read like one whose checkpoint has no clean mark.
    fn of(log: &Log) -> Unclean {
        if log.open_report().checkpoint_unreadable {
            Unclean::Damaged
        } else if log.dir().join("checkpoint").exists() {
            Unclean::WriterOpenOrCrashed
        } else {
            Unclean::Missing
        }
    }

    /// A stable machine-readable name.
    fn name(self) -> &'static str {
        match self {
            Unclean::WriterOpenOrCrashed => "not_closed",
            Unclean::Missing => "checkpoint_missing",
            Unclean::Damaged => "checkpoint_damaged",
        }
    }

    /// A sentence for humans.
    fn describe(self) -> String {
        const NEXT: &str = "the next writer validates the last segment";
        match self {
            Unclean::WriterOpenOrCrashed => "last writer is still open or did not close cleanly".to_owned(),
            Unclean::Missing => format!("no checkpoint file: the last writer did not close the log cleanly ({NEXT})"),
            Unclean::Damaged => format!(
                "the checkpoint file is damaged (not a valid checkpoint): whether the last writer closed cleanly \
                 is unknown ({NEXT})"
            ),
        }
    }
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

/// How the last writer of `log` left it: `clean`, `not_closed`, `checkpoint_missing` or
/// `checkpoint_damaged` (the `shutdown` field).
pub(crate) fn shutdown_name(log: &Log) -> &'static str {
    if log.open_report().clean_shutdown {
        "clean"
    } else {
        Unclean::of(log).name()
    }
}

/// Run `tidelog info`: a log, or a store (`info_store`).
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    if crate::locate::is_store(&args.dir) {
        return crate::info_store::run(ctx, &args.dir);
    }
    let inspected = open_log_for_inspection(&args.dir)?;
    let log = &inspected.log;
    let segments: Vec<SegmentRow> = log.segments().iter().map(row).collect();
    let open = log.open_report();
    let clean = open.clean_shutdown;
    let unclean = (!clean).then(|| Unclean::of(log));
    let report = Report {
        dir: args.dir.display().to_string(),
        open: inspected.json_fields(),
        closed_cleanly: clean,
        shutdown: unclean.map_or("clean", Unclean::name),
        shutdown_detail: unclean.map(Unclean::describe),
        first_offset: log.first_offset(),
        next_offset: log.next_offset(),
        records: segments.iter().map(|s| s.records).sum(),
        bytes_used: segments.iter().map(|s| s.bytes_used).sum(),
        bytes_capacity: segments.iter().map(|s| s.bytes_capacity).sum(),
        bytes_on_disk: disk::allocated_bytes(&args.dir).map_err(CliError::io(&args.dir))?,
        first_time: segments.iter().find_map(|s| s.first_time.clone()),
        last_time: segments.iter().rev().find_map(|s| s.last_time.clone()),
        damage: open.damage.iter().map(|(f, p)| DamageRow { file: f.display().to_string(), position: *p }).collect(),
        missing: match &open.missing {
            Some(Location::Log { dir, offset }) => vec![MissingRow { log: dir.display().to_string(), offset: *offset }],
            _ => Vec::new(),
        },
        segments,
    };
    let mut out = io::stdout().lock();
    if ctx.json {
        render::print_json(&mut out, &report)?;
    } else {
        inspected.warn();
        print_human(&mut out, &report)?;
    }
    inspected.result()
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
    for d in &r.damage {
        writeln!(out, "  damage in {} at byte {}: the log is shown up to it", d.file, d.position)?;
    }
    for m in &r.missing {
        writeln!(out, "  records missing from offset {} on: no segment file holds them", m.offset)?;
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
