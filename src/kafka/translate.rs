//! Handing a consumer group over from tidelog to Kafka: a tidelog group's committed position
//! translated, through a mirror's offset map, into committed offsets of a Kafka consumer
//! group, so that a service moving to Kafka neither skips nor re-reads.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{kafka_error, partition_count, reading_consumer};
use super::mirror::MirrorOptions;
use super::offset_map::OffsetMap;
use crate::error::{Error, Result};
use crate::Store;

/// One Kafka partition's translated offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslatedPartition {
    /// The partition.
    pub partition: i32,
    /// The offset to commit: the first record a Kafka consumer of the group reads next.
    pub kafka_offset: i64,
}

/// A tidelog group's position as Kafka consumer-group offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Translation {
    /// The tidelog group's committed position.
    pub committed: u64,
    /// Events after the committed position the tidelog group had already finished (acked
    /// out of order, dead-lettered): a Kafka consumer has one offset per partition, so it
    /// reads these again. 0 for a group that finished everything before its position.
    pub done_above: u64,
    /// The offsets, one per partition that holds mirrored records.
    pub partitions: Vec<TranslatedPartition>,
    /// Partitions holding no mirrored record: nothing is committed for them (a consumer
    /// starts them where its `auto.offset.reset` says).
    pub unmapped: Vec<i32>,
    /// True if the offsets were committed for the Kafka group (false for a dry run).
    pub committed_to_kafka: bool,
}

/// Translate the committed position of tidelog group `group` of `topic` into offsets of the
/// Kafka topic the mirror `mirror` writes, and (unless `dry_run`) commit them for Kafka
/// consumer group `kafka_group`. The tidelog group should be stopped (read from its
/// persisted state), and the mirror must have mirrored past its position: otherwise
/// [`Error::MirrorMismatch`] (records not mirrored yet would land after the committed
/// offsets and be read twice).
pub fn translate_group(
    store: &Store,
    topic: &str,
    group: &str,
    mirror: &MirrorOptions,
    kafka_group: &str,
    dry_run: bool,
) -> Result<Translation> {
    let t = store.open_topic(topic)?;
    let lag = store.group_lag(topic, group)?;
    let committed = lag.committed;
    let done_above = lag.end_offset.saturating_sub(committed).saturating_sub(lag.unconsumed);
    let map = OffsetMap::load(mirror.offset_map_path(store, topic))?;
    let kt = mirror.kafka_topic.as_str();
    let mismatch =
        |detail: String| Error::MirrorMismatch { topic: topic.to_string(), kafka_topic: kt.to_string(), detail };
    // Every record before the group's position must be mirrored already.
    let end = map.end();
    if committed > end {
        if let Some(rec) = t.iter(end)?.next() {
            let rec = rec?;
            if rec.offset() < committed {
                return Err(mismatch(format!(
                    "group {group:?} is at tidelog offset {committed} but the mirror has only reached {end}: let it \
                     catch up first"
                )));
            }
        }
    }
    let consumer = reading_consumer(&mirror.brokers, &mirror.config, Some(kafka_group))?;
    let n = partition_count(&consumer, kt, mirror.timeout)?
        .ok_or_else(|| mismatch(format!("kafka topic {kt:?} does not exist")))?;
    let mut partitions = Vec::new();
    let mut unmapped = Vec::new();
    for p in 0..n {
        match map.kafka_offset_from(p, committed) {
            Some(kafka_offset) => partitions.push(TranslatedPartition { partition: p, kafka_offset }),
            None => unmapped.push(p),
        }
    }
    if !dry_run && !partitions.is_empty() {
        let what = || format!("commit offsets of kafka group {kafka_group:?} on {kt:?}");
        let mut tpl = TopicPartitionList::new();
        for tp in &partitions {
            tpl.add_partition_offset(kt, tp.partition, Offset::Offset(tp.kafka_offset)).map_err(kafka_error(what()))?;
        }
        consumer.commit(&tpl, CommitMode::Sync).map_err(kafka_error(what()))?;
        // Read the commit back: the handover is only done if the broker holds it.
        let back =
            consumer.committed_offsets(tpl, mirror.timeout.max(Duration::from_secs(1))).map_err(kafka_error(what()))?;
        for tp in &partitions {
            let got = back.find_partition(kt, tp.partition).map(|e| e.offset());
            if got != Some(Offset::Offset(tp.kafka_offset)) {
                return Err(Error::Kafka {
                    operation: what(),
                    message: format!("partition {} reads back {got:?}, not {}", tp.partition, tp.kafka_offset),
                });
            }
        }
    }
    Ok(Translation { committed, done_above, partitions, unmapped, committed_to_kafka: !dry_run })
}
