//! A consumer group's life beyond consuming: its position reset to the start, the end, an
//! offset or a time; deleted (crash-safely) so it stops holding back retention; deliveries
//! settled by offset, in batches, or released without counting an attempt; what it holds
//! listed, and its retries cancelled or moved; its dead letters purged by count, age or all.

mod common;
mod consumer_support;

use std::time::Duration;

use common::faults::Faults;
use consumer_support::*;
use tidelog::testing::IoOp;
use tidelog::{Error, GroupOptions, PendingState, PurgeDeadLetters, RetentionPolicy, StartFrom, Store, StoreOptions};

/// Every delivery a group gives in one go, acked.
fn drain(g: &tidelog::Group) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        let ds = g.try_poll(1000).unwrap();
        if ds.is_empty() {
            return got;
        }
        got.extend(offsets(&ds));
        g.ack_batch(&ds).unwrap();
    }
}

/// A topic with events 0..5, then (a few milliseconds later, so that their timestamps
/// differ) events 5..10; returns the store, the topic and the time between the two.
fn ten_events(dir: &std::path::Path) -> (Store, tidelog::Topic, u64) {
    let store = open_store(dir);
    let t = store.topic("t").unwrap();
    publish_n(&t, 5, "a");
    std::thread::sleep(Duration::from_millis(3));
    publish_n(&t, 5, "b");
    let between = t.read(4).unwrap().timestamp_us + 1;
    assert!(t.read(5).unwrap().timestamp_us >= between);
    (store, t, between)
}

#[test]
fn a_reset_to_each_target_then_consuming_gives_exactly_the_expected_events() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, t, between) = ten_events(tmp.path());
    let g = t.group("g", quick_group()).unwrap();
    assert_eq!(drain(&g), (0..10).collect::<Vec<_>>());
    let cases = [
        (StartFrom::Earliest, 0),
        (StartFrom::Latest, 10),
        (StartFrom::Offset(7), 7),
        (StartFrom::Time(between), 5),
        // Outside the topic: the nearest end.
        (StartFrom::Offset(1_000), 10),
        (StartFrom::Time(0), 0),
        (StartFrom::Time(u64::MAX), 10),
    ];
    for (to, at) in cases {
        assert_eq!(g.reset(to).unwrap(), at, "{to:?}");
        assert_eq!(g.committed(), at, "{to:?}");
        assert_eq!(drain(&g), (at..10).collect::<Vec<_>>(), "{to:?}");
    }
    // After a reset to the end, only what is published afterwards comes.
    g.reset(StartFrom::Latest).unwrap();
    publish_n(&t, 2, "c");
    assert_eq!(drain(&g), [10, 11]);
}

#[test]
fn a_new_group_starts_at_an_offset_or_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, t, between) = ten_events(tmp.path());
    let g = t.group("by-offset", quick_group().start(StartFrom::Offset(8))).unwrap();
    assert_eq!(drain(&g), [8, 9]);
    let g = t.group("by-time", quick_group().start(StartFrom::Time(between))).unwrap();
    assert_eq!(drain(&g), [5, 6, 7, 8, 9]);
}

#[test]
fn a_reset_drops_in_flight_deliveries_and_scheduled_retries_and_survives_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, t, _) = ten_events(tmp.path());
    let g = t.group("g", quick_group()).unwrap();
    let ds = poll_n(&g, 4);
    g.nack_after(&ds[0], Duration::from_secs(3600), "later").unwrap();
    g.ack(&ds[2]).unwrap();
    assert_eq!(g.reset(StartFrom::Offset(6)).unwrap(), 6);
    // The old position's deliveries are gone: settling them is a lost lease.
    assert!(matches!(g.ack(&ds[1]), Err(Error::LeaseLost { offset: 1, .. })));
    assert!(!g.retry_now(0).unwrap(), "the retry of the old position is dropped");
    assert!(g.pending().is_empty());
    g.close().unwrap();
    let g = t.group("g", quick_group()).unwrap();
    assert_eq!(g.committed(), 6);
    assert_eq!(drain(&g), [6, 7, 8, 9]);
    // Back to the start: events acked before are delivered again (a replay).
    g.reset(StartFrom::Earliest).unwrap();
    g.close().unwrap();
    let g = t.group("g", quick_group()).unwrap();
    assert_eq!(drain(&g), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_group_not_open_anywhere_is_reset_through_the_topic_and_a_preview_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, t, _) = ten_events(tmp.path());
    let g = t.group("g", quick_group()).unwrap();
    drain(&g);
    // Open: refused, the open handle resets it.
    assert!(matches!(t.reset_group("g", StartFrom::Earliest), Err(Error::GroupOpen { .. })));
    g.close().unwrap();
    let preview = t.preview_reset("g", StartFrom::Offset(3)).unwrap();
    assert_eq!((preview.committed, preview.unconsumed, preview.end_offset), (3, 7, 10));
    assert_eq!(t.groups().unwrap()[0].committed, 10, "a preview changes nothing");
    assert_eq!(t.reset_group("g", StartFrom::Offset(3)).unwrap(), 3);
    assert_eq!(t.groups().unwrap()[0].committed, 3);
    assert!(matches!(t.reset_group("nope", StartFrom::Earliest), Err(Error::NotFound { .. })));
}

#[test]
fn deleting_a_group_frees_the_retention_it_held_back() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let payload = vec![7u8; 1000];
    for _ in 0..300 {
        t.publish(tidelog::Record::new(&payload)).unwrap();
    }
    let active = t.group("active", quick_group()).unwrap();
    drain(&active);
    // An abandoned group at the start pins every segment.
    t.group("abandoned", quick_group()).unwrap().close().unwrap();
    assert_eq!(t.apply_retention(&RetentionPolicy::consumed()).unwrap().segments_removed, 0);
    // Refused while it is open.
    let again = t.group("abandoned", quick_group()).unwrap();
    assert!(matches!(t.delete_group("abandoned"), Err(Error::GroupOpen { .. })));
    again.close().unwrap();
    store.delete_group("t", "abandoned").unwrap();
    assert_eq!(store.group_names("t").unwrap(), ["active"]);
    assert!(!tmp.path().join("groups/t/abandoned").exists());
    let report = t.apply_retention(&RetentionPolicy::consumed()).unwrap();
    assert!(report.segments_removed > 0 && report.first_offset > 0, "{report:?}");
    assert!(matches!(t.delete_group("abandoned"), Err(Error::NotFound { .. })));
    // A group opened under the name again is a new group.
    let reborn = t.group("abandoned", quick_group()).unwrap();
    assert_eq!(reborn.committed(), report.first_offset);
}

/// A failure at any single step of a delete (the rename, the directory fsync, any file
/// removed) leaves the group whole (it reopens with its position and dead letters) or gone
/// (not listed, holding nothing back); the next delete in the topic clears what is left.
#[test]
fn a_crash_at_any_step_of_a_delete_leaves_the_group_whole_or_gone() {
    crash_at_each_step(false);
}

/// The same for a delete that keeps the dead letters: the group is whole, or gone with its
/// dead letters kept and readable.
#[test]
fn a_crash_at_any_step_of_a_delete_keeping_dead_letters_leaves_the_group_whole_or_gone() {
    crash_at_each_step(true);
}

fn delete(store: &Store, keep: bool) -> tidelog::Result<()> {
    let t = store.open_topic("t")?;
    match keep {
        true => t.delete_group_keeping_dead_letters("g").map(|_| ()),
        false => t.delete_group("g"),
    }
}

fn crash_at_each_step(keep: bool) {
    let calls = {
        let tmp = tempfile::tempdir().unwrap();
        let store = group_to_delete(tmp.path());
        let (faults, _guard) = Faults::on(&tmp.path().join("groups"));
        delete(&store, keep).unwrap();
        let trace = faults.trace();
        assert!(trace.iter().any(|c| c.op == IoOp::Rename));
        assert_eq!(trace.iter().any(|c| c.op == IoOp::Remove), !keep);
        trace.len()
    };
    for n in 0..calls {
        let tmp = tempfile::tempdir().unwrap();
        let store = group_to_delete(tmp.path());
        let (faults, guard) = Faults::on(&tmp.path().join("groups"));
        faults.fail_nth(n, None);
        let result = delete(&store, keep);
        assert_eq!(faults.failed().len(), 1, "step {n}");
        drop(guard);
        // The process "restarts": a fresh store.
        drop(store);
        let store = open_store(tmp.path());
        let t = store.open_topic("t").unwrap();
        let listed = store.group_names("t").unwrap();
        if listed.is_empty() {
            assert!(!tmp.path().join("groups/t/g").exists(), "step {n}");
            assert!(store.lag().unwrap().is_empty(), "step {n}");
            let kept = t.kept_dead_letters().unwrap();
            assert_eq!(kept.len(), usize::from(keep), "step {n}");
            if let Some(k) = kept.first() {
                assert_eq!(t.read_kept_dead_letters(k).unwrap()[0].reason, "bad", "step {n}");
                t.discard_kept_dead_letters(k).unwrap();
            }
            // Leftovers go with the next delete in the topic.
            t.group("other", quick_group()).unwrap().close().unwrap();
            store.delete_group("t", "other").unwrap();
            assert_eq!(std::fs::read_dir(tmp.path().join("groups/t")).unwrap().count(), 0, "step {n}");
        } else {
            assert!(result.is_err(), "step {n}: a delete that returned Ok left the group");
            let g = t.group("g", quick_group()).unwrap();
            assert_eq!((g.committed(), g.dead_letters().unwrap().len()), (2, 1), "step {n}");
            g.close().unwrap();
            store.delete_group("t", "g").unwrap();
        }
    }
}

/// A group with a committed position of 2 and one dead letter.
fn group_to_delete(dir: &std::path::Path) -> Store {
    let store = open_store(dir);
    let t = store.topic("t").unwrap();
    publish_n(&t, 3, "e");
    let g = t.group("g", quick_group()).unwrap();
    let ds = poll_n(&g, 3);
    g.reject(&ds[0], "bad").unwrap();
    g.ack(&ds[1]).unwrap();
    g.close().unwrap();
    store
}

#[test]
fn a_release_does_not_count_an_attempt_while_a_nack_does() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    publish_n(&t, 2, "e");
    let opts = quick_group().max_deliveries(2);
    let g = t.group("g", opts.clone()).unwrap();
    let ds = poll_n(&g, 2);
    assert_eq!((ds[0].attempt(), ds[1].attempt()), (1, 1));
    g.release(&ds[0]).unwrap();
    g.nack_after(&ds[1], Duration::ZERO, "failed").unwrap();
    assert!(matches!(g.release(&ds[0]), Err(Error::LeaseLost { .. })), "released once");
    let ds = poll_n(&g, 2);
    let attempts: Vec<_> = ds.iter().map(|d| (d.offset(), d.attempt())).collect();
    assert_eq!(attempts, [(0, 1), (1, 2)]);
    // Released as often as one likes, the event is never dead-lettered by it; and the
    // release is durable: a reopened group counts the same.
    g.release_batch(&ds).unwrap();
    for _ in 0..3 {
        let ds = poll_n(&g, 2);
        g.release_batch(&ds).unwrap();
    }
    g.close().unwrap();
    let g = t.group("g", opts).unwrap();
    let ds = poll_n(&g, 2);
    let attempts: Vec<_> = ds.iter().map(|d| (d.offset(), d.attempt())).collect();
    assert_eq!(attempts, [(0, 1), (1, 2)]);
    // The nack that reaches the limit dead-letters.
    g.nack(&ds[1], "again").unwrap();
    assert_eq!(g.dead_letters().unwrap().len(), 1);
}

#[test]
fn deliveries_are_settled_by_offset_only_while_they_are_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    publish_n(&t, 6, "e");
    // Retries wait an hour: the nacked event stays out of the polls below.
    let slow = tidelog::Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
    let g = t.group("g", quick_group().backoff(slow)).unwrap();
    let ds = poll_n(&g, 5);
    g.ack_offsets(&[0, 2]).unwrap();
    // Settled already, never delivered, or past the end: nothing changes for any of them.
    for bad in [&[1, 0][..], &[5], &[1, 99]] {
        let e = g.ack_offsets(bad).unwrap_err();
        assert!(matches!(e, Error::NotDelivered { offset, .. } if offset == *bad.last().unwrap()), "{e}");
    }
    assert!(matches!(g.ack(&ds[0]), Err(Error::LeaseLost { .. })));
    g.nack_offsets(&[1], "later").unwrap();
    g.reject_offsets(&[3], "bad").unwrap();
    g.release_offsets(&[4]).unwrap();
    let pending = g.pending();
    let states: Vec<_> = pending.iter().map(|p| (p.offset, p.attempts, p.state)).collect();
    assert!(matches!(states[0], (1, 1, PendingState::Retry { .. })), "{states:?}");
    assert_eq!(states[1..], [(4, 0, PendingState::Due)]);
    assert_eq!(g.dead_letters().unwrap()[0].source_offset, 3);
    let ds = poll_n(&g, 2);
    assert_eq!(offsets(&ds), [4, 5]);
    assert!(matches!(g.pending()[1].state, PendingState::InFlight { .. }));
    g.ack_offsets(&[4, 5]).unwrap();
    assert_eq!(g.committed(), 1);
}

#[test]
fn nacks_and_rejects_come_in_batches_and_refuse_foreign_deliveries_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    publish_n(&t, 4, "e");
    let g = t.group("g", quick_group()).unwrap();
    let other = t.group("other", quick_group()).unwrap();
    let ds = poll_n(&g, 4);
    let foreign = poll_n(&other, 1);
    let mixed = vec![ds[0].clone(), foreign[0].clone()];
    assert!(matches!(g.nack_batch(&mixed, "x"), Err(Error::ForeignDelivery { .. })));
    assert_eq!(g.lag().unwrap().in_flight, 4, "nothing was nacked");
    g.nack_batch(&ds[..2], "later").unwrap();
    g.reject_batch(&ds[2..], "bad").unwrap();
    let lag = g.lag().unwrap();
    assert_eq!((lag.in_flight, lag.scheduled_retries, lag.dead_letters), (0, 2, 2));
    // One already settled: the others are settled, and the lost one is reported.
    let ds = {
        g.retry_now(0).unwrap();
        g.retry_now(1).unwrap();
        poll_n(&g, 2)
    };
    g.ack(&ds[0]).unwrap();
    assert!(matches!(g.nack_batch(&ds, "again"), Err(Error::LeaseLost { .. })));
    assert_eq!(g.lag().unwrap().scheduled_retries, 1);
}

#[test]
fn a_scheduled_retry_is_listed_and_can_be_cancelled_or_moved_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    publish_n(&t, 3, "e");
    let g = t.group("g", quick_group()).unwrap();
    let ds = poll_n(&g, 3);
    g.nack_after(&ds[0], Duration::from_secs(3600), "later").unwrap();
    g.nack_after(&ds[1], Duration::from_secs(3600), "later").unwrap();
    let due_of = |g: &tidelog::Group, o: u64| match g.pending().iter().find(|p| p.offset == o).map(|p| p.state) {
        Some(PendingState::Retry { due_us }) => due_us,
        other => panic!("{other:?}"),
    };
    let before = due_of(&g, 1);
    let p = &g.pending()[0];
    assert_eq!((p.offset, p.attempts, p.last_reason.as_deref()), (0, 1, Some("later")));
    assert!(g.cancel_retry(0).unwrap());
    assert!(!g.cancel_retry(0).unwrap(), "no longer waiting");
    assert!(!g.cancel_retry(2).unwrap(), "in flight, not waiting for a retry");
    assert!(g.reschedule_retry(1, Duration::from_secs(7200)).unwrap());
    assert!(due_of(&g, 1) > before);
    assert!(!g.reschedule_retry(9, Duration::ZERO).unwrap());
    g.close().unwrap();
    let g = t.group("g", quick_group()).unwrap();
    assert_eq!(g.committed(), 1, "the cancelled event is done");
    assert!(due_of(&g, 1) > before, "the new due time was persisted");
    assert!(g.reschedule_retry(1, Duration::ZERO).unwrap());
    // Event 2 was in flight at the close: due again at once, like the retry moved to now.
    let mut got = offsets(&poll_n(&g, 2));
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
}

/// A group with `n` dead letters, written `gap` apart.
fn dead_letters(dir: &std::path::Path, n: usize, gap: Duration) -> (Store, tidelog::Group) {
    let store = open_store(dir);
    let t = store.topic("t").unwrap();
    publish_n(&t, n, "e");
    let g = t.group("g", quick_group()).unwrap();
    for d in poll_n(&g, n) {
        g.reject(&d, "bad").unwrap();
        std::thread::sleep(gap);
    }
    (store, g)
}

fn listed(g: &tidelog::Group) -> Vec<u64> {
    g.dead_letters().unwrap().iter().map(|d| d.dlq_offset).collect()
}

#[test]
fn dead_letters_are_purged_by_count_and_the_purge_survives_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, g) = dead_letters(tmp.path(), 6, Duration::ZERO);
    let r = g.purge_dead_letters(PurgeDeadLetters::KeepNewest(4)).unwrap();
    assert_eq!((r.purged, r.purged_below), (2, 2));
    assert_eq!(listed(&g), [2, 3, 4, 5]);
    assert!(matches!(g.redrive(1), Err(Error::UnknownDeadLetter { dlq_offset: 1 })));
    // Keeping more than there are purges nothing.
    assert_eq!(g.purge_dead_letters(PurgeDeadLetters::KeepNewest(10)).unwrap().purged, 0);
    g.close().unwrap();
    assert_eq!(store.dead_letters("t", "g").unwrap().len(), 4);
    let t = store.open_topic("t").unwrap();
    assert_eq!(t.groups().unwrap()[0].dead_letters, 4);
    let g = t.group("g", quick_group()).unwrap();
    assert_eq!(listed(&g), [2, 3, 4, 5]);
    assert_eq!(g.redrive_all().unwrap(), 4);
}

#[test]
fn dead_letters_are_purged_by_age_and_all_but_a_redriven_one_stops_the_purge() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, g) = dead_letters(tmp.path(), 4, Duration::from_millis(2));
    let newest = g.dead_letters().unwrap()[3].dead_lettered_us;
    // An age no dead letter has yet purges nothing.
    assert_eq!(g.purge_dead_letters(PurgeDeadLetters::OlderThan(Duration::from_secs(3600))).unwrap().purged, 0);
    // Written before the newest one: all but the newest.
    let r = g.purge_dead_letters(PurgeDeadLetters::WrittenBefore(newest)).unwrap();
    assert_eq!((r.purged, listed(&g)), (3, vec![3]));
    g.redrive(3).unwrap();
    assert_eq!(g.purge_dead_letters(PurgeDeadLetters::All).unwrap().purged, 0, "redriven, not settled");
    let ds = poll_n(&g, 1);
    g.reject(&ds[0], "still bad").unwrap();
    let r = g.purge_dead_letters(PurgeDeadLetters::All).unwrap();
    assert_eq!((r.purged, r.purged_below), (2, 5));
    assert!(listed(&g).is_empty());
}

#[test]
fn a_purge_removes_whole_dead_letter_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let big = vec![1u8; 8000];
    for _ in 0..40 {
        t.publish(tidelog::Record::new(&big)).unwrap();
    }
    let g = t.group("g", quick_group()).unwrap();
    g.reject_batch(&poll_n(&g, 40), "bad").unwrap();
    let dl_dir = tmp.path().join("groups/t/g/dead-letters");
    let segments = || {
        let names = std::fs::read_dir(&dl_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap());
        names.filter(|n| n.ends_with(".log")).count()
    };
    let before = segments();
    assert!(before > 2, "{before}");
    let r = g.purge_dead_letters(PurgeDeadLetters::All).unwrap();
    assert_eq!((r.purged, r.segments_removed), (40, before - 1));
    assert_eq!(segments(), 1, "the active segment stays, its records purged");
    g.close().unwrap();
    assert!(store.dead_letters("t", "g").unwrap().is_empty());
}

/// A copy of the fixture store `name` (see `tests/consumer_compat.rs` for what it holds).
fn fixture(tmp: &tempfile::TempDir, name: &str) -> Store {
    let dir = tmp.path().join("store");
    copy_tree(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name), &dir);
    Store::open(&dir, StoreOptions::default().create_if_missing(false)).unwrap()
}

/// A group written by the release before (state events version 2, snapshot payload version
/// 2) opens, is reset and purged, and reopens with both.
#[test]
fn a_group_of_the_previous_release_opens_and_is_reset_and_purged() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(&tmp, "store-v2");
    let t = store.open_topic("orders").unwrap();
    assert_eq!(t.reset_group("audit", StartFrom::Offset(6)).unwrap(), 6);
    let r = t.purge_dead_letters("billing", PurgeDeadLetters::All).unwrap();
    assert_eq!(r.purged, 1);
    let audit = t.group("audit", GroupOptions::default()).unwrap();
    assert_eq!(drain(&audit), [6, 7]);
    let billing = t.group("billing", GroupOptions::default()).unwrap();
    assert!(billing.dead_letters().unwrap().is_empty());
    assert_eq!(billing.redrive_all().unwrap(), 0);
}

/// In per-key order, a reset forgets the key queues of the old position: an event held back
/// behind a failing one of its key is delivered from the new position like any other.
#[test]
fn a_reset_in_per_key_order_releases_every_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    for i in 0..6 {
        t.publish(tidelog::Record::new(format!("e{i}").as_bytes()).key(b"same")).unwrap();
    }
    let g = t.group("g", quick_group().order(tidelog::DeliveryOrder::PerKey)).unwrap();
    let ds = g.try_poll(10).unwrap();
    assert_eq!(offsets(&ds), [0], "the others wait behind it");
    g.nack_after(&ds[0], Duration::from_secs(3600), "stuck").unwrap();
    assert_eq!(g.lag().unwrap().held_back, 5);
    g.reset(StartFrom::Offset(3)).unwrap();
    assert_eq!(g.lag().unwrap().held_back, 0);
    let mut got = Vec::new();
    for _ in 0..3 {
        let ds = g.try_poll(10).unwrap();
        got.extend(offsets(&ds));
        g.ack_batch(&ds).unwrap();
    }
    assert_eq!(got, [3, 4, 5]);
}

#[test]
fn a_group_deleted_keeping_its_dead_letters_frees_retention_and_keeps_them_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let store = group_to_delete(tmp.path());
    let t = store.open_topic("t").unwrap();
    // One more dead letter, purged: it stays purged in the kept set.
    let g = t.group("g", quick_group()).unwrap();
    t.publish(tidelog::Record::new(b"late")).unwrap();
    let ds = poll_n(&g, 2);
    g.reject_batch(&ds, "worse").unwrap();
    g.purge_dead_letters(PurgeDeadLetters::KeepNewest(2)).unwrap();
    let before = g.dead_letters().unwrap();
    assert_eq!(before.len(), 2);
    assert!(matches!(t.delete_group_keeping_dead_letters("g"), Err(Error::GroupOpen { .. })));
    g.close().unwrap();
    let kept = t.delete_group_keeping_dead_letters("g").unwrap();
    assert_eq!(store.group_names("t").unwrap(), Vec::<String>::new());
    assert!(store.lag().unwrap().is_empty(), "nothing holds back retention");
    assert_eq!(t.kept_dead_letters().unwrap(), std::slice::from_ref(&kept));
    assert_eq!(t.read_kept_dead_letters(&kept).unwrap(), before);
    // A group under the same name is new, without them.
    let reborn = t.group("g", quick_group()).unwrap();
    assert!(reborn.dead_letters().unwrap().is_empty());
    reborn.close().unwrap();
    t.discard_kept_dead_letters(&kept).unwrap();
    assert!(t.kept_dead_letters().unwrap().is_empty());
    assert!(!kept.dir.exists());
    assert!(matches!(t.read_kept_dead_letters(&kept), Err(Error::NotFound { .. })));
}

/// A group written by the first release (state events version 1, dead letters in format 1,
/// never closed) opens and is reset and purged; its redriven dead letter, still pending,
/// stops the purge below it.
#[test]
fn a_group_of_the_first_release_opens_and_is_reset_and_purged() {
    let tmp = tempfile::tempdir().unwrap();
    let store = fixture(&tmp, "store-v1");
    let t = store.open_topic("orders").unwrap();
    assert_eq!(t.reset_group("audit", StartFrom::Offset(6)).unwrap(), 6);
    let r = t.purge_dead_letters("billing", PurgeDeadLetters::All).unwrap();
    assert_eq!((r.purged, r.purged_below), (1, 1));
    let billing = t.group("billing", GroupOptions::default()).unwrap();
    let left: Vec<_> = billing.dead_letters().unwrap().iter().map(|d| (d.dlq_offset, d.status)).collect();
    assert_eq!(left, [(1, tidelog::DeadLetterStatus::Redriven)]);
    let audit = t.group("audit", GroupOptions::default()).unwrap();
    assert_eq!(drain(&audit), [6, 7]);
}
