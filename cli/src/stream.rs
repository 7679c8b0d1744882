//! `tidelog stream LOG KEY` / `tidelog stream STORE TOPIC KEY`: the events of one stream (the
//! records of one key) with their versions, offsets and times, read through the key index;
//! records that are state envelopes (`Log::publish_state`) are shown decoded: op, before,
//! after.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use serde_json::{json, Value};
use tidelog::{Before, Envelope, Error, StreamEvent};

use crate::error::{CliError, CliResult, EXIT_DAMAGE};
use crate::locate::{open_log, open_store, open_topic};
use crate::render::{self, bytes_json, bytes_text, plural, RecordRef, RecordStyle};
use crate::time::format_time_us;
use crate::Ctx;

/// Arguments of `tidelog stream`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A log directory (then KEY), or a store directory (then TOPIC KEY).
    pub dir: PathBuf,
    /// `KEY` for a log, `TOPIC KEY` for a store.
    #[arg(value_name = "[TOPIC] KEY", num_args = 1..=2, required = true)]
    pub names: Vec<String>,
    /// KEY is hex (for binary keys), e.g. `00ff`.
    #[arg(long)]
    pub key_hex: bool,
    /// First version to show (forward), or the newest version to show (with --backward).
    #[arg(long, value_name = "VERSION")]
    pub from: Option<u64>,
    /// Newest event first.
    #[arg(long)]
    pub backward: bool,
    /// Show at most N events.
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
}

/// Where the stream is read from.
enum Source {
    Log(tidelog::Log),
    Topic(tidelog::Topic),
}

impl Source {
    fn version(&self, key: &[u8]) -> tidelog::Result<u64> {
        match self {
            Source::Log(l) => l.stream_version(key),
            Source::Topic(t) => t.stream_version(key),
        }
    }

    fn forward(&self, key: &[u8], from: u64, max: usize) -> tidelog::Result<Vec<StreamEvent>> {
        match self {
            Source::Log(l) => l.read_stream(key, from, max),
            Source::Topic(t) => t.read_stream(key, from, max),
        }
    }

    fn backward(&self, key: &[u8], max: usize) -> tidelog::Result<Vec<StreamEvent>> {
        match self {
            Source::Log(l) => l.read_stream_backward(key, max),
            Source::Topic(t) => t.read_stream_backward(key, max),
        }
    }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok())).collect()
}

/// The events asked for, in the order asked for.
fn events(source: &Source, key: &[u8], args: &Args) -> tidelog::Result<Vec<StreamEvent>> {
    let max = args.max.unwrap_or(usize::MAX);
    match (args.backward, args.from) {
        (false, from) => source.forward(key, from.unwrap_or(0), max),
        (true, None) => source.backward(key, max),
        (true, Some(from)) => {
            Ok(source.backward(key, usize::MAX)?.into_iter().filter(|e| e.version <= from).take(max).collect())
        }
    }
}

/// An envelope's state for humans: the bytes, `-` if absent, `?` if unknown.
fn before_text(b: Before<'_>) -> String {
    match b {
        Before::State(s) => bytes_text(s),
        Before::Absent => "-".to_owned(),
        Before::Unknown => "?".to_owned(),
    }
}

/// The decoded envelope of a record, if its payload is meant to be one: `Ok(None)` for an
/// ordinary record, `Err` for a damaged or hostile envelope.
fn envelope_of(e: &StreamEvent) -> Option<tidelog::Result<Envelope<'_>>> {
    Envelope::looks_like_envelope(&e.record.payload).then(|| Envelope::decode_owned(&e.record))
}

fn envelope_json(env: &Envelope<'_>) -> Value {
    json!({
        "op": env.op().name(),
        "before": env.before_state().map(bytes_json),
        "before_unknown": env.before() == Before::Unknown,
        "after": env.after().map(bytes_json),
    })
}

fn envelope_error_json(e: &Error) -> Value {
    match e {
        Error::InvalidEnvelope { offset, position, kind, .. } => json!({
            "offset": offset, "position": position, "corruption": kind.name(), "detail": kind.to_string(),
        }),
        other => json!({ "detail": other.to_string() }),
    }
}

fn event_json(e: &StreamEvent, style: RecordStyle) -> (Value, bool) {
    let mut v = render::record_json(&RecordRef::from(&e.record), style);
    v["version"] = json!(e.version);
    v["tombstone"] = json!(e.record.tombstone);
    let mut damaged = false;
    v["envelope"] = match envelope_of(e) {
        None => Value::Null,
        Some(Ok(env)) => envelope_json(&env),
        Some(Err(err)) => {
            damaged = true;
            v["envelope_error"] = envelope_error_json(&err);
            Value::Null
        }
    };
    (v, damaged)
}

fn event_line(e: &StreamEvent, style: RecordStyle) -> (String, bool) {
    let r = &e.record;
    let tomb = if r.tombstone { "  (tombstone)" } else { "" };
    match envelope_of(e) {
        None => (format!("{:>8}  {}{tomb}", e.version, render::record_line(&RecordRef::from(r), style)), false),
        Some(Ok(env)) => {
            let after = env.after().map_or_else(|| "-".to_owned(), bytes_text);
            let line = format!(
                "{:>8}  {:>10}  {}  {:<6}  {} -> {after}{tomb}",
                e.version,
                r.offset,
                format_time_us(r.timestamp_us),
                env.op().name(),
                before_text(env.before())
            );
            (line, false)
        }
        Some(Err(err)) => {
            let line = format!(
                "{:>8}  {:>10}  {}  damaged envelope: {err}",
                e.version,
                r.offset,
                format_time_us(r.timestamp_us)
            );
            (line, true)
        }
    }
}

/// Run `tidelog stream`. Exit 1 if a record that starts like an envelope does not decode
/// (after showing every event).
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let (source, key_arg, what) = match args.names.as_slice() {
        [key] => (Source::Log(open_log(&args.dir)?), key, args.dir.display().to_string()),
        [topic, key] => {
            let store = open_store(&args.dir)?;
            (Source::Topic(open_topic(&store, topic)?), key, format!("{} topic {topic}", args.dir.display()))
        }
        _ => return Err(CliError::Usage("expected KEY (for a log) or TOPIC KEY (for a store)".into())),
    };
    let key = if args.key_hex {
        parse_hex(key_arg).ok_or_else(|| CliError::Usage(format!("--key-hex: `{key_arg}` is not hex")))?
    } else {
        key_arg.as_bytes().to_vec()
    };
    let doing = format!("reading the stream {} of {what}", bytes_text(&key));
    let version = source.version(&key).map_err(CliError::log(doing.clone()))?;
    let events = events(&source, &key, args).map_err(CliError::log(doing))?;
    let style = RecordStyle { cut_payload: true, ..RecordStyle::default() };
    let mut out = BufWriter::new(io::stdout().lock());
    if !ctx.json {
        writeln!(out, "stream {} of {what}: version {version}", bytes_text(&key))?;
    }
    let mut damaged = 0u64;
    for e in &events {
        let bad = if ctx.json {
            let (v, bad) = event_json(e, style);
            render::print_json_line(&mut out, &v)?;
            bad
        } else {
            let (line, bad) = event_line(e, style);
            writeln!(out, "{line}")?;
            bad
        };
        damaged += u64::from(bad);
    }
    if !ctx.json {
        writeln!(out, "-- {} shown", plural(events.len() as u64, "event"))?;
        if damaged > 0 {
            writeln!(out, "-- {} with a damaged envelope", plural(damaged, "event"))?;
        }
    }
    out.flush()?;
    if damaged > 0 {
        return Err(CliError::Reported(EXIT_DAMAGE));
    }
    Ok(())
}
