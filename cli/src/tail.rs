//! `tidelog tail [-f] STORE TOPIC`: a topic's last events; with `-f`, new ones as they are
//! published.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{CliError, CliResult};
use crate::locate::{open_store, open_topic};
use crate::render::{self, RecordRef, RecordStyle};
use crate::time::parse_seconds;
use crate::Ctx;

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
    /// With -f: stop after this many seconds without a new event (a number ≥ 0; default:
    /// never).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub idle_exit: Option<Duration>,
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
    let style = RecordStyle::default();
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
            next = rec.offset() + 1;
            let r = RecordRef::from(&rec);
            if ctx.json {
                render::print_json_line(&mut out, &render::record_json(&r, style))?;
            } else {
                writeln!(out, "{}", render::record_line(&r, style))?;
            }
            printed += 1;
            idle_since = Instant::now();
        }
        out.flush()?;
        if !args.follow || args.limit.is_some_and(|l| printed >= l) {
            return Ok(());
        }
        let wait = match args.idle_exit {
            Some(limit) => match limit.checked_sub(idle_since.elapsed()) {
                Some(left) if !left.is_zero() => left,
                _ => return Ok(()),
            },
            None => Duration::from_secs(3600),
        };
        topic.wait_for(next, wait).map_err(CliError::log(format!("following topic {}", args.topic)))?;
    }
}
