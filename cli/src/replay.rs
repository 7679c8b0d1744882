//! `tidelog replay DIR [TOPIC]`: records in offset order on standard output, for another
//! program. DIR is a log, or a store when TOPIC is given.
//!
//! Output formats (`--format`):
//! * `json` (default): JSON Lines, one record per line, the record document every command
//!   prints (`offset`, `timestamp_us`, `time`, `key`, `headers`, `payload`, `payload_bytes`);
//!   the payload is a string when it is UTF-8 and `{"base64": "..."}` otherwise
//!   (`--payload`).
//! * `raw`: the payload bytes only, each followed by `--separator` (a newline by default,
//!   or a NUL byte, or nothing). A payload that contains the separator cannot be told apart
//!   from two records: use `frames` for arbitrary bytes.
//! * `frames`: each payload as a frame, a `u32` little-endian length then that many bytes,
//!   nothing between frames and nothing at the end: what `tidelog publish --framed` reads.
//!   Keys and headers are not part of a frame (`docs/format.md`, "Record frames on a pipe").
//!
//! Output is written in large blocks and flushed before waiting (`-f`) or sleeping
//! (`--pace`). A reader that goes away (`| head`) ends the replay quietly, status 0.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tidelog::{Log, Options, RecordView};

use crate::error::{CliError, CliResult};
use crate::jsonl::{JsonLines, JsonPayload};
use crate::locate::{open_log, open_store, open_topic};
use crate::render::{parse_bytes, parse_header, Bytes};
use crate::time::{parse_bound, parse_seconds, Bound};
use crate::Ctx;

/// Bytes gathered before a write to standard output.
const OUT_BLOCK: usize = 256 << 10;
/// How long one wait for new records lasts with `-f` (then it waits again).
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

/// What `replay` writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON Lines: one record document per line.
    #[default]
    Json,
    /// Payload bytes only, each followed by --separator.
    Raw,
    /// Each payload as a u32 little-endian length and its bytes.
    Frames,
}

/// What follows each payload with `--format raw`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Separator {
    /// A newline (`\n`).
    #[default]
    Newline,
    /// A NUL byte.
    Nul,
    /// Nothing: payloads run together.
    None,
}

impl Separator {
    fn bytes(self) -> &'static [u8] {
        match self {
            Separator::Newline => b"\n",
            Separator::Nul => b"\0",
            Separator::None => b"",
        }
    }
}

/// Arguments of `tidelog replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory, or the store directory when TOPIC is given.
    pub dir: PathBuf,
    /// The topic of the store DIR.
    pub topic: Option<String>,
    /// Start here: an offset (a number), or a time (RFC 3339, @MICROSECONDS, -15m, now).
    #[arg(long, value_name = "OFFSET|TIME", value_parser = parse_bound, allow_hyphen_values = true)]
    pub from: Option<Bound>,
    /// Stop before this offset, or before the first record at or after this time (same forms
    /// as --from).
    #[arg(long, value_name = "OFFSET|TIME", value_parser = parse_bound, allow_hyphen_values = true)]
    pub to: Option<Bound>,
    /// Only records with this key (text, or hex:... for bytes).
    #[arg(long, value_name = "KEY", value_parser = parse_bytes)]
    pub key: Option<Bytes>,
    /// Only records with this header (repeatable; all must match; VALUE as for --key).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, Vec<u8>)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// With --format json: how payloads are written.
    #[arg(long, value_enum, default_value_t = JsonPayload::Auto)]
    pub payload: JsonPayload,
    /// With --format raw: what follows each payload.
    #[arg(long, value_enum, default_value_t = Separator::Newline)]
    pub separator: Separator,
    /// Reproduce the original timing, FACTOR times faster (1 = as recorded, 10 = ten times
    /// faster, 0.5 = half speed).
    #[arg(long, value_name = "FACTOR", value_parser = parse_factor)]
    pub pace: Option<f64>,
    /// Keep running and write records as they are appended (until --to, or interrupted).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Stop after writing N records.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// With -f: stop after this many seconds without a new record (a number ≥ 0; default:
    /// never), as `tail -f --idle-exit`.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub idle_exit: Option<Duration>,
    /// Instead of writing records: rebuild the read views of the log or topic (every topic
    /// of a store without TOPIC) from the log, each beside the live one and then swapped in,
    /// as `tidelog view rebuild` does for one.
    #[arg(long, conflicts_with_all = ["from", "to", "key", "headers", "pace", "follow", "limit", "idle_exit"])]
    pub views: bool,
    /// Instead of writing records: write a fresh snapshot of every consumer group of the
    /// topic (every topic of the store without TOPIC), as `tidelog snapshot create` does for
    /// one. Projections' snapshots are written by the application that defines them.
    #[arg(long, conflicts_with_all = ["from", "to", "key", "headers", "pace", "follow", "limit", "idle_exit"])]
    pub snapshots: bool,
}

fn parse_factor(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(f),
        _ => Err(format!("`{s}` is not a speed factor (a number > 0, like 1 or 10)")),
    }
}

/// `--views` and `--snapshots`: rebuild what is derived from the log instead of writing it.
fn rebuild_derived(ctx: Ctx, args: &Args) -> CliResult {
    if args.views {
        let n = crate::view::rebuild_all(ctx, &args.dir, args.topic.as_deref())?;
        if !ctx.json {
            writeln!(io::stdout().lock(), "{} rebuilt from the log", crate::render::plural(n as u64, "view"))?;
        }
    }
    if args.snapshots {
        if Log::open_read_only(&args.dir, Options::default()).is_ok() {
            return Err(CliError::Usage(format!(
                "{} is a log: it has no consumer groups, and a projection's snapshots are written by the \
                 application that defines it",
                args.dir.display()
            )));
        }
        let store = open_store(&args.dir)?;
        let topics = match &args.topic {
            Some(t) => vec![t.clone()],
            None => store.topic_names().map_err(CliError::log("listing the topics"))?,
        };
        for topic in topics {
            let groups = store.group_names(&topic).map_err(CliError::log(format!("listing the groups of {topic}")))?;
            for group in groups {
                crate::snapshot::create(ctx, &args.dir, &topic, &group)?;
            }
        }
    }
    Ok(())
}

/// Open what DIR [TOPIC] names, read-only.
fn open(args: &Args) -> CliResult<Log> {
    match &args.topic {
        None => open_log(&args.dir),
        Some(name) => {
            let store = open_store(&args.dir)?;
            let topic = open_topic(&store, name)?;
            Log::open_read_only(topic.dir(), Options::default()).map_err(CliError::log(format!("opening topic {name}")))
        }
    }
}

/// The first offset to replay.
fn start(log: &Log, from: Option<Bound>) -> CliResult<u64> {
    let first = log.first_offset();
    Ok(match from {
        None => first,
        Some(Bound::Offset(o)) => o.max(first),
        Some(Bound::Time(t)) => match log.offset_for_time(t).map_err(CliError::log("looking up --from"))? {
            Some(o) => o,
            // Every record is older: start at the end (new records, with -f).
            None => log.next_offset(),
        },
    })
}

/// Standard output as a plain file: our own buffer decides when to write, not the line
/// buffering of `io::Stdout`.
fn stdout_file() -> CliResult<File> {
    let fd = io::stdout().as_fd().try_clone_to_owned().map_err(CliError::Output)?;
    Ok(File::from(fd))
}

/// Keeps the original spacing of records, scaled.
struct Pacer {
    factor: f64,
    /// The first record's timestamp and when it was written.
    origin: Option<(u64, Instant)>,
}

impl Pacer {
    /// How long to wait, at `now`, before writing a record with this timestamp.
    fn delay(&mut self, ts_us: u64, now: Instant) -> Option<Duration> {
        let (t0, w0) = *self.origin.get_or_insert((ts_us, now));
        let due = w0 + Duration::from_secs_f64(ts_us.saturating_sub(t0) as f64 / 1e6 / self.factor);
        due.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

fn matches(rec: &RecordView<'_>, args: &Args) -> bool {
    args.key.as_ref().map(|k| k.0.as_slice()).is_none_or(|k| rec.key() == Some(k))
        && args.headers.iter().all(|(name, value)| rec.headers().any(|h| h.name == name && h.value == value))
}

/// Run `tidelog replay`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    if args.views || args.snapshots {
        return rebuild_derived(ctx, args);
    }
    let log = open(args)?;
    let mut next = start(&log, args.from)?;
    // Without -f, the replay ends at the end the log had when it started.
    let end_now = log.next_offset();
    let (stop_offset, stop_time) = match args.to {
        None if args.follow => (u64::MAX, u64::MAX),
        None => (end_now, u64::MAX),
        Some(Bound::Offset(o)) if args.follow => (o, u64::MAX),
        Some(Bound::Offset(o)) => (o.min(end_now), u64::MAX),
        Some(Bound::Time(t)) if args.follow => (u64::MAX, t),
        Some(Bound::Time(t)) => (end_now, t),
    };
    let mut out = stdout_file()?;
    let mut buf: Vec<u8> = Vec::with_capacity(OUT_BLOCK + (64 << 10));
    let mut lines = JsonLines::default();
    let mut pacer = args.pace.map(|factor| Pacer { factor, origin: None });
    let separator = args.separator.bytes();
    let mut written = 0u64;
    let mut cursor = log.cursor(next);
    // When the replay caught up and started waiting (with -f); reset by the next record. Not
    // a clock read per record: that cost a quarter of a raw replay.
    let mut idle_since: Option<Instant> = None;
    loop {
        if args.limit.is_some_and(|l| written >= l) || next >= stop_offset {
            break;
        }
        let rec = match cursor.next() {
            Ok(Some(rec)) => rec,
            Ok(None) if args.follow => {
                out.write_all(&buf)?;
                buf.clear();
                let wait = match args.idle_exit {
                    None => FOLLOW_WAIT,
                    Some(limit) => match limit.checked_sub(idle_since.get_or_insert_with(Instant::now).elapsed()) {
                        Some(left) if !left.is_zero() => left.min(FOLLOW_WAIT),
                        _ => break,
                    },
                };
                let at = cursor.position();
                log.wait_for(at, wait).map_err(CliError::log(format!("waiting for record {at}")))?;
                continue;
            }
            Ok(None) => break,
            Err(error) => {
                out.write_all(&buf)?;
                return Err(CliError::Log { doing: format!("reading record {}", cursor.position()), error });
            }
        };
        if rec.offset() >= stop_offset || rec.timestamp_us() >= stop_time {
            break;
        }
        next = rec.offset() + 1;
        idle_since = None;
        if !matches(&rec, args) {
            continue;
        }
        if let Some(wait) = pacer.as_mut().and_then(|p| p.delay(rec.timestamp_us(), Instant::now())) {
            out.write_all(&buf)?;
            buf.clear();
            std::thread::sleep(wait);
        }
        match args.format {
            Format::Json => {
                if let Err(e) = lines.write(&mut buf, &rec, args.payload) {
                    out.write_all(&buf)?;
                    return Err(CliError::Usage(format!(
                        "the payload of record {} is not UTF-8 text: use --payload auto or base64",
                        e.offset
                    )));
                }
            }
            Format::Raw => {
                buf.extend_from_slice(rec.payload());
                buf.extend_from_slice(separator);
            }
            Format::Frames => {
                let len = u32::try_from(rec.payload().len()).map_err(|_| {
                    CliError::Usage(format!("record {} is too large for a frame (over 4 GiB)", rec.offset()))
                })?;
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(rec.payload());
            }
        }
        written += 1;
        if buf.len() >= OUT_BLOCK {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_factors_are_finite_and_positive() {
        assert_eq!(parse_factor("10"), Ok(10.0));
        assert_eq!(parse_factor("0.5"), Ok(0.5));
        for bad in ["0", "-1", "nan", "inf", "fast"] {
            assert!(parse_factor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pacer_spaces_records_as_recorded_divided_by_the_factor() {
        let mut p = Pacer { factor: 2.0, origin: None };
        let start = Instant::now();
        assert_eq!(p.delay(1_000_000, start), None, "the first record goes at once");
        assert_eq!(p.delay(3_000_000, start), Some(Duration::from_secs(1)), "2 s later in the log, 1 s at 2x");
        let later = start + Duration::from_millis(250);
        assert_eq!(p.delay(3_000_000, later), Some(Duration::from_millis(750)));
        assert_eq!(p.delay(1_500_000, later), None, "a record already due goes at once");
    }
}
