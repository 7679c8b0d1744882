//! A failure at any single step of a multi-step operation (a segment roll, the checkpoint
//! written at close, a consumer group's state snapshot) leaves a log that reopens with every
//! acknowledged record, intact, and invents none.
//!
//! Each test first runs the operation with a recording hook on the storage seam to learn the
//! calls it makes, checks that the steps it is meant to cover are among them, and then
//! repeats the whole scenario once per call, making exactly that call fail with `EIO`.

mod common;
mod consumer_support;

use std::path::Path;

use common::faults::{Call, Faults};
use tidelog::testing::IoOp;
use tidelog::{Durability, Log, Options, Record};

fn payload(i: u64) -> Vec<u8> {
    format!("{i}:").repeat(40 + (i % 13) as usize).into_bytes()
}

fn opts(durability: Durability) -> Options {
    Options::default().segment_bytes(32 << 10).index_interval_bytes(512).durability(durability)
}

/// What a scenario appended and what of it was acknowledged.
struct Acked {
    /// Records at offsets below this were acknowledged (returned by `append` in `Always`
    /// mode, covered by a successful `sync` otherwise).
    durable: u64,
    /// Offsets below this were attempted; any record the log holds must be `payload(offset)`.
    attempted: u64,
}

impl Acked {
    fn append(&mut self, log: &Log) -> bool {
        let i = self.attempted;
        self.attempted += 1;
        match log.append(Record::new(&payload(i))) {
            Ok(off) => {
                assert_eq!(off, i);
                if log.options().durability == Durability::Always {
                    self.durable = i + 1;
                }
                true
            }
            Err(_) => {
                // The offset was not handed out: the next attempt reuses it.
                self.attempted -= 1;
                false
            }
        }
    }

    fn sync(&mut self, log: &Log) {
        if log.sync().is_ok() {
            self.durable = self.attempted;
        }
    }
}

/// Reopen `dir` with no fault armed and check: every acknowledged record is intact, every
/// record is one the test appended, and appends continue at the end.
fn check_reopen(dir: &Path, durability: Durability, acked: &Acked, ctx: &str) {
    let log = Log::open(dir, opts(durability)).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let next = log.next_offset();
    assert!(next >= acked.durable, "{ctx}: next offset {next} lost acknowledged records below {}", acked.durable);
    assert!(next <= acked.attempted, "{ctx}: next offset {next} past every append ({})", acked.attempted);
    for i in 0..next {
        let r = log.read(i).unwrap_or_else(|e| panic!("{ctx}: read {i}: {e}"));
        assert_eq!(r.payload, payload(i), "{ctx}: record {i}");
    }
    for i in next..next + 50 {
        assert_eq!(log.append(Record::new(&payload(i))).unwrap(), i, "{ctx}");
    }
    log.close().unwrap();
}

/// Run `setup`, then `op` with the `k`-th call failing (or none if `k` is `None`); returns the
/// trace of `op`'s calls.
fn run_once(
    durability: Durability,
    k: Option<usize>,
    setup: impl Fn(&Log, &mut Acked),
    op: impl Fn(Log, &mut Acked),
) -> Vec<Call> {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let (faults, _hook) = Faults::on(&dir);
    let log = Log::open(&dir, opts(durability)).unwrap();
    let mut acked = Acked { durable: 0, attempted: 0 };
    setup(&log, &mut acked);
    faults.clear_trace();
    if let Some(k) = k {
        faults.fail_nth(k, None);
    }
    op(log, &mut acked);
    let trace = faults.trace();
    faults.heal();
    if let Some(k) = k {
        let ctx = format!("{durability:?}, call {k} ({}) failed", trace.get(k).map_or("-".into(), |c| c.to_string()));
        assert_eq!(faults.failed().len(), 1, "{ctx}: the chosen call was made");
        check_reopen(&dir, durability, &acked, &ctx);
    }
    trace
}

/// Fail each call of `op` in turn.
fn fail_each_call(
    durability: Durability,
    setup: impl Fn(&Log, &mut Acked) + Copy,
    op: impl Fn(Log, &mut Acked) + Copy,
    must_cover: &[(IoOp, &str)],
) {
    let trace = run_once(durability, None, setup, op);
    for (want_op, name) in must_cover {
        assert!(
            trace.iter().any(|c| c.op == *want_op && c.path.to_string_lossy().contains(name)),
            "{durability:?}: expected a {want_op:?} of *{name}* among {:?}",
            trace.iter().map(|c| c.to_string()).collect::<Vec<_>>()
        );
    }
    for k in 0..trace.len() {
        run_once(durability, Some(k), setup, op);
    }
}

/// Appends until the log has two segments; the last append rolled.
fn fill_first_segment(log: &Log, acked: &mut Acked) {
    while log.segments().len() < 2 || log.next_offset() < 20 {
        assert!(acked.append(log));
        if acked.attempted.is_multiple_of(10) {
            acked.sync(log);
        }
    }
    acked.sync(log);
}

/// Append until the next append rolls, then the rolling append and a few more, then `sync`
/// (which also seals a segment whose seal `Durability::None` deferred), then more appends
/// that may roll again.
fn roll_twice(log: Log, acked: &mut Acked) {
    let segments = log.segments().len();
    while log.segments().len() == segments {
        if !acked.append(&log) {
            break;
        }
    }
    for _ in 0..3 {
        acked.append(&log);
    }
    acked.sync(&log);
    while log.segments().len() <= segments + 1 {
        if !acked.append(&log) {
            break;
        }
    }
    acked.sync(&log);
    drop(log);
}

const ROLL_STEPS: &[(IoOp, &str)] = &[
    (IoOp::Msync, ".log"),
    (IoOp::Create, ".log.tmp"),
    (IoOp::Fallocate, ".log.tmp"),
    (IoOp::Write, ".log.tmp"),
    (IoOp::Fsync, ".log.tmp"),
    (IoOp::Rename, ".log"),
    (IoOp::FsyncDir, "log"),
    (IoOp::Create, ".index.tmp"),
    (IoOp::Fsync, ".index.tmp"),
    (IoOp::Rename, ".index"),
    (IoOp::Fsync, ".timeindex.tmp"),
    (IoOp::Rename, ".timeindex"),
    // The checkpoint's slot, overwritten in place (see docs/format.md).
    (IoOp::Write, "checkpoint"),
    (IoOp::Fdatasync, "checkpoint"),
];

#[test]
fn a_failure_at_any_step_of_a_roll_leaves_every_acknowledged_record() {
    fail_each_call(Durability::Always, fill_first_segment, roll_twice, ROLL_STEPS);
}

#[test]
fn a_failure_at_any_step_of_a_deferred_seal_and_roll_leaves_every_synced_record() {
    fail_each_call(Durability::None, fill_first_segment, roll_twice, ROLL_STEPS);
}

#[test]
fn a_failure_at_any_step_of_the_checkpoint_written_at_close_leaves_every_acknowledged_record() {
    let some_appends = |log: &Log, acked: &mut Acked| {
        for _ in 0..30 {
            assert!(acked.append(log));
        }
        acked.sync(log);
        for _ in 0..5 {
            assert!(acked.append(log));
        }
    };
    let close = |log: Log, _: &mut Acked| {
        let _ = log.close();
    };
    let steps = &[
        (IoOp::Write, ".index"),
        (IoOp::Fdatasync, ".index"),
        (IoOp::Fdatasync, ".timeindex"),
        (IoOp::Write, "checkpoint"),
        (IoOp::Fdatasync, "checkpoint"),
    ];
    fail_each_call(Durability::Always, some_appends, close, steps);
    let mut with_msync = steps.to_vec();
    with_msync.push((IoOp::Msync, ".log"));
    fail_each_call(Durability::None, some_appends, close, &with_msync);
}

/// A consumer group's snapshot is written when it closes: a failure at any of its steps (or
/// of the flushes and the state-log cleanup around it) loses no acknowledged event of the
/// topic and no durable ack of the group.
#[test]
fn a_failure_at_any_step_of_a_group_snapshot_leaves_every_acknowledged_record_and_ack() {
    use consumer_support::{open_store, poll_n, publish_n, quick_group};

    let run = |k: Option<usize>| -> Vec<Call> {
        let tmp = common::scratch_dir();
        let root = tmp.path().join("store");
        let (faults, _hook) = Faults::on(&root);
        let store = open_store(&root);
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 40, "e");
        t.sync().unwrap();
        let ds = poll_n(&g, 30);
        assert_eq!(ds.len(), 30);
        g.ack_batch(&ds).unwrap();
        g.sync().unwrap();
        faults.clear_trace();
        if let Some(k) = k {
            faults.fail_nth(k, None);
        }
        let _ = g.close();
        drop(t);
        drop(store);
        let trace = faults.trace();
        faults.heal();
        if let Some(k) = k {
            let ctx = format!("call {k} ({}) failed", trace.get(k).map_or("-".into(), |c| c.to_string()));
            let store = open_store(&root);
            let t = store.topic("t").unwrap();
            assert_eq!(t.next_offset(), 40, "{ctx}");
            for i in 0..40u64 {
                assert_eq!(t.read(i).unwrap().payload, format!("e-{i}").into_bytes(), "{ctx}: event {i}");
            }
            let g = t.group("g", quick_group()).unwrap();
            assert_eq!(g.committed(), 30, "{ctx}: durable acks kept");
            let again = poll_n(&g, 10);
            let offsets: Vec<u64> = again.iter().map(|d| d.offset()).collect();
            assert_eq!(offsets, (30..40).collect::<Vec<u64>>(), "{ctx}: only the unacked events come again");
            g.ack_batch(&again).unwrap();
            g.close().unwrap();
        }
        trace
    };
    let trace = run(None);
    assert!(
        trace.iter().any(|c| c.op == IoOp::Rename && c.path.extension().is_some_and(|e| e == "snap")),
        "the close writes a snapshot: {:?}",
        trace.iter().map(|c| c.to_string()).collect::<Vec<_>>()
    );
    for k in 0..trace.len() {
        run(Some(k));
    }
}
