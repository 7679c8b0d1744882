//! Criterion benchmarks of streams, each against a baseline measured in the same run:
//!
//! * `keyed_append`: appending records with keys (1,000 streams; every sealed segment gets its
//!   key index, and the active one's entries are brought up to date at the end, inside the
//!   timed region) against records without a key of the same frame size;
//! * `checked_append`: single appends with an exact expected version against plain single
//!   appends of the same records;
//! * `stream_read`: reading one stream (3 events) of a log of 100,000 streams through the key
//!   index, against finding the same events by scanning the log.
//!
//! Run with `cargo bench --bench streams`; see `docs/benchmarks.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tempfile::TempDir;
use tidelog::{Durability, ExpectedVersion, Log, Options, Record};

/// Records per iteration of the append benchmarks.
const APPEND_RECORDS: u64 = 20_000;
/// Streams the append benchmarks write to, round robin.
const APPEND_STREAMS: u64 = 1_000;
const PAYLOAD: usize = 100;
/// Streams in the log of the read benchmark, and events per stream.
const READ_STREAMS: u64 = 100_000;
const EVENTS_PER_STREAM: u64 = 3;

fn tmp() -> TempDir {
    tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("temporary directory under /tmp")
}

fn opts() -> Options {
    Options::default().segment_bytes(8 << 20).durability(Durability::None)
}

fn key(i: u64) -> Vec<u8> {
    format!("stream-{i:06}").into_bytes()
}

/// Time `work` on a fresh log; opening and closing are not timed.
fn on_fresh_log(work: impl FnOnce(&Log)) -> Duration {
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), opts()).expect("open");
    let t = Instant::now();
    work(&log);
    let elapsed = t.elapsed();
    log.close().expect("close");
    elapsed
}

fn keyed_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyed_append");
    g.throughput(Throughput::Elements(APPEND_RECORDS));
    let keys: Vec<Vec<u8>> = (0..APPEND_STREAMS).map(key).collect();
    let payload = vec![b'p'; PAYLOAD];
    // The same frame size without a key: the key's bytes move into the payload.
    let unkeyed_payload = vec![b'p'; PAYLOAD + keys[0].len()];
    g.bench_function("with_key_index", |b| {
        b.iter_custom(|iters| {
            on_fresh_log(|log| {
                for i in 0..iters * APPEND_RECORDS {
                    let k = &keys[(i % APPEND_STREAMS) as usize];
                    black_box(log.append(Record::new(&payload).key(k)).expect("append"));
                }
                black_box(log.stream_version(&keys[0]).expect("version"));
            })
        })
    });
    g.bench_function("baseline_without_key", |b| {
        b.iter_custom(|iters| {
            on_fresh_log(|log| {
                for _ in 0..iters * APPEND_RECORDS {
                    black_box(log.append(Record::new(&unkeyed_payload)).expect("append"));
                }
            })
        })
    });
    g.finish();
}

fn checked_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("checked_append");
    g.throughput(Throughput::Elements(APPEND_RECORDS));
    let keys: Vec<Vec<u8>> = (0..APPEND_STREAMS).map(key).collect();
    let payload = vec![b'p'; PAYLOAD];
    g.bench_function("expected_version", |b| {
        b.iter_custom(|iters| {
            on_fresh_log(|log| {
                let mut versions = vec![0u64; APPEND_STREAMS as usize];
                for i in 0..iters * APPEND_RECORDS {
                    let s = (i % APPEND_STREAMS) as usize;
                    let r = Record::new(&payload).key(&keys[s]);
                    let expected = ExpectedVersion::Exact(versions[s]);
                    black_box(log.append_to_stream(&keys[s], expected, &[r]).expect("append"));
                    versions[s] += 1;
                }
            })
        })
    });
    g.bench_function("baseline_plain_single", |b| {
        b.iter_custom(|iters| {
            on_fresh_log(|log| {
                for i in 0..iters * APPEND_RECORDS {
                    let k = &keys[(i % APPEND_STREAMS) as usize];
                    black_box(log.append(Record::new(&payload).key(k)).expect("append"));
                }
            })
        })
    });
    g.finish();
}

fn stream_read(c: &mut Criterion) {
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), opts()).expect("open");
    let payload = vec![b'p'; PAYLOAD];
    for round in 0..EVENTS_PER_STREAM {
        for i in 0..READ_STREAMS {
            let k = key((i * 7919 + round) % READ_STREAMS);
            log.append(Record::new(&payload).key(&k)).expect("append");
        }
    }
    log.close().expect("close");
    let log = Log::open(dir.path().join("log"), opts()).expect("reopen");
    eprintln!("stream_read: {} records in {} segments", log.next_offset(), log.segments().len());
    let mut g = c.benchmark_group("stream_read");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("one_of_100k_streams", |b| {
        b.iter(|| {
            i = (i + 7_777) % READ_STREAMS;
            let events = log.read_stream(&key(i), 0, usize::MAX).expect("read");
            assert_eq!(events.len() as u64, EVENTS_PER_STREAM);
            black_box(events)
        })
    });
    g.bench_function("baseline_scan_the_log", |b| {
        b.iter(|| {
            i = (i + 7_777) % READ_STREAMS;
            let k = key(i);
            let events: Vec<_> = log.iter(0).map(|r| r.expect("read")).filter(|r| r.key() == Some(&k[..])).collect();
            assert_eq!(events.len() as u64, EVENTS_PER_STREAM);
            black_box(events)
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
    targets = keyed_append, checked_append, stream_read
}
criterion_main!(benches);
