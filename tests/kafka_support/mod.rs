//! Helpers shared by the Kafka tests: the broker's address (or a skip), unique topic names,
//! and reading a Kafka topic back with a plain consumer, independently of the bridge.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The broker's address from `TIDELOG_KAFKA_BROKERS`. Unset: a test fails when
/// `TIDELOG_KAFKA_REQUIRED=1` (CI), and otherwise prints a note and is skipped.
pub fn brokers() -> Option<String> {
    match std::env::var("TIDELOG_KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Some(b),
        _ => {
            if std::env::var("TIDELOG_KAFKA_REQUIRED").as_deref() == Ok("1") {
                panic!(
                    "TIDELOG_KAFKA_BROKERS is not set but TIDELOG_KAFKA_REQUIRED=1: start a broker \
                     (`.ci/kafka-broker start DIR` prints its address) and export TIDELOG_KAFKA_BROKERS"
                );
            }
            eprintln!("skipped: TIDELOG_KAFKA_BROKERS is not set (no Kafka broker to test against)");
            None
        }
    }
}

/// A topic name no other test or run uses.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A Kafka record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: Option<i64>,
}

impl KRecord {
    /// The value of the last header named `name`, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    }

    /// The `tidelog.offset` header as a number.
    pub fn tidelog_offset(&self) -> u64 {
        self.header("tidelog.offset").expect("tidelog.offset header").parse().unwrap()
    }
}

fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "tidelog-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap()
}

/// The partition count of `topic` (None if it does not exist).
pub fn partitions(brokers: &str, topic: &str) -> Option<i32> {
    let c = consumer(brokers);
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    (t.error().is_none() && !t.partitions().is_empty()).then(|| t.partitions().len() as i32)
}

/// Every record of `topic`, partition by partition, each in offset order.
pub fn read_all(brokers: &str, topic: &str) -> Vec<KRecord> {
    let n = partitions(brokers, topic).expect("the topic exists");
    let c = consumer(brokers);
    let mut out = Vec::new();
    for p in 0..n {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
        c.assign(&tpl).unwrap();
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "reading partition {p} of {topic} never reached its end"
            );
            match c.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => panic!("reading {topic}/{p}: {e}"),
                Some(Ok(m)) => out.push(KRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec())).collect())
                        .unwrap_or_default(),
                    timestamp_ms: m.timestamp().to_millis(),
                }),
            }
        }
    }
    out
}

/// Create `topic` with `partitions` through the admin API.
pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let r = futures_executor::block_on(admin.create_topics([&new], &AdminOptions::new())).unwrap();
    for x in r {
        x.unwrap();
    }
    let started = Instant::now();
    while partitions_of(brokers, topic) != Some(partitions) {
        assert!(started.elapsed() < Duration::from_secs(30), "topic {topic} did not appear");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn partitions_of(brokers: &str, topic: &str) -> Option<i32> {
    partitions(brokers, topic)
}
