//! The mirror's exact restart, proven with real SIGKILLs against a real broker.
//!
//! The parent publishes events (a quarter before, the rest while the child runs), and starts a child process (this test binary run
//! again, executing the `#[ignore]`d `mirror_child`) that mirrors the topic into Kafka and
//! follows it; the parent SIGKILLs it at a random moment: before it sent anything, with
//! records in flight, between a delivery and the checkpoint of the offset map and group
//! position. `TIDELOG_KILL_ROUNDS` rounds (default 6), then the parent finishes the mirror
//! itself and reads the Kafka topic back with a plain consumer: every event is there exactly
//! once, in order, and the offset map says exactly where each one is.
#![cfg(feature = "kafka")]

mod common;
mod kafka_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{child_test, kill_when_ready, Rng};
use kafka_support::{brokers, read_all, unique_topic};
use tidelog::kafka::{partition_for, Mirror, MirrorOptions, OffsetMap};
use tidelog::{Record, Store, StoreOptions};

const CHILD_ENV: &str = "TIDELOG_KAFKA_KILL_CHILD";

fn options(brokers: &str, kafka_topic: &str, partitions: i32) -> MirrorOptions {
    MirrorOptions::new(brokers, kafka_topic)
        .partitions(partitions)
        .source_id("kill-test")
        // Checkpoints (map append, group position) happen many times per round.
        .checkpoint_every(Duration::from_millis(20))
        .max_in_flight(500)
        .timeout(Duration::from_secs(60))
}

/// Child: mirror and follow until killed.
#[test]
#[ignore = "child process of the kill test"]
fn mirror_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let brokers = std::env::var("KILL_BROKERS").unwrap();
    let kt = std::env::var("KILL_KAFKA_TOPIC").unwrap();
    let partitions: i32 = std::env::var("KILL_PARTITIONS").unwrap().parse().unwrap();
    let progress = std::env::var("KILL_PROGRESS").unwrap();
    let store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
    let mut m = Mirror::open(&store, "events", options(&brokers, &kt, partitions)).unwrap();
    let r = m.resumed();
    std::fs::write(&progress, format!("READY {} {}\n", r.from, r.recovered)).unwrap();
    m.run(&AtomicBool::new(false)).unwrap();
}

fn kill_rounds(partitions: i32, per_round: u64) {
    let Some(b) = brokers() else { return };
    let rounds: u64 = std::env::var("TIDELOG_KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let topic = store.topic("events").unwrap();
    let kt = unique_topic(&format!("kill{partitions}"));
    let mut rng = Rng::new(0x5eed_u64 ^ std::process::id() as u64);
    let mut published = 0u64;
    // Per round: where the child resumed, and how many records it found in Kafka that the
    // offset map did not know (a kill between an acknowledgement and a checkpoint).
    let mut resumed: Vec<(u64, u64)> = Vec::new();
    let publish = |n: u64| {
        let key = format!("key-{}", n % 13);
        topic.publish(Record::new(format!("event-{n}").as_bytes()).key(key.as_bytes())).unwrap();
    };
    for round in 0..rounds {
        // A quarter of the round's events before the child starts, the rest one by one while
        // it runs (until the kill), so that kills land while it sends, not only between bursts.
        for _ in 0..per_round / 4 {
            publish(published);
            published += 1;
        }
        topic.sync().unwrap();
        let progress = tmp.path().join(format!("progress-{round}"));
        let child = child_test("mirror_child")
            .env(CHILD_ENV, &dir)
            .env("KILL_BROKERS", &b)
            .env("KILL_KAFKA_TOPIC", &kt)
            .env("KILL_PARTITIONS", partitions.to_string())
            .env("KILL_PROGRESS", &progress)
            .spawn()
            .unwrap();
        let run_for = Duration::from_millis(300 + rng.below(1200));
        let stop = AtomicBool::new(false);
        let start = published;
        published += std::thread::scope(|s| {
            let trickle = s.spawn(|| {
                let mut n = 0;
                while n < per_round - per_round / 4 && !stop.load(Ordering::Relaxed) {
                    publish(start + n);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                n
            });
            kill_when_ready(child, &progress, round, Duration::from_secs(120), run_for);
            stop.store(true, Ordering::Relaxed);
            trickle.join().unwrap()
        });
        let line = std::fs::read_to_string(&progress).unwrap();
        let mut words = line.split_whitespace().skip(1).map(|w| w.parse::<u64>().unwrap());
        resumed.push((words.next().unwrap(), words.next().unwrap()));
    }
    eprintln!("{partitions} partition(s): per round (resumed from, recovered from the destination): {resumed:?}");
    // The children did mirror between kills: a later one resumed past the start.
    assert!(resumed.iter().any(|(from, _)| *from > 0), "no child mirrored anything before its kill: {resumed:?}");
    // Finish the mirror here, then check the destination.
    let opts = options(&b, &kt, partitions);
    let mut m = Mirror::open(&store, "events", opts.clone()).unwrap();
    m.catch_up().unwrap();
    assert_eq!(m.position(), published);
    m.close().unwrap();

    let got = read_all(&b, &kt);
    let mut count = vec![0u32; published as usize];
    let mut last = std::collections::BTreeMap::new();
    for r in &got {
        let o = r.tidelog_offset();
        count[o as usize] += 1;
        assert_eq!(r.payload.as_deref(), Some(format!("event-{o}").as_bytes()));
        assert_eq!(r.partition, partition_for(r.key.as_deref(), o, partitions));
        if let Some(prev) = last.insert(r.partition, o) {
            assert!(o > prev, "partition {}: {prev} then {o}", r.partition);
        }
    }
    let missing: Vec<usize> = (0..published as usize).filter(|i| count[*i] == 0).collect();
    let twice: Vec<usize> = (0..published as usize).filter(|i| count[*i] > 1).collect();
    assert!(missing.is_empty(), "missing after kills: {missing:?}");
    assert!(twice.is_empty(), "duplicated after kills: {twice:?}");
    let map = OffsetMap::load(opts.offset_map_path(&store, "events")).unwrap();
    for r in &got {
        assert_eq!(map.lookup(r.tidelog_offset()), Some((r.partition, r.offset)));
    }
}

#[test]
fn a_mirror_killed_at_random_moments_leaves_each_event_in_kafka_exactly_once_in_order() {
    kill_rounds(1, 1000);
}

#[test]
fn a_mirror_into_three_partitions_killed_at_random_moments_loses_and_repeats_nothing() {
    kill_rounds(3, 500);
}
