//! What the append API's conversions cost: the same batches of owned payload buffers appended
//! as a slice of `Record`s built beforehand, as the buffers themselves (`append_batch` taking
//! any `AsRecord`), and building a `Vec<Record>` per batch. Run with `cargo bench --bench api`;
//! the figures are in `docs/benchmarks.md`. The workloads live in `benches/api_workloads/`,
//! which `tests/api_bench_workloads.rs` also runs tiny.
//!
//! Each iteration appends `BATCHES` batches to a log opened (outside the timed region) in a
//! fresh directory under `/tmp`, with the default options (`Durability::None`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
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

criterion_group!(benches, append_shapes);
criterion_main!(benches);
