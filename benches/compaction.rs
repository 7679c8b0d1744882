//! Compaction benchmarks, each a ratio against a baseline measured in the same run:
//!
//! * **throughput**: compacting a log (every key updated 10 times, so 90% of the records go)
//!   against a plain copy of the same segment files (read, write, fsync), in bytes of input
//!   per second; target at least 0.5;
//! * **size**: the compacted log's bytes against a log holding only each key's latest value,
//!   written fresh; target at most 1.2;
//! * **appends**: append throughput while a background compaction runs in a loop against
//!   append throughput alone; target at least 0.7.
//!
//! Run with `cargo bench --bench compaction`; `TIDELOG_BENCH_KEYS` sets the number of keys
//! (default 100,000: 1 M records of 100-byte payloads). See `docs/benchmarks.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use tidelog::{BackgroundCompaction, CompactOptions, Durability, Log, Options, Record};

const UPDATES: u64 = 10;
const PAYLOAD: usize = 100;

fn opts() -> Options {
    Options::default().segment_bytes(16 << 20).durability(Durability::None)
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn payload(i: u64, round: u64) -> Vec<u8> {
    let mut p = format!("{i}:{round}:").into_bytes();
    p.resize(PAYLOAD, b'p');
    p
}

/// Every key updated `UPDATES` times, round after round.
fn fill(log: &Log, keys: u64) {
    for round in 0..UPDATES {
        let mut i = 0;
        while i < keys {
            let n = (keys - i).min(256);
            let ks: Vec<Vec<u8>> = (i..i + n).map(key).collect();
            let ps: Vec<Vec<u8>> = (i..i + n).map(|k| payload(k, round)).collect();
            let batch: Vec<Record<'_>> = ks.iter().zip(&ps).map(|(k, p)| Record::new(p).key(k)).collect();
            log.append_batch(&batch).expect("append");
            i += n;
        }
    }
}

/// Bytes of records in the log's segments (headers included, reserved space not).
fn used_bytes(log: &Log) -> u64 {
    log.segments().iter().map(|s| s.bytes).sum()
}

/// Copy the segment files of `from` into `to`, each fsynced: the plain-copy baseline.
fn copy_files(from: &Path, to: &Path) -> u64 {
    std::fs::create_dir_all(to).expect("mkdir");
    let mut bytes = 0;
    for e in std::fs::read_dir(from).expect("read_dir") {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|x| x == "log") {
            let dst = to.join(path.file_name().expect("name"));
            bytes += std::fs::copy(&path, &dst).expect("copy");
            std::fs::File::open(&dst).and_then(|f| f.sync_all()).expect("fsync");
        }
    }
    std::fs::File::open(to).and_then(|d| d.sync_all()).expect("fsync dir");
    bytes
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tidelog-bench-").tempdir_in("/tmp").expect("temporary directory")
}

fn main() {
    let keys: u64 = std::env::var("TIDELOG_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    println!("compaction benchmarks: {keys} keys x {UPDATES} updates, {PAYLOAD}-byte payloads");

    // Throughput and size.
    let dir = tmp();
    let log = Log::open(dir.path().join("log"), opts()).expect("open");
    fill(&log, keys);
    log.compact(&CompactOptions::default().roll_active(true).min_dirty_ratio(1.0)).expect("roll");
    log.sync().expect("sync");
    let input = used_bytes(&log);
    let copy_dir = dir.path().join("copy");
    let t = Instant::now();
    let copied = copy_files(&dir.path().join("log"), &copy_dir);
    let copy_s = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&copy_dir).expect("rm copy");
    let t = Instant::now();
    let ratio = log.dirty_ratio(&CompactOptions::default()).expect("plan");
    println!("plan pass alone (dirty ratio {ratio:.2}): {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let report = log.compact(&CompactOptions::default()).expect("compact");
    let compact_s = t.elapsed().as_secs_f64();
    let compacted = used_bytes(&log);
    let compact_rate = input as f64 / compact_s;
    let copy_rate = copied as f64 / copy_s;
    println!(
        "throughput: compaction {:.0} MB/s ({} records removed from {:.1} MB in {:.2} s), plain copy {:.0} MB/s ({:.1} MB in {:.2} s): ratio {:.2} (target >= 0.5)",
        compact_rate / 1e6,
        report.records_removed,
        input as f64 / 1e6,
        compact_s,
        copy_rate / 1e6,
        copied as f64 / 1e6,
        copy_s,
        compact_rate / copy_rate
    );
    log.close().expect("close");
    let fresh = Log::open(dir.path().join("latest"), opts()).expect("open");
    for i in 0..keys {
        let (k, p) = (key(i), payload(i, UPDATES - 1));
        fresh.append(Record::new(&p).key(&k)).expect("append");
    }
    let latest = used_bytes(&fresh);
    println!(
        "size: {:.1} MB written, {:.1} MB compacted, {:.1} MB of latest values alone: ratio {:.3} (target <= 1.2)",
        input as f64 / 1e6,
        compacted as f64 / 1e6,
        latest as f64 / 1e6,
        compacted as f64 / latest as f64
    );
    drop(fresh);
    drop(dir);

    // Appends with and without a background compaction.
    let append_rate = |background: bool| -> f64 {
        let dir = tmp();
        let log = Log::open(dir.path().join("log"), opts()).expect("open");
        fill(&log, keys / 2);
        let handle = background.then(|| {
            let bg = BackgroundCompaction::default()
                .compact(CompactOptions::default().min_dirty_ratio(0.0))
                .check_every(Duration::from_millis(1));
            log.compact_in_background(bg).expect("background")
        });
        let t = Instant::now();
        fill(&log, keys / 2);
        let rate = (keys / 2 * UPDATES) as f64 / t.elapsed().as_secs_f64();
        if let Some(h) = handle {
            println!("  (background compaction looked {} times meanwhile)", h.checks());
            h.stop().expect("stop");
        }
        rate
    };
    let alone = append_rate(false);
    let during = append_rate(true);
    println!(
        "appends: {:.0} k records/s alone, {:.0} k records/s during background compaction: ratio {:.2} (target >= 0.7)",
        alone / 1e3,
        during / 1e3,
        during / alone
    );
}
