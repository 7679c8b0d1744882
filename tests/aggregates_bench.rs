//! The workloads of `benches/aggregates.rs`, run tiny and checked, so the benchmark code
//! cannot rot: if a workload stops measuring what its benchmark claims, this fails.
#![allow(dead_code)]

#[path = "../benches/aggregates.rs"]
mod bench;

use tidelog::{state_as_of, SnapshotDir};

#[test]
fn the_aggregate_load_workload_loads_from_the_snapshot_or_replays_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let (with, without) = bench::aggregate_log(tmp.path(), 30, 3);
    let a = with.load(b"wallet-0").unwrap();
    let b = without.load(b"wallet-0").unwrap();
    assert_eq!((a.replayed, a.version, b.replayed, b.version), (0, 30, 30, 30));
    assert_eq!(a.state, b.state);
    assert_eq!((a.state.balance, a.state.last_memo.as_str()), (2 * 20 - 10, "move 29 of wallet 0"));
}

#[test]
fn the_rebuild_workload_replays_the_tail_or_everything_to_the_same_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (log, want) = bench::rebuild_log(tmp.path(), 5_500, 700);
    let snaps = SnapshotDir::open_read_only(tmp.path().join("snaps"));
    let none = SnapshotDir::open_read_only(tmp.path().join("none"));
    let tail = state_as_of(&log, &bench::Balances, &snaps, 5_500).unwrap();
    let full = state_as_of(&log, &bench::Balances, &none, 5_500).unwrap();
    assert_eq!((tail.replayed, full.replayed), (700, 5_500));
    assert_eq!(tail.state, want);
    assert_eq!(full.state, want);
}
