//! Dead letters: after `max_deliveries` deliveries without an ack (nacks, expired leases,
//! consumer crashes) or an explicit reject, the event moves to the group's dead-letter log
//! with its origin and history; it can be listed and redriven.

mod consumer_support;

use std::time::Duration;

use consumer_support::{open_store, poll_n, publish_n, quick_group};
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
    // The dead-letter log is a plain log: its record carries the metadata as headers.
    let raw = Log::open_read_only(tmp.path().join("groups/payments/ledger/dead-letters"), Options::default())
        .unwrap()
        .read(0)
        .unwrap();
    assert_eq!(raw.header("tidelog.dlq.topic"), Some(&b"payments"[..]));
    assert_eq!(raw.header("tidelog.dlq.offset"), Some(&b"0"[..]));
    assert_eq!(raw.header("tidelog.dlq.attempts"), Some(&b"3"[..]));
    assert_eq!(raw.header("tidelog.dlq.cause"), Some(&b"max-deliveries"[..]));
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
        let h = |name, value: &'static str| Header { name, value: value.as_bytes() };
        let headers = [
            h("tidelog.dlq.original-headers", "0"),
            h("tidelog.dlq.topic", "t"),
            h("tidelog.dlq.offset", "1"),
            h("tidelog.dlq.timestamp-us", "1"),
            h("tidelog.dlq.group", "g"),
            h("tidelog.dlq.attempts", "5"),
            h("tidelog.dlq.cause", "max-deliveries"),
            h("tidelog.dlq.reason", "crashed"),
            h("tidelog.dlq.first-failure-us", "1"),
            h("tidelog.dlq.last-failure-us", "2"),
        ];
        assert_eq!(dl.append(Record::new(b"e-1").headers(&headers)).unwrap(), 1);
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
