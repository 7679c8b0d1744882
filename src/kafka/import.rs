//! The import: a Kafka topic followed into a store topic. Each tidelog record carries the
//! Kafka topic, partition and offset in headers, so the store topic itself says where to
//! resume: no position file.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{kafka_error, partition_count, reading_consumer};
use super::headers::{
    decimal, last_header, parse_decimal, IMPORT_OFFSET_HEADER, IMPORT_PARTITION_HEADER, IMPORT_TIMESTAMP_HEADER,
    IMPORT_TOPIC_HEADER,
};
use crate::error::{Error, Result};
use crate::{Header, Record, Store, Topic};

/// How an [`Import`] runs. `brokers` and `kafka_topic` are required.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    brokers: String,
    kafka_topic: String,
    partitions: Option<Vec<i32>>,
    config: Vec<(String, String)>,
    batch: usize,
    timeout: Duration,
}

impl ImportOptions {
    /// Import `kafka_topic` from the cluster reached through `brokers`.
    pub fn new(brokers: impl Into<String>, kafka_topic: impl Into<String>) -> ImportOptions {
        ImportOptions {
            brokers: brokers.into(),
            kafka_topic: kafka_topic.into(),
            partitions: None,
            config: Vec::new(),
            batch: 1000,
            timeout: Duration::from_secs(30),
        }
    }

    /// Import only these partitions (default: every partition the topic has on open).
    pub fn partitions(mut self, partitions: impl IntoIterator<Item = i32>) -> ImportOptions {
        self.partitions = Some(partitions.into_iter().collect());
        self
    }

    /// An extra librdkafka property for the consumer. `isolation.level` stays
    /// `read_committed` and partitions stay assigned explicitly.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> ImportOptions {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Records appended per atomic batch, at most (default 1000).
    pub fn batch(mut self, n: usize) -> ImportOptions {
        self.batch = n.max(1);
        self
    }

    /// How long a broker may stay silent before an operation fails (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> ImportOptions {
        self.timeout = timeout;
        self
    }
}

/// What an import run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Records appended to the store topic during the run.
    pub imported: u64,
    /// Per partition, the next Kafka offset to import.
    pub positions: BTreeMap<i32, i64>,
}

/// A Kafka record copied, waiting for its batch to be appended.
struct Copied {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

/// A Kafka topic followed into a store topic (docs/scaling.md). Appends are atomic batches;
/// on open, the store topic's tail is scanned for the highest imported offset of each
/// partition, and reading resumes just after it.
pub struct Import {
    topic: Topic,
    consumer: BaseConsumer,
    opts: ImportOptions,
    positions: BTreeMap<i32, i64>,
    report: ImportReport,
}

impl Import {
    /// Open the import of the options' Kafka topic into `topic` of `store` (created if
    /// missing). Takes the topic's writer.
    pub fn open(store: &Store, topic: &str, opts: ImportOptions) -> Result<Import> {
        let t = store.topic(topic)?;
        let consumer = reading_consumer(&opts.brokers, &opts.config, None)?;
        let kt = opts.kafka_topic.clone();
        let partitions: Vec<i32> = match &opts.partitions {
            Some(p) => p.clone(),
            None => {
                let n = partition_count(&consumer, &kt, opts.timeout)?.ok_or_else(|| Error::Kafka {
                    operation: format!("import {kt:?}"),
                    message: "the topic does not exist".into(),
                })?;
                (0..n).collect()
            }
        };
        let found = imported_tail(&t, &kt, &partitions)?;
        let mut positions = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            let next = found.get(p).map_or(0, |o| o + 1);
            positions.insert(*p, next);
            let at = if found.contains_key(p) { Offset::Offset(next) } else { Offset::Beginning };
            tpl.add_partition_offset(&kt, *p, at).map_err(kafka_error(format!("assign {kt:?}")))?;
        }
        consumer.assign(&tpl).map_err(kafka_error(format!("assign {kt:?}")))?;
        let report = ImportReport { imported: 0, positions: positions.clone() };
        Ok(Import { topic: t, consumer, opts, positions, report })
    }

    /// Per partition, the next Kafka offset to import.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Import until every partition has been read to its end, then sync the topic.
    pub fn catch_up(&mut self) -> Result<ImportReport> {
        let mut at_end = BTreeSet::new();
        let mut idle_since = Instant::now();
        while at_end.len() < self.positions.len() {
            let before = self.report.imported;
            self.step(&mut at_end)?;
            if self.report.imported > before || !at_end.is_empty() {
                idle_since = Instant::now();
            } else if idle_since.elapsed() > self.opts.timeout {
                return Err(Error::Kafka {
                    operation: format!("import {:?}", self.opts.kafka_topic),
                    message: "no answer from the broker".into(),
                });
            }
        }
        self.topic.sync()?;
        Ok(self.report.clone())
    }

    /// Import and follow until `stop` is set, then sync the topic.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<ImportReport> {
        let mut at_end = BTreeSet::new();
        while !stop.load(Ordering::Relaxed) {
            self.step(&mut at_end)?;
        }
        self.topic.sync()?;
        Ok(self.report.clone())
    }

    /// Read up to one batch and append it atomically.
    fn step(&mut self, at_end: &mut BTreeSet<i32>) -> Result<()> {
        let kt = self.opts.kafka_topic.clone();
        let mut batch: Vec<Copied> = Vec::new();
        let mut wait = Duration::from_millis(100);
        while batch.len() < self.opts.batch {
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                    break;
                }
                Some(Err(e)) => return Err(kafka_error(format!("import {kt:?}"))(e)),
                Some(Ok(m)) => {
                    let (p, o) = (m.partition(), m.offset());
                    let expected = self.positions.get(&p).copied().unwrap_or(0);
                    if o < expected {
                        continue; // already imported (a fetch that started before our offset)
                    }
                    at_end.remove(&p);
                    let mut headers: Vec<(String, Vec<u8>)> = match m.headers() {
                        Some(hs) => hs.iter().map(|h| (h.key.to_string(), h.value.unwrap_or(&[]).to_vec())).collect(),
                        None => Vec::new(),
                    };
                    headers.push((IMPORT_TOPIC_HEADER.into(), kt.as_bytes().to_vec()));
                    headers.push((IMPORT_PARTITION_HEADER.into(), decimal(p)));
                    headers.push((IMPORT_OFFSET_HEADER.into(), decimal(o)));
                    if let Some(ms) = m.timestamp().to_millis() {
                        headers.push((IMPORT_TIMESTAMP_HEADER.into(), decimal(ms)));
                    }
                    batch.push(Copied {
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                        headers,
                    });
                    self.positions.insert(p, o + 1);
                    wait = Duration::ZERO;
                }
            }
        }
        if batch.is_empty() {
            return Ok(());
        }
        let headers: Vec<Vec<Header<'_>>> = batch
            .iter()
            .map(|c| c.headers.iter().map(|(n, v)| Header { name: n.as_str(), value: v.as_slice() }).collect())
            .collect();
        let records: Vec<Record<'_>> = batch
            .iter()
            .zip(&headers)
            .map(|(c, hs)| {
                let mut r = Record::new(c.payload.as_deref().unwrap_or(&[])).headers(hs);
                if let Some(k) = &c.key {
                    r = r.key(k);
                    if c.payload.is_none() {
                        r = r.tombstone();
                    }
                }
                r
            })
            .collect();
        self.topic.publish_batch(&records)?;
        self.report.imported += records.len() as u64;
        self.report.positions = self.positions.clone();
        Ok(())
    }
}

/// The highest Kafka offset of each of `partitions` of `kafka_topic` already in `topic`, read
/// from its tail backwards (in growing windows) until every partition is found or the
/// topic's first record is reached.
fn imported_tail(topic: &Topic, kafka_topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, i64>> {
    let mut found: BTreeMap<i32, i64> = BTreeMap::new();
    let first = topic.first_offset();
    let mut end = topic.next_offset();
    let mut window = 4096u64;
    while end > first && partitions.iter().any(|p| !found.contains_key(p)) {
        let from = end.saturating_sub(window).max(first);
        for rec in topic.iter(from)? {
            let rec = rec?;
            if rec.offset() >= end {
                break;
            }
            let hs: Vec<(&str, &[u8])> = rec.headers().map(|h| (h.name, h.value)).collect();
            if last_header(hs.iter().copied(), IMPORT_TOPIC_HEADER) != Some(kafka_topic.as_bytes()) {
                continue;
            }
            let p = last_header(hs.iter().copied(), IMPORT_PARTITION_HEADER).and_then(parse_decimal::<i32>);
            let o = last_header(hs.iter().copied(), IMPORT_OFFSET_HEADER).and_then(parse_decimal::<i64>);
            if let (Some(p), Some(o)) = (p, o) {
                let e = found.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
        }
        end = from;
        window = window.saturating_mul(4);
    }
    Ok(found)
}
