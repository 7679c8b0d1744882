//! The librdkafka clients the bridge uses, configured one way: a producer that neither
//! duplicates nor reorders, consumers that read partitions assigned explicitly to their end,
//! and the admin client that creates a missing topic.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{Error, Result};

/// A Kafka client's error as a tidelog [`Error::Kafka`], saying what was being done.
pub(crate) fn kafka_error(operation: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
    let operation = operation.into();
    move |e| Error::Kafka { operation, message: e.to_string() }
}

/// A configuration for `brokers`, with the caller's extra librdkafka properties applied last.
pub(crate) fn config(brokers: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}

/// A consumer that reads explicitly assigned partitions, never commits on its own, reports
/// the end of each partition, and fails rather than jump when an offset is out of range.
pub(crate) fn reading_consumer(brokers: &str, extra: &[(String, String)], group: Option<&str>) -> Result<BaseConsumer> {
    // The end of a partition is known when a fetch comes back empty: do not let the broker
    // hold an empty fetch for long (the caller may choose otherwise).
    let mut c = config(brokers, &[("fetch.wait.max.ms".into(), "50".into())]);
    for (k, v) in extra {
        c.set(k, v);
    }
    // What exactness rests on, after the caller's properties so that none overrides it.
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("allow.auto.create.topics", "false")
        // librdkafka assigns partitions only to a consumer with a group; one that never
        // commits gets a name that says so (its offsets are not stored anywhere).
        .set("group.id", group.unwrap_or("tidelog-bridge-reader"));
    c.create().map_err(kafka_error("create a consumer"))
}

/// The number of partitions of `topic`, or `None` if the broker does not know it.
pub(crate) fn partition_count(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<Option<i32>> {
    let md =
        consumer.fetch_metadata(Some(topic), timeout).map_err(kafka_error(format!("metadata of topic {topic:?}")))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
    match t.error() {
        None if !t.partitions().is_empty() => Ok(Some(t.partitions().len() as i32)),
        None => Ok(None),
        Some(e) => match RDKafkaErrorCode::from(e) {
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => Ok(None),
            code => Err(Error::Kafka { operation: format!("metadata of topic {topic:?}"), message: code.to_string() }),
        },
    }
}

/// Create `topic` through the admin API (never by auto-creation) with `partitions` and
/// `replication` (-1: the broker's default); a topic that appeared meanwhile is fine.
/// Waits until its metadata shows it; returns its partition count.
pub(crate) fn create_topic(
    brokers: &str,
    extra: &[(String, String)],
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    replication: i32,
    timeout: Duration,
) -> Result<i32> {
    let what = || format!("create topic {topic:?}");
    let admin: AdminClient<DefaultClientContext> = config(brokers, extra).create().map_err(kafka_error(what()))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let results = futures_executor::block_on(admin.create_topics([&new], &opts)).map_err(kafka_error(what()))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(Error::Kafka { operation: what(), message: code.to_string() }),
        }
    }
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(n) = partition_count(consumer, topic, timeout)? {
            return Ok(n);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Kafka { operation: what(), message: "the topic did not appear in the metadata".into() });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The low and high watermarks the broker reports for a partition (ListOffsets). Only a hint:
/// some brokers answer the latest offset wrongly, so nothing exact depends on it.
pub(crate) fn watermarks_hint(consumer: &BaseConsumer, topic: &str, partition: i32, timeout: Duration) -> (i64, i64) {
    consumer.fetch_watermarks(topic, partition, timeout).unwrap_or((0, 0))
}

/// A Kafka record's headers as (name, value) pairs, in order; a null value reads as empty.
pub(crate) fn headers_of<'a>(m: &'a BorrowedMessage<'a>) -> Vec<(&'a str, &'a [u8])> {
    match m.headers() {
        Some(hs) => hs.iter().map(|h| (h.key, h.value.unwrap_or(&[]))).collect(),
        None => Vec::new(),
    }
}

/// Read `partition` of `topic` from Kafka offset `from` to its end (the end the fetch
/// responses report, not ListOffsets), calling `each` on every record in order. Returns
/// `Ok(false)` if `from` is outside the partition (nothing read).
pub(crate) fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: i64,
    timeout: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>) -> Result<()>,
) -> Result<bool> {
    let what = || format!("read topic {topic:?} partition {partition} from offset {from}");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from)).map_err(kafka_error(what()))?;
    consumer.assign(&tpl).map_err(kafka_error(what()))?;
    let mut idle_since = std::time::Instant::now();
    let result = loop {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if idle_since.elapsed() > timeout {
                    break Err(Error::Kafka { operation: what(), message: "no answer from the broker".into() });
                }
            }
            Some(Ok(m)) => {
                idle_since = std::time::Instant::now();
                if m.partition() == partition {
                    if let Err(e) = each(&m) {
                        break Err(e);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break Ok(true),
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) if is_out_of_range(&e) => break Ok(false),
            Some(Err(e)) => break Err(kafka_error(what())(e)),
        }
    };
    consumer.unassign().map_err(kafka_error(what()))?;
    result
}

fn is_out_of_range(e: &KafkaError) -> bool {
    matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::OffsetOutOfRange) | Some(RDKafkaErrorCode::AutoOffsetReset))
}
