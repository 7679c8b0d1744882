//! Criterion benchmarks of event sourcing, each against a baseline measured in the same run:
//!
//! * `aggregate_load`: loading an aggregate of 1,000 events (among 10 streams of 1,000) from
//!   a snapshot covering them, against replaying its 1,000 events from the stream;
//! * `projection_rebuild`: rebuilding a projection's state over a log of 10 M records
//!   (`TIDELOG_BENCH_REBUILD_EVENTS` sets another size) from a snapshot plus the 10,000
//!   records after it, against folding every record from the start.
//!
//! Run with `cargo bench --bench aggregates`; see `docs/benchmarks.md`. The workloads also
//! run tiny as tests (`tests/aggregates_bench.rs`), so this code cannot rot.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};
use tidelog::{
    state_as_of, Aggregate, AggregateOptions, AggregateStore, BoxError, Durability, Event, Log, Options, Projection,
    Record, RecordView, SnapshotDir,
};

/// Events of the loaded aggregate, and streams in its log.
pub const AGGREGATE_EVENTS: u64 = 1_000;
pub const AGGREGATE_STREAMS: u64 = 10;
/// Records after the snapshot in the rebuild benchmark.
pub const REBUILD_TAIL: u64 = 10_000;
/// Accounts the rebuilt projection sums.
const ACCOUNTS: usize = 1_024;

/// An event of the benchmark's aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Moved {
    In { cents: i64, memo: String },
    Out { cents: i64, memo: String },
}

impl Event for Moved {
    fn event_type(&self) -> &'static str {
        match self {
            Moved::In { .. } => "In",
            Moved::Out { .. } => "Out",
        }
    }
}

/// An aggregate that keeps a balance and the last memos.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    pub balance: i64,
    pub moves: u64,
    pub last_memo: String,
}

impl Aggregate for Wallet {
    type Event = Moved;
    type Command = Moved;
    type Error = std::convert::Infallible;

    fn aggregate_type() -> &'static str {
        "wallet"
    }

    fn state_fingerprint() -> u64 {
        1
    }

    fn handle(&self, command: Moved) -> Result<Vec<Moved>, Self::Error> {
        Ok(vec![command])
    }

    fn apply(&mut self, event: &Moved) {
        match event {
            Moved::In { cents, memo } => {
                self.balance += cents;
                self.last_memo.clone_from(memo);
            }
            Moved::Out { cents, memo } => {
                self.balance -= cents;
                self.last_memo.clone_from(memo);
            }
        }
        self.moves += 1;
    }
}

fn opts() -> Options {
    Options::default().segment_bytes(64 << 20).durability(Durability::None)
}

/// A log of `streams` wallets of `events` events each, interleaved, and two stores over it:
/// one whose snapshot of `wallet-0` covers all its events, one without snapshots.
pub fn aggregate_log(dir: &Path, events: u64, streams: u64) -> (AggregateStore<Wallet>, AggregateStore<Wallet>) {
    let log = Log::open(dir.join("log"), opts()).expect("open");
    let with = AggregateStore::open(&log, dir.join("snaps"), AggregateOptions::default()).expect("store");
    let without = AggregateStore::open(&log, dir.join("none"), AggregateOptions::default()).expect("store");
    for i in 0..events {
        for s in 0..streams {
            let memo = format!("move {i} of wallet {s}");
            let m = if i % 3 == 2 { Moved::Out { cents: 1, memo } } else { Moved::In { cents: 2, memo } };
            with.execute(format!("wallet-{s}").as_bytes(), m).expect("execute");
        }
    }
    with.snapshot(b"wallet-0").expect("snapshot");
    (with, without)
}

/// The projection rebuilt: a balance per account, from records keyed by a 2-byte account
/// number whose payload is an 8-byte amount.
pub struct Balances;

impl Projection for Balances {
    type State = Vec<i64>;

    fn name(&self) -> &str {
        "balances"
    }

    fn fingerprint(&self) -> u64 {
        1
    }

    fn initial(&self) -> Vec<i64> {
        vec![0; ACCOUNTS]
    }

    fn apply(&self, state: &mut Vec<i64>, r: &RecordView<'_>) -> Result<(), BoxError> {
        let key = r.key().and_then(|k| k.try_into().ok()).ok_or("key is not 2 bytes")?;
        let amount: [u8; 8] = r.payload().try_into()?;
        state[usize::from(u16::from_le_bytes(key)) % ACCOUNTS] += i64::from_le_bytes(amount);
        Ok(())
    }

    fn snapshot(&self, state: &Vec<i64>, out: &mut Vec<u8>) -> Result<(), BoxError> {
        state.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        Ok(())
    }

    fn restore(&self, payload: &[u8]) -> Result<Vec<i64>, BoxError> {
        if payload.len() != ACCOUNTS * 8 {
            return Err("bad length".into());
        }
        Ok(payload.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
    }
}

/// A log of `n` records for [`Balances`], with a snapshot in `dir/snaps` covering all but the
/// last `tail`. Returns the log and the state folded by hand.
pub fn rebuild_log(dir: &Path, n: u64, tail: u64) -> (Log, Vec<i64>) {
    let log = Log::open(dir.join("log"), opts()).expect("open");
    let snaps = SnapshotDir::open(dir.join("snaps")).expect("snapshot dir");
    let mut state = Balances.initial();
    let amounts: Vec<[u8; 8]> = (0..1000i64).map(|a| (a - 300).to_le_bytes()).collect();
    let at = n.saturating_sub(tail);
    append_range(&log, 0, at, &amounts, &mut state);
    snaps.save(&log, &Balances, &state, at, at).expect("snapshot");
    append_range(&log, at, n, &amounts, &mut state);
    (log, state)
}

/// Append records `from..to` in batches of 1,000, folding them into `state` by hand.
fn append_range(log: &Log, from: u64, to: u64, amounts: &[[u8; 8]], state: &mut [i64]) {
    for start in (from..to).step_by(1000) {
        append_batch(log, start, (start + 1000).min(to), amounts, state);
    }
}

fn append_batch(log: &Log, from: u64, to: u64, amounts: &[[u8; 8]], state: &mut [i64]) {
    let keys: Vec<[u8; 2]> = (from..to).map(|i| ((i * 7919 % ACCOUNTS as u64) as u16).to_le_bytes()).collect();
    let records: Vec<Record<'_>> =
        (from..to).zip(&keys).map(|(i, k)| Record::new(&amounts[(i % 1000) as usize]).key(k)).collect();
    log.append_batch(&records).expect("append");
    for (i, k) in (from..to).zip(&keys) {
        state[usize::from(u16::from_le_bytes(*k))] += i64::from_le_bytes(amounts[(i % 1000) as usize]);
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("temporary directory under /tmp")
}

fn aggregate_load(c: &mut Criterion) {
    let dir = tmp();
    let (with, without) = aggregate_log(dir.path(), AGGREGATE_EVENTS, AGGREGATE_STREAMS);
    let mut g = c.benchmark_group("aggregate_load");
    g.bench_function("from_snapshot", |b| {
        b.iter(|| {
            let l = with.load(b"wallet-0").expect("load");
            assert_eq!((l.replayed, l.version), (0, AGGREGATE_EVENTS));
            black_box(l.state)
        })
    });
    g.bench_function("baseline_replay_1000_events", |b| {
        b.iter(|| {
            let l = without.load(b"wallet-0").expect("load");
            assert_eq!(l.replayed, AGGREGATE_EVENTS);
            black_box(l.state)
        })
    });
    g.finish();
}

fn projection_rebuild(c: &mut Criterion) {
    let n: u64 = std::env::var("TIDELOG_BENCH_REBUILD_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let dir = tmp();
    let t = Instant::now();
    let (log, _) = rebuild_log(dir.path(), n, REBUILD_TAIL);
    eprintln!("projection_rebuild: {n} records in {} segments, written in {:?}", log.segments().len(), t.elapsed());
    let snaps = SnapshotDir::open_read_only(dir.path().join("snaps"));
    let none = SnapshotDir::open_read_only(dir.path().join("none"));
    let mut g = c.benchmark_group("projection_rebuild");
    g.bench_function("snapshot_plus_10k_tail", |b| {
        b.iter(|| {
            let r = state_as_of(&log, &Balances, &snaps, n).expect("rebuild");
            assert_eq!(r.replayed, REBUILD_TAIL);
            black_box(r.state)
        })
    });
    g.sample_size(10).measurement_time(Duration::from_secs(45));
    g.bench_function("baseline_from_scratch", |b| {
        b.iter(|| {
            let r = state_as_of(&log, &Balances, &none, n).expect("rebuild");
            assert_eq!(r.replayed, n);
            black_box(r.state)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    targets = aggregate_load, projection_rebuild
}
criterion_main!(benches);
