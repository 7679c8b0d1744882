//! Criterion benchmarks of secondary index views:
//!
//! * `index_lookup`: the offsets of one value in a key index and in a header index over a log
//!   of `TIDELOG_BENCH_INDEX_RECORDS` records (default 10,000,000; 1,000,000 keys taking turns,
//!   10 records each, spread over every segment; 100,000 header values of 100 consecutive
//!   records each, in one or two segments), every sealed segment's
//!   entries in its mapped file, the active one's in memory (segments of
//!   `TIDELOG_BENCH_INDEX_SEGMENT_BYTES`, default 128 MiB);
//! * `index_append`: batches of 100 appends, each followed by the index's catch-up (what an
//!   inline view does), against the same batches without an index, in the same run.
//!
//! Run with `cargo bench --bench index_views`; see `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tempfile::TempDir;
use tidelog::{Durability, GroupBy, Header, IndexOptions, IndexView, Log, Options, Record, ViewDefinition};

/// Lookups per timed iteration.
const LOOKUPS: u64 = 10_000;
/// Records per iteration of the append benchmark, in batches of `BATCH`.
const APPEND_RECORDS: u64 = 20_000;
const BATCH: usize = 100;
const PAYLOAD: usize = 32;

fn tmp() -> TempDir {
    tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("temporary directory under /tmp")
}

fn opts() -> Options {
    Options::default().durability(Durability::None)
}

/// Segment size of the lookup benchmark's log (`TIDELOG_BENCH_INDEX_SEGMENT_BYTES`, default
/// the log's default, 128 MiB: 8 segments for 10 M records).
fn lookup_opts() -> Options {
    match std::env::var("TIDELOG_BENCH_INDEX_SEGMENT_BYTES").ok().and_then(|v| v.parse().ok()) {
        Some(bytes) => opts().segment_bytes(bytes),
        None => opts(),
    }
}

/// True under `cargo bench` (criterion is passed `--bench`); false when `cargo test` runs the
/// benchmarks once.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Records of the lookup benchmark's log: `TIDELOG_BENCH_INDEX_RECORDS`, else 10,000,000
/// under `cargo bench` and 20,000 when `cargo test` runs the benchmarks once, so that they
/// cannot rot without costing the test run a 10 M-record log.
fn records() -> u64 {
    let default = if full_run() { 10_000_000 } else { 20_000 };
    std::env::var("TIDELOG_BENCH_INDEX_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Record `i`'s key: keys take turns (`keys` of them), so every key has records in every
/// segment: the worst case for a lookup, which must search each segment's file.
fn key(i: u64, keys: u64) -> Vec<u8> {
    format!("key-{:07}", i % keys).into_bytes()
}

/// Record `i`'s user: runs of 100 consecutive records share one (`users` of them in all).
fn user(i: u64, users: u64) -> Vec<u8> {
    format!("user-{:06}", (i / 100) % users).into_bytes()
}

fn by_key() -> ViewDefinition {
    ViewDefinition::index("by-key", 1, GroupBy::Key)
}

fn by_user() -> ViewDefinition {
    ViewDefinition::index("by-user", 1, GroupBy::Header("user".into()))
}

/// A small deterministic generator (xorshift64*), so that lookups hit values in random order.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Append records `from..from + n` in batches of `BATCH`: record `i` has key `key(i)`, header
/// `user: user(i)` and a payload of `PAYLOAD` bytes.
fn append_records(log: &Log, from: u64, n: u64, keys: u64, users: u64) {
    let payload = [b'p'; PAYLOAD];
    let mut i = from;
    while i < from + n {
        let end = (i + BATCH as u64).min(from + n);
        let ks: Vec<Vec<u8>> = (i..end).map(|j| key(j, keys)).collect();
        let us: Vec<Vec<u8>> = (i..end).map(|j| user(j, users)).collect();
        let hs: Vec<[Header<'_>; 1]> = us.iter().map(|u| [Header { name: "user", value: u }]).collect();
        let batch: Vec<Record<'_>> = ks.iter().zip(&hs).map(|(k, h)| Record::new(&payload).key(k).headers(h)).collect();
        log.append_batch(&batch).expect("append");
        i = end;
    }
}

fn index_lookup(c: &mut Criterion) {
    let n = records();
    let (keys, users) = ((n / 10).max(1), (n / 100).max(1));
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), lookup_opts()).expect("open");
    let t = Instant::now();
    append_records(&log, 0, n, keys, users);
    eprintln!("index_lookup: {n} records appended in {:.1?}", t.elapsed());
    let t = Instant::now();
    let key_index = IndexView::open(&log, by_key(), IndexOptions::default()).expect("key index");
    let user_index = IndexView::open(&log, by_user(), IndexOptions::default()).expect("header index");
    eprintln!(
        "index_lookup: both indexes built in {:.1?} over {} segments ({} in memory)",
        t.elapsed(),
        log.segments().len(),
        key_index.report().segments_in_memory
    );
    let mut g = c.benchmark_group("index_lookup");
    g.throughput(Throughput::Elements(LOOKUPS));
    g.bench_function("key_offsets", |b| {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let values: Vec<Vec<u8>> = (0..LOOKUPS).map(|_| key(rng.below(keys), keys)).collect();
        b.iter(|| {
            for v in &values {
                black_box(key_index.offsets(v).expect("lookup"));
            }
        })
    });
    g.bench_function("header_offsets", |b| {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let values: Vec<Vec<u8>> = (0..LOOKUPS).map(|_| user(rng.below(users) * 100, users)).collect();
        b.iter(|| {
            for v in &values {
                black_box(user_index.offsets(v).expect("lookup"));
            }
        })
    });
    g.bench_function("key_count", |b| {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let values: Vec<Vec<u8>> = (0..LOOKUPS).map(|_| key(rng.below(keys), keys)).collect();
        b.iter(|| {
            for v in &values {
                black_box(key_index.count(v).expect("count"));
            }
        })
    });
    g.finish();
    // The machine these run on is shared: wall-clock rates move with the load. Lookups per
    // second of this thread's CPU time (from /proc, 10 ms ticks, over about 3 s) move much
    // less, and are printed beside them.
    let mut rng = Rng(0x0bad_cafe_dead_beef);
    let key_values: Vec<Vec<u8>> = (0..LOOKUPS).map(|_| key(rng.below(keys), keys)).collect();
    let user_values: Vec<Vec<u8>> = (0..LOOKUPS).map(|_| user(rng.below(users) * 100, users)).collect();
    for (name, index, values) in
        [("key_offsets", &key_index, &key_values), ("header_offsets", &user_index, &user_values)]
    {
        let (cpu0, t) = (thread_cpu_ticks(), Instant::now());
        let mut done = 0u64;
        let span = Duration::from_secs(if full_run() { 3 } else { 0 });
        while done == 0 || t.elapsed() < span {
            for v in values.iter() {
                black_box(index.offsets(v).expect("lookup"));
            }
            done += values.len() as u64;
        }
        let cpu_s = (thread_cpu_ticks() - cpu0) as f64 / 100.0;
        eprintln!(
            "index_lookup/{name}: {:.2} M lookups per CPU second ({done} lookups, {cpu_s:.2} s CPU, {:.2} s wall)",
            done as f64 / cpu_s / 1e6,
            t.elapsed().as_secs_f64()
        );
    }
    // A lookup's answer is the brute-force one (a spot check, outside the timings).
    let want: Vec<u64> = (0..n).filter(|i| i % keys == 7).collect();
    assert_eq!(key_index.offsets(&key(7, keys)).expect("lookup"), want);
}

/// CPU time of this thread so far, in clock ticks (utime + stime of /proc/thread-self/stat;
/// 100 per second on Linux). 0 where /proc is missing.
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the file: 11 and 12 after the name.
    at(11) + at(12)
}

/// Time `work` on a fresh log; opening and closing are not timed.
fn on_fresh_log(work: impl FnOnce(&Log)) -> Duration {
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), opts().segment_bytes(8 << 20)).expect("open");
    let t = Instant::now();
    work(&log);
    let elapsed = t.elapsed();
    log.close().expect("close");
    elapsed
}

fn index_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("index_append");
    g.throughput(Throughput::Elements(APPEND_RECORDS));
    g.bench_function("with_key_index", |b| {
        b.iter_custom(|iters| {
            on_fresh_log(|log| {
                let index = IndexView::open(log, by_key(), IndexOptions::default()).expect("index");
                let mut i = 0;
                while i < iters * APPEND_RECORDS {
                    append_records(log, i, BATCH as u64, 10_000, 1_000);
                    black_box(index.catch_up().expect("catch up"));
                    i += BATCH as u64;
                }
            })
        })
    });
    g.bench_function("baseline_without_index", |b| {
        b.iter_custom(|iters| {
            on_fresh_log(|log| {
                let mut i = 0;
                while i < iters * APPEND_RECORDS {
                    append_records(log, i, BATCH as u64, 10_000, 1_000);
                    i += BATCH as u64;
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5));
    targets = index_append, index_lookup
}
criterion_main!(benches);
