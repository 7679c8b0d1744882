//! `tidelog dump DIR`: print records in an offset or time range, filtered by key and headers.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use tidelog::RecordView;

use crate::common::{self, count, format_time_us, parse_time, CliError, CliResult, Ctx};

/// Ranges with at least this many records get a progress bar (when one may be drawn).
const PROGRESS_MIN_RECORDS: u64 = 50_000;
/// Payload characters shown per record in human output without `--full`.
const PAYLOAD_SHOWN_CHARS: usize = 160;

/// How payloads are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadFormat {
    /// UTF-8 text if the payload is valid UTF-8, hex otherwise.
    Auto,
    /// UTF-8 text, invalid sequences replaced by U+FFFD.
    Text,
    /// Lower-case hex.
    Hex,
    /// Standard base64.
    Base64,
}

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
    /// Only records with exactly this key.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Only records with this header (repeatable; all must match).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
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

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
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
        if rec.key() != Some(key.as_bytes()) {
            return false;
        }
    }
    if args.since.is_some_and(|t| rec.timestamp_us() < t) || args.until.is_some_and(|t| rec.timestamp_us() >= t) {
        return false;
    }
    args.headers.iter().all(|(name, value)| rec.headers().any(|h| h.name == name && h.value == value.as_bytes()))
}

/// Text with control characters escaped, for one-line human output.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A key or header value for humans: text if it is UTF-8, `0x`-prefixed hex otherwise.
fn human_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => escape(s),
        Err(_) => format!("0x{}", common::hex(b)),
    }
}

/// A key or header value in JSON: a string if it is UTF-8, `{"hex": "..."}` otherwise.
fn json_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => serde_json::json!({ "hex": common::hex(b) }),
    }
}

/// The payload rendered as `fmt` asks, and the name of the encoding used.
fn render_payload(p: &[u8], fmt: PayloadFormat) -> (String, &'static str) {
    match fmt {
        PayloadFormat::Auto => match std::str::from_utf8(p) {
            Ok(s) => (s.to_owned(), "utf8"),
            Err(_) => (common::hex(p), "hex"),
        },
        PayloadFormat::Text => (String::from_utf8_lossy(p).into_owned(), "utf8"),
        PayloadFormat::Hex => (common::hex(p), "hex"),
        PayloadFormat::Base64 => (common::base64(p), "base64"),
    }
}

#[derive(Serialize)]
struct JsonRecord {
    offset: u64,
    timestamp_us: u64,
    time: String,
    key: Option<Value>,
    headers: Vec<Value>,
    payload: String,
    payload_encoding: &'static str,
    payload_bytes: usize,
}

fn json_record(rec: &RecordView<'_>, fmt: PayloadFormat) -> JsonRecord {
    let (payload, payload_encoding) = render_payload(rec.payload(), fmt);
    JsonRecord {
        offset: rec.offset(),
        timestamp_us: rec.timestamp_us(),
        time: format_time_us(rec.timestamp_us()),
        key: rec.key().map(json_bytes),
        headers: rec.headers().map(|h| serde_json::json!({ "name": h.name, "value": json_bytes(h.value) })).collect(),
        payload,
        payload_encoding,
        payload_bytes: rec.payload().len(),
    }
}

fn human_record(rec: &RecordView<'_>, args: &Args) -> String {
    let key = rec.key().map_or_else(|| "(no key)".to_owned(), |k| format!("key={}", human_bytes(k)));
    let headers: Vec<String> = rec.headers().map(|h| format!("{}={}", escape(h.name), human_bytes(h.value))).collect();
    let (payload, encoding) = render_payload(rec.payload(), args.payload);
    let mut payload = if encoding == "utf8" { escape(&payload) } else { format!("{encoding}:{payload}") };
    if !args.full {
        if let Some((cut, _)) = payload.char_indices().nth(PAYLOAD_SHOWN_CHARS) {
            payload.truncate(cut);
            payload.push_str(&format!("… ({} bytes)", rec.payload().len()));
        }
    }
    let mut line = format!("{:>10}  {}  {key}", rec.offset(), format_time_us(rec.timestamp_us()));
    if !headers.is_empty() {
        line.push_str("  ");
        line.push_str(&headers.join(" "));
    }
    line.push_str("  ");
    line.push_str(&payload);
    line
}

/// Run `tidelog dump`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let log = common::open_read_only(&args.dir)?;
    let (start, end) = range(&log, args)?;
    let stdout = io::stdout();
    let stdout_is_tty = stdout.is_terminal();
    let mut out = BufWriter::new(stdout.lock());
    let bar = if end - start >= PROGRESS_MIN_RECORDS {
        common::progress_bar(ctx, end - start, false, "dump")
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
    let mut cursor = log.cursor(start);
    let (mut scanned, mut matched) = (0u64, 0u64);
    let mut failure = None;
    while cursor.position() < end && args.limit.is_none_or(|l| matched < l) {
        let rec = match cursor.next() {
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
            serde_json::to_writer(&mut out, &json_record(&rec, args.payload))
                .map_err(|e| CliError::Output(e.into()))?;
        } else if interleave {
            let line = human_record(&rec, args);
            bar.suspend(|| writeln!(out, "{line}").and_then(|()| out.flush()))?;
        } else {
            writeln!(out, "{}", human_record(&rec, args))?;
        }
        matched += 1;
    }
    bar.finish_and_clear();

    if ctx.json {
        write!(out, "\n],\"scanned\":{scanned},\"matched\":{matched}")?;
        if let Some(e) = &failure {
            write!(out, ",\"error\":{}", e.to_json())?;
        }
        writeln!(out, "}}")?;
        out.flush()?;
        return match failure {
            Some(e) => Err(CliError::Reported(e.exit_code())),
            None => Ok(()),
        };
    }
    if let Some(e) = failure {
        out.flush()?;
        return Err(e);
    }
    writeln!(out, "-- {} of {} records scanned in [{start}, {end}) matched", count(matched), count(scanned))?;
    out.flush()?;
    Ok(())
}
