//! A delivery is settled only by the opening of the group that handed it out.

mod consumer_support;

use std::time::Duration;

use consumer_support::*;
use tidelog::{Error, GroupOptions};

fn is_foreign(r: tidelog::Result<()>) -> bool {
    matches!(r, Err(Error::ForeignDelivery { .. }))
}

/// Deliveries were identified by an item id and a lease counter that every group counts
/// from 1, so `audit.ack(&delivery_from_billing)` acked the same offset in audit, and a
/// reject of another group's delivery dead-lettered the wrong group's event. Now every
/// settling call with another group's delivery is `ForeignDelivery` and changes nothing.
#[test]
fn another_groups_delivery_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let other = store.topic("u").unwrap();
    let billing = t.group("billing", quick_group()).unwrap();
    let audit = t.group("audit", quick_group()).unwrap();
    let elsewhere = other.group("billing", quick_group()).unwrap();
    publish_n(&t, 2, "e");
    publish_n(&other, 2, "e");
    let b = poll_n(&billing, 2);
    let a = poll_n(&audit, 2);
    let _ = poll_n(&elsewhere, 2);
    for g in [&audit, &elsewhere] {
        assert!(is_foreign(g.ack(&b[0])));
        assert!(is_foreign(g.ack_batch(&b)));
        assert!(is_foreign(g.nack(&b[0], "x")));
        assert!(is_foreign(g.nack_after(&b[0], Duration::from_secs(1), "x")));
        assert!(is_foreign(g.reject(&b[0], "x")));
        assert!(matches!(g.extend_lease(&b[0], Duration::from_secs(1)), Err(Error::ForeignDelivery { .. })));
    }
    // A batch with one foreign delivery acks none of them.
    assert!(is_foreign(audit.ack_batch(&[a[0].clone(), b[1].clone()])));
    for g in [&audit, &elsewhere] {
        let lag = g.lag().unwrap();
        assert_eq!((lag.committed, lag.in_flight, lag.dead_letters), (0, 2, 0));
        assert!(g.dead_letters().unwrap().is_empty());
    }
    // The rightful holders still settle their deliveries.
    audit.ack_batch(&a).unwrap();
    billing.reject(&b[0], "bad").unwrap();
    billing.ack(&b[1]).unwrap();
    assert_eq!(audit.committed(), 2);
    assert_eq!(billing.dead_letters().unwrap()[0].source_offset, 0);
}

/// Lease counters restarted at 1 on every open, so after a close and reopen (the documented
/// way out of `Poisoned`) a late ack from the old opening matched the new delivery of the
/// same event and succeeded; the new holder's nack then got `LeaseLost`, and the event was
/// never delivered again: lost. A delivery from an earlier opening is now refused.
#[test]
fn a_delivery_from_before_a_reopen_is_refused_and_the_current_one_settles() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    publish_n(&t, 1, "e");
    let old = poll_n(&g, 1);
    g.close().unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let current = poll_n(&g, 1);
    assert_eq!((current[0].offset(), current[0].attempt()), (0, 2));
    assert!(is_foreign(g.ack(&old[0])));
    assert!(is_foreign(g.reject(&old[0], "late")));
    // The current holder's nack works and the event comes back.
    g.nack_after(&current[0], Duration::ZERO, "retry").unwrap();
    let again = poll_n(&g, 1);
    assert_eq!((again[0].offset(), again[0].attempt()), (0, 3));
    g.ack(&again[0]).unwrap();
    assert_eq!(g.committed(), 1);
    assert!(g.dead_letters().unwrap().is_empty());
}

/// Opening a group that is open in this process with other options used to return the open
/// group silently, with its first options. It is refused; the same options share it.
#[test]
fn reopening_an_open_group_with_other_options_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let other = quick_group().max_deliveries(9);
    assert!(matches!(t.group("g", other.clone()), Err(Error::InvalidOptions(_))));
    let same = t.group("g", quick_group()).unwrap();
    assert_eq!(same.options(), g.options());
    drop(same);
    g.close().unwrap();
    // Once closed, the group opens with the new options.
    assert_eq!(t.group("g", other.clone()).unwrap().options(), &other);
    assert_ne!(&other, &GroupOptions::default());
}
