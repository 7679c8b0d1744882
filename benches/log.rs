//! Criterion benchmarks of the log against baselines measured in the same run.
//!
//! Run with `cargo bench --bench log`; results and how to read them are in
//! `docs/benchmarks.md`. The workloads live in `benches/workloads/mod.rs`, which
//! `tests/bench_workloads.rs` also runs with tiny sizes so this file cannot rot.
//!
//! Every log, file and map lives in a fresh temporary directory under `/tmp`. Setup (opening a
//! log, creating a file or a map) and teardown (closing, deleting) stay outside the timed
//! region; flushing to the kernel (`BufWriter::flush`) and anything the log does inside
//! `append` (including rolling segments) are inside it.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use tempfile::TempDir;
use tidelog::{Log, Options};

#[path = "workloads/mod.rs"]
mod workloads;

use workloads::{PAYLOAD_LARGE, PAYLOAD_SMALL};

/// Records per iteration of the append benchmarks (a multiple of the batch size, 64).
const APPEND_RECORDS: u64 = 6_400;
/// Records per iteration of the durable-append benchmarks, shared by all threads.
const DURABLE_RECORDS: u64 = 2_000;
/// Records in the log that the read benchmarks read.
const READ_LOG_RECORDS: u64 = 1_000_000;
/// Reads per iteration of the random-read benchmark.
const RANDOM_READS: u64 = 10_000;
/// Lookups per iteration of the time-lookup benchmark.
const TIME_LOOKUPS: u64 = 10_000;
/// Size of the log the clean-open benchmark opens.
const OPEN_LOG_BYTES: u64 = 1 << 30;
/// Segment size of that log.
const OPEN_SEGMENT_BYTES: u64 = 256 << 20;

/// Write back every dirty page and print the load average, so that one group's writeback does
/// not land in the next group's timings, and a busy machine shows in the output.
fn settle(group: &str) {
    rustix::fs::sync();
    std::thread::sleep(Duration::from_millis(500));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("[{group}] load average before: {}", load.trim());
}

fn tmp() -> TempDir {
    tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("temporary directory under /tmp")
}

/// Time `work` on a fresh log (opened with `opts` in a new directory) given the iteration count;
/// opening and closing are not timed.
fn on_fresh_log(opts: &Options, iters: u64, work: impl FnOnce(&Log, u64)) -> Duration {
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), opts.clone()).expect("open");
    let t = Instant::now();
    work(&log, iters);
    let elapsed = t.elapsed();
    log.close().expect("close");
    elapsed
}

fn append(c: &mut Criterion) {
    settle("append");
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(APPEND_RECORDS));
    let opts = workloads::append_options();
    for len in [PAYLOAD_SMALL, PAYLOAD_LARGE] {
        for batch in [1usize, 64] {
            g.bench_function(BenchmarkId::new(format!("log_batch{batch}"), len), |b| {
                b.iter_custom(|iters| {
                    on_fresh_log(&opts, iters, |log, iters| {
                        black_box(workloads::append_n(log, iters * APPEND_RECORDS, len, batch).expect("append"));
                    })
                })
            });
        }
        g.bench_function(BenchmarkId::new("baseline_bufwriter", len), |b| {
            b.iter_custom(|iters| {
                let dir = tmp();
                let mut w = workloads::baseline_file(&dir.path().join("file")).expect("create");
                let t = Instant::now();
                black_box(workloads::baseline_buffered_file_write(&mut w, iters * APPEND_RECORDS, len).expect("write"));
                t.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("baseline_mmap_file", len), |b| {
            b.iter_custom(|iters| {
                let dir = tmp();
                let n = iters * APPEND_RECORDS;
                let mut map = workloads::baseline_mmap_file(&dir.path().join("file"), n, len).expect("map");
                let t = Instant::now();
                black_box(workloads::baseline_mmap_copy(&mut map, n, len));
                t.elapsed()
            })
        });
        g.bench_function(BenchmarkId::new("baseline_mmap_anon", len), |b| {
            b.iter_custom(|iters| {
                let n = iters * APPEND_RECORDS;
                let mut map = workloads::baseline_mmap_anon(n, len).expect("map");
                let t = Instant::now();
                black_box(workloads::baseline_mmap_copy(&mut map, n, len));
                t.elapsed()
            })
        });
    }
    g.finish();
}

fn durable_append(c: &mut Criterion) {
    settle("durable_append");
    let mut g = c.benchmark_group("durable_append");
    // One iteration is thousands of flushes: the same number of iterations in every sample
    // keeps the run short.
    g.sampling_mode(SamplingMode::Flat);
    // Flush latency varies a lot on shared machines: sample for longer.
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(DURABLE_RECORDS));
    let opts = workloads::durable_options();
    for threads in [1usize, 4] {
        g.bench_function(BenchmarkId::new("always_threads", threads), |b| {
            b.iter_custom(|iters| {
                on_fresh_log(&opts, iters, |log, iters| {
                    for _ in 0..iters {
                        black_box(
                            workloads::durable_append(log, threads, DURABLE_RECORDS, PAYLOAD_SMALL).expect("append"),
                        );
                    }
                })
            })
        });
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tmp();
    let log = workloads::fill_log(&dir.path().join("log"), READ_LOG_RECORDS, PAYLOAD_SMALL, 64, Options::default())
        .expect("fill");
    eprintln!(
        "read benchmarks: {} records of {} B in {} segments",
        log.next_offset(),
        PAYLOAD_SMALL,
        log.segments().len()
    );
    settle("reads");

    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(READ_LOG_RECORDS));
    g.measurement_time(Duration::from_secs(6));
    g.bench_function(BenchmarkId::new("cursor_checksummed", PAYLOAD_SMALL), |b| {
        b.iter(|| black_box(workloads::replay_all(&log).expect("replay")))
    });
    g.finish();

    let mut g = c.benchmark_group("random_read");
    g.throughput(Throughput::Elements(RANDOM_READS));
    g.bench_function(BenchmarkId::new("read_with_1_thread", PAYLOAD_SMALL), |b| {
        let mut seed = 0;
        b.iter(|| {
            seed += 1;
            black_box(workloads::random_reads(&log, RANDOM_READS, seed).expect("read"))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("time_lookup");
    g.throughput(Throughput::Elements(TIME_LOOKUPS));
    let times = workloads::sample_times(&log, TIME_LOOKUPS, 42).expect("sample times");
    g.bench_function(BenchmarkId::new("offset_for_time", PAYLOAD_SMALL), |b| {
        b.iter(|| black_box(workloads::time_lookups(&log, &times).expect("lookup")))
    });
    g.finish();
}

fn open_1gib(c: &mut Criterion) {
    let dir = tmp();
    let path = dir.path().join("log");
    let opts = Options::default().segment_bytes(OPEN_SEGMENT_BYTES);
    let n = workloads::build_clean_log(&path, OPEN_LOG_BYTES, PAYLOAD_LARGE, opts.clone()).expect("build");
    describe(&path, n);
    settle("clean_open_1GiB");

    let mut g = c.benchmark_group("clean_open_1GiB");
    g.bench_function("open", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let log = workloads::clean_open(&path, opts.clone()).expect("open");
                total += t.elapsed();
                assert!(log.open_report().clean_shutdown);
                drop(log);
            }
            total
        })
    });
    g.bench_function("open_and_drop", |b| {
        b.iter(|| drop(black_box(workloads::clean_open(&path, opts.clone()).expect("open"))))
    });
    g.finish();
    settle("end");
}

fn describe(path: &Path, n: u64) {
    let log = Log::open_read_only(path, Options::default().segment_bytes(OPEN_SEGMENT_BYTES)).expect("open");
    let segs = log.segments();
    let bytes: u64 = segs.iter().map(|s| s.bytes).sum();
    eprintln!("clean open: {n} records of {PAYLOAD_LARGE} B, {} segments, {bytes} bytes of records", segs.len());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = append, durable_append, reads, open_1gib
}
criterion_main!(benches);
