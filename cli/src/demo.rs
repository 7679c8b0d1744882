//! `tidelog demo`: the tour of the library. Writes a realistic ledger / e-commerce event
//! stream (single appends and atomic batches), replays it with a zero-copy cursor and checks
//! every balance and the content digest against what was written, looks an event up by time,
//! follows the tail while another thread appends, then closes and reopens (a clean reopen
//! scans nothing).

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use tidelog::{Durability, Header, Log, Options, Record};

use crate::error::{CliError, CliResult};
use crate::progress;
use crate::render::{self, count, per_sec, rate, size as bytes};
use crate::time::{format_time_us, now_us};
use crate::Ctx;

/// Accounts in the simulated ledger.
const ACCOUNTS: usize = 10_000;
/// Segment size: small enough that a default run spans several segments.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Events the tail-follow phase appends, one every `TAIL_EVERY`.
const TAIL_EVENTS: u64 = 8;
const TAIL_EVERY: Duration = Duration::from_millis(125);
/// How long the follower waits for the tail events before giving up.
const TAIL_DEADLINE: Duration = Duration::from_secs(10);

/// Arguments of `tidelog demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory for the demo log. If it exists it must be empty or hold only tidelog files
    /// (a previous demo); it is then removed first. Anything else is left alone.
    #[arg(long, value_name = "DIR", default_value = "tidelog-demo")]
    pub dir: PathBuf,
    /// Number of events to write.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub events: u64,
}

/// True for the names of files a tidelog log directory holds: `{20 digits}.log`,
/// `.index`, `.timeindex`, the `checkpoint`, the writer's `LOCK`, and `.tmp` leftovers.
fn is_tidelog_file(name: &str) -> bool {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    if name == "checkpoint" || name == "LOCK" {
        return true;
    }
    let stem = [".log", ".index", ".timeindex"].iter().find_map(|ext| name.strip_suffix(ext));
    stem.is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Make sure `dir` can be used for a fresh demo log: absent, empty, or a previous demo log
/// (then removed). Refuses anything that holds other files, so that `--dir` pointed at the
/// wrong place destroys nothing.
fn prepare_dir(dir: &Path) -> CliResult {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CliError::Io { path: dir.to_path_buf(), source: e }),
    };
    if !meta.is_dir() {
        return Err(CliError::Usage(format!(
            "{} exists and is not a directory; refusing to touch it (pick another --dir)",
            dir.display()
        )));
    }
    let (mut segments, mut foreign) = (0usize, Vec::new());
    for entry in fs::read_dir(dir).map_err(CliError::io(dir))? {
        let entry = entry.map_err(CliError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(CliError::io(entry.path()))?.is_file();
        if is_file && is_tidelog_file(&name) {
            segments += usize::from(name.ends_with(".log"));
        } else {
            foreign.push(name);
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        let shown: Vec<&str> = foreign.iter().take(3).map(String::as_str).collect();
        return Err(CliError::Usage(format!(
            "{} exists and does not look like a tidelog demo log (it holds {}{}); refusing to remove it \
             (pick another --dir or remove it yourself)",
            dir.display(),
            shown.join(", "),
            if foreign.len() > 3 { ", ..." } else { "" },
        )));
    }
    if segments == 0 {
        // Empty, or only a stray checkpoint/lock: nothing worth keeping, reuse it as is.
        return fs::remove_dir_all(dir).map_err(CliError::io(dir));
    }
    // A demo log another process still has open is not ours to delete.
    match Log::open(dir, Options::default().segment_bytes(SEGMENT_BYTES)) {
        Err(e @ tidelog::Error::Locked { .. }) => {
            return Err(CliError::Log { doing: "removing the previous demo log".into(), error: e });
        }
        // A damaged previous demo is removed all the same; closing only releases the lock.
        Ok(log) => drop(log.close()),
        Err(_) => {}
    }
    fs::remove_dir_all(dir).map_err(CliError::io(dir))
}

/// xorshift64*: a small deterministic generator, enough for a synthetic workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const SOURCES: [&str; 4] = ["atm", "mobile", "web", "branch"];
const MEMOS: [&str; 6] = [
    "groceries",
    "rent october",
    "refund for returned item",
    "birthday gift from grandma",
    "split dinner bill",
    "monthly savings transfer to the holiday fund",
];
const SKUS: [&str; 8] = [
    "TEA-GREEN-100G",
    "MUG-STONE-350",
    "KETTLE-1L",
    "BEANS-ESPRESSO-1KG",
    "FILTER-V60-100",
    "GRINDER-HAND",
    "SCALE-0.1G",
    "CUP-TRAVEL",
];
const COUNTRIES: [&str; 5] = ["DE", "FR", "NL", "SE", "IE"];

/// What a replay must find: rebuilt independently by the writer and by the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ledger {
    balances: Vec<i64>,
    deposits: u64,
    withdrawals: u64,
    payments: u64,
    orders_placed: u64,
    orders_confirmed: u64,
    orders_rejected: u64,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            balances: vec![0; ACCOUNTS],
            deposits: 0,
            withdrawals: 0,
            payments: 0,
            orders_placed: 0,
            orders_confirmed: 0,
            orders_rejected: 0,
        }
    }

    /// Apply one event as a consumer would, from its key, `type` header and payload.
    fn apply(&mut self, key: &[u8], kind: &[u8], payload: &[u8]) -> Result<(), String> {
        let account =
            || parse_account(key).ok_or_else(|| format!("bad account key {:?}", String::from_utf8_lossy(key)));
        let amount = || parse_amount(payload).ok_or_else(|| "payload without amount_cents".to_owned());
        match kind {
            b"deposit" => {
                self.balances[account()?] += amount()?;
                self.deposits += 1;
            }
            b"withdrawal" => {
                self.balances[account()?] -= amount()?;
                self.withdrawals += 1;
            }
            b"payment" => {
                self.balances[account()?] -= amount()?;
                self.payments += 1;
            }
            b"order_placed" => self.orders_placed += 1,
            b"order_confirmed" => self.orders_confirmed += 1,
            b"order_rejected" => self.orders_rejected += 1,
            other => return Err(format!("unknown event type {:?}", String::from_utf8_lossy(other))),
        }
        Ok(())
    }
}

/// `acct-004217` -> 4217.
fn parse_account(key: &[u8]) -> Option<usize> {
    let digits = key.strip_prefix(b"acct-")?;
    let n = std::str::from_utf8(digits).ok()?.parse::<usize>().ok()?;
    (n < ACCOUNTS).then_some(n)
}

/// The number after `"amount_cents":` (the second field of every money event, so the
/// search ends early).
fn parse_amount(payload: &[u8]) -> Option<i64> {
    const FIELD: &[u8] = b"\"amount_cents\":";
    let at = payload.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let digits = &payload[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// One event waiting to be appended; the strings are reused from tick to tick.
#[derive(Default)]
struct Pending {
    key: String,
    kind: &'static str,
    source: &'static str,
    payload: String,
}

/// Generates the event stream and keeps the writer's view of the ledger.
struct Generator {
    rng: Rng,
    expected: Ledger,
    next_order: u64,
    next_ref: u64,
    pool: Vec<Pending>,
    len: usize,
}

impl Generator {
    fn new() -> Generator {
        Generator {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            expected: Ledger::new(),
            next_order: 1,
            next_ref: 1,
            pool: Vec::new(),
            len: 0,
        }
    }

    fn push(&mut self, kind: &'static str, source: &'static str) -> &mut Pending {
        if self.len == self.pool.len() {
            self.pool.push(Pending::default());
        }
        let p = &mut self.pool[self.len];
        self.len += 1;
        p.key.clear();
        p.payload.clear();
        p.kind = kind;
        p.source = source;
        p
    }

    fn money(&mut self, kind: &'static str, source: &'static str, account: usize, amount: i64, memo: &str) {
        let reference = self.next_ref;
        self.next_ref += 1;
        let p = self.push(kind, source);
        // `write!` into a `String` cannot fail.
        let _ = write!(p.key, "acct-{account:06}");
        let _ = write!(
            p.payload,
            r#"{{"event":"{kind}","amount_cents":{amount},"account":"acct-{account:06}","currency":"EUR","channel":"{source}","reference":"tx-{reference:012}","memo":"{memo}"}}"#
        );
    }

    /// Fill the pool with the next tick's events (at most `room`): a single deposit or
    /// withdrawal, a checkout (an atomic batch: order placed, payment, confirmed or rejected),
    /// or a payroll run (an atomic batch of deposits). Returns true for a batch.
    fn tick(&mut self, room: u64) -> bool {
        self.len = 0;
        let roll = self.rng.below(100);
        if roll < 55 || room < 3 {
            let account = self.rng.below(ACCOUNTS as u64) as usize;
            let amount = 100 + self.rng.below(50_000) as i64;
            let source = self.rng.pick(&SOURCES);
            let memo = self.rng.pick(&MEMOS);
            if self.rng.below(2) == 0 && self.expected.balances[account] >= amount {
                self.money("withdrawal", source, account, amount, memo);
                self.expected.balances[account] -= amount;
                self.expected.withdrawals += 1;
            } else {
                self.money("deposit", source, account, amount, memo);
                self.expected.balances[account] += amount;
                self.expected.deposits += 1;
            }
            return false;
        }
        if roll < 92 {
            self.checkout();
        } else {
            let n = (16 + self.rng.below(49)).min(room);
            for _ in 0..n {
                let account = self.rng.below(ACCOUNTS as u64) as usize;
                let amount = 150_000 + self.rng.below(400_000) as i64;
                self.money("deposit", "payroll", account, amount, "salary");
                self.expected.balances[account] += amount;
                self.expected.deposits += 1;
            }
        }
        true
    }

    fn checkout(&mut self) {
        let account = self.rng.below(ACCOUNTS as u64) as usize;
        let order = self.next_order;
        self.next_order += 1;
        let source = self.rng.pick(&["web", "mobile"]);
        let mut items = String::new();
        let mut total = 0i64;
        for i in 0..1 + self.rng.below(3) {
            let qty = 1 + self.rng.below(3) as i64;
            let price = 299 + self.rng.below(9_000) as i64;
            total += qty * price;
            let sku = self.rng.pick(&SKUS);
            let _ =
                write!(items, r#"{}{{"sku":"{sku}","qty":{qty},"price_cents":{price}}}"#, if i > 0 { "," } else { "" });
        }
        let country = self.rng.pick(&COUNTRIES);
        let p = self.push("order_placed", source);
        let _ = write!(p.key, "ord-{order:010}");
        let _ = write!(
            p.payload,
            r#"{{"event":"order_placed","order":"ord-{order:010}","account":"acct-{account:06}","items":[{items}],"total_cents":{total},"ship_to":"{country}"}}"#
        );
        self.expected.orders_placed += 1;
        let paid = self.expected.balances[account] >= total;
        if paid {
            self.money("payment", source, account, total, "online order");
            self.expected.balances[account] -= total;
            self.expected.payments += 1;
        }
        let kind = if paid { "order_confirmed" } else { "order_rejected" };
        let p = self.push(kind, source);
        let _ = write!(p.key, "ord-{order:010}");
        let reason = if paid { "" } else { r#","reason":"insufficient funds""# };
        let _ = write!(
            p.payload,
            r#"{{"event":"{kind}","order":"ord-{order:010}","account":"acct-{account:06}"{reason}}}"#
        );
        if paid {
            self.expected.orders_confirmed += 1;
        } else {
            self.expected.orders_rejected += 1;
        }
    }

    fn pending(&self) -> &[Pending] {
        &self.pool[..self.len]
    }
}

fn headers_of(p: &Pending) -> [Header<'_>; 2] {
    [Header { name: "type", value: p.kind.as_bytes() }, Header { name: "source", value: p.source.as_bytes() }]
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
        format!("{} records/s, {}/s", rate(self.records_per_sec), bytes(self.bytes_per_sec as u64))
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
struct TailEvent {
    offset: u64,
    key: String,
    latency_us: u64,
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
    dir: String,
    events: u64,
    single_appends: u64,
    atomic_batches: u64,
    segments: usize,
    bytes: u64,
    append: Phase,
    replay: Phase,
    accounts_checked: usize,
    orders: u64,
    content_crc32: String,
    lookup: Lookup,
    tail: Vec<TailEvent>,
    close_seconds: f64,
    reopen: Reopen,
}

/// Run `tidelog demo`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let mut out = io::stdout().lock();
    let human = !ctx.json;
    let dir = &args.dir;
    prepare_dir(dir)?;
    let opts = Options::default().segment_bytes(SEGMENT_BYTES).durability(Durability::None);
    let log =
        Log::open(dir, opts.clone()).map_err(CliError::log(format!("creating the demo log in {}", dir.display())))?;
    if human {
        writeln!(
            out,
            "tidelog demo: {} ledger and shop events into {} ({} segments)",
            count(args.events),
            dir.display(),
            bytes(SEGMENT_BYTES)
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
    if found > at_most || rec.timestamp_us < target_us || !before_ok {
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
            String::from_utf8_lossy(rec.key.as_deref().unwrap_or_default()),
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
    let summary = Summary {
        dir: dir.display().to_string(),
        events: reopen.next_offset,
        single_appends: singles,
        atomic_batches: batches,
        segments: segments.len(),
        bytes: segments.iter().map(|s| s.bytes).sum(),
        append,
        replay,
        accounts_checked: ACCOUNTS,
        orders: e.orders_placed,
        content_crc32: format!("{got_digest:#010x}"),
        lookup,
        tail,
        close_seconds: close_time.as_secs_f64(),
        reopen,
    };
    log.close().map_err(CliError::log("closing"))?;

    if ctx.json {
        return render::print_json(&mut out, &summary);
    }
    let r = &summary.reopen;
    writeln!(
        out,
        "  reopen   closed in {}; reopened in {}: {}, scanned {} bytes",
        render::duration(close_time),
        render::duration(reopen_time),
        if r.clean_shutdown { "clean shutdown" } else { "recovered after an unclean shutdown" },
        count(r.scanned_bytes)
    )?;
    let mut latencies: Vec<u64> = summary.tail.iter().map(|t| t.latency_us).collect();
    latencies.sort_unstable();
    writeln!(out)?;
    writeln!(out, "summary")?;
    writeln!(
        out,
        "  events        {} in {} segments, {} on disk",
        count(summary.events),
        summary.segments,
        bytes(summary.bytes)
    )?;
    writeln!(out, "  append        {}", summary.append.human())?;
    writeln!(out, "  replay        {} (zero-copy cursor, checksums checked)", summary.replay.human())?;
    writeln!(
        out,
        "  tail latency  median {} µs, max {} µs (append to delivery)",
        latencies.get(latencies.len() / 2).copied().unwrap_or(0),
        latencies.last().copied().unwrap_or(0)
    )?;
    writeln!(
        out,
        "  reopen        {} (clean, scanned {} bytes)",
        render::duration(reopen_time),
        count(summary.reopen.scanned_bytes)
    )?;
    writeln!(out, "  log kept in   {} (try: tidelog info {0}, tidelog verify {0})", summary.dir)?;
    Ok(())
}

/// Append `TAIL_EVENTS` deposits from another thread over about a second, and print each
/// as the follower (`wait_for` + cursor) receives it, with its latency from append.
fn follow_tail(log: &Log, out: &mut impl Write, human: bool) -> CliResult<Vec<TailEvent>> {
    let start = log.next_offset();
    let writer = log.clone();
    let producer = thread::spawn(move || -> Result<(), tidelog::Error> {
        for i in 0..TAIL_EVENTS {
            thread::sleep(TAIL_EVERY);
            let key = format!("acct-{:06}", (i * 1231) % ACCOUNTS as u64);
            let payload = format!(
                r#"{{"event":"deposit","amount_cents":{},"account":"{key}","currency":"EUR","channel":"mobile","memo":"live tail"}}"#,
                1_000 * (i + 1)
            );
            let headers = [Header { name: "type", value: b"deposit" }, Header { name: "source", value: b"mobile" }];
            writer.append(Record::new(payload.as_bytes()).key(key.as_bytes()).headers(&headers))?;
        }
        Ok(())
    });

    let mut cursor = log.cursor(start);
    let mut seen = Vec::new();
    let deadline = Instant::now() + TAIL_DEADLINE;
    let mut failure = None;
    while (seen.len() as u64) < TAIL_EVENTS {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.wait_for(cursor.position(), left) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                failure = Some(CliError::log("waiting for new events")(e));
                break;
            }
        }
        loop {
            let rec = match cursor.next() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => return Err(CliError::log("following the tail")(e)),
            };
            let latency_us = now_us().saturating_sub(rec.timestamp_us());
            let key = String::from_utf8_lossy(rec.key().unwrap_or_default()).into_owned();
            if human {
                writeln!(
                    out,
                    "           offset {:>9}  deposit  {key}  arrived after {latency_us} µs",
                    count(rec.offset())
                )?;
                out.flush()?;
            }
            seen.push(TailEvent { offset: rec.offset(), key, latency_us });
        }
    }
    match producer.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(CliError::log("appending from the producer thread")(e)),
        Err(_) => return Err(CliError::Mismatch("the producer thread panicked".into())),
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if seen.len() as u64 != TAIL_EVENTS {
        return Err(CliError::Mismatch(format!("the follower saw {} of {TAIL_EVENTS} new events", seen.len())));
    }
    Ok(seen)
}
