//! Temporal queries on randomized histories: an aggregate's state as of a version, an offset
//! or a time (from the nearest snapshot at or before it, then the stream's events) equals a
//! brute-force fold of the stream's events up to that point.

mod aggregate_support;

use proptest::prelude::*;

use aggregate_support::{fold, Account, Command};
use tidelog::{
    AggregateOptions, AggregateStore, AsOf, Error, HistoryEntry, Log, Options, Record, SnapshotPolicy,
    SnapshotRetention,
};

#[derive(Debug, Clone)]
enum Op {
    Deposit(u8, i64),
    Withdraw(u8, i64),
    Snapshot(u8),
    /// A record of no aggregate, between the streams' events.
    Noise,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 1i64..50).prop_map(|(k, c)| Op::Deposit(k, c)),
        2 => (0u8..3, 1i64..80).prop_map(|(k, c)| Op::Withdraw(k, c)),
        1 => (0u8..3).prop_map(Op::Snapshot),
        1 => Just(Op::Noise),
    ]
}

fn brute(
    h: &[HistoryEntry<aggregate_support::AccountEvent>],
    upto: impl Fn(&HistoryEntry<aggregate_support::AccountEvent>) -> bool,
) -> Account {
    fold(h.iter().filter(|e| upto(e)).map(|e| e.event.clone()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn state_as_of_equals_a_brute_force_replay(
        ops in proptest::collection::vec(op(), 1..120),
        every in 0u64..6,
        queries in proptest::collection::vec((0u8..3, any::<u64>(), 0u8..3), 1..20),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(8 << 10)).unwrap();
        let policy = if every == 0 { SnapshotPolicy::on_demand() } else { SnapshotPolicy::on_demand().every(every) };
        let opts = AggregateOptions::default()
            .snapshots(policy)
            .retention(SnapshotRetention::default().keep_latest(2).spaced(7, 4));
        let s = AggregateStore::<Account>::open(&log, tmp.path().join("snaps"), opts).unwrap();
        for k in 0u8..3 {
            s.execute(&[k], Command::Open(format!("owner {k}"))).unwrap();
        }
        for op in &ops {
            let r = match op {
                Op::Deposit(k, c) => s.execute(&[*k], Command::Deposit(*c)).map(|_| ()),
                Op::Withdraw(k, c) => s.execute(&[*k], Command::Withdraw(*c)).map(|_| ()),
                Op::Snapshot(k) => s.snapshot(&[*k]).map(|_| ()),
                Op::Noise => log.append(Record::new(b"noise")).map(|_| ()),
            };
            match r {
                Ok(()) | Err(Error::CommandRejected { .. }) => {}
                Err(e) => panic!("{op:?}: {e}"),
            }
        }
        let next = log.next_offset();
        for (k, pick, kind) in queries {
            let key = [k];
            let h = s.history(&key, 0, usize::MAX).unwrap();
            let (got, want) = match kind {
                0 => {
                    let v = pick % (h.len() as u64 + 2);
                    (s.state_as_of(&key, AsOf::Version(v)).unwrap(), brute(&h, |e| e.version < v))
                }
                1 => {
                    let o = pick % (next + 2);
                    (s.state_as_of(&key, AsOf::BelowOffset(o)).unwrap(), brute(&h, |e| e.offset < o))
                }
                _ => {
                    // A time of one of the stream's events, or just before or after it.
                    let e = &h[(pick % h.len() as u64) as usize];
                    let t = (e.timestamp_us + (pick >> 32) % 3).saturating_sub(1);
                    (s.state_as_of(&key, AsOf::Time(t)).unwrap(), brute(&h, |e| e.timestamp_us <= t))
                }
            };
            prop_assert_eq!(&got.state, &want, "key {} query kind {}", k, kind);
            prop_assert_eq!(got.version, want.events);
            prop_assert!(got.report.skipped.is_empty(), "{:?}", got.report.skipped);
        }
        // And the current state, from whatever snapshot is newest.
        for k in 0u8..3 {
            let h = s.history(&[k], 0, usize::MAX).unwrap();
            prop_assert_eq!(s.load(&[k]).unwrap().state, brute(&h, |_| true));
        }
    }
}
