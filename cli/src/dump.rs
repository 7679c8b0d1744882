//! `tidelog dump DIR`: print records in an offset or time range, filtered by key and headers.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use serde_json::Value;
use tidelog::RecordView;

use crate::error::{CliError, CliResult};
use crate::locate::open_log_for_inspection;
use crate::progress;
use crate::render::{self, parse_bytes, parse_header, plural, Bytes, PayloadFormat, RecordRef, RecordStyle};
use crate::time::parse_time;
use crate::Ctx;

/// Ranges with at least this many records get a progress bar (when one may be drawn).
const PROGRESS_MIN_RECORDS: u64 = 50_000;

/// Arguments of `tidelog dump`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    pub dir: PathBuf,
    /// First offset to show (default: the first record).
    #[arg(long, value_name = "OFFSET")]
    pub from: Option<u64>,
    /// Stop before this offset (exclusive; default: the end of the log).
    #[arg(long, value_name = "OFFSET")]
    pub to: Option<u64>,
    /// Only records appended at or after TIME (RFC 3339 like 2026-11-26T06:00:00Z, or
    /// microseconds since the Unix epoch).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only records appended before TIME (same formats as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<u64>,
    /// Only records with exactly this key (text, or hex:... for bytes, as keys are shown).
    #[arg(long, value_name = "KEY", value_parser = parse_bytes)]
    pub key: Option<Bytes>,
    /// Only records with this header (repeatable; all must match; VALUE as for --key).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, Vec<u8>)>,
    /// Print at most N records.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// How to show payloads.
    #[arg(long, value_enum, default_value_t = PayloadFormat::Auto)]
    pub payload: PayloadFormat,
    /// Show whole payloads in human output (they are cut after 160 characters otherwise).
    #[arg(long)]
    pub full: bool,
}

/// The offsets `[start, end)` to scan, from the offset and time bounds.
fn range(log: &tidelog::Log, args: &Args) -> CliResult<(u64, u64)> {
    let (first, next) = (log.first_offset(), log.next_offset());
    let mut start = args.from.unwrap_or(first).max(first);
    let mut end = args.to.unwrap_or(next).min(next);
    if let Some(since) = args.since {
        match log.offset_for_time(since).map_err(CliError::log("looking up --since"))? {
            Some(o) => start = start.max(o),
            None => start = end,
        }
    }
    if let Some(until) = args.until {
        if let Some(o) = log.offset_for_time(until).map_err(CliError::log("looking up --until"))? {
            end = end.min(o);
        }
    }
    Ok((start.min(end), end))
}

fn matches(rec: &RecordView<'_>, args: &Args) -> bool {
    if let Some(key) = &args.key {
        if rec.key() != Some(key.0.as_slice()) {
            return false;
        }
    }
    if args.since.is_some_and(|t| rec.timestamp_us() < t) || args.until.is_some_and(|t| rec.timestamp_us() >= t) {
        return false;
    }
    args.headers.iter().all(|(name, value)| rec.headers().any(|h| h.name == name && h.value == value.as_slice()))
}

/// Run `tidelog dump`.
///
/// When damage stops the default open, the log is opened read-only up to the damage: the
/// records before it are printed, with a note on stderr (or the open's error in the JSON
/// document), and the exit code is 1.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let inspected = open_log_for_inspection(&args.dir)?;
    let log = &inspected.log;
    if !ctx.json {
        inspected.warn();
    }
    let (start, end) = range(log, args)?;
    let stdout = io::stdout();
    let stdout_is_tty = stdout.is_terminal();
    let mut out = BufWriter::new(stdout.lock());
    let bar = if end - start >= PROGRESS_MIN_RECORDS {
        progress::progress_bar(ctx, end - start, false, "dump")
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Lines going to the same terminal as the bar are written with the bar cleared.
    let interleave = stdout_is_tty && !bar.is_hidden();

    if ctx.json {
        write!(
            out,
            "{{\"dir\":{},\"from\":{start},\"to\":{end},\"records\":[",
            Value::String(args.dir.display().to_string())
        )?;
    }
    let style = RecordStyle { payload: args.payload, cut_payload: !args.full };
    let mut cursor = log.cursor(start);
    let (mut scanned, mut matched) = (0u64, 0u64);
    let mut failure = None;
    while cursor.position() < end && args.limit.is_none_or(|l| matched < l) {
        let rec = match cursor.next() {
            // Past a gap (records removed by compaction), the next record may lie past the range.
            Ok(Some(rec)) if rec.offset() >= end => break,
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(error) => {
                let doing = format!("reading record {}", cursor.position());
                failure = Some(CliError::Log { doing, error });
                break;
            }
        };
        scanned += 1;
        if scanned.is_multiple_of(4096) {
            bar.set_position(scanned);
        }
        if !matches(&rec, args) {
            continue;
        }
        if ctx.json {
            out.write_all(if matched == 0 { b"\n" } else { b",\n" })?;
            serde_json::to_writer(&mut out, &render::record_json(&RecordRef::from(&rec), style))
                .map_err(|e| CliError::Output(e.into()))?;
        } else if interleave {
            let line = render::record_line(&RecordRef::from(&rec), style);
            bar.suspend(|| writeln!(out, "{line}").and_then(|()| out.flush()))?;
        } else {
            writeln!(out, "{}", render::record_line(&RecordRef::from(&rec), style))?;
        }
        matched += 1;
    }
    bar.finish_and_clear();

    if ctx.json {
        write!(out, "\n],\"scanned\":{scanned},\"matched\":{matched}")?;
        let opened = if inspected.damaged_open.is_some() { "read_only_up_to_damage" } else { "default" };
        write!(out, ",\"opened\":\"{opened}\"")?;
        if let Some(e) = failure.as_ref().or(inspected.damaged_open.as_ref()) {
            write!(out, ",\"error\":{}", e.to_json())?;
        }
        writeln!(out, "}}")?;
        out.flush()?;
        return match failure {
            Some(e) => Err(CliError::Reported(e.exit_code())),
            None => inspected.result(),
        };
    }
    if let Some(e) = failure {
        out.flush()?;
        return Err(e);
    }
    writeln!(
        out,
        "-- {} matched of {} scanned in [{start}, {end})",
        render::count(matched),
        plural(scanned, "record")
    )?;
    out.flush()?;
    inspected.result()
}
