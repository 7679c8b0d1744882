//! What the append API's conversions cost: the same batches of owned payload buffers appended
//! as a slice of `Record`s built beforehand, as the buffers themselves (`append_batch` taking
//! any `AsRecord`), and building a `Vec<Record>` per batch. Run with `cargo bench --bench api`;
//! the figures are in `docs/benchmarks.md`. The workloads live in `benches/api_workloads/`,
//! which `tests/api_bench_workloads.rs` also runs tiny.
//!
//! Each iteration appends `RECORDS` records in batches of 1, 16 or 64 to a log opened (outside
//! the timed region) in a fresh directory under `/tmp`, with the default options
//! (`Durability::None`). Before the criterion groups, the same workloads run interleaved
//! (see `interleaved`), which is the comparison to read on a busy machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tidelog::{Log, Options};

#[path = "api_workloads/mod.rs"]
mod api_workloads;

use api_workloads::Shape;

/// Records per iteration, whatever the batch size.
const RECORDS: usize = 6_400;
/// Payload bytes (the targets' small payload).
const PAYLOAD: usize = 100;

fn append_shapes(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_api");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for batch in [1usize, 16, 64] {
        let buffers = api_workloads::buffers(RECORDS / batch, batch, PAYLOAD);
        let records = api_workloads::records(&buffers);
        for shape in Shape::ALL {
            g.bench_function(BenchmarkId::new(shape.name(), format!("batch{batch}")), |b| {
                b.iter_custom(|iters| {
                    let dir = tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("tmp dir");
                    let log = Log::open(dir.path().join("log"), Options::default()).expect("open");
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(api_workloads::append_all(&log, shape, &buffers, &records).expect("append"));
                    }
                    let elapsed = t.elapsed();
                    log.close().expect("close");
                    elapsed
                })
            });
        }
    }
    g.finish();
}

/// Rounds of the interleaved comparison.
const ROUNDS: usize = 21;
/// Passes over the batches per round and shape (each on the same fresh log).
const PASSES: usize = 4;

/// The shapes timed in turn, round after round (each round starting with another shape), so
/// that a change in the machine's load falls on every shape alike; prints the median time per
/// record of each shape and its ratio to the `Record` slice. On a shared machine criterion's
/// sequential groups can differ by more than the conversion costs.
fn interleaved() {
    eprintln!(
        "[append_api interleaved] load average before: {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    for batch in [1usize, 16, 64] {
        let buffers = api_workloads::buffers(RECORDS / batch, batch, PAYLOAD);
        let records = api_workloads::records(&buffers);
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); Shape::ALL.len()];
        for round in 0..ROUNDS {
            for k in 0..Shape::ALL.len() {
                let i = (round + k) % Shape::ALL.len();
                let dir = tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("tmp dir");
                let log = Log::open(dir.path().join("log"), Options::default()).expect("open");
                let t = Instant::now();
                for _ in 0..PASSES {
                    black_box(api_workloads::append_all(&log, Shape::ALL[i], &buffers, &records).expect("append"));
                }
                ns[i].push(t.elapsed().as_nanos() as f64 / (PASSES * RECORDS) as f64);
                log.close().expect("close");
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let base = median(&mut ns[0]);
        for (i, shape) in Shape::ALL.iter().enumerate() {
            let m = median(&mut ns[i]);
            println!(
                "append_api interleaved batch{batch:<3} {:<17} {m:7.1} ns/record  {:.3} x records_slice",
                shape.name(),
                m / base
            );
        }
    }
}

criterion_group!(benches, append_shapes);

fn main() {
    interleaved();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
