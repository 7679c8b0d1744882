//! Retry: a nacked event is delivered again after an exponential backoff with jitter; the
//! schedule is persisted, so a restart neither resets it nor delivers early.

mod consumer_support;

use std::time::{Duration, Instant};

use consumer_support::{open_store, poll_n, publish_n, quick_group};
use tidelog::{Backoff, GroupOptions};

#[test]
fn backoff_is_exponential_capped_and_jittered_within_bounds() {
    let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).jitter(0.5);
    assert_eq!(b.delay(1, 0.0), Duration::from_millis(100));
    assert_eq!(b.delay(2, 0.0), Duration::from_millis(200));
    assert_eq!(b.delay(3, 0.0), Duration::from_millis(400));
    assert_eq!(b.delay(10, 0.0), Duration::from_secs(2));
    assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(2));
    // Jitter takes away up to half.
    assert_eq!(b.delay(2, 0.999_999).as_millis(), 100);
    for i in 0..100 {
        let d = b.delay(3, i as f64 / 100.0);
        assert!(d <= Duration::from_millis(400) && d >= Duration::from_millis(200), "{d:?}");
    }
    let flat = Backoff::new(Duration::from_millis(7), Duration::from_millis(7)).multiplier(1.0).jitter(0.0);
    assert_eq!(flat.delay(50, 0.5), Duration::from_millis(7));
    // Invalid settings are refused when a group is opened.
    let tmp = tempfile::tempdir().unwrap();
    let t = open_store(tmp.path()).topic("t").unwrap();
    for bad in [
        Backoff::new(Duration::from_secs(2), Duration::from_secs(1)),
        Backoff::default().multiplier(0.5),
        Backoff::default().multiplier(f64::NAN),
        Backoff::default().jitter(1.5),
    ] {
        assert!(matches!(t.group("g", GroupOptions::default().backoff(bad)), Err(tidelog::Error::InvalidOptions(_))));
    }
    assert!(t.group("g", GroupOptions::default().max_deliveries(0)).is_err());
    assert!(t.group("g", GroupOptions::default().lease(Duration::ZERO)).is_err());
}

#[test]
fn a_nacked_event_comes_back_after_the_backoff_and_others_are_not_held_up() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let backoff = Backoff::new(Duration::from_millis(150), Duration::from_secs(5)).jitter(0.0);
    let g = t.group("g", GroupOptions::default().backoff(backoff)).unwrap();
    publish_n(&t, 1, "bad");
    let d = poll_n(&g, 1);
    let nacked_at = Instant::now();
    g.nack(&d[0], "db down").unwrap();
    let lag = g.lag().unwrap();
    assert_eq!((lag.scheduled_retries, lag.in_flight), (1, 0));
    // A later event is delivered while the failed one waits.
    publish_n(&t, 1, "good");
    let next = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].offset(), 1);
    g.ack(&next[0]).unwrap();
    // The retry: a blocking poll wakes when it is due, not before.
    let again = g.poll(10, Duration::from_secs(5)).unwrap();
    let waited = nacked_at.elapsed();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].offset(), again[0].attempt()), (0, 2));
    assert!(waited >= Duration::from_millis(150), "delivered early: {waited:?}");
    assert!(waited < Duration::from_secs(2), "delivered late: {waited:?}");
    // Second failure: twice the delay.
    let nacked_at = Instant::now();
    g.nack(&again[0], "still down").unwrap();
    let third = g.poll(10, Duration::from_secs(5)).unwrap();
    assert!(nacked_at.elapsed() >= Duration::from_millis(300), "{:?}", nacked_at.elapsed());
    assert_eq!(third[0].attempt(), 3);
    g.ack(&third[0]).unwrap();
    assert_eq!(g.committed(), 2);
}

#[test]
fn nack_after_uses_the_given_delay() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    publish_n(&t, 1, "e");
    let d = poll_n(&g, 1);
    g.nack_after(&d[0], Duration::ZERO, "now").unwrap();
    let again = g.try_poll(1).unwrap();
    assert_eq!(again[0].attempt(), 2);
    g.nack_after(&again[0], Duration::from_millis(300), "later").unwrap();
    assert!(g.poll(1, Duration::from_millis(150)).unwrap().is_empty());
    assert_eq!(g.poll(1, Duration::from_secs(2)).unwrap()[0].attempt(), 3);
}

#[test]
fn the_retry_schedule_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let delay = Duration::from_millis(1500);
    let nacked_at;
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 2, "e");
        let ds = poll_n(&g, 2);
        nacked_at = Instant::now();
        g.nack_after(&ds[0], delay, "try later").unwrap();
        g.ack(&ds[1]).unwrap();
        drop(g);
    }
    // Reopen at once: the retry is neither lost nor delivered early.
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let lag = g.lag().unwrap();
    assert_eq!((lag.scheduled_retries, lag.committed), (1, 0));
    assert!(g.poll(1, Duration::from_millis(300)).unwrap().is_empty(), "retry delivered early after restart");
    let d = g.poll(1, Duration::from_secs(5)).unwrap();
    let waited = nacked_at.elapsed();
    assert_eq!((d[0].offset(), d[0].attempt()), (0, 2));
    assert!(waited >= delay, "delivered after {waited:?}, before the persisted due time");
    assert!(waited < delay + Duration::from_secs(2), "{waited:?}");
    g.ack(&d[0]).unwrap();
    assert_eq!(g.committed(), 2);
}

#[test]
fn extreme_durations_do_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t
        .group(
            "g",
            GroupOptions::default()
                .lease(Duration::MAX)
                .backoff(Backoff::new(Duration::MAX, Duration::MAX).multiplier(f64::MAX).jitter(1.0)),
        )
        .unwrap();
    publish_n(&t, 3, "e");
    let ds = g.poll(3, Duration::MAX).unwrap();
    assert_eq!(ds.len(), 3);
    g.extend_lease(&ds[0], Duration::MAX).unwrap();
    g.nack_after(&ds[0], Duration::MAX, "never").unwrap();
    g.nack(&ds[1], "backoff at its maximum").unwrap();
    assert_eq!(g.lag().unwrap().scheduled_retries, 2);
    // Nothing is due: a short poll returns empty without trouble.
    assert!(g.poll(3, Duration::from_millis(50)).unwrap().is_empty());
    g.ack(&ds[2]).unwrap();
    // Persisted far-future retries survive a reopen.
    g.close().unwrap();
    let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    assert_eq!(g.lag().unwrap().scheduled_retries, 2);
    assert!(g.try_poll(3).unwrap().is_empty());
}

/// `nack_after(Duration::MAX)` parked the event, and the committed position behind it, for
/// ever, with no way to cancel the wait. Delays are now capped at `MAX_RETRY_DELAY` (unit
/// test `retry_due_times_are_capped_and_never_zero`), and `retry_now` makes a waiting retry
/// due at once, durably.
#[test]
fn retry_delays_are_capped_and_a_waiting_retry_can_be_made_due_now() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    publish_n(&t, 2, "e");
    let ds = poll_n(&g, 2);
    g.nack_after(&ds[0], Duration::MAX, "much later").unwrap();
    g.ack(&ds[1]).unwrap();
    assert_eq!(g.committed(), 0);
    assert!(!g.retry_now(1).unwrap(), "an acked event has no retry to cancel");
    assert!(!g.retry_now(99).unwrap());
    g.close().unwrap();
    let g = t.group("g", quick_group()).unwrap();
    assert!(g.try_poll(1).unwrap().is_empty());
    assert!(g.retry_now(0).unwrap());
    assert!(!g.retry_now(0).unwrap(), "already due");
    g.close().unwrap();
    // The cancellation itself is durable.
    let g = t.group("g", quick_group()).unwrap();
    let d = g.poll(1, Duration::from_secs(5)).unwrap();
    assert_eq!((d[0].offset(), d[0].attempt()), (0, 2));
    g.ack(&d[0]).unwrap();
    assert_eq!(g.committed(), 2);
}
