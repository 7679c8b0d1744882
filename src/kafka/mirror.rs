//! The mirror: a store topic copied into a Kafka topic, record by record, and followed.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::client::{config, create_topic, kafka_error, partition_count, reading_consumer};
use super::headers::{decimal, OFFSET_HEADER, SOURCE_HEADER, TIMESTAMP_HEADER};
use super::offset_map::OffsetMap;
use super::partition::partition_for;
use super::resume::Scan;
use crate::error::{Error, Result};
use crate::{validate_name, Group, GroupOptions, StartFrom, Store, Topic};

/// How a [`Mirror`] runs. `brokers` and `kafka_topic` are required; everything else has a
/// default.
#[derive(Debug, Clone)]
pub struct MirrorOptions {
    pub(crate) brokers: String,
    pub(crate) kafka_topic: String,
    pub(crate) partitions: Option<i32>,
    pub(crate) replication: i32,
    pub(crate) source_id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) force: bool,
    pub(crate) config: Vec<(String, String)>,
    pub(crate) checkpoint_every: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) timeout: Duration,
    pub(crate) settle: Duration,
}

impl MirrorOptions {
    /// Mirror into `kafka_topic` on the cluster reached through `brokers` (librdkafka's
    /// `bootstrap.servers`: `host:port[,host:port...]`).
    pub fn new(brokers: impl Into<String>, kafka_topic: impl Into<String>) -> MirrorOptions {
        MirrorOptions {
            brokers: brokers.into(),
            kafka_topic: kafka_topic.into(),
            partitions: None,
            replication: -1,
            source_id: None,
            name: None,
            force: false,
            config: Vec::new(),
            checkpoint_every: Duration::from_secs(1),
            max_in_flight: 100_000,
            timeout: Duration::from_secs(30),
            settle: Duration::from_millis(250),
        }
    }

    /// Partitions of the Kafka topic when the mirror creates it (default 1: one total order,
    /// as in the tidelog topic). With several, a keyed record goes to its key's partition as
    /// Kafka's Java client would place it ([`partition_for`](super::partition_for)); the order
    /// of a key's records is kept. An existing topic keeps its count; asking for another
    /// count than it has is [`Error::InvalidOptions`].
    pub fn partitions(mut self, n: i32) -> MirrorOptions {
        self.partitions = Some(n);
        self
    }

    /// Replication factor when the mirror creates the topic (default -1: the broker's
    /// `default.replication.factor`).
    pub fn replication(mut self, factor: i32) -> MirrorOptions {
        self.replication = factor;
        self
    }

    /// The source's identity, written in every record's `tidelog.source` header (default:
    /// the store directory's canonical path, `#`, the topic name). Give one that outlives a
    /// move of the store directory.
    pub fn source_id(mut self, id: impl Into<String>) -> MirrorOptions {
        self.source_id = Some(id.into());
        self
    }

    /// The mirror's name: the name of its tidelog consumer group (its position, visible with
    /// `tidelog consumers`) and of its offset map's directory. Default `kafka-mirror.<kafka
    /// topic>`.
    pub fn name(mut self, name: impl Into<String>) -> MirrorOptions {
        self.name = Some(name.into());
        self
    }

    /// Continue into a destination whose last record was written by another source (instead
    /// of [`Error::MirrorForeignSource`]), and past records the source no longer retains.
    pub fn force(mut self, force: bool) -> MirrorOptions {
        self.force = force;
        self
    }

    /// An extra librdkafka property for every client (security, timeouts...). The ones that
    /// make the mirror exact (`enable.idempotence`, `acks`) cannot be overridden.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> MirrorOptions {
        self.config.push((key.into(), value.into()));
        self
    }

    /// How often the acknowledged position is made durable (offset map, group position);
    /// default 1 s. A crash loses no record either way: a restart reads the destination.
    pub fn checkpoint_every(mut self, every: Duration) -> MirrorOptions {
        self.checkpoint_every = every;
        self
    }

    /// Records sent and not yet acknowledged, at most (default 100 000).
    pub fn max_in_flight(mut self, n: usize) -> MirrorOptions {
        self.max_in_flight = n.max(1);
        self
    }

    /// How long a broker may stay silent before an operation fails (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> MirrorOptions {
        self.timeout = timeout;
        self
    }

    /// How long opening waits, after reading the destination's tail, before reading it again
    /// (default 250 ms); it reads again until nothing new arrived. A produce request that a
    /// killed mirror had already sent can reach the broker's log after the restarted mirror
    /// first read the tail: the second read finds it (see docs/scaling.md, "What a crash of
    /// the mirror does").
    pub fn restart_settle(mut self, settle: Duration) -> MirrorOptions {
        self.settle = settle;
        self
    }

    /// The mirror's name (see [`MirrorOptions::name`]).
    pub fn mirror_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("kafka-mirror.{}", self.kafka_topic))
    }

    /// Where the mirror of `topic` keeps its offset map in `store`:
    /// `DIR/kafka-mirrors/<topic>/<name>/offset-map`.
    pub fn offset_map_path(&self, store: &Store, topic: &str) -> PathBuf {
        store.dir().join("kafka-mirrors").join(topic).join(self.mirror_name()).join("offset-map")
    }

    fn source_for(&self, store: &Store, topic: &str) -> String {
        match &self.source_id {
            Some(id) => id.clone(),
            None => {
                let dir = std::fs::canonicalize(store.dir()).unwrap_or_else(|_| store.dir().to_path_buf());
                format!("{}#{topic}", dir.display())
            }
        }
    }
}

/// Where a mirror resumed, and what it found in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resumed {
    /// The first tidelog offset read from the topic.
    pub from: u64,
    /// Per Kafka partition, the highest tidelog offset of this source found there.
    pub highest: BTreeMap<i32, u64>,
    /// Records of this source found in the destination that the offset map did not know
    /// yet (acknowledged just before a crash).
    pub recovered: u64,
    /// The mirror group's committed position when it opened (a lower bound only).
    pub group_position: u64,
    /// The Kafka topic's partition count.
    pub partitions: i32,
}

/// What a run of the mirror did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorReport {
    /// Records acknowledged by the broker during the run.
    pub mirrored: u64,
    /// Records not sent because the destination already held them (several partitions).
    pub already_there: u64,
    /// The mirror's position: every record before it is in Kafka.
    pub position: u64,
}

/// What the producer reported for one record.
enum Delivered {
    Done { offset: u64, partition: i32, kafka_offset: i64 },
    Failed { offset: u64, error: KafkaError },
}

/// Collects delivery reports; called on the mirror's own thread, inside `producer.poll`.
#[derive(Default)]
struct Reports {
    delivered: Mutex<Vec<Delivered>>,
    fatal: Mutex<Option<String>>,
}

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
            if let Ok(mut f) = self.fatal.lock() {
                *f = Some(format!("{error}: {reason}"));
            }
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, offset: Box<u64>) {
        let d = match result {
            Ok(m) => Delivered::Done { offset: *offset, partition: m.partition(), kafka_offset: m.offset() },
            Err((e, _)) => Delivered::Failed { offset: *offset, error: e.clone() },
        };
        if let Ok(mut v) = self.delivered.lock() {
            v.push(d);
        }
    }
}

/// A store topic mirrored into a Kafka topic (docs/scaling.md). Open it, then
/// [`catch_up`](Mirror::catch_up) or [`run`](Mirror::run).
///
/// Every Kafka record carries the tidelog record's key, payload (none for a tombstone),
/// headers in order (duplicates kept) and timestamp (ms), followed by three headers of the
/// mirror: [`SOURCE_HEADER`](super::SOURCE_HEADER), [`OFFSET_HEADER`](super::OFFSET_HEADER)
/// and [`TIMESTAMP_HEADER`](super::TIMESTAMP_HEADER). The producer is idempotent with
/// `acks=all` and gapless; opening reads the destination's tail and resumes after the
/// highest offset of this source found there, so a crash at any moment leaves neither gap
/// nor duplicate.
pub struct Mirror {
    topic: Topic,
    group: Group,
    producer: BaseProducer<Reports>,
    map: OffsetMap,
    opts: MirrorOptions,
    source_id: String,
    partitions: i32,
    /// Per partition, the highest offset the destination held on start: records at or below
    /// it in their partition are not sent again.
    skip: BTreeMap<i32, u64>,
    /// The next tidelog offset to read.
    next: u64,
    /// Sent records, in tidelog order, with whether the broker acknowledged them yet.
    in_flight: VecDeque<(u64, bool)>,
    /// The position last made durable (offset map and group).
    checkpointed: u64,
    last_checkpoint: Instant,
    resumed: Resumed,
    report: MirrorReport,
}

impl Mirror {
    /// Open the mirror of `topic` (which must exist): create the Kafka topic if missing,
    /// read the destination's tail, and position the mirror just after what it holds.
    pub fn open(store: &Store, topic: &str, opts: MirrorOptions) -> Result<Mirror> {
        let name = opts.mirror_name();
        validate_name("group", &name)?;
        let topic_handle = store.open_topic(topic)?;
        let source_id = opts.source_for(store, topic);
        // The mirror's group: its position, and its lock (one mirror per source and name).
        let group = topic_handle.group(&name, GroupOptions::default().start(StartFrom::Earliest))?;

        let consumer: BaseConsumer = reading_consumer(&opts.brokers, &opts.config, None)?;
        let kt = opts.kafka_topic.as_str();
        let partitions = match partition_count(&consumer, kt, opts.timeout)? {
            Some(n) => {
                if opts.partitions.is_some_and(|want| want != n) {
                    return Err(Error::InvalidOptions(format!(
                        "kafka topic {kt:?} has {n} partitions, not the {} asked for",
                        opts.partitions.unwrap_or(n)
                    )));
                }
                n
            }
            None => create_topic(
                &opts.brokers,
                &opts.config,
                &consumer,
                kt,
                opts.partitions.unwrap_or(1).max(1),
                opts.replication,
                opts.timeout,
            )?,
        };

        let mut map = OffsetMap::load(opts.offset_map_path(store, topic))?;
        let scan = Scan {
            consumer: &consumer,
            kafka_topic: kt,
            topic,
            source_id: &source_id,
            partitions,
            force: opts.force,
            timeout: opts.timeout,
        };
        let mut dest = scan.run(&mut map)?;
        // Read the tail again after a pause, until it stays put: records a killed mirror had
        // in flight may still be landing.
        let mut rounds = 0;
        loop {
            std::thread::sleep(opts.settle);
            let again = scan.run(&mut map)?;
            dest.highest = again.highest;
            if again.recovered == 0 {
                break;
            }
            dest.recovered += again.recovered;
            rounds += 1;
            if rounds >= 20 {
                return Err(Error::MirrorMismatch {
                    topic: topic.to_string(),
                    kafka_topic: kt.to_string(),
                    detail: "records of this source keep arriving in the destination: another mirror of the same \
                             source is running"
                        .into(),
                });
            }
        }
        drop(consumer);

        let mismatch =
            |detail: String| Error::MirrorMismatch { topic: topic.to_string(), kafka_topic: kt.to_string(), detail };
        let (first, end) = (topic_handle.first_offset(), topic_handle.next_offset());
        if let Some((p, h)) = dest.highest.iter().find(|(_, h)| **h >= end) {
            return Err(mismatch(format!(
                "partition {p} holds tidelog offset {h}, but the topic ends at {end}: the destination is ahead of the \
                 source"
            )));
        }
        let group_position = group.committed();
        let highest_next = dest.highest.values().map(|h| h + 1).max().unwrap_or(0);
        // The group's position bounds the search from below only if it does not claim more
        // than the destination holds (it may come from a destination since deleted).
        let bound = if group_position <= highest_next { group_position } else { 0 };
        let lowest_next = (0..partitions).map(|p| dest.highest.get(&p).map_or(0, |h| h + 1)).min().unwrap_or(0);
        let mut from = lowest_next.max(bound);
        if dest.highest.is_empty() {
            from = first;
        } else if from < first {
            if !opts.force {
                return Err(mismatch(format!(
                    "the destination holds records up to tidelog offset {}, and the topic no longer retains offsets \
                     {from}..{first} (retention or compaction removed them); force to continue from {first}",
                    highest_next.saturating_sub(1)
                )));
            }
            from = first;
        }

        let mut c = config(&opts.brokers, &opts.config);
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("enable.gapless.guarantee", "true")
            // The topic is created above through the admin API, never by producing to it.
            .set("allow.auto.create.topics", "false")
            .set("max.in.flight.requests.per.connection", "5")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "0")
            .set("queue.buffering.max.messages", opts.max_in_flight.max(1000).to_string());
        let producer: BaseProducer<Reports> =
            c.create_with_context(Reports::default()).map_err(kafka_error(format!("create a producer for {kt:?}")))?;

        let resumed =
            Resumed { from, highest: dest.highest.clone(), recovered: dest.recovered, group_position, partitions };
        let mut mirror = Mirror {
            topic: topic_handle,
            group,
            producer,
            map,
            source_id,
            partitions,
            skip: if partitions > 1 { dest.highest } else { BTreeMap::new() },
            next: from,
            in_flight: VecDeque::new(),
            checkpointed: group_position,
            last_checkpoint: Instant::now(),
            resumed,
            report: MirrorReport { position: from, ..MirrorReport::default() },
            opts,
        };
        mirror.checkpoint(true)?;
        Ok(mirror)
    }

    /// Where this opening resumed and what it found in the destination.
    pub fn resumed(&self) -> &Resumed {
        &self.resumed
    }

    /// The source's identity written into every record.
    pub fn source_id(&self) -> &str {
        &self.source_id
    }

    /// The mirror's position: every record of the topic before it is in Kafka.
    pub fn position(&self) -> u64 {
        self.in_flight.front().map_or(self.next, |(o, _)| *o)
    }

    /// The offset map as known in memory (acknowledged records, durable at each checkpoint).
    pub fn offset_map(&self) -> &OffsetMap {
        &self.map
    }

    /// Mirror every record the topic holds now, wait until the broker acknowledged all of
    /// them, and make the position durable.
    pub fn catch_up(&mut self) -> Result<MirrorReport> {
        let end = self.topic.next_offset();
        while self.next < end {
            self.pump(end)?;
        }
        self.drain(self.opts.timeout)?;
        self.checkpoint(true)?;
        Ok(self.report)
    }

    /// Mirror and follow the topic until `stop` is set, then wait for what is in flight and
    /// make the position durable.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<MirrorReport> {
        while !stop.load(Ordering::Relaxed) {
            let end = self.topic.next_offset();
            if self.next < end {
                self.pump(end)?;
            } else {
                self.settle(Duration::ZERO)?;
                self.checkpoint(false)?;
                let wait = if self.in_flight.is_empty() { 100 } else { 5 };
                self.topic.wait_for(self.next, Duration::from_millis(wait))?;
            }
        }
        self.drain(self.opts.timeout)?;
        self.checkpoint(true)?;
        Ok(self.report)
    }

    /// Send records from `next` up to `end` (or until the in-flight bound), serving delivery
    /// reports as they come.
    fn pump(&mut self, end: u64) -> Result<()> {
        let kt = self.opts.kafka_topic.clone();
        let mut sent = 0usize;
        for rec in self.topic.iter(self.next)? {
            let rec = rec?;
            let offset = rec.offset();
            if offset >= end {
                break;
            }
            let partition = partition_for(rec.key(), offset, self.partitions);
            self.next = offset + 1;
            if self.skip.get(&partition).is_some_and(|h| offset <= *h) {
                self.report.already_there += 1;
                continue;
            }
            let mut headers = OwnedHeaders::new_with_capacity(rec.headers().len() + 3);
            for h in rec.headers() {
                headers = headers.insert(KafkaHeader { key: h.name, value: Some(h.value) });
            }
            let off = decimal(offset);
            let ts = decimal(rec.timestamp_us());
            headers = headers
                .insert(KafkaHeader { key: SOURCE_HEADER, value: Some(self.source_id.as_bytes()) })
                .insert(KafkaHeader { key: OFFSET_HEADER, value: Some(&off) })
                .insert(KafkaHeader { key: TIMESTAMP_HEADER, value: Some(&ts) });
            let mut record: BaseRecord<'_, [u8], [u8], Box<u64>> = BaseRecord::with_opaque_to(&kt, Box::new(offset))
                .partition(partition)
                .timestamp((rec.timestamp_us() / 1000) as i64)
                .headers(headers);
            if let Some(k) = rec.key() {
                record = record.key(k);
            }
            if !rec.is_tombstone() {
                record = record.payload(rec.payload());
            }
            self.in_flight.push_back((offset, false));
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(10));
                        self.settle(Duration::ZERO)?;
                    }
                    Err((e, _)) => {
                        return Err(kafka_error(format!("send tidelog offset {offset} to {kt:?}"))(e));
                    }
                }
            }
            sent += 1;
            while self.in_flight.len() >= self.opts.max_in_flight {
                self.settle(Duration::from_millis(10))?;
            }
            if sent.is_multiple_of(1024) {
                self.settle(Duration::ZERO)?;
                self.checkpoint(false)?;
            }
            if sent >= 65_536 {
                break;
            }
        }
        self.settle(Duration::ZERO)?;
        self.checkpoint(false)
    }

    /// Serve delivery reports (waiting up to `wait` for them): acknowledged records enter
    /// the offset map and move the position; a failed one stops the mirror.
    fn settle(&mut self, wait: Duration) -> Result<()> {
        self.producer.poll(wait);
        if let Some(fatal) = self.producer.context().fatal.lock().ok().and_then(|f| f.clone()) {
            return Err(Error::Kafka { operation: format!("produce to {:?}", self.opts.kafka_topic), message: fatal });
        }
        let reports = match self.producer.context().delivered.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => Vec::new(),
        };
        for d in reports {
            match d {
                Delivered::Done { offset, partition, kafka_offset } => {
                    if self.map.record(offset, partition, kafka_offset).is_err() {
                        return Err(Error::MirrorMismatch {
                            topic: self.topic.name().to_string(),
                            kafka_topic: self.opts.kafka_topic.clone(),
                            detail: format!(
                                "tidelog offset {offset} landed at partition {partition} offset {kafka_offset}, \
                                 before records mirrored earlier"
                            ),
                        });
                    }
                    if let Ok(i) = self.in_flight.binary_search_by_key(&offset, |e| e.0) {
                        self.in_flight[i].1 = true;
                    }
                    self.report.mirrored += 1;
                }
                Delivered::Failed { offset, error } => {
                    return Err(
                        kafka_error(format!("deliver tidelog offset {offset} to {:?}", self.opts.kafka_topic))(error),
                    );
                }
            }
        }
        while self.in_flight.front().is_some_and(|e| e.1) {
            self.in_flight.pop_front();
        }
        self.report.position = self.position();
        Ok(())
    }

    /// Wait until every record sent is acknowledged.
    fn drain(&mut self, timeout: Duration) -> Result<()> {
        let mut last_progress = Instant::now();
        let mut left = self.in_flight.len();
        while !self.in_flight.is_empty() {
            self.settle(Duration::from_millis(10))?;
            if self.in_flight.len() < left {
                left = self.in_flight.len();
                last_progress = Instant::now();
            } else if last_progress.elapsed() > timeout {
                return Err(Error::Kafka {
                    operation: format!("deliver to {:?}", self.opts.kafka_topic),
                    message: format!("{left} records not acknowledged after {timeout:?}"),
                });
            }
        }
        Ok(())
    }

    /// Make the acknowledged position durable: the offset map first, then the group's
    /// position (only ever covering records the map and the broker hold). Unless `now`,
    /// only once per `checkpoint_every`.
    fn checkpoint(&mut self, now: bool) -> Result<()> {
        if !now && self.last_checkpoint.elapsed() < self.opts.checkpoint_every {
            return Ok(());
        }
        self.map.persist()?;
        let position = self.position();
        if position != self.checkpointed || now {
            if position != self.group.committed() {
                self.group.reset(StartFrom::Offset(position))?;
            }
            self.checkpointed = position;
        }
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Wait for what is in flight, make the position durable, and close the mirror's group.
    pub fn close(mut self) -> Result<MirrorReport> {
        self.drain(self.opts.timeout)?;
        self.checkpoint(true)?;
        let _ = self.producer.flush(self.opts.timeout);
        self.group.close()?;
        Ok(self.report)
    }
}
