//! Stores written by earlier releases keep opening: a fixture store made by the first release
//! of consumer groups (group snapshots and state events version 1, dead-letter metadata in
//! `tidelog.dlq.*` headers) is opened and used.
//!
//! The fixture `tests/fixtures/store-v1/` holds topic `orders` (events 0..8, keys
//! `cust-{i % 3}`, headers `trace: abc` and `type: order`) and two groups:
//! * `billing`: event 0 rejected ("bad order", dead letter 0, parked); event 1 nacked with a
//!   retry due in a year; event 5 rejected ("also bad", dead letter 1) then redriven and
//!   delivered; every other event acked. The last changes are in the state log after the
//!   snapshot, and the group was never closed (as after a crash).
//! * `audit`: events 0 and 2 acked, event 1 delivered and not settled, closed cleanly.
//!
//! The fixture `tests/fixtures/store-v2/` was made by the release before group snapshots
//! moved to the projection layer (group snapshot `TDLGGRPS` version 2, state events version 2,
//! dead letters in format 2, files of 4 KiB). Topic `orders` holds events 0..8 as above, and:
//! * `billing`: event 0 rejected ("bad order", dead letter 0, parked); event 1 nacked with
//!   its retry due 30 days after the fixture was made ("try later"); events 2..8 acked;
//!   closed cleanly.
//! * `audit`: events 0..3 acked, event 3 delivered and not settled, closed cleanly.

mod consumer_support;

use std::time::Duration;

use consumer_support::*;
use tidelog::{DeadLetterCause, DeadLetterStatus, GroupOptions, Store, StoreOptions};

fn open_fixture(tmp: &tempfile::TempDir) -> Store {
    open_named_fixture(tmp, "store-v1")
}

fn open_named_fixture(tmp: &tempfile::TempDir, name: &str) -> Store {
    let dir = tmp.path().join("store");
    copy_tree(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name), &dir);
    Store::open(&dir, StoreOptions::default().create_if_missing(false)).unwrap()
}

#[test]
fn a_store_written_by_the_first_release_reports_its_lag_and_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_fixture(&tmp);
    let lag = store.lag().unwrap();
    assert_eq!(lag.len(), 2);
    let (audit, billing) = (&lag[0], &lag[1]);
    assert_eq!((audit.group.as_str(), audit.committed, audit.in_flight, audit.unconsumed), ("audit", 1, 1, 6));
    assert_eq!(billing.group, "billing");
    assert_eq!((billing.committed, billing.scheduled_retries, billing.redriven, billing.dead_letters), (1, 1, 1, 1));
    let dls = store.dead_letters("orders", "billing").unwrap();
    assert_eq!(dls.len(), 2);
    assert_eq!((dls[0].dlq_offset, dls[0].source_offset, dls[0].status), (0, 0, DeadLetterStatus::Parked));
    assert_eq!((dls[1].dlq_offset, dls[1].source_offset, dls[1].status), (1, 5, DeadLetterStatus::Redriven));
    for (d, reason) in dls.iter().zip(["bad order", "also bad"]) {
        assert_eq!((d.topic.as_str(), d.group.as_str(), d.attempts), ("orders", "billing", 1));
        assert_eq!((d.cause, d.reason.as_str(), d.redrive_of), (DeadLetterCause::Rejected, reason, None));
        assert_eq!(d.record.header("trace"), Some(&b"abc"[..]));
        assert_eq!(d.record.headers.len(), 2);
        assert_eq!(d.record.offset, d.source_offset);
        assert_eq!(d.record.payload, format!("order-{}", d.source_offset).into_bytes());
    }
}

#[test]
fn a_store_written_by_the_first_release_keeps_consuming() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_fixture(&tmp);
    let orders = store.open_topic("orders").unwrap();
    let billing = orders.group("billing", GroupOptions::default()).unwrap();
    // The redriven dead letter was in flight when the owner died: it is due again at once,
    // with the original headers and nothing of the dead-letter metadata.
    let ds = billing.poll(10, Duration::from_millis(200)).unwrap();
    assert_eq!(ds.len(), 1);
    assert_eq!((ds[0].offset(), ds[0].redriven_from()), (5, Some(1)));
    let names: Vec<&str> = ds[0].record().headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["trace", "type"]);
    billing.ack(&ds[0]).unwrap();
    // The parked dead letter redrives.
    billing.redrive(0).unwrap();
    let ds = billing.poll(10, Duration::from_millis(200)).unwrap();
    assert_eq!((ds.len(), ds[0].offset(), ds[0].redriven_from()), (1, 0, Some(0)));
    billing.ack(&ds[0]).unwrap();
    let statuses: Vec<_> = billing.dead_letters().unwrap().iter().map(|d| d.status).collect();
    assert_eq!(statuses, [DeadLetterStatus::Settled, DeadLetterStatus::Settled]);
    // New events flow; the year-long retry still holds the committed position.
    orders.publish(tidelog::Record::new(b"order-8")).unwrap();
    let ds = billing.poll(10, Duration::from_millis(200)).unwrap();
    assert_eq!(offsets(&ds), [8]);
    billing.ack(&ds[0]).unwrap();
    assert_eq!(billing.committed(), 1);
    // The persisted retry can be made due now; dead-lettered, it is written in the current
    // format after the two old records, and all three read back.
    assert!(billing.retry_now(1).unwrap());
    let ds = billing.poll(10, Duration::from_millis(200)).unwrap();
    assert_eq!((offsets(&ds), ds[0].attempt()), (vec![1], 2));
    billing.reject(&ds[0], "gave up").unwrap();
    assert_eq!(billing.committed(), 9);
    let dls = billing.dead_letters().unwrap();
    assert_eq!(dls.len(), 3);
    assert_eq!((dls[2].source_offset, dls[2].reason.as_str(), dls[2].attempts), (1, "gave up", 2));
    assert_eq!(dls[2].record.headers, dls[0].record.headers);
    let audit = orders.group("audit", GroupOptions::default()).unwrap();
    let ds = poll_n(&audit, 6);
    assert_eq!(offsets(&ds), [1, 3, 4, 5, 6, 7]);
    audit.ack_batch(&ds).unwrap();
    assert_eq!(audit.committed(), 8);
    // A later dead letter is written in the current format beside the old ones.
    let d = audit.poll(1, Duration::from_millis(200)).unwrap();
    audit.reject(&d[0], "new").unwrap();
    let dls = audit.dead_letters().unwrap();
    assert_eq!((dls.len(), dls[0].source_offset, dls[0].reason.as_str()), (1, 8, "new"));
    billing.close().unwrap();
    audit.close().unwrap();
    // Everything reopens.
    let billing = orders.group("billing", GroupOptions::default()).unwrap();
    assert_eq!(billing.dead_letters().unwrap().len(), 3);
    assert!(billing.try_poll(10).unwrap().is_empty());
    billing.close().unwrap();
    assert_eq!(store.dead_letters("orders", "billing").unwrap().len(), 3);
}

#[test]
fn a_store_written_by_the_previous_release_reports_its_lag_and_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_named_fixture(&tmp, "store-v2");
    let lag = store.lag().unwrap();
    assert_eq!(lag.len(), 2);
    let (audit, billing) = (&lag[0], &lag[1]);
    assert_eq!(audit.group, "audit");
    assert_eq!((audit.committed, audit.in_flight, audit.unconsumed, audit.dead_letters), (3, 1, 5, 0));
    assert_eq!(billing.group, "billing");
    assert_eq!((billing.committed, billing.unconsumed), (1, 1));
    assert_eq!((billing.scheduled_retries, billing.in_flight, billing.redriven, billing.dead_letters), (1, 0, 0, 1));
    let dls = store.dead_letters("orders", "billing").unwrap();
    assert_eq!(dls.len(), 1);
    let d = &dls[0];
    assert_eq!((d.dlq_offset, d.source_offset, d.status, d.attempts), (0, 0, DeadLetterStatus::Parked, 1));
    assert_eq!((d.cause, d.reason.as_str(), d.redrive_of), (DeadLetterCause::Rejected, "bad order", None));
    assert_eq!((d.topic.as_str(), d.group.as_str()), ("orders", "billing"));
    let names: Vec<&str> = d.record.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["trace", "type"]);
    assert_eq!((d.record.key.as_deref(), d.record.payload.as_slice()), (Some(&b"cust-0"[..]), &b"order-0"[..]));
}

#[test]
fn a_store_written_by_the_previous_release_keeps_consuming_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_named_fixture(&tmp, "store-v2");
    let orders = store.open_topic("orders").unwrap();
    let billing = orders.group("billing", GroupOptions::default()).unwrap();
    // The retry was persisted with its due time (checked before any poll: the due time is
    // absolute, so the fixture's retry falls due 30 days after it was made).
    assert!(billing.retry_now(1).unwrap());
    let ds = billing.poll(10, Duration::from_millis(200)).unwrap();
    assert_eq!((offsets(&ds), ds[0].attempt()), (vec![1], 2));
    billing.ack(&ds[0]).unwrap();
    assert_eq!(billing.committed(), 8);
    billing.redrive(0).unwrap();
    let ds = billing.poll(10, Duration::from_millis(200)).unwrap();
    assert_eq!((ds.len(), ds[0].offset(), ds[0].redriven_from()), (1, 0, Some(0)));
    assert_eq!(ds[0].record().payload, b"order-0");
    billing.ack(&ds[0]).unwrap();
    orders.publish(tidelog::Record::new(b"order-8")).unwrap();
    let ds = billing.poll(10, Duration::from_millis(200)).unwrap();
    assert_eq!(offsets(&ds), [8]);
    billing.ack(&ds[0]).unwrap();
    assert_eq!(billing.committed(), 9);
    // The delivery in flight at the close comes again first, then the events never delivered.
    let audit = orders.group("audit", GroupOptions::default()).unwrap();
    let ds = poll_n(&audit, 6);
    assert_eq!(offsets(&ds), [3, 4, 5, 6, 7, 8]);
    assert_eq!(ds[0].attempt(), 2);
    audit.ack_batch(&ds).unwrap();
    assert_eq!(audit.committed(), 9);
    billing.close().unwrap();
    audit.close().unwrap();
    // Everything reopens where it was.
    for name in ["billing", "audit"] {
        let g = orders.group(name, GroupOptions::default()).unwrap();
        assert_eq!(g.committed(), 9, "{name}");
        assert!(g.try_poll(10).unwrap().is_empty(), "{name}");
        g.close().unwrap();
    }
    let statuses: Vec<_> = store.dead_letters("orders", "billing").unwrap().iter().map(|d| d.status).collect();
    assert_eq!(statuses, [DeadLetterStatus::Settled]);
}

/// The group snapshot of the release before (`snapshot`, `TDLGGRPS`) is migrated when the
/// group is opened: a snapshot of the projection layer is written under `snapshots/`, and
/// only once it is durable is the old file removed. An old file found beside a new snapshot
/// (a crash between the two steps) is superseded by it and removed by the next snapshot.
#[test]
fn opening_a_group_of_the_previous_release_migrates_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_named_fixture(&tmp, "store-v2");
    let group_dir = tmp.path().join("store/groups/orders/billing");
    let old = std::fs::read(group_dir.join("snapshot")).unwrap();
    assert_eq!(&old[..8], b"TDLGGRPS");
    let snaps = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(group_dir.join("snapshots"))
            .map(|rd| rd.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "snap")).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    assert!(snaps().is_empty());
    let orders = store.open_topic("orders").unwrap();
    let billing = orders.group("billing", GroupOptions::default()).unwrap();
    assert!(!group_dir.join("snapshot").exists(), "the old snapshot is removed once migrated");
    let migrated = snaps();
    assert_eq!(migrated.len(), 1);
    let info = tidelog::SnapshotDir::read_info(&migrated[0]).unwrap();
    assert!(info.position > 0 && info.records == info.position, "{info:?}");
    assert_eq!(billing.committed(), 1);
    billing.close().unwrap();
    // As if the removal had not happened before a crash: the new snapshot wins.
    std::fs::write(group_dir.join("snapshot"), &old).unwrap();
    let lag = store.group_lag("orders", "billing").unwrap();
    assert_eq!((lag.live, lag.committed, lag.scheduled_retries, lag.dead_letters), (false, 1, 1, 1));
    let billing = orders.group("billing", GroupOptions::default()).unwrap();
    assert_eq!(billing.committed(), 1);
    assert_eq!(billing.lag().unwrap().scheduled_retries, 1);
    billing.close().unwrap();
    assert!(!group_dir.join("snapshot").exists());
    assert_eq!(snaps().len(), 1);
}
