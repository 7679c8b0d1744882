//! The workloads and the runner.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::data::{Digest, Pool, Rng};
use crate::stores::{self, Kind, Mode, Store};
use crate::Result;

/// Payload size of the durable and position workloads.
pub const DURABLE_PAYLOAD: usize = 1024;
/// Events per step in the position workload.
pub const POSITION_BATCH: usize = 64;
/// Replays per dataset and store (the median is reported).
pub const REPLAY_PASSES: usize = 3;
/// The consumer whose position is committed.
pub const CONSUMER: &[u8] = b"projector-1";
/// Records per append call in the bulk workloads (one `append_batch`, one fjall batch, one
/// commitlog message set, one staging of the `file` baseline; SQLite inserts them inside one
/// transaction spanning the whole load): `bulk-100B-b64`, `bulk-100B-b1024`, ...
pub const BULK_CHUNKS: [usize; 2] = [64, 1024];
/// Appending threads of the `durable-4t` workload.
pub const THREADS: usize = 4;
/// Stores of the `durable-4t` workload (tidelog's group commit against the `file` baseline's).
pub const THREADED: [Kind; 2] = [Kind::Tidelog, Kind::File];

/// A bulk dataset: payload size and the divisor applied to `--records`.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    /// Suffix of the workload names (`bulk-100B`, ...).
    pub name: &'static str,
    /// Payload bytes per record.
    pub payload: usize,
    /// Records = `--records / divisor`.
    pub divisor: u64,
}

/// The four bulk datasets.
pub const DATASETS: [Dataset; 4] = [
    Dataset { name: "100B", payload: 100, divisor: 1 },
    Dataset { name: "1KiB", payload: 1024, divisor: 4 },
    Dataset { name: "4KiB", payload: 4096, divisor: 5 },
    Dataset { name: "16KiB", payload: 16 * 1024, divisor: 16 },
];

/// The bulk workload of `ds` in chunks of `chunk` records (`bulk-100B-b64`).
pub fn bulk_name(ds: Dataset, chunk: usize) -> String {
    format!("bulk-{}-b{chunk}", ds.name)
}

/// Every workload name, in report order.
pub fn workload_names() -> Vec<String> {
    let mut v = Vec::new();
    for d in DATASETS {
        for c in BULK_CHUNKS {
            v.push(bulk_name(d, c));
        }
    }
    for prefix in ["replay", "random"] {
        for d in DATASETS {
            v.push(format!("{prefix}-{}", d.name));
        }
    }
    v.extend(["durable-b1", "durable-b64", "durable-4t", "position", "reopen"].map(String::from));
    for d in DATASETS {
        v.push(format!("disk-{}", d.name));
    }
    v
}

/// The kind of workload a name belongs to (`bulk`, `replay`, `durable`, `durable-4t`, ...), as
/// [`runs`] and [`durable`] take it.
pub fn family(workload: &str) -> &str {
    if workload == "durable-4t" {
        return workload;
    }
    workload.split('-').next().unwrap_or(workload)
}

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Records of the 100 B dataset (the 1 KiB, 4 KiB and 16 KiB datasets get 1/4, 1/5 and
    /// 1/16).
    pub records: u64,
    /// Durable operations (batches) per durable workload and position steps.
    pub durable_ops: u64,
    /// Random reads per dataset (default: as many as the dataset has records).
    pub reads: Option<u64>,
    /// Reopen measurements (the median is reported).
    pub reopen_runs: usize,
    /// Bulk loads per dataset, chunk size and store (the median is reported).
    pub bulk_trials: usize,
    /// Seconds to sleep (untimed, store open) right before each bulk load, so that each load
    /// starts on a machine that has been idle that long.
    pub idle_before: f64,
    /// tidelog's `index_interval_bytes` if not its default (applied through
    /// [`stores::TIDELOG_INDEX_INTERVAL`]).
    pub tidelog_index_interval: Option<u32>,
    /// Workload names or prefixes; empty = all.
    pub only: Vec<String>,
    /// Stores to run.
    pub stores: Vec<Kind>,
    /// Where the stores are created.
    pub dir: PathBuf,
    /// Run `sync` between stores so one store's dirty pages are not written back during
    /// another store's measurement.
    pub settle: bool,
    /// Progress on stderr.
    pub progress: bool,
}

impl Config {
    /// True if `workload` was selected.
    pub fn selected(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| workload == o || workload.starts_with(o.as_str()))
    }
}

/// One measured result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// Store name.
    pub store: String,
    /// Records involved (appended, read, or in the dataset).
    pub records: u64,
    /// Payload bytes involved.
    pub payload_bytes: u64,
    /// Wall time of the measured section.
    pub seconds: f64,
    /// The headline value.
    pub value: f64,
    /// Its unit: `records/s`, `ms` or `bytes`.
    pub unit: String,
    /// True for throughput, false for times and sizes.
    pub higher_is_better: bool,
    /// For writes: does the measured operation reach stable storage? `None` for reads.
    pub durable: Option<bool>,
    /// Median latency per operation (durable workloads), µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency per operation (durable workloads), µs.
    pub p99_us: Option<f64>,
    /// Anything else worth knowing about this row.
    pub note: String,
    /// tidelog's advantage over this row (>1 = tidelog better); filled by [`fill_ratios`].
    pub tidelog_ratio: Option<f64>,
}

impl Row {
    /// Payload MB/s (10^6 bytes), for throughput rows.
    pub fn mb_per_s(&self) -> Option<f64> {
        (self.unit == "records/s" && self.seconds > 0.0).then(|| self.payload_bytes as f64 / self.seconds / 1e6)
    }
}

/// A correctness check: what one store returned against what was written.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Workload.
    pub workload: String,
    /// Store.
    pub store: String,
    /// Passed.
    pub ok: bool,
    /// Expected and got.
    pub detail: String,
}

/// Everything a run produced.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Outcome {
    /// Measurements.
    pub rows: Vec<Row>,
    /// Correctness checks.
    pub checks: Vec<Check>,
}

impl Outcome {
    fn check(&mut self, workload: &str, kind: Kind, ok: bool, detail: String) {
        if !ok {
            eprintln!("CHECK FAILED: {workload} {}: {detail}", kind.name());
        }
        self.checks.push(Check { workload: workload.into(), store: kind.name().into(), ok, detail });
    }
}

/// Does this store take part in this kind of workload (see [`family`])?
pub fn runs(kind: Kind, family: &str) -> bool {
    if family == "durable-4t" {
        return THREADED.contains(&kind);
    }
    match kind {
        Kind::Tidelog1Log => family == "position",
        Kind::CommitlogFsync => matches!(family, "bulk" | "durable" | "position"),
        // The baselines have no index to open and no transactions to commit a position in.
        Kind::File | Kind::Mmap => !matches!(family, "reopen" | "position"),
        _ => true,
    }
}

/// Does a write by this store in this family reach stable storage when the workload says so?
/// (Established by the fsync audit; see `audit.rs`.)
pub fn durable(kind: Kind, family: &str) -> bool {
    match kind {
        Kind::Commitlog => false,
        // `write` + `fdatasync`, `msync(MS_SYNC)`.
        Kind::File | Kind::Mmap => true,
        // WAL + NORMAL: a commit is not fsynced; the WAL is synced only at checkpoints. The
        // bulk load's large commit triggers the automatic checkpoint, which does sync.
        Kind::SqliteNormal => family == "bulk",
        _ => true,
    }
}

fn log(cfg: &Config, msg: impl AsRef<str>) {
    if cfg.progress {
        eprintln!("{}", msg.as_ref());
    }
}

fn settle(cfg: &Config) {
    if cfg.settle {
        // Flush every dirty page system-wide (untimed) so that the next measurement does not
        // pay for this one's writeback.
        let _ = std::process::Command::new("sync").status();
    }
}

#[allow(clippy::too_many_arguments)]
fn rate_row(
    workload: &str,
    kind: Kind,
    records: u64,
    payload_bytes: u64,
    elapsed: Duration,
    durable: Option<bool>,
    lat: Option<&mut [f64]>,
    note: String,
) -> Row {
    let seconds = elapsed.as_secs_f64();
    let (p50_us, p99_us) = match lat {
        Some(l) if !l.is_empty() => {
            l.sort_by(f64::total_cmp);
            let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
            (Some(at(0.5)), Some(at(0.99)))
        }
        _ => (None, None),
    };
    Row {
        workload: workload.into(),
        store: kind.name().into(),
        records,
        payload_bytes,
        seconds,
        value: records as f64 / seconds,
        unit: "records/s".into(),
        higher_is_better: true,
        durable,
        p50_us,
        p99_us,
        note,
        tidelog_ratio: None,
    }
}

fn store_dir(cfg: &Config, kind: Kind, what: &str) -> PathBuf {
    cfg.dir.join(format!("{}-{what}", kind.name().replace('+', "-")))
}

fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Run everything selected.
pub fn run(cfg: &Config) -> Result<Outcome> {
    std::fs::create_dir_all(&cfg.dir)?;
    let pool = Pool::new();
    let mut out = Outcome::default();
    for ds in DATASETS {
        run_dataset(cfg, &pool, ds, &mut out)?;
    }
    for (name, batch) in [("durable-b1", 1usize), ("durable-b64", 64)] {
        if cfg.selected(name) {
            run_durable(cfg, &pool, name, batch, &mut out)?;
        }
    }
    if cfg.selected("durable-4t") {
        run_threads(cfg, &pool, &mut out)?;
    }
    if cfg.selected("position") {
        run_position(cfg, &pool, &mut out)?;
    }
    fill_ratios(&mut out.rows);
    sort_rows(&mut out.rows);
    Ok(out)
}

fn run_dataset(cfg: &Config, pool: &Pool, ds: Dataset, out: &mut Outcome) -> Result<()> {
    let n = (cfg.records / ds.divisor).max(1);
    let names = ["replay", "random", "disk"].map(|p| format!("{p}-{}", ds.name));
    let chunks: Vec<usize> = BULK_CHUNKS.into_iter().filter(|&c| cfg.selected(&bulk_name(ds, c))).collect();
    let want_reopen = ds.name == "100B" && cfg.selected("reopen");
    if chunks.is_empty() && !names.iter().any(|w| cfg.selected(w)) && !want_reopen {
        return Ok(());
    }
    let [replay_name, random_name, disk_name] = &names;
    let events = pool.events(0, n, ds.payload);
    let expected = Digest::of(&events);
    let payload_bytes = expected.bytes;
    let reads = cfg.reads.unwrap_or(n).max(1);
    let offsets: Vec<u64> = {
        let mut rng = Rng::new(0x5EED);
        (0..reads).map(|_| rng.below(n)).collect()
    };
    let expected_random = {
        let mut d = Digest::default();
        for &o in &offsets {
            d.add(events[o as usize].payload);
        }
        d
    };
    let reads_only = chunks.is_empty();
    let kinds: Vec<Kind> =
        cfg.stores.iter().copied().filter(|&k| runs(k, "bulk") && !(reads_only && k == Kind::CommitlogFsync)).collect();
    // Bulk trials: `bulk_trials` rounds, each loading every chunk size into every store in turn
    // (so that drift in the machine's state hits all of them alike), each load on a fresh
    // directory. The very last load (largest chunk) is kept for the reads; the rows report the
    // median trial of each chunk size.
    let plan: Vec<usize> = (0..cfg.bulk_trials.max(1)).flat_map(|_| chunks.iter().copied()).collect();
    let keep_chunk = plan.last().copied().unwrap_or(BULK_CHUNKS[BULK_CHUNKS.len() - 1]);
    let mut trials: Vec<Vec<Vec<(Duration, Duration)>>> = vec![vec![Vec::new(); kinds.len()]; chunks.len()];
    let slot = |c: usize| chunks.iter().position(|&x| x == c).unwrap_or(0);
    for (t, &chunk) in plan.iter().enumerate().take(plan.len().saturating_sub(1)) {
        for (i, &kind) in kinds.iter().enumerate() {
            let dir = store_dir(cfg, kind, ds.name);
            let trial = format!(", trial {}", t / chunks.len() + 1);
            let (s, took) = bulk_trial(cfg, kind, &dir, ds, &events, chunk, &trial)?;
            trials[slot(chunk)][i].push(took);
            s.close()?;
            remove(&dir);
            settle(cfg);
        }
    }
    for (i, &kind) in kinds.iter().enumerate() {
        let dir = store_dir(cfg, kind, ds.name);
        let (s, took) = bulk_trial(cfg, kind, &dir, ds, &events, keep_chunk, "")?;
        if !reads_only {
            trials[slot(keep_chunk)][i].push(took);
        }
        for (ci, &chunk) in chunks.iter().enumerate() {
            let note = bulk_note(cfg, kind, chunk, &trials[ci][i]);
            let el = median(&trials[ci][i]).0;
            let row =
                rate_row(&bulk_name(ds, chunk), kind, n, payload_bytes, el, Some(durable(kind, "bulk")), None, note);
            out.rows.push(row);
        }
        let used = s.used_bytes()?;
        s.close()?;
        settle(cfg);
        if kind == Kind::CommitlogFsync {
            remove(&dir);
            continue;
        }
        if cfg.selected(disk_name) {
            let (size, alloc) = stores::dir_bytes(&dir)?;
            let mut note =
                format!("allocated {:.1} MB; payload {:.1} MB", alloc as f64 / 1e6, payload_bytes as f64 / 1e6);
            if let Some(u) = used {
                note = format!("used {:.1} MB (rest is preallocated space); {note}", u as f64 / 1e6);
            }
            if matches!(kind, Kind::File | Kind::Mmap) {
                let frame = crate::stores::frames::frame_len(ds.payload);
                note = format!("{frame}-byte frames; {note}");
            }
            out.rows.push(size_row(disk_name, kind.name(), n, payload_bytes, size, note));
            if let Some(u) = used {
                let store = format!("{} (used)", kind.name());
                let note = format!("bytes written; {:.1} per record", u as f64 / n as f64);
                out.rows.push(size_row(disk_name, &store, n, payload_bytes, u, note));
            }
        }
        if !(cfg.selected(replay_name) || cfg.selected(random_name) || want_reopen) {
            remove(&dir);
            continue;
        }
        // Reopen (the 100 B dataset only): open + read the last record.
        let want_reopen = want_reopen && runs(kind, "reopen");
        let runs_n = if want_reopen { cfg.reopen_runs.max(1) } else { 1 };
        let mut times = Vec::new();
        let mut s = None;
        for i in 0..runs_n {
            let t = Instant::now();
            let mut h = stores::open(kind, &dir, Mode::Bulk, ds.payload)?;
            let last = h.read_last()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if i == 0 {
                out.check("reopen", kind, last == Some(n - 1), format!("last offset {:?}, want {}", last, n - 1));
            }
            if i + 1 < runs_n {
                h.close()?;
            } else {
                s = Some(h);
            }
        }
        let mut s = s.ok_or("no handle")?;
        if want_reopen {
            let first = times[0];
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            out.rows.push(Row {
                workload: "reopen".into(),
                store: kind.name().into(),
                records: n,
                payload_bytes,
                seconds: median / 1e3,
                value: median,
                unit: "ms".into(),
                higher_is_better: false,
                durable: None,
                p50_us: None,
                p99_us: None,
                note: format!("median of {runs_n}; first {first:.2} ms; open + read last record"),
                tidelog_ratio: None,
            });
        }
        if cfg.selected(replay_name) {
            log(cfg, format!("[{}] replay x{REPLAY_PASSES}", kind.name()));
            let mut times = Vec::new();
            let mut d = Digest::default();
            for _ in 0..REPLAY_PASSES {
                let t = Instant::now();
                d = s.replay()?;
                times.push(t.elapsed());
                out.check(replay_name, kind, d == expected, format!("{d:?} want {expected:?}"));
            }
            let first = times[0];
            times.sort();
            let el = times[times.len() / 2];
            let note = format!(
                "median of {REPLAY_PASSES} passes; first pass after reopen {:.1} Mrec/s",
                d.count as f64 / first.as_secs_f64() / 1e6
            );
            out.rows.push(rate_row(replay_name, kind, d.count, d.bytes, el, None, None, note));
        }
        if cfg.selected(random_name) {
            log(cfg, format!("[{}] {} random reads", kind.name(), reads));
            let mut d = Digest::default();
            let t = Instant::now();
            for &o in &offsets {
                s.read_at(o, &mut d)?;
            }
            let el = t.elapsed();
            out.check(random_name, kind, d == expected_random, format!("{d:?} want {expected_random:?}"));
            out.rows.push(rate_row(random_name, kind, d.count, d.bytes, el, None, None, String::new()));
        }
        s.close()?;
        remove(&dir);
        settle(cfg);
    }
    Ok(())
}

/// One bulk load of `events` into a fresh `kind` store in `dir`, in chunks of `chunk`, after
/// [`Config::idle_before`] seconds of sleep. Returns the open store and (total, appends only).
fn bulk_trial(
    cfg: &Config,
    kind: Kind,
    dir: &Path,
    ds: Dataset,
    events: &[crate::data::Event<'_>],
    chunk: usize,
    trial: &str,
) -> Result<(Box<dyn Store>, (Duration, Duration))> {
    remove(dir);
    let n = events.len();
    log(cfg, format!("[{}] {n} records of {} B: bulk append in chunks of {chunk}{trial}", kind.name(), ds.payload));
    let mut s = stores::open(kind, dir, Mode::Bulk, ds.payload)?;
    if cfg.idle_before > 0.0 {
        std::thread::sleep(Duration::from_secs_f64(cfg.idle_before));
    }
    let took = bulk_load(s.as_mut(), events, chunk)?;
    Ok((s, took))
}

fn median(t: &[(Duration, Duration)]) -> (Duration, Duration) {
    let mut t = t.to_vec();
    t.sort();
    t.get(t.len() / 2).copied().unwrap_or_default()
}

fn bulk_note(cfg: &Config, kind: Kind, chunk: usize, trials: &[(Duration, Duration)]) -> String {
    let (el, appended) = median(trials);
    let how = match kind {
        Kind::SqliteFull | Kind::SqliteNormal => "one transaction".to_string(),
        Kind::File => format!("chunks of {chunk} staged in a 256 KiB buffer, write(2), one fdatasync"),
        Kind::Mmap => format!("chunks of {chunk} copied into the map of a fallocated file, one msync"),
        _ => format!("chunks of {chunk}, one final sync"),
    };
    let end = match kind {
        Kind::SqliteFull | Kind::SqliteNormal => "commit",
        Kind::Mmap => "msync",
        _ => "sync",
    };
    let mut note =
        format!("{how}; appends {:.2} s + {end} {:.2} s", appended.as_secs_f64(), (el - appended).as_secs_f64());
    if trials.len() > 1 {
        let mut t = trials.to_vec();
        t.sort();
        note = format!(
            "median of {} trials ({:.2}–{:.2} s); {note}",
            t.len(),
            t[0].0.as_secs_f64(),
            t[t.len() - 1].0.as_secs_f64()
        );
    }
    if cfg.idle_before > 0.0 {
        note = format!("after {} s idle; {note}", cfg.idle_before);
    }
    note
}

/// Append `events` in chunks of `chunk`, then one sync. Returns (total, appends only).
fn bulk_load(s: &mut dyn Store, events: &[crate::data::Event<'_>], chunk: usize) -> Result<(Duration, Duration)> {
    let t = Instant::now();
    for chunk in events.chunks(chunk.max(1)) {
        s.append(chunk)?;
    }
    let appended = t.elapsed();
    s.sync()?;
    Ok((t.elapsed(), appended))
}

fn size_row(workload: &str, store: &str, n: u64, payload_bytes: u64, size: u64, note: String) -> Row {
    Row {
        workload: workload.into(),
        store: store.into(),
        records: n,
        payload_bytes,
        seconds: 0.0,
        value: size as f64,
        unit: "bytes".into(),
        higher_is_better: false,
        durable: None,
        p50_us: None,
        p99_us: None,
        note,
        tidelog_ratio: None,
    }
}

/// Rounds the durable workloads are split into. Each round gives every store its share of
/// the operations in turn, so that a burst of outside I/O (this machine is shared) hits every
/// store about equally instead of whichever store happened to be running. A store is open only
/// during its own turn (opened and closed untimed), so no store's background work (fjall's
/// flushes and compactions) runs during another store's turn.
pub const ROUNDS: u64 = 10;

struct Contender {
    kind: Kind,
    dir: PathBuf,
    lat: Vec<f64>,
    busy: Duration,
}

fn contenders(cfg: &Config, family: &str, name: &str) -> Vec<Contender> {
    let mut v = Vec::new();
    for &kind in &cfg.stores {
        if runs(kind, family) {
            let dir = store_dir(cfg, kind, name);
            remove(&dir);
            v.push(Contender { kind, dir, lat: Vec::new(), busy: Duration::ZERO });
        }
    }
    v
}

/// Run `step(store, i)` for steps `0..steps`, interleaved in [`ROUNDS`] rounds over the stores.
fn interleave(
    cfg: &Config,
    cs: &mut [Contender],
    mode: Mode,
    steps: u64,
    mut step: impl FnMut(&mut dyn Store, u64) -> Result<()>,
) -> Result<()> {
    for round in 0..ROUNDS {
        let (from, to) = round_range(round, steps);
        for c in cs.iter_mut() {
            turn(c, mode, |s| {
                let mut lat = Vec::new();
                for i in from..to {
                    let t1 = Instant::now();
                    step(s, i)?;
                    lat.push(t1.elapsed().as_secs_f64() * 1e6);
                }
                Ok(lat)
            })?;
            settle(cfg);
        }
    }
    Ok(())
}

/// The steps of round `round` out of [`ROUNDS`].
fn round_range(round: u64, steps: u64) -> (u64, u64) {
    let per_round = steps.div_ceil(ROUNDS);
    ((round * per_round).min(steps), ((round + 1) * per_round).min(steps))
}

/// One contender's turn: open its store (untimed), time `work` (which returns latencies in µs),
/// close it (untimed).
fn turn(c: &mut Contender, mode: Mode, work: impl FnOnce(&mut dyn Store) -> Result<Vec<f64>>) -> Result<()> {
    let mut store = stores::open(c.kind, &c.dir, mode, DURABLE_PAYLOAD)?;
    let t = Instant::now();
    let lat = work(store.as_mut())?;
    c.busy += t.elapsed();
    c.lat.extend(lat);
    store.close()
}

fn run_durable(cfg: &Config, pool: &Pool, name: &str, batch: usize, out: &mut Outcome) -> Result<()> {
    let ops = cfg.durable_ops.max(1);
    let events = pool.events(0, ops * batch as u64, DURABLE_PAYLOAD);
    let expected = Digest::of(&events);
    let mut cs = contenders(cfg, "durable", name);
    log(cfg, format!("{name}: {ops} durable appends of {batch} per store, {ROUNDS} interleaved rounds"));
    interleave(cfg, &mut cs, Mode::Durable, ops, |s, i| {
        s.append_durable(&events[(i as usize) * batch..(i as usize + 1) * batch])
    })?;
    for mut c in cs {
        let mut store = stores::open(c.kind, &c.dir, Mode::Durable, DURABLE_PAYLOAD)?;
        let d = store.replay()?;
        out.check(name, c.kind, d == expected, format!("{d:?} want {expected:?}"));
        let note = durability_note(c.kind, "durable");
        let durable = Some(durable(c.kind, "durable"));
        let n = events.len() as u64;
        out.rows.push(rate_row(name, c.kind, n, expected.bytes, c.busy, durable, Some(&mut c.lat), note));
        store.close()?;
        remove(&c.dir);
    }
    settle(cfg);
    Ok(())
}

fn durability_note(kind: Kind, family: &str) -> String {
    match (kind, family) {
        (Kind::Tidelog, "position") => "2 logs: append_batch + position record, sync both; not one transaction".into(),
        (Kind::Tidelog1Log, _) => "position is a record in the same atomic batch (Always)".into(),
        (Kind::Tidelog, _) => "Durability::Always".into(),
        (Kind::File, _) => "write + fdatasync per append".into(),
        (Kind::Mmap, _) => "copy into the map + msync(MS_SYNC) of the touched pages per append".into(),
        (Kind::SqliteFull, _) => "one transaction per step".into(),
        (Kind::SqliteNormal, _) => "NOT durable per commit (WAL+NORMAL syncs only at checkpoints)".into(),
        (Kind::Fjall, "position") => "one batch across 2 partitions + persist(SyncData)".into(),
        (Kind::Fjall, _) => "batch + persist(SyncData)".into(),
        (Kind::Commitlog, _) => "NOT durable: flush() does not fsync segment data".into(),
        (Kind::CommitlogFsync, _) => "flush() + fdatasync added by the harness".into(),
    }
}

/// `durable-4t`: one record per append, each durable before its thread's next, from [`THREADS`]
/// threads sharing one store; the same kind of store takes one thread in the same [`ROUNDS`],
/// for the ratio (group commit).
fn run_threads(cfg: &Config, pool: &Pool, out: &mut Outcome) -> Result<()> {
    let name = "durable-4t";
    let ops = cfg.durable_ops.max(1);
    let one = pool.events(0, ops, DURABLE_PAYLOAD);
    let many = pool.events(ops, ops, DURABLE_PAYLOAD);
    let mut single = contenders(cfg, name, "durable-1t");
    let mut multi = contenders(cfg, name, name);
    log(
        cfg,
        format!("{name}: {ops} durable appends of 1 per store from 1 and from {THREADS} threads, {ROUNDS} rounds"),
    );
    for round in 0..ROUNDS {
        let (from, to) = round_range(round, ops);
        let (from, to) = (from as usize, to as usize);
        for (a, b) in single.iter_mut().zip(multi.iter_mut()) {
            turn(a, Mode::Durable, |s| {
                let mut lat = Vec::new();
                for e in &one[from..to] {
                    let t1 = Instant::now();
                    s.append_durable(std::slice::from_ref(e))?;
                    lat.push(t1.elapsed().as_secs_f64() * 1e6);
                }
                Ok(lat)
            })?;
            let part = &many[from..to];
            let shares: Vec<_> = part.chunks(part.len().div_ceil(THREADS).max(1)).collect();
            turn(b, Mode::Durable, |s| s.append_durable_threads(&shares))?;
            settle(cfg);
        }
    }
    let (want_one, want_many) = (Digest::of(&one), Digest::of(&many));
    for (a, mut b) in single.into_iter().zip(multi) {
        let mut store = stores::open(a.kind, &a.dir, Mode::Durable, DURABLE_PAYLOAD)?;
        let d = store.replay()?;
        out.check(name, a.kind, d == want_one, format!("1 thread: {d:?} want {want_one:?}"));
        store.close()?;
        remove(&a.dir);
        // The threads' records interleave in no fixed order: compare count, bytes and sum.
        let mut store = stores::open(b.kind, &b.dir, Mode::Durable, DURABLE_PAYLOAD)?;
        let d = store.replay()?;
        let same = (d.count, d.bytes, d.sum) == (want_many.count, want_many.bytes, want_many.sum);
        out.check(name, b.kind, same, format!("{THREADS} threads: {d:?} want {want_many:?} in any order"));
        store.close()?;
        remove(&b.dir);
        let one_rate = ops as f64 / a.busy.as_secs_f64();
        let many_rate = ops as f64 / b.busy.as_secs_f64();
        let how = match b.kind {
            Kind::File => "one shared file: pwrite under a mutex, fdatasync outside it",
            _ => "one Log shared by the threads, Durability::Always",
        };
        let note = format!(
            "{how}; {THREADS} threads ÷ 1 thread = {:.2}× (1 thread in the same rounds: {}rec/s)",
            many_rate / one_rate,
            crate::report::si(one_rate)
        );
        let bytes = want_many.bytes;
        let row = rate_row(name, b.kind, ops, bytes, b.busy, Some(durable(b.kind, name)), Some(&mut b.lat), note);
        out.rows.push(row);
    }
    settle(cfg);
    Ok(())
}

fn run_position(cfg: &Config, pool: &Pool, out: &mut Outcome) -> Result<()> {
    let name = "position";
    let ops = cfg.durable_ops.max(1);
    let events = pool.events(0, ops * POSITION_BATCH as u64, DURABLE_PAYLOAD);
    let mut cs = contenders(cfg, "position", name);
    log(cfg, format!("position: {ops} steps of {POSITION_BATCH} events + position per store, {ROUNDS} rounds"));
    interleave(cfg, &mut cs, Mode::Position, ops, |s, i| {
        let chunk = &events[(i as usize) * POSITION_BATCH..(i as usize + 1) * POSITION_BATCH];
        s.append_with_position(chunk, CONSUMER, i)
    })?;
    for mut c in cs {
        let mut store = stores::open(c.kind, &c.dir, Mode::Position, DURABLE_PAYLOAD)?;
        let state = store.position_state(CONSUMER)?;
        let want = (events.len() as u64, Some(ops - 1));
        out.check(name, c.kind, state == want, format!("{state:?} want {want:?}"));
        let note = durability_note(c.kind, "position");
        let durable = Some(durable(c.kind, "position"));
        let n = events.len() as u64;
        let bytes = n * DURABLE_PAYLOAD as u64;
        out.rows.push(rate_row(name, c.kind, n, bytes, c.busy, durable, Some(&mut c.lat), note));
        store.close()?;
        remove(&c.dir);
    }
    settle(cfg);
    Ok(())
}

/// Order rows by workload (as in [`workload_names`]), then by store (as in [`Kind::ALL`]).
pub fn sort_rows(rows: &mut [Row]) {
    let names = workload_names();
    let key = |r: &Row| {
        let w = names.iter().position(|n| *n == r.workload).unwrap_or(usize::MAX);
        // "tidelog (used)" right after tidelog.
        let (base, used) = match r.store.strip_suffix(" (used)") {
            Some(b) => (b, 1),
            None => (r.store.as_str(), 0),
        };
        let s = 2 * Kind::parse(base).and_then(|k| Kind::ALL.iter().position(|x| *x == k)).unwrap_or(0) + used;
        (w, s)
    };
    rows.sort_by_key(key);
}

/// Fill [`Row::tidelog_ratio`]: for each workload, tidelog's value against each row's, as
/// "times better" (throughput: tidelog / peer; times and sizes: peer / tidelog). In the disk
/// workloads a store that preallocates (tidelog, mmap) also has a `(used)` row; every row
/// without preallocated space (the `(used)` rows and the stores that have none) is compared with
/// `tidelog (used)`, the preallocated totals with tidelog's.
pub fn fill_ratios(rows: &mut [Row]) {
    let value = |w: &str, store: &str| rows.iter().find(|r| r.workload == w && r.store == store).map(|r| r.value);
    let refs: Vec<Option<f64>> = rows
        .iter()
        .map(|r| {
            let preallocated = value(&r.workload, &format!("{} (used)", r.store)).is_some();
            match value(&r.workload, "tidelog (used)") {
                Some(used) if !preallocated => Some(used),
                _ => value(&r.workload, "tidelog"),
            }
        })
        .collect();
    for (r, t) in rows.iter_mut().zip(refs) {
        if r.store.starts_with("tidelog") {
            continue;
        }
        if let Some(t) = t {
            if t > 0.0 && r.value > 0.0 {
                r.tidelog_ratio = Some(if r.higher_is_better { t / r.value } else { r.value / t });
            }
        }
    }
}
