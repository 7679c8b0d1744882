//! Durability chosen per call: `append_with` / `append_batch_with` make one append durable (or
//! not) without reopening the log in another mode. A per-call `Always` flushes through the
//! same group commit as an `Always` log: it returns once its records are on stable storage, a
//! failed flush returns the error and poisons the log, and its records survive a power cut.

mod common;

use std::path::Path;
use std::time::Duration;

use common::faults::Faults;
use common::powerloss::{PowerLoss, Survival};
use common::Rng;
use tidelog::testing::IoOp;
use tidelog::{Durability, Error, Log, Options};

/// An interval no test waits for: the background flusher never runs during a test.
const NEVER: Duration = Duration::from_secs(3600);

fn opts(durability: Durability) -> Options {
    Options::default().segment_bytes(48 << 10).index_interval_bytes(1024).durability(durability)
}

fn msyncs(faults: &Faults) -> usize {
    faults.trace().iter().filter(|c| c.op == IoOp::Msync).count()
}

#[test]
fn a_per_call_durable_append_flushes_before_it_returns_on_a_log_opened_without_durability() {
    for mode in [Durability::None, Durability::Interval(NEVER)] {
        let tmp = common::scratch_dir();
        let dir = tmp.path().join("log");
        let log = Log::open(&dir, opts(mode)).unwrap();
        let (faults, _hook) = Faults::on(&dir);
        log.append("not waited for").unwrap();
        log.append_batch(&["nor", "these"]).unwrap();
        assert_eq!(msyncs(&faults), 0, "{mode:?}: the log's own mode flushes nothing");
        assert_eq!(log.append_with("durable", Durability::Always).unwrap(), 3);
        assert_eq!(msyncs(&faults), 1, "{mode:?}: one flush, covering the earlier records too");
        assert_eq!(log.append_batch_with(&["a", "b"], Durability::Always).unwrap(), 4..6);
        assert_eq!(msyncs(&faults), 2, "{mode:?}");
        log.append("after").unwrap();
        assert_eq!(msyncs(&faults), 2, "{mode:?}: the log keeps its mode");
        log.close().unwrap();
    }
}

#[test]
fn a_per_call_none_append_on_an_always_log_does_not_wait_for_a_flush() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::Always)).unwrap();
    let (faults, _hook) = Faults::on(&dir);
    log.append_batch_with(&["bulk 0", "bulk 1"], Durability::None).unwrap();
    log.append_with("bulk 2", Durability::None).unwrap();
    assert_eq!(msyncs(&faults), 0);
    log.append("acknowledged durable").unwrap();
    assert_eq!(msyncs(&faults), 1, "the log's own mode flushes, the bulk records with it");
    log.close().unwrap();
}

/// Only the log's background flusher keeps an interval: asking one append for another
/// interval would promise what nothing does, so it is refused; the log's own is what `append`
/// does.
#[test]
fn a_per_call_interval_other_than_the_logs_is_refused() {
    let tmp = common::scratch_dir();
    let log = Log::open(tmp.path().join("log"), opts(Durability::Interval(NEVER))).unwrap();
    let other = Durability::Interval(Duration::from_millis(5));
    assert!(matches!(log.append_with("x", other), Err(Error::InvalidOptions(_))));
    assert_eq!(log.next_offset(), 0, "nothing was appended");
    assert_eq!(log.append_with("x", Durability::Interval(NEVER)).unwrap(), 0);

    let tmp = common::scratch_dir();
    let log = Log::open(tmp.path().join("log"), opts(Durability::None)).unwrap();
    assert!(matches!(log.append_batch_with(&["x"], other), Err(Error::InvalidOptions(_))));
    assert_eq!(log.next_offset(), 0);
}

#[test]
fn a_failed_flush_of_a_per_call_durable_append_returns_the_error_and_poisons_the_log() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    let (faults, _hook) = Faults::on(&dir);
    for i in 0..10 {
        log.append(format!("durable {i}")).unwrap();
    }
    log.sync().unwrap();
    for i in 10..15 {
        log.append(format!("never flushed {i}")).unwrap();
    }

    faults.fail_nth(0, Some(IoOp::Msync));
    let err = log.append_with("asked durable", Durability::Always).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "the failed flush itself is returned: {err:?}");
    assert!(log.poisoned_by().is_some());
    faults.heal();
    assert!(matches!(log.append("x"), Err(Error::Poisoned)));
    assert!(matches!(log.append_with("y", Durability::Always), Err(Error::Poisoned)));
    assert!(matches!(log.close(), Err(Error::Poisoned)));

    // The reopen trusts nothing past the last flush that succeeded: the record whose flush
    // failed was never acknowledged, nor were the unflushed ones before it.
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    assert_eq!(log.next_offset(), 10);
    for i in 0..10 {
        assert_eq!(log.read(i).unwrap().payload(), format!("durable {i}").as_bytes());
    }
    assert_eq!(log.append_with("after", Durability::Always).unwrap(), 10);
    log.close().unwrap();
}

/// Append batches to a log opened with `mode`, some of them durable per call, and cut the
/// power at many points: every record up to the end of the last per-call durable batch must
/// be intact in every image, none invented, and every image must open in the default
/// recovery mode.
fn power_cuts(mode: Durability, survival: Survival, seed: u64) {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let (sim, _hook) = PowerLoss::on(&dir);
    let log = Log::open(&dir, opts(mode)).unwrap();
    let mut rng = Rng::new(seed);
    let mut appended: Vec<Vec<u8>> = Vec::new();
    let mut acked = 0;
    for step in 0..120u64 {
        let base = appended.len() as u64;
        let batch: Vec<Vec<u8>> = (0..rng.range(1, 5))
            .map(|i| {
                let len = rng.range(1, 6000) as usize;
                let mut p = format!("{}:", base + i).into_bytes();
                p.extend((0..len).map(|b| (b as u64 * 7 + base + i) as u8));
                p
            })
            .collect();
        let durable = rng.range(0, 3) == 0;
        let range = match durable {
            true => log.append_batch_with(&batch, Durability::Always).unwrap(),
            false => log.append_batch(&batch).unwrap(),
        };
        assert_eq!(range.start, base);
        appended.extend(batch);
        if durable {
            acked = range.end;
        }
        if step % 6 == 5 {
            for trial in 0..3 {
                let ctx = format!("{mode:?} {survival:?} seed {seed} step {step} trial {trial}");
                let image = tmp.path().join(format!("cut-{step}-{trial}"));
                sim.crash_image(&image, &mut rng, survival);
                check_image(&image, &appended, acked, &ctx);
                std::fs::remove_dir_all(&image).unwrap();
            }
        }
    }
    log.close().unwrap();
}

fn check_image(dir: &Path, appended: &[Vec<u8>], acked: u64, ctx: &str) {
    let log = Log::open(dir, opts(Durability::None)).unwrap_or_else(|e| panic!("{ctx}: open failed: {e}"));
    let next = log.next_offset();
    assert!(next >= acked, "{ctx}: next offset {next} below the acknowledged {acked}");
    assert!(next <= appended.len() as u64, "{ctx}: next offset {next} past every append");
    let mut i = 0;
    log.cursor_from_start()
        .for_each(|r| {
            assert_eq!(r.offset(), i, "{ctx}");
            assert_eq!(r.payload(), &appended[i as usize][..], "{ctx}: record {i}");
            i += 1;
        })
        .unwrap_or_else(|e| panic!("{ctx}: read {i}: {e}"));
    assert_eq!(i, next, "{ctx}");
    assert_eq!(log.append("after the cut").unwrap(), next, "{ctx}");
}

#[test]
fn per_call_durable_records_survive_a_power_cut_when_writeback_is_in_order() {
    for (mode, seed) in [(Durability::None, 41), (Durability::Interval(NEVER), 42)] {
        power_cuts(mode, Survival::InOrder, seed);
    }
}

/// Unflushed pages lost in any combination, a later one kept while an earlier one is lost:
/// what lies past the last per-call flush was never acknowledged, and the default open cuts it
/// as a torn tail.
#[test]
fn per_call_durable_records_survive_a_power_cut_that_keeps_any_subset_of_pages() {
    for (mode, seed) in [(Durability::None, 51), (Durability::Interval(NEVER), 52)] {
        power_cuts(mode, Survival::AnySubset, seed);
    }
}
