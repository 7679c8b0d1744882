//! The store and consumer-group commands: `tidelog tail [-f] DIR TOPIC`,
//! `tidelog consumers DIR`, `tidelog dlq list|redrive DIR TOPIC GROUP`. They work on a store
//! directory (see `docs/consumers.md`), through the library's public API only, and never
//! create anything in it: a store, topic or group that does not exist is an error.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tidelog::{DeadLetter, GroupLag, GroupOptions, OwnedRecord, Store, StoreOptions};

use crate::common::{self, format_time_us, CliError, CliResult, Ctx};

/// Arguments of `tidelog tail`.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// The topic.
    pub topic: String,
    /// Keep running and print events as they are published (like `tail -f`).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Start with the last N events (default 10; ignored with --from).
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub last: u64,
    /// Start at this offset instead.
    #[arg(long, value_name = "OFFSET")]
    pub from: Option<u64>,
    /// Stop after printing N events.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// With -f: stop after this many seconds without a new event (default: never).
    #[arg(long, value_name = "SECONDS")]
    pub idle_exit: Option<f64>,
}

/// Arguments of `tidelog consumers`.
#[derive(Debug, clap::Args)]
pub struct ConsumersArgs {
    /// The store directory.
    pub dir: PathBuf,
    /// Only the groups of this topic.
    pub topic: Option<String>,
}

/// Arguments of `tidelog dlq`.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// `tidelog dlq` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List a group's dead letters with their origin, attempts, reason and status.
    List {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// Only dead letters still parked (redrivable).
        #[arg(long)]
        parked: bool,
    },
    /// Deliver dead letters to their group again. The group must not be open in another
    /// process (its lock is needed); a running service calls `Group::redrive` instead.
    Redrive {
        /// The store directory.
        dir: PathBuf,
        /// The topic.
        topic: String,
        /// The consumer group.
        group: String,
        /// Every parked dead letter.
        #[arg(long, conflicts_with = "offset", required_unless_present = "offset")]
        all: bool,
        /// The dead-letter offset to redrive (repeatable).
        #[arg(long = "offset", value_name = "DLQ_OFFSET")]
        offset: Vec<u64>,
    },
}

fn open_store(dir: &Path) -> CliResult<Store> {
    Store::open(dir, StoreOptions::default().create_if_missing(false))
        .map_err(CliError::log(format!("opening the store {}", dir.display())))
}

fn open_topic(store: &Store, topic: &str) -> CliResult<tidelog::Topic> {
    store.open_topic(topic).map_err(CliError::log(format!("opening topic {topic}")))
}

/// A key or header value in JSON: a string if it is UTF-8, `{"hex": "..."}` otherwise.
fn json_bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => serde_json::json!({ "hex": common::hex(b) }),
    }
}

/// Text for one line of human output: UTF-8 with control characters escaped, else hex.
fn human_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect(),
        Err(_) => format!("0x{}", common::hex(b)),
    }
}

fn json_record(r: &OwnedRecord) -> Value {
    serde_json::json!({
        "offset": r.offset,
        "timestamp_us": r.timestamp_us,
        "time": format_time_us(r.timestamp_us),
        "key": r.key.as_deref().map(json_bytes),
        "headers": r.headers.iter().map(|(n, v)| serde_json::json!({ "name": n, "value": json_bytes(v) })).collect::<Vec<_>>(),
        "payload": json_bytes(&r.payload),
    })
}

fn human_record(r: &OwnedRecord) -> String {
    let mut line = format!("{:>10}  {}", r.offset, format_time_us(r.timestamp_us));
    if let Some(k) = &r.key {
        line.push_str(&format!("  key={}", human_bytes(k)));
    }
    for (n, v) in &r.headers {
        line.push_str(&format!("  {}={}", human_bytes(n.as_bytes()), human_bytes(v)));
    }
    line.push_str("  ");
    line.push_str(&human_bytes(&r.payload));
    line
}

/// Run `tidelog tail`. With `--json`, prints one JSON object per event per line (JSON
/// Lines), so that a follower can stream.
pub fn run_tail(ctx: Ctx, args: &TailArgs) -> CliResult {
    let store = open_store(&args.dir)?;
    let topic = open_topic(&store, &args.topic)?;
    let first = topic.first_offset();
    let end = topic.next_offset();
    let mut next = match args.from {
        Some(o) => o.clamp(first, end),
        None => end.saturating_sub(args.last).max(first),
    };
    let mut printed = 0u64;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut idle_since = Instant::now();
    loop {
        let iter = topic.iter(next).map_err(CliError::log(format!("reading topic {}", args.topic)))?;
        for rec in iter {
            if args.limit.is_some_and(|l| printed >= l) {
                out.flush()?;
                return Ok(());
            }
            let rec = rec.map_err(CliError::log(format!("reading topic {} at {next}", args.topic)))?;
            next = rec.offset + 1;
            if ctx.json {
                serde_json::to_writer(&mut out, &json_record(&rec)).map_err(|e| CliError::Output(e.into()))?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", human_record(&rec))?;
            }
            printed += 1;
            idle_since = Instant::now();
        }
        out.flush()?;
        if !args.follow || args.limit.is_some_and(|l| printed >= l) {
            return Ok(());
        }
        let wait = match args.idle_exit {
            Some(secs) => {
                let limit = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX);
                match limit.checked_sub(idle_since.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Ok(()),
                }
            }
            None => Duration::from_secs(3600),
        };
        topic.wait_for(next, wait).map_err(CliError::log(format!("following topic {}", args.topic)))?;
    }
}

#[derive(Serialize)]
struct LagRow {
    topic: String,
    group: String,
    committed: u64,
    first_offset: u64,
    end_offset: u64,
    unconsumed: u64,
    in_flight: u64,
    scheduled_retries: u64,
    redriven: u64,
    dead_letters: u64,
    lost_to_retention: u64,
}

impl From<&GroupLag> for LagRow {
    fn from(l: &GroupLag) -> LagRow {
        LagRow {
            topic: l.topic.clone(),
            group: l.group.clone(),
            committed: l.committed,
            first_offset: l.first_offset,
            end_offset: l.end_offset,
            unconsumed: l.unconsumed,
            in_flight: l.in_flight,
            scheduled_retries: l.scheduled_retries,
            redriven: l.redriven,
            dead_letters: l.dead_letters,
            lost_to_retention: l.lost_to_retention,
        }
    }
}

/// Run `tidelog consumers`: the lag of every group, read from its persisted state without
/// taking its lock (so it works while consumers run).
pub fn run_consumers(ctx: Ctx, args: &ConsumersArgs) -> CliResult {
    let store = open_store(&args.dir)?;
    let lags = match &args.topic {
        Some(t) => {
            open_topic(&store, t)?;
            let names = store.group_names(t).map_err(CliError::log(format!("listing the groups of {t}")))?;
            let mut v = Vec::with_capacity(names.len());
            for g in names {
                v.push(store.group_lag(t, &g).map_err(CliError::log(format!("reading group {t}/{g}")))?);
            }
            v
        }
        None => store.lag().map_err(CliError::log("reading the consumer groups"))?,
    };
    let rows: Vec<LagRow> = lags.iter().map(LagRow::from).collect();
    let mut out = io::stdout().lock();
    if ctx.json {
        let doc = serde_json::json!({ "dir": args.dir.display().to_string(), "groups": rows });
        return common::print_json(&mut out, &doc);
    }
    if rows.is_empty() {
        writeln!(out, "no consumer groups in {}", args.dir.display())?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<20} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "topic", "group", "committed", "end", "lag", "in-flight", "retries", "redriven", "dead", "lost"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<24} {:<20} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8}",
            r.topic,
            r.group,
            r.committed,
            r.end_offset,
            r.unconsumed,
            r.in_flight,
            r.scheduled_retries,
            r.redriven,
            r.dead_letters,
            r.lost_to_retention
        )?;
    }
    if rows.iter().any(|r| r.lost_to_retention > 0) {
        writeln!(out, "\n`lost`: events deleted by size or age retention before the group consumed them.")?;
    }
    Ok(())
}

fn json_dead_letter(d: &DeadLetter) -> Value {
    serde_json::json!({
        "dlq_offset": d.dlq_offset,
        "status": d.status.as_str(),
        "topic": d.topic,
        "group": d.group,
        "source_offset": d.source_offset,
        "attempts": d.attempts,
        "cause": d.cause.as_str(),
        "reason": d.reason,
        "first_failure_us": d.first_failure_us,
        "last_failure_us": d.last_failure_us,
        "dead_lettered_us": d.dead_lettered_us,
        "dead_lettered": format_time_us(d.dead_lettered_us),
        "redrive_of": d.redrive_of,
        "record": json_record(&d.record),
    })
}

/// Run `tidelog dlq list|redrive`.
pub fn run_dlq(ctx: Ctx, args: &DlqArgs) -> CliResult {
    match &args.command {
        DlqCommand::List { dir, topic, group, parked } => {
            let store = open_store(dir)?;
            open_topic(&store, topic)?;
            let mut dls = store
                .dead_letters(topic, group)
                .map_err(CliError::log(format!("reading the dead letters of {topic}/{group}")))?;
            if *parked {
                dls.retain(|d| d.status == tidelog::DeadLetterStatus::Parked);
            }
            let mut out = io::stdout().lock();
            if ctx.json {
                let doc = serde_json::json!({
                    "topic": topic,
                    "group": group,
                    "dead_letters": dls.iter().map(json_dead_letter).collect::<Vec<_>>(),
                });
                return common::print_json(&mut out, &doc);
            }
            if dls.is_empty() {
                writeln!(out, "no dead letters for {topic}/{group}")?;
                return Ok(());
            }
            for d in &dls {
                writeln!(
                    out,
                    "#{:<6} {:<8} offset {:<10} attempts {:<3} {:<14} {}  reason: {}{}",
                    d.dlq_offset,
                    d.status.as_str(),
                    d.source_offset,
                    d.attempts,
                    d.cause.as_str(),
                    format_time_us(d.dead_lettered_us),
                    human_bytes(d.reason.as_bytes()),
                    d.redrive_of.map_or_else(String::new, |r| format!("  (failed again after redrive of #{r})")),
                )?;
                writeln!(out, "        {}", human_record(&d.record))?;
            }
            Ok(())
        }
        DlqCommand::Redrive { dir, topic, group, all, offset } => {
            let store = open_store(dir)?;
            let t = open_topic(&store, topic)?;
            let names = store.group_names(topic).map_err(CliError::log(format!("listing the groups of {topic}")))?;
            if !names.iter().any(|g| g == group) {
                return Err(CliError::Usage(format!("topic {topic} has no consumer group {group}")));
            }
            let g = t.group(group, GroupOptions::default()).map_err(|e| match e {
                tidelog::Error::Locked { .. } => CliError::Usage(format!(
                    "group {topic}/{group} is open in another process; stop it, or redrive from it with Group::redrive"
                )),
                e => CliError::log(format!("opening group {topic}/{group}"))(e),
            })?;
            let mut redriven = Vec::new();
            if *all {
                let parked: Vec<u64> = g
                    .dead_letters()
                    .map_err(CliError::log("listing dead letters"))?
                    .iter()
                    .filter(|d| d.status == tidelog::DeadLetterStatus::Parked)
                    .map(|d| d.dlq_offset)
                    .collect();
                let n = g.redrive_all().map_err(CliError::log("redriving"))?;
                debug_assert_eq!(n as usize, parked.len());
                redriven = parked;
            } else {
                for o in offset {
                    g.redrive(*o).map_err(CliError::log(format!("redriving dead letter {o}")))?;
                    redriven.push(*o);
                }
            }
            g.close().map_err(CliError::log(format!("closing group {topic}/{group}")))?;
            let mut out = io::stdout().lock();
            if ctx.json {
                let doc = serde_json::json!({ "topic": topic, "group": group, "redriven": redriven });
                return common::print_json(&mut out, &doc);
            }
            writeln!(
                out,
                "redriven {} dead letter(s) of {topic}/{group}; the group delivers them again on its next poll",
                redriven.len()
            )?;
            Ok(())
        }
    }
}
