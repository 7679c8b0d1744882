//! The import's exact restart, proven with real SIGKILLs against a real broker.
//!
//! The parent produces records into a two-partition Kafka topic (some before each round,
//! more while the child runs); a child process (this test binary run again, executing the
//! `#[ignore]`d `import_child`) follows the topic into a store topic and is SIGKILLed at a
//! random moment, `TIDELOG_KILL_ROUNDS` rounds (default 6). Then the parent finishes the
//! import itself and checks that the store topic holds every Kafka record exactly once, each
//! partition in order.
#![cfg(feature = "kafka")]

mod common;
mod kafka_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{child_test, kill_when_ready, Rng};
use kafka_support::{brokers, create_topic, unique_topic};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tidelog::kafka::{Import, ImportOptions};
use tidelog::{Store, StoreOptions};

const CHILD_ENV: &str = "TIDELOG_KAFKA_IMPORT_KILL_CHILD";

fn options(brokers: &str, kafka_topic: &str) -> ImportOptions {
    ImportOptions::new(brokers, kafka_topic).batch(50).timeout(Duration::from_secs(60))
}

/// Child: import and follow until killed.
#[test]
#[ignore = "child process of the kill test"]
fn import_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let brokers = std::env::var("KILL_BROKERS").unwrap();
    let kt = std::env::var("KILL_KAFKA_TOPIC").unwrap();
    let progress = std::env::var("KILL_PROGRESS").unwrap();
    let store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
    let mut imp = Import::open(&store, "imported", options(&brokers, &kt)).unwrap();
    let at: Vec<String> = imp.positions().values().map(|o| o.to_string()).collect();
    std::fs::write(&progress, format!("READY {}\n", at.join(" "))).unwrap();
    imp.run(&AtomicBool::new(false)).unwrap();
}

#[test]
fn an_import_killed_at_random_moments_holds_each_kafka_record_exactly_once_in_order() {
    let Some(b) = brokers() else { return };
    let rounds: u64 = std::env::var("TIDELOG_KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let per_round = 600u64;
    let kt = unique_topic("import-kill");
    create_topic(&b, &kt, 2);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let produce = |i: u64| {
        let payload = format!("r{i}");
        let key = format!("k{i}");
        let r: BaseRecord<'_, str, str> =
            BaseRecord::to(&kt).partition((i % 2) as i32).key(key.as_str()).payload(payload.as_str());
        producer.send(r).map_err(|(e, _)| e).unwrap();
        producer.poll(Duration::ZERO);
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut rng = Rng::new(0xfeed_u64 ^ std::process::id() as u64);
    let mut produced = 0u64;
    let mut positions = Vec::new();
    for round in 0..rounds {
        for _ in 0..per_round / 2 {
            produce(produced);
            produced += 1;
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        let progress = tmp.path().join(format!("progress-{round}"));
        let child = child_test("import_child")
            .env(CHILD_ENV, &dir)
            .env("KILL_BROKERS", &b)
            .env("KILL_KAFKA_TOPIC", &kt)
            .env("KILL_PROGRESS", &progress)
            .spawn()
            .unwrap();
        let run_for = Duration::from_millis(50 + rng.below(600));
        let stop = AtomicBool::new(false);
        let start = produced;
        produced += std::thread::scope(|s| {
            let trickle = s.spawn(|| {
                let mut n = 0;
                while n < per_round / 2 && !stop.load(Ordering::Relaxed) {
                    produce(start + n);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
                n
            });
            kill_when_ready(child, &progress, round, Duration::from_secs(120), run_for);
            stop.store(true, Ordering::Relaxed);
            trickle.join().unwrap()
        });
        producer.flush(Duration::from_secs(30)).unwrap();
        positions.push(std::fs::read_to_string(&progress).unwrap().trim().to_string());
    }
    eprintln!("where each child resumed (partition 0, partition 1): {positions:?}");
    assert!(positions.iter().skip(1).any(|p| p != "READY 0 0"), "no child imported anything: {positions:?}");

    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let mut imp = Import::open(&store, "imported", options(&b, &kt)).unwrap();
    imp.catch_up().unwrap();
    drop(imp);
    let topic = store.open_topic("imported").unwrap();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seen = vec![0u32; produced as usize];
    for rec in topic.iter(0).unwrap() {
        let rec = rec.unwrap();
        let text = |name: &str| String::from_utf8(rec.header(name).unwrap().to_vec()).unwrap();
        let p: i32 = text("tidelog.kafka.partition").parse().unwrap();
        let o: i64 = text("tidelog.kafka.offset").parse().unwrap();
        let e = next.entry(p).or_insert(0);
        assert_eq!(o, *e, "partition {p}: offset {o} where {e} was due (a gap or a repeat)");
        *e += 1;
        let i: usize = std::str::from_utf8(&rec.payload()[1..]).unwrap().parse().unwrap();
        seen[i] += 1;
    }
    let wrong: Vec<usize> = (0..produced as usize).filter(|i| seen[*i] != 1).collect();
    assert!(wrong.is_empty(), "records not imported exactly once: {wrong:?}");
}
