//! Live tailing in one process: a blocking poll returns as soon as a matching event is
//! published, woken by the publish itself (no sleep-polling), and otherwise sleeps until its
//! timeout.

mod consumer_support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use consumer_support::{open_store, quick_group};
use tidelog::Record;

#[test]
fn a_blocked_poll_returns_promptly_when_an_event_is_published() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let (tx, rx) = mpsc::channel::<Instant>();
    let consumer = {
        let g = g.clone();
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            for _ in 0..20 {
                let ds = g.poll(1, Duration::from_secs(30)).unwrap();
                let got = Instant::now();
                assert_eq!(ds.len(), 1);
                let sent = rx.recv().unwrap();
                lat.push(got.saturating_duration_since(sent));
                g.ack(&ds[0]).unwrap();
            }
            lat
        })
    };
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(20));
        let sent = Instant::now();
        t.publish(Record::new(format!("{i}").as_bytes())).unwrap();
        tx.send(sent).unwrap();
    }
    let mut lat = consumer.join().unwrap();
    lat.sort();
    eprintln!("publish-to-poll latency: median {:?}, max {:?}", lat[lat.len() / 2], lat[lat.len() - 1]);
    // Generous bound (debug build, loaded CI machine); typical values are tens of µs.
    assert!(lat[lat.len() - 1] < Duration::from_secs(1), "{lat:?}");
}

#[test]
fn every_group_waiting_on_a_topic_wakes_on_one_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let mut threads = Vec::new();
    for i in 0..5 {
        let g = t.group(&format!("g{i}"), quick_group()).unwrap();
        threads.push(std::thread::spawn(move || {
            let ds = g.poll(1, Duration::from_secs(30)).unwrap();
            (Instant::now(), ds.len())
        }));
    }
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    t.publish(Record::new(b"hello")).unwrap();
    for th in threads {
        let (at, n) = th.join().unwrap();
        assert_eq!(n, 1);
        assert!(at.duration_since(sent) < Duration::from_secs(1));
    }
}

#[test]
fn a_poll_with_nothing_to_do_waits_for_its_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let t0 = Instant::now();
    assert!(g.poll(1, Duration::from_millis(300)).unwrap().is_empty());
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2), "{waited:?}");
    // A publish to another topic does not deliver anything here.
    let other = store.topic("other").unwrap();
    other.publish(Record::new(b"x")).unwrap();
    assert!(g.poll(1, Duration::from_millis(100)).unwrap().is_empty());
    assert!(g.poll(0, Duration::from_secs(10)).unwrap().is_empty(), "max 0 returns at once");
}

/// CPU time of the calling thread, in clock ticks (Linux).
#[cfg(target_os = "linux")]
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn a_blocked_poll_sleeps_instead_of_polling() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let waiter = std::thread::spawn(move || {
        let before = thread_cpu_ticks();
        let t0 = Instant::now();
        let ds = g.poll(1, Duration::from_secs(30)).unwrap();
        (thread_cpu_ticks() - before, t0.elapsed(), ds.len())
    });
    std::thread::sleep(Duration::from_millis(1500));
    t.publish(Record::new(b"wake")).unwrap();
    let (ticks, waited, n) = waiter.join().unwrap();
    assert_eq!(n, 1);
    assert!(waited >= Duration::from_millis(1400));
    // A sleep-polling loop (even at 1 ms) burns far more than this over 1.5 s; a condvar
    // wait burns next to nothing. Clock ticks are 10 ms.
    assert!(ticks <= 5, "the waiting thread used {ticks} ticks of CPU in {waited:?}");
}

#[test]
fn max_outstanding_bounds_unfinished_events_and_an_ack_wakes_a_blocked_poll() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().max_outstanding(3)).unwrap();
    for i in 0..10 {
        t.publish(Record::new(format!("{i}").as_bytes())).unwrap();
    }
    let first = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(first.len(), 3);
    let waiter = {
        let g = g.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let ds = g.poll(10, Duration::from_secs(30)).unwrap();
            (t0.elapsed(), ds.iter().map(|d| d.offset()).collect::<Vec<_>>())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    g.ack(&first[1]).unwrap();
    let (waited, got) = waiter.join().unwrap();
    assert_eq!(got, vec![3], "one slot freed, one new event");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}
