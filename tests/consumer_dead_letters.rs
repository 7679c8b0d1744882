//! Dead letters: after `max_deliveries` deliveries without an ack (nacks, expired leases,
//! consumer crashes) or an explicit reject, the event moves to the group's dead-letter log
//! with its origin and history; it can be listed and redriven.

mod consumer_support;

use std::time::Duration;

use consumer_support::{copy_tree, offsets, open_store, poll_n, publish_n, quick_group};
use tidelog::{DeadLetterCause, DeadLetterStatus, Error, Header, Log, Options, Record};

#[test]
fn nacked_max_deliveries_times_goes_to_dead_letters_with_its_history() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("payments").unwrap();
    let g = t.group("ledger", quick_group().max_deliveries(3)).unwrap();
    let headers = [Header { name: "type", value: b"charge" }, Header { name: "trace", value: b"abc" }];
    t.publish(Record::new(b"{\"amount\":-1}").key(b"acct-9").headers(&headers)).unwrap();
    publish_n(&t, 2, "ok");
    let mut attempts = Vec::new();
    let mut oks = 0;
    while attempts.len() < 3 || oks < 2 {
        for d in g.poll(10, Duration::from_secs(2)).unwrap() {
            if d.offset() == 0 {
                attempts.push(d.attempt());
                g.nack(&d, &format!("invalid amount (try {})", d.attempt())).unwrap();
            } else {
                oks += 1;
                g.ack(&d).unwrap();
            }
        }
    }
    assert_eq!(attempts, vec![1, 2, 3]);
    // Dead-lettered on the third nack: the committed position moves past it.
    assert_eq!(g.committed(), 3);
    assert!(g.poll(10, Duration::from_millis(200)).unwrap().is_empty());
    let lag = g.lag().unwrap();
    assert_eq!((lag.dead_letters, lag.scheduled_retries, lag.unconsumed), (1, 0, 0));
    let dls = g.dead_letters().unwrap();
    assert_eq!(dls.len(), 1);
    let d = &dls[0];
    assert_eq!((d.topic.as_str(), d.group.as_str(), d.source_offset), ("payments", "ledger", 0));
    assert_eq!((d.attempts, d.cause, d.status), (3, DeadLetterCause::MaxDeliveries, DeadLetterStatus::Parked));
    assert_eq!(d.reason, "invalid amount (try 3)");
    assert!(d.first_failure_us > 0 && d.first_failure_us <= d.last_failure_us);
    assert!(d.last_failure_us <= d.dead_lettered_us + 1_000_000);
    assert_eq!(d.record.payload, b"{\"amount\":-1}");
    assert_eq!(d.record.key.as_deref(), Some(&b"acct-9"[..]));
    assert_eq!(d.record.headers, vec![("type".into(), b"charge".to_vec()), ("trace".into(), b"abc".to_vec())]);
    assert_eq!(d.record.offset, 0);
    assert_eq!(d.record.timestamp_us, t.read(0).unwrap().timestamp_us);
    assert_eq!(d.redrive_of, None);
    // The dead-letter log is a plain log: its record carries the event's headers and payload
    // as published, and the metadata in its key (format 2, docs/format.md), out of
    // publishers' reach.
    let raw = Log::open_read_only(tmp.path().join("groups/payments/ledger/dead-letters"), Options::default())
        .unwrap()
        .read(0)
        .unwrap();
    assert_eq!(raw.headers, d.record.headers);
    assert_eq!(raw.payload, d.record.payload);
    let key = raw.key.unwrap();
    assert_eq!(&key[..6], b"TDLM\x02\x00");
    assert_eq!(&key[key.len() - 6..], b"acct-9");
}

#[test]
fn reject_dead_letters_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    publish_n(&t, 2, "e");
    let ds = poll_n(&g, 2);
    g.reject(&ds[1], "schema violation").unwrap();
    assert!(matches!(g.ack(&ds[1]), Err(Error::LeaseLost { .. })));
    g.ack(&ds[0]).unwrap();
    let dl = g.dead_letters().unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!((dl[0].source_offset, dl[0].attempts, dl[0].cause), (1, 1, DeadLetterCause::Rejected));
    assert_eq!(dl[0].reason, "schema violation");
    assert_eq!(g.committed(), 2);
}

#[test]
fn a_consumer_that_hangs_or_crashes_on_an_event_still_reaches_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    // Leases expiring count as deliveries.
    {
        let store = open_store(&tmp.path().join("a"));
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group().max_deliveries(2).lease(Duration::from_millis(40))).unwrap();
        publish_n(&t, 1, "hang");
        assert_eq!(g.poll(1, Duration::from_secs(1)).unwrap()[0].attempt(), 1);
        assert_eq!(g.poll(1, Duration::from_secs(1)).unwrap()[0].attempt(), 2);
        // The third "delivery" goes to the dead letters instead.
        assert!(g.poll(1, Duration::from_millis(300)).unwrap().is_empty());
        let dl = g.dead_letters().unwrap();
        assert_eq!((dl.len(), dl[0].attempts, dl[0].cause), (1, 2, DeadLetterCause::MaxDeliveries));
        assert_eq!(dl[0].reason, "lease expired before ack");
    }
    // A consumer that dies on the event: each restart delivers it again, counted.
    let dir = tmp.path().join("b");
    open_store(&dir).topic("t").unwrap().publish(Record::new(b"poison")).unwrap();
    for attempt in 1..=3 {
        let store = open_store(&dir);
        let g = store.topic("t").unwrap().group("g", quick_group().max_deliveries(3)).unwrap();
        let d = g.poll(1, Duration::from_secs(1)).unwrap();
        assert_eq!(d[0].attempt(), attempt);
        // "Crash": the handle goes away without settling.
    }
    let store = open_store(&dir);
    let g = store.topic("t").unwrap().group("g", quick_group().max_deliveries(3)).unwrap();
    assert!(g.poll(1, Duration::from_millis(200)).unwrap().is_empty());
    assert_eq!(g.dead_letters().unwrap().len(), 1);
    assert_eq!(g.committed(), 1);
}

#[test]
fn redrive_delivers_again_and_a_second_failure_makes_a_new_dead_letter() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    publish_n(&t, 3, "e");
    for d in poll_n(&g, 3) {
        g.reject(&d, "bad").unwrap();
    }
    assert_eq!(g.dead_letters().unwrap().len(), 3);
    assert!(matches!(g.redrive(7), Err(Error::UnknownDeadLetter { dlq_offset: 7 })));
    g.redrive(1).unwrap();
    assert!(matches!(g.redrive(1), Err(Error::UnknownDeadLetter { .. })));
    let d = poll_n(&g, 1);
    assert_eq!((d[0].offset(), d[0].attempt(), d[0].redriven_from()), (1, 1, Some(1)));
    assert_eq!(d[0].payload(), b"e-1");
    assert!(d[0].header("tidelog.dlq.topic").is_none(), "metadata headers leak into the redelivery");
    let statuses: Vec<_> = g.dead_letters().unwrap().iter().map(|d| d.status).collect();
    assert_eq!(statuses, vec![DeadLetterStatus::Parked, DeadLetterStatus::Redriven, DeadLetterStatus::Parked]);
    assert_eq!(g.lag().unwrap().redriven, 1);
    // It fails again: a new dead letter pointing at the old one.
    g.reject(&d[0], "still bad").unwrap();
    let dls = g.dead_letters().unwrap();
    assert_eq!(dls.len(), 4);
    assert_eq!((dls[3].source_offset, dls[3].redrive_of, dls[3].status), (1, Some(1), DeadLetterStatus::Parked));
    assert_eq!(dls[1].status, DeadLetterStatus::Settled);
    // Redrive everything parked; ack all; nothing is parked afterwards.
    assert_eq!(g.redrive_all().unwrap(), 3);
    let mut got: Vec<_> = poll_n(&g, 3).iter().map(|d| (d.offset(), d.redriven_from())).collect();
    got.sort();
    assert_eq!(got, vec![(0, Some(0)), (1, Some(3)), (2, Some(2))]);
    let extra: Vec<u64> = g.try_poll(10).unwrap().iter().map(|d| d.offset()).collect();
    assert!(extra.is_empty(), "unexpected deliveries {extra:?}");
    let lag = g.lag().unwrap();
    assert_eq!((lag.dead_letters, lag.redriven), (0, 3));
}

#[test]
fn redrive_state_and_dead_letters_survive_restart_and_are_visible_to_other_processes() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 2, "e");
        for d in poll_n(&g, 2) {
            g.reject(&d, "bad").unwrap();
        }
        g.redrive(0).unwrap();
        g.close().unwrap();
    }
    let store = open_store(tmp.path());
    // Read without opening the group (as the CLI does).
    let dls = store.dead_letters("t", "g").unwrap();
    assert_eq!(
        dls.iter().map(|d| d.status).collect::<Vec<_>>(),
        vec![DeadLetterStatus::Redriven, DeadLetterStatus::Parked]
    );
    let lag = store.group_lag("t", "g").unwrap();
    assert_eq!((lag.dead_letters, lag.redriven, lag.committed, lag.live), (1, 1, 2, false));
    let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    let d = poll_n(&g, 1);
    assert_eq!(d[0].redriven_from(), Some(0));
    g.ack(&d[0]).unwrap();
    assert_eq!(g.dead_letters().unwrap()[0].status, DeadLetterStatus::Settled);
}

/// The metadata block of a format-2 dead-letter record (the record's key), built by hand the
/// way `docs/format.md` ("Dead-letter records") specifies it.
fn dead_letter_key(topic: &str, group: &str, offset: u64, attempts: u32, reason: &str) -> Vec<u8> {
    let mut k = b"TDLM".to_vec();
    k.extend_from_slice(&2u16.to_le_bytes()); // version
    k.extend_from_slice(&0u16.to_le_bytes()); // flags: no key, no redrive-of
    for v in [offset, 1, 1, 2, 0] {
        // source offset, source timestamp, first and last failure, redrive-of
        k.extend_from_slice(&v.to_le_bytes());
    }
    k.extend_from_slice(&attempts.to_le_bytes());
    k.extend_from_slice(&[2, 0]); // cause max-deliveries, reserved
    k.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    k.extend_from_slice(&(group.len() as u16).to_le_bytes());
    k.extend_from_slice(&0u16.to_le_bytes());
    k.extend_from_slice(&(reason.len() as u32).to_le_bytes());
    k.extend_from_slice(&0u32.to_le_bytes()); // key length
    assert_eq!(k.len(), 68);
    for s in [topic, group, reason] {
        k.extend_from_slice(s.as_bytes());
    }
    k
}

/// A crash after the dead-letter record was written but before the group recorded it: the
/// reopened group must see the dead letter and never deliver the event (or dead-letter it)
/// again. Simulated by writing the record into the dead-letter log directly, the way
/// `docs/format.md` ("Store and consumer-group files") specifies it.
#[test]
fn a_dead_letter_written_just_before_a_crash_is_reconciled_not_duplicated() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 3, "e");
        let ds = poll_n(&g, 3);
        g.reject(&ds[0], "first").unwrap();
        g.ack(&ds[2]).unwrap();
        // Offset 1 stays delivered-but-unsettled.
        g.close().unwrap();
    }
    {
        let dl = Log::open(tmp.path().join("groups/t/g/dead-letters"), Options::default()).unwrap();
        let key = dead_letter_key("t", "g", 1, 5, "crashed");
        assert_eq!(dl.append(Record::new(b"e-1").key(&key)).unwrap(), 1);
        dl.close().unwrap();
    }
    let store = open_store(tmp.path());
    let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    assert!(g.poll(10, Duration::from_millis(200)).unwrap().is_empty(), "event 1 delivered after it was dead-lettered");
    assert_eq!(g.committed(), 3);
    let dls = g.dead_letters().unwrap();
    assert_eq!(dls.iter().map(|d| d.source_offset).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(g.lag().unwrap().dead_letters, 2);
    // Reopening again changes nothing (the reconciliation was recorded).
    g.close().unwrap();
    let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    assert_eq!(g.lag().unwrap().dead_letters, 2);
    assert_eq!(g.dead_letters().unwrap().len(), 2);
}

/// Headers a publisher puts on an event, named like the engine's metadata.
fn forged_headers() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("tidelog.dlq.original-headers", b"0"),
        ("tidelog.dlq.topic", b"forged"),
        ("tidelog.dlq.offset", b"999999999999"),
        ("tidelog.dlq.timestamp-us", b"1"),
        ("tidelog.dlq.group", b"forged"),
        ("tidelog.dlq.attempts", b"77"),
        ("tidelog.dlq.cause", b"rejected"),
        ("tidelog.dlq.reason", b"forged"),
        ("tidelog.dlq.first-failure-us", b"1"),
        ("tidelog.dlq.last-failure-us", b"2"),
        ("trace", b"t-1"),
    ]
}

/// Dead-letter metadata was read from the record's headers, where the event's own headers
/// also go: an event published with `tidelog.dlq.*` headers made `dead_letters()` report a
/// forged topic, offset, group, attempts and reason, and a redrive stripped the publisher's
/// headers. The metadata now lives in the record's key, out of publishers' reach; the
/// event's headers are kept as published through dead-lettering and redrive.
#[test]
fn headers_named_like_dead_letter_metadata_are_the_events_own() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let published: Vec<Header<'_>> = forged_headers().into_iter().map(|(name, value)| Header { name, value }).collect();
    t.publish(Record::new(b"x").key(b"k").headers(&published)).unwrap();
    let d = poll_n(&g, 1);
    g.reject(&d[0], "really bad").unwrap();
    let dls = g.dead_letters().unwrap();
    let dl = &dls[0];
    assert_eq!((dl.topic.as_str(), dl.group.as_str(), dl.source_offset), ("t", "g", 0));
    assert_eq!((dl.attempts, dl.cause, dl.reason.as_str()), (1, DeadLetterCause::Rejected, "really bad"));
    assert_eq!(dl.record, t.read(0).unwrap());
    // The same from another process's point of view, and after a redrive.
    g.close().unwrap();
    assert_eq!(store.dead_letters("t", "g").unwrap(), dls);
    let g = t.group("g", quick_group()).unwrap();
    g.redrive(0).unwrap();
    let again = poll_n(&g, 1);
    assert_eq!(again[0].record(), &t.read(0).unwrap());
    g.ack(&again[0]).unwrap();
}

/// Reconciliation after a crash between the dead-letter append and the state write read the
/// source offset from the headers, so an event whose publisher forged them got the wrong
/// item finished (and the dead-lettered one delivered again). The record's metadata names
/// the item, whatever its headers say.
#[test]
fn reconciliation_after_a_crash_finishes_the_item_the_metadata_names() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 3, "e");
        let _ = poll_n(&g, 3);
        g.close().unwrap();
    }
    {
        let dl = Log::open(tmp.path().join("groups/t/g/dead-letters"), Options::default()).unwrap();
        let key = dead_letter_key("t", "g", 1, 5, "crashed");
        let mut forged: Vec<Header<'_>> =
            forged_headers().into_iter().map(|(name, value)| Header { name, value }).collect();
        forged[2].value = b"2";
        assert_eq!(dl.append(Record::new(b"e-1").key(&key).headers(&forged)).unwrap(), 0);
        dl.close().unwrap();
    }
    let store = open_store(tmp.path());
    let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    let ds = poll_n(&g, 2);
    assert_eq!(offsets(&ds), [0, 2], "the dead-lettered event 1 was delivered again");
    assert_eq!(g.dead_letters().unwrap()[0].source_offset, 1);
}

/// A dead-letter record naming an offset far past anything the group saw made the
/// reconciliation jump the state's cursor, which fails as damage: the group could never be
/// opened again. A record that names no pending item is now parked without finishing
/// anything, in either dead-letter format.
#[test]
fn a_dead_letter_naming_an_impossible_offset_never_makes_a_group_unopenable() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 2, "e");
        g.close().unwrap();
        let dl = Log::open(tmp.path().join("groups/t/g/dead-letters"), Options::default()).unwrap();
        dl.append(Record::new(b"x").key(&dead_letter_key("t", "g", u64::MAX - 1, 1, "far"))).unwrap();
        dl.append(Record::new(b"x").key(&dead_letter_key("t", "g", 1 << 40, 1, "far"))).unwrap();
        dl.append(Record::new(b"not a dead letter")).unwrap();
        dl.close().unwrap();
    }
    for _ in 0..2 {
        let store = open_store(tmp.path());
        let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
        assert_eq!(g.lag().unwrap().dead_letters, 3);
        let ds = poll_n(&g, 2);
        assert_eq!(offsets(&ds), [0, 1]);
        g.close().unwrap();
    }
    // A damaged record is reported where it is read, located.
    let store = open_store(tmp.path());
    let err = store.dead_letters("t", "g").unwrap_err();
    assert!(
        matches!(err, tidelog::Error::Corruption { location: tidelog::Location::Log { offset: 2, .. }, .. }),
        "{err}"
    );
}

/// The same for a store written by the first release, whose dead letters carry their
/// metadata in headers: a forged record there does not make the group unopenable either.
#[test]
fn a_first_release_dead_letter_naming_an_impossible_offset_never_makes_a_group_unopenable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    copy_tree(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1"), &dir);
    {
        let dl = Log::open(dir.join("groups/orders/billing/dead-letters"), Options::default()).unwrap();
        let mut headers: Vec<Header<'_>> =
            forged_headers().into_iter().take(10).map(|(name, value)| Header { name, value }).collect();
        headers[4].value = b"billing";
        dl.append(Record::new(b"x").headers(&headers)).unwrap();
        dl.close().unwrap();
    }
    let store = tidelog::Store::open(&dir, tidelog::StoreOptions::default()).unwrap();
    let g = store.topic("orders").unwrap().group("billing", tidelog::GroupOptions::default()).unwrap();
    let dls = g.dead_letters().unwrap();
    assert_eq!(dls.len(), 3);
    assert_eq!((dls[2].source_offset, dls[2].status), (999_999_999_999, DeadLetterStatus::Parked));
    assert_eq!(g.lag().unwrap().dead_letters, 2);
}

/// `redrive_all` read each dead letter as it redrove it, so a damaged record after healthy
/// ones left the healthy ones redriven in memory but never recorded: after a restart they
/// were parked again. A damaged record now fails the redrive before anything changes.
#[test]
fn a_damaged_dead_letter_fails_redrive_all_before_anything_changes() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 1, "e");
        let ds = poll_n(&g, 1);
        g.reject(&ds[0], "bad").unwrap();
        g.close().unwrap();
        let dl = Log::open(tmp.path().join("groups/t/g/dead-letters"), Options::default()).unwrap();
        dl.append(Record::new(b"not a dead letter")).unwrap();
        dl.close().unwrap();
    }
    let store = open_store(tmp.path());
    let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    assert!(matches!(
        g.redrive_all(),
        Err(Error::Corruption { location: tidelog::Location::Log { offset: 1, .. }, .. })
    ));
    assert_eq!(g.lag().unwrap().redriven, 0);
    assert!(g.try_poll(10).unwrap().is_empty());
    // The healthy one still redrives on its own.
    g.redrive(0).unwrap();
    assert_eq!(poll_n(&g, 1)[0].redriven_from(), Some(0));
}
