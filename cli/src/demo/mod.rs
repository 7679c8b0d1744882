//! `tidelog demo`: the tour of the library. Writes a realistic ledger / e-commerce event
//! stream (single appends and atomic batches), replays it with a zero-copy cursor and checks
//! every balance and the content digest against what was written, looks an event up by time,
//! follows the tail while another thread appends, then closes and reopens (a clean reopen
//! scans nothing). It folds per-account balances with a projection that writes snapshots,
//! restarts it from the newest snapshot and asks for a balance as of an earlier offset. Then
//! it builds a store with a topic, two consumer groups and a dead
//! letter, and prints the commands that explore both. Last, event sourcing: a cart aggregate
//! on the store's topic `carts`, loaded from a snapshot plus its tail, an expected-version
//! conflict, and the cart as of an earlier time.
//!
//! Layout of `--dir`: the marker `.tidelog-demo`, the log `ledger/`, the projection's
//! snapshots `balances/`, the store `store/` with the cart's snapshots in `store/aggregates/`
//! (see `dir.rs` for what the demo may delete).

mod aggregate;
mod dir;
mod follow;
mod ledger;
mod project;
mod state;
mod store;
mod views;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tidelog::{Durability, Header, Log, Options, Record};

use self::follow::{follow_tail, TailEvent, TAIL_EVENTS, TAIL_EVERY};
use self::ledger::{headers_of, Generator, Ledger, ACCOUNTS};
use crate::disk;
use crate::error::{CliError, CliResult};
use crate::progress;
use crate::render::{self, count, per_sec, plural, plural_of, rate, size};
use crate::time::{format_time_us, now_us};
use crate::Ctx;

/// Default segment size of the ledger: small enough that a default run spans several
/// segments.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Arguments of `tidelog demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the demo: it gets a `.tidelog-demo` marker, the log `ledger/` and the
    /// store `store/`. An existing directory must be empty or hold a previous demo (with its
    /// marker and nothing else), which is replaced; anything else is refused and left alone.
    #[arg(long, value_name = "DIR", default_value = "tidelog-demo")]
    pub dir: PathBuf,
    /// Number of events to write.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
    /// Size of the ledger's segment files. Each is preallocated at this size on disk, so even
    /// a few events take one segment's worth of space (`Options::segment_bytes` in the
    /// library; its default is 128 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = SEGMENT_BYTES)]
    pub segment_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Phase {
    records: u64,
    bytes: u64,
    seconds: f64,
    records_per_sec: f64,
    bytes_per_sec: f64,
}

impl Phase {
    fn new(records: u64, bytes: u64, d: Duration) -> Phase {
        Phase {
            records,
            bytes,
            seconds: d.as_secs_f64(),
            records_per_sec: per_sec(records as f64, d),
            bytes_per_sec: per_sec(bytes as f64, d),
        }
    }

    fn human(&self) -> String {
        format!("{} records/s, {}/s", rate(self.records_per_sec), size(self.bytes_per_sec as u64))
    }
}

#[derive(Debug, Serialize)]
struct Lookup {
    time: String,
    timestamp_us: u64,
    offset: u64,
    micros: f64,
}

#[derive(Debug, Serialize)]
struct Reopen {
    seconds: f64,
    clean_shutdown: bool,
    scanned_bytes: u64,
    next_offset: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    /// The demo directory.
    dir: String,
    /// The ledger log in it.
    ledger: String,
    events: u64,
    single_appends: u64,
    atomic_batches: u64,
    segments: usize,
    /// Bytes the ledger's records use.
    bytes: u64,
    /// Space the ledger takes on disk, as `du` counts it (segments are preallocated).
    bytes_on_disk: u64,
    append: Phase,
    replay: Phase,
    accounts_checked: usize,
    orders: u64,
    content_crc32: String,
    lookup: Lookup,
    tail: Vec<TailEvent>,
    close_seconds: f64,
    reopen: Reopen,
    projection: project::ProjectionSummary,
    store: store::StoreSummary,
    aggregate: aggregate::AggregateSummary,
    view: views::ViewSummary,
}

/// Run `tidelog demo`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let mut out = io::stdout().lock();
    let human = !ctx.json;
    let opts = Options::default().segment_bytes(args.segment_bytes).durability(Durability::None);
    let demo = dir::prepare(&args.dir)?;
    let dir = &demo.ledger();
    let log =
        Log::open(dir, opts.clone()).map_err(CliError::log(format!("creating the demo log in {}", dir.display())))?;
    if human {
        writeln!(
            out,
            "tidelog demo: {} ledger and shop events into {} ({} segments)",
            count(args.events),
            dir.display(),
            size(args.segment_bytes)
        )?;
        out.flush()?;
    }

    // 1. Append: single events and atomic batches, timing only the log calls.
    let mut gen = Generator::new();
    let mut digest = crc32fast::Hasher::new();
    let (mut written, mut singles, mut batches) = (0u64, 0u64, 0u64);
    let lookup_at = args.events * 3 / 4;
    let mut lookup_target = None;
    let mut append_time = Duration::ZERO;
    let bar = progress::progress_bar(ctx, args.events, false, "append");
    let appending = |e| CliError::Log { doing: "appending".into(), error: e };
    while written < args.events {
        let is_batch = gen.tick(args.events - written);
        let pending = gen.pending();
        if lookup_target.is_none() && written + pending.len() as u64 > lookup_at {
            // Everything appended from here on is stamped at or after this time.
            lookup_target = Some((now_us(), written));
        }
        for p in pending {
            digest.update(p.key.as_bytes());
            digest.update(p.payload.as_bytes());
        }
        let t = Instant::now();
        if is_batch {
            let headers: Vec<[Header<'_>; 2]> = pending.iter().map(headers_of).collect();
            let records: Vec<Record<'_>> = pending
                .iter()
                .zip(&headers)
                .map(|(p, h)| Record::new(p.payload.as_bytes()).key(p.key.as_bytes()).headers(h))
                .collect();
            log.append_batch(&records).map_err(appending)?;
            batches += 1;
        } else {
            let p = &pending[0];
            let h = headers_of(p);
            log.append(Record::new(p.payload.as_bytes()).key(p.key.as_bytes()).headers(&h)).map_err(appending)?;
            singles += 1;
        }
        append_time += t.elapsed();
        written += pending.len() as u64;
        if written % 1024 < pending.len() as u64 {
            bar.set_position(written);
        }
    }
    bar.finish_and_clear();
    let expected_digest = digest.finalize();
    let log_bytes: u64 = log.segments().iter().map(|s| s.bytes).sum();
    let append = Phase::new(written, log_bytes, append_time);
    if human {
        writeln!(
            out,
            "  append   {} events ({} single appends, {} atomic batches) in {}: {}",
            count(written),
            count(singles),
            count(batches),
            render::duration(append_time),
            append.human()
        )?;
        out.flush()?;
    }

    // 2. Replay with a zero-copy cursor, rebuilding the ledger from keys, headers, payloads.
    let bar = progress::progress_bar(ctx, written, false, "replay");
    let started = Instant::now();
    let mut rebuilt = Ledger::new();
    let mut digest = crc32fast::Hasher::new();
    let mut cursor = log.cursor(log.first_offset());
    let mut replayed = 0u64;
    let replaying = |e| CliError::Log { doing: "replaying".into(), error: e };
    while let Some(rec) = cursor.next().map_err(replaying)? {
        let key = rec.key().unwrap_or_default();
        digest.update(key);
        digest.update(rec.payload());
        let kind = rec.header("type").unwrap_or_default();
        rebuilt
            .apply(key, kind, rec.payload())
            .map_err(|e| CliError::Mismatch(format!("record {}: {e}", rec.offset())))?;
        replayed += 1;
        if replayed.is_multiple_of(65_536) {
            bar.set_position(replayed);
        }
    }
    let replay_time = started.elapsed();
    bar.finish_and_clear();
    let replay = Phase::new(replayed, log_bytes, replay_time);
    let got_digest = digest.finalize();
    if replayed != written {
        return Err(CliError::Mismatch(format!("wrote {written} events, replayed {replayed}")));
    }
    if got_digest != expected_digest {
        return Err(CliError::Mismatch(format!(
            "content CRC-32 {got_digest:#010x} differs from the written {expected_digest:#010x}"
        )));
    }
    if rebuilt != gen.expected {
        let bad = rebuilt.balances.iter().zip(&gen.expected.balances).position(|(a, b)| a != b);
        return Err(CliError::Mismatch(match bad {
            Some(i) => format!(
                "balance of acct-{i:06} is {} after replay, {} when written",
                rebuilt.balances[i], gen.expected.balances[i]
            ),
            None => format!("event counts differ: replayed {rebuilt:?}"),
        }));
    }
    let e = &gen.expected;
    if e.orders_placed != e.orders_confirmed + e.orders_rejected || e.orders_confirmed != e.payments {
        return Err(CliError::Mismatch("an order lost part of its atomic batch".into()));
    }
    if human {
        writeln!(
            out,
            "  replay   {} events with a zero-copy cursor in {}: {}",
            count(replayed),
            render::duration(replay_time),
            replay.human()
        )?;
        writeln!(
            out,
            "           all {} account balances match, {} orders each complete (placed = confirmed + rejected), \
             content CRC-32 {got_digest:#010x} matches",
            count(ACCOUNTS as u64),
            count(e.orders_placed)
        )?;
        out.flush()?;
    }

    // 3. Time lookup: the first event stamped at or after a moment during the append.
    let (target_us, at_most) = lookup_target.unwrap_or((0, 0));
    let started = Instant::now();
    let found = log.offset_for_time(target_us).map_err(CliError::log("looking up by time"))?;
    let lookup_time = started.elapsed();
    let Some(found) = found else {
        return Err(CliError::Mismatch(format!("no event at or after {}", format_time_us(target_us))));
    };
    let rec = log.read(found).map_err(CliError::log("reading the looked-up event"))?;
    let before_ok = found == log.first_offset()
        || log.read_with(found - 1, |r| r.timestamp_us() < target_us).map_err(CliError::log("reading"))?;
    if found > at_most || rec.timestamp_us() < target_us || !before_ok {
        return Err(CliError::Mismatch(format!("time lookup for {target_us} returned offset {found}")));
    }
    let lookup = Lookup {
        time: format_time_us(target_us),
        timestamp_us: target_us,
        offset: found,
        micros: lookup_time.as_secs_f64() * 1e6,
    };
    if human {
        writeln!(
            out,
            "  lookup   first event at or after {}: offset {} ({} {}), found in {}",
            lookup.time,
            count(found),
            String::from_utf8_lossy(rec.header("type").unwrap_or_default()),
            String::from_utf8_lossy(rec.key().unwrap_or_default()),
            render::duration(lookup_time)
        )?;
        out.flush()?;
    }

    // 4. Follow the tail while another thread appends.
    if human {
        writeln!(
            out,
            "  tail     following the log while another thread deposits for {} ...",
            render::duration(TAIL_EVERY * TAIL_EVENTS as u32)
        )?;
        out.flush()?;
    }
    let tail = follow_tail(&log, &mut out, human)?;

    // 5. Close cleanly, reopen, and show that nothing had to be scanned.
    let started = Instant::now();
    log.close().map_err(CliError::log("closing"))?;
    let close_time = started.elapsed();
    let started = Instant::now();
    let log = Log::open(dir, opts).map_err(CliError::log("reopening"))?;
    let reopen_time = started.elapsed();
    let report = log.open_report();
    let reopen = Reopen {
        seconds: reopen_time.as_secs_f64(),
        clean_shutdown: report.clean_shutdown,
        scanned_bytes: report.scanned_bytes,
        next_offset: log.next_offset(),
    };
    if reopen.next_offset != written + TAIL_EVENTS {
        return Err(CliError::Mismatch(format!(
            "reopened log ends at {}, expected {}",
            reopen.next_offset,
            written + TAIL_EVENTS
        )));
    }
    let segments = log.segments();
    let ledger_bytes = segments.iter().map(|s| s.bytes).sum();

    // 6. Balances as a projection with snapshots; a restart; a balance as of an earlier offset.
    if human {
        print_reopen(&mut out, close_time, &reopen)?;
    }
    let projection = project::run(&log, &demo.balances(), written, &gen.expected.balances, lookup.offset)?;
    if human {
        projection.print(&mut out)?;
    }
    log.close().map_err(CliError::log("closing"))?;

    // 7. A store to explore with tail, consumers and dlq.
    let store_dir = demo.store();
    let store = store::build(&store_dir)?;
    state::run(&store_dir, &mut out, human)?;
    // 8. Event sourcing: an aggregate on a topic of the store, snapshots, a conflict, a time query.
    let aggregate = aggregate::run(&store_dir)?;
    let view = views::run(&store_dir)?;

    let summary = Summary {
        dir: demo.root.display().to_string(),
        ledger: dir.display().to_string(),
        events: reopen.next_offset,
        single_appends: singles,
        atomic_batches: batches,
        segments: segments.len(),
        bytes: ledger_bytes,
        bytes_on_disk: disk::allocated_bytes(dir).map_err(CliError::io(dir))?,
        append,
        replay,
        accounts_checked: ACCOUNTS,
        orders: e.orders_placed,
        content_crc32: format!("{got_digest:#010x}"),
        lookup,
        tail,
        close_seconds: close_time.as_secs_f64(),
        reopen,
        projection,
        store,
        aggregate,
        view,
    };

    if ctx.json {
        return render::print_json(&mut out, &summary);
    }
    let s = &summary.store;
    writeln!(
        out,
        "  store    {} events in topic {} of {}: {}",
        count(s.events),
        s.topic,
        s.dir,
        s.groups
            .iter()
            .map(|g| format!(
                "group {} acked {} ({} unconsumed, {}, {})",
                g.group,
                count(g.acked),
                count(g.unconsumed),
                plural_of(g.scheduled_retries, "scheduled retry", "scheduled retries"),
                plural(g.dead_letters, "dead letter")
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )?;
    summary.aggregate.print(&mut out)?;
    summary.view.print(&mut out, &store_dir)?;
    let mut latencies: Vec<u64> = summary.tail.iter().map(|t| t.latency_us).collect();
    latencies.sort_unstable();
    let latency = |us: Option<&u64>| render::duration(Duration::from_micros(us.copied().unwrap_or(0)));
    writeln!(out)?;
    writeln!(out, "summary")?;
    writeln!(
        out,
        "  events        {} in {}, {} used, {} on disk (segments are preallocated)",
        count(summary.events),
        plural(summary.segments as u64, "segment"),
        size(summary.bytes),
        size(summary.bytes_on_disk)
    )?;
    writeln!(out, "  append        {}", summary.append.human())?;
    writeln!(out, "  replay        {} (zero-copy cursor, checksums checked)", summary.replay.human())?;
    writeln!(
        out,
        "  tail latency  median {}, max {} (append to delivery)",
        latency(latencies.get(latencies.len() / 2)),
        latency(latencies.last())
    )?;
    writeln!(
        out,
        "  reopen        {} (clean, scanned {})",
        render::duration(reopen_time),
        plural(summary.reopen.scanned_bytes, "byte")
    )?;
    writeln!(out)?;
    print_next_steps(&mut out, &demo)?;
    Ok(())
}

fn print_reopen(out: &mut impl Write, close_time: Duration, r: &Reopen) -> CliResult {
    writeln!(
        out,
        "  reopen   closed in {}; reopened in {}: {}, scanned {}",
        render::duration(close_time),
        render::duration(Duration::from_secs_f64(r.seconds)),
        if r.clean_shutdown { "clean shutdown" } else { "recovered after an unclean shutdown" },
        plural(r.scanned_bytes, "byte")
    )?;
    out.flush()?;
    Ok(())
}

/// A path as a shell word: as is if it needs no quoting, in single quotes otherwise.
fn shell_word(p: &Path) -> String {
    let s = p.display().to_string();
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%".contains(&b));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The commands that explore what the demo left, runnable as printed: through `cargo run`
/// when the demo was started that way (cargo sets `CARGO` for the program it runs),
/// otherwise through the binary's own name.
fn print_next_steps(out: &mut impl Write, demo: &dir::DemoDir) -> CliResult {
    let via_cargo = std::env::var_os("CARGO").is_some();
    let tidelog = if via_cargo { "cargo run --release --" } else { "tidelog" };
    let ledger = shell_word(&demo.ledger());
    let store = shell_word(&demo.store());
    let (topic, billing) = (store::TOPIC, store::BILLING);
    writeln!(out, "explore what it left ({} and {}):", ledger, store)?;
    for cmd in [
        format!("info {ledger}"),
        format!("dump {ledger} --header type=payment --limit 5"),
        format!("verify {ledger}"),
        format!("consumers {store}"),
        format!("tail {store} {topic} -n 5"),
        format!("dlq list {store} {topic} {billing}"),
        format!("dlq redrive {store} {topic} {billing} --all"),
    ] {
        writeln!(out, "  {tidelog} {cmd}")?;
    }
    if via_cargo {
        writeln!(
            out,
            "or install the binary (`cargo install --locked --path cli`) and run `tidelog info {ledger}` and so on"
        )?;
    }
    Ok(())
}
