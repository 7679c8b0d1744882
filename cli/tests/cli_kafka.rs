//! `tidelog mirror` and `tidelog import` against a real Kafka-protocol broker, as a user runs
//! them: publish into a store, mirror the topic into Kafka, print the offset map, import the
//! Kafka topic into another store, and run each again to see that nothing is copied twice.
//!
//! Needs the `kafka` feature and a broker: `TIDELOG_KAFKA_BROKERS` (`.ci/kafka-broker start
//! DIR` prints it). Without it the test is skipped, or fails when `TIDELOG_KAFKA_REQUIRED=1`.
#![cfg(feature = "kafka")]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{json, p, text};
use tidelog::{Store, StoreOptions};

fn brokers() -> Option<String> {
    match std::env::var("TIDELOG_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var("TIDELOG_KAFKA_REQUIRED").as_deref() != Ok("1"),
                "TIDELOG_KAFKA_BROKERS is not set but TIDELOG_KAFKA_REQUIRED=1: start a broker \
                 (`.ci/kafka-broker start DIR` prints its address) and export TIDELOG_KAFKA_BROKERS"
            );
            eprintln!("skipped: TIDELOG_KAFKA_BROKERS is not set (no Kafka broker to test against)");
            None
        }
    }
}

/// `tidelog publish DIR TOPIC --create` with `lines` on standard input.
fn publish(dir: &str, topic: &str, lines: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["publish", dir, topic, "--create", "--key", "order"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The payloads of a store's topic, in order.
fn payloads(dir: &std::path::Path, topic: &str) -> Vec<Vec<u8>> {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let log = store.topic(topic).unwrap().log().unwrap();
    log.iter(log.first_offset()).map(|r| r.unwrap().payload).collect()
}

#[test]
fn a_topic_mirrored_with_the_command_and_imported_back_arrives_once_and_in_order() {
    let Some(brokers) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let kafka_topic = format!("cli-mirror-{}", std::process::id());
    let lines: String = (0..40).map(|i| format!("event {i}\n")).collect();
    publish(p(&src), "orders", &lines);

    let args = ["mirror", "run", p(&src), "orders", "--brokers", &brokers, "--to", &kafka_topic, "--once"];
    let run = json(&args, 0);
    assert_eq!(run["mirrored"], 40, "{run}");
    let map = json(&["mirror", "map", p(&src), "orders", "--to", &kafka_topic], 0);
    assert_eq!(map["end"], 40, "{map}");
    assert_eq!(map["runs"].as_array().map(Vec::len), Some(1), "one run of consecutive offsets: {map}");

    // The destination store exists (import creates the topic, not the store).
    drop(Store::open(&dst, StoreOptions::default()).unwrap());
    let import = ["import", p(&dst), "copy", "--brokers", &brokers, "--from", &kafka_topic, "--once"];
    json(&import, 0);
    let want: Vec<Vec<u8>> = (0..40).map(|i| format!("event {i}").into_bytes()).collect();
    assert_eq!(payloads(&dst, "copy"), want);

    // Again, after more events: only the new ones travel, each once.
    publish(p(&src), "orders", "event 40\nevent 41\n");
    let run = json(&args, 0);
    assert_eq!(run["mirrored"], 2, "only the new records travel: {run}");
    json(&import, 0);
    let want: Vec<Vec<u8>> = (0..42).map(|i| format!("event {i}").into_bytes()).collect();
    assert_eq!(payloads(&dst, "copy"), want);
}
