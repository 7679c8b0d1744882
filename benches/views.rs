//! Criterion benchmarks of read views, each against a baseline measured in the same run:
//!
//! * `view_append`: single appends through a view registry with one aggregate view (group by
//!   a header, sum of a header's number) kept by its runner thread (async), and inline (the
//!   append returns after the view applied it), against plain single appends of the same
//!   records. Only the appends are timed; the async view catches up after the timed region.
//! * `view_rebuild`: rebuilding a count view (one group, no value), a sum view (one group, a
//!   header's number) and a sum per key (1,000 groups) from a log of 1,000,000 records,
//!   against a plain replay of the same log with a cursor.
//! * `view_lag`: records appended at 100,000 per second (one every 10 µs) for half a second
//!   to a log with an async view (paced by sleeping until each record is due, so records
//!   that fell due during a sleep's overshoot go back to back); a second thread looks at the
//!   view's position every ~20 µs and notes when each record is reflected. The time criterion reports is the 99th percentile of
//!   (reflected − appended), per record; the median and maximum are printed.
//!
//! Run with `cargo bench --bench views`; see `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tempfile::TempDir;
use tidelog::{
    Durability, GroupBy, Header, Log, Options, Record, RunnerOptions, ValueOf, View, ViewDefinition, ViewMode,
    ViewOptions, Views,
};

/// Records per iteration of the append benchmarks.
const APPEND_RECORDS: u64 = 20_000;
const PAYLOAD: usize = 100;
const GROUPS: u64 = 1_000;
/// Records of the rebuild benchmark's log.
const REBUILD_RECORDS: u64 = 1_000_000;
/// Appends per second and duration of the lag benchmark.
const LAG_RATE: u64 = 100_000;
const LAG_RUN: Duration = Duration::from_millis(500);

fn tmp() -> TempDir {
    tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("temporary directory under /tmp")
}

fn opts() -> Options {
    Options::default().segment_bytes(64 << 20).durability(Durability::None)
}

fn sum_by_product(name: &str) -> ViewDefinition {
    ViewDefinition::aggregate(name, 1, GroupBy::Header("product".into()), ValueOf::Header("qty".into()))
}

/// Records with a `product` header (1,000 values) and a `qty` header, built once.
struct Records {
    products: Vec<String>,
    qtys: Vec<String>,
    payload: Vec<u8>,
}

impl Records {
    fn new() -> Records {
        Records {
            products: (0..GROUPS).map(|i| format!("product-{i:04}")).collect(),
            qtys: (0..10).map(|i| i.to_string()).collect(),
            payload: vec![b'p'; PAYLOAD],
        }
    }

    fn with<R>(&self, i: u64, f: impl FnOnce(Record<'_>) -> R) -> R {
        let h = [
            Header { name: "product", value: self.products[(i % GROUPS) as usize].as_bytes() },
            Header { name: "qty", value: self.qtys[(i % 10) as usize].as_bytes() },
        ];
        f(Record::new(&self.payload).key(self.products[(i % GROUPS) as usize].as_bytes()).headers(&h))
    }
}

fn view_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("view_append");
    g.throughput(Throughput::Elements(APPEND_RECORDS));
    let recs = Records::new();
    for (label, mode) in
        [("async_view", Some(ViewMode::Async)), ("inline_view", Some(ViewMode::Inline)), ("baseline_plain", None)]
    {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let dir = tmp();
                let log = Log::open(dir.path().join("log"), opts()).expect("open");
                let views = Views::open(log.clone());
                let view =
                    mode.map(|m| views.aggregate(sum_by_product("sum"), ViewOptions::default().mode(m)).expect("view"));
                let n = iters * APPEND_RECORDS;
                let t = Instant::now();
                for i in 0..n {
                    match &view {
                        Some(_) => black_box(recs.with(i, |r| views.append(r)).expect("append")),
                        None => black_box(recs.with(i, |r| log.append(r)).expect("append")),
                    };
                }
                let elapsed = t.elapsed();
                if let Some(v) = &view {
                    v.wait_for_position(n, Duration::from_secs(60)).expect("caught up");
                    v.stop().expect("stop");
                }
                elapsed
            })
        });
    }
    g.finish();
}

fn view_rebuild(c: &mut Criterion) {
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), opts()).expect("open");
    let recs = Records::new();
    for i in 0..REBUILD_RECORDS {
        recs.with(i, |r| log.append(r)).expect("append");
    }
    let views = Views::open(log.clone());
    let count = ViewDefinition::aggregate("count", 1, GroupBy::All, ValueOf::Nothing);
    let sum = ViewDefinition::aggregate("sum", 1, GroupBy::All, ValueOf::Header("qty".into()));
    let sum_by_key = ViewDefinition::aggregate("sum-by-key", 1, GroupBy::Key, ValueOf::Header("qty".into()));
    let inline = || ViewOptions::default().mode(ViewMode::Inline).runner(RunnerOptions::default());
    let count = views.aggregate(count, inline()).expect("count view");
    let sum = views.aggregate(sum, inline()).expect("sum view");
    let sum_by_key = views.aggregate(sum_by_key, inline()).expect("sum view");
    let mut g = c.benchmark_group("view_rebuild");
    g.throughput(Throughput::Elements(REBUILD_RECORDS));
    g.bench_function("count", |b| b.iter(|| black_box(count.rebuild(false, |_, _| {}).expect("rebuild"))));
    g.bench_function("sum", |b| b.iter(|| black_box(sum.rebuild(false, |_, _| {}).expect("rebuild"))));
    g.bench_function("sum_by_key_1000_groups", |b| {
        b.iter(|| black_box(sum_by_key.rebuild(false, |_, _| {}).expect("rebuild")))
    });
    g.bench_function("baseline_replay", |b| {
        b.iter(|| {
            let mut cursor = log.cursor(0);
            let mut n = 0u64;
            while let Some(r) = cursor.next().expect("read") {
                n += r.payload().len() as u64;
            }
            black_box(n)
        })
    });
    g.finish();
}

/// One run of the lag measurement: per-record lags in nanoseconds, sorted.
fn lag_run() -> Vec<u64> {
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), opts()).expect("open");
    let views = Views::open(log.clone());
    let view = views.aggregate(sum_by_product("sum"), ViewOptions::default()).expect("view");
    let n = LAG_RATE * LAG_RUN.as_millis() as u64 / 1000;
    let start = Instant::now();
    let appended: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let reflected: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (view, reflected, done) = (view.clone(), Arc::clone(&reflected), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while seen < n && !done.load(Ordering::Acquire) {
                let p = view.position().min(n);
                let now = start.elapsed().as_nanos() as u64;
                for o in seen..p {
                    reflected[o as usize].store(now, Ordering::Relaxed);
                }
                seen = seen.max(p);
                // A look every ~20 µs (plus the sleep's overshoot, which can only make the
                // measured lag larger): spinning would take a core from the runner.
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    let recs = Records::new();
    let every = Duration::from_nanos(1_000_000_000 / LAG_RATE);
    for i in 0..n {
        let due = every * i as u32;
        let now = start.elapsed();
        if now < due {
            // After a sleep's overshoot the records that fell due are appended back to back.
            std::thread::sleep(due - now);
        }
        recs.with(i, |r| log.append(r)).expect("append");
        appended[i as usize].store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
    view.wait_for_position(n, Duration::from_secs(10)).expect("caught up");
    done.store(true, Ordering::Release);
    watcher.join().expect("watcher");
    let mut lags: Vec<u64> = (0..n as usize)
        .map(|i| reflected[i].load(Ordering::Relaxed).saturating_sub(appended[i].load(Ordering::Relaxed)))
        .collect();
    lags.sort_unstable();
    lags
}

fn view_lag(c: &mut Criterion) {
    let mut g = c.benchmark_group("view_lag");
    g.sample_size(10);
    g.bench_function("p99_at_100k_per_s", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let lags = lag_run();
                let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
                eprintln!(
                    "view_lag: {} records, median {} µs, p99 {} µs, max {} µs",
                    lags.len(),
                    at(0.5) / 1000,
                    at(0.99) / 1000,
                    lags[lags.len() - 1] / 1000
                );
                total += Duration::from_nanos(at(0.99));
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = view_append, view_rebuild, view_lag
}
criterion_main!(benches);
