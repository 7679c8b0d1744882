//! What a mirror's destination already holds: the tail of each Kafka partition read back on
//! start, so that a restart resumes after the highest tidelog offset of its source found there
//! (the destination is the truth; the mirror's group position only bounds the search).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;

use super::client::{headers_of, read_to_end, watermarks_hint};
use super::headers::{last_header, parse_decimal, OFFSET_HEADER, SOURCE_HEADER};
use super::offset_map::OffsetMap;
use crate::error::{Error, Result};

/// Where the destination's tail search starts when the map knows nothing of a partition:
/// this many records before the end, then ten times as many, until a record of the source
/// is found or the partition's start is reached.
const FIRST_WINDOW: i64 = 1000;

/// The destination as found on start.
#[derive(Debug, Default)]
pub(crate) struct Destination {
    /// Per partition, the highest tidelog offset of the source it holds.
    pub highest: BTreeMap<i32, u64>,
    /// Records of the source found in the destination beyond what the offset map knew
    /// (acknowledged before a crash, not yet in the map); added to the map.
    pub recovered: u64,
}

/// Everything the scan needs to know about the mirror.
pub(crate) struct Scan<'a> {
    pub consumer: &'a BaseConsumer,
    pub kafka_topic: &'a str,
    pub topic: &'a str,
    pub source_id: &'a str,
    pub partitions: i32,
    pub force: bool,
    pub timeout: Duration,
}

/// One record of a partition, as the scan sees it.
struct Seen {
    kafka_offset: i64,
    /// The source it names, if any.
    source: Option<String>,
    /// Its tidelog offset, if it names one.
    offset: Option<u64>,
}

impl Scan<'_> {
    fn mismatch(&self, detail: String) -> Error {
        Error::MirrorMismatch { topic: self.topic.to_string(), kafka_topic: self.kafka_topic.to_string(), detail }
    }

    /// Read every partition's tail, check that its last record is the source's (unless
    /// forced), and add the source's records the map lacks to `map`.
    pub(crate) fn run(&self, map: &mut OffsetMap) -> Result<Destination> {
        let mut dest = Destination::default();
        for p in 0..self.partitions {
            let seen = match map.last_in(p) {
                Some((t, k)) => {
                    let mut seen = Vec::new();
                    let inside = read_to_end(self.consumer, self.kafka_topic, p, k, self.timeout, |m| {
                        seen.push(self.seen(m));
                        Ok(())
                    })?;
                    let first = seen.first();
                    let same = first.is_some_and(|s| {
                        s.kafka_offset == k && s.offset == Some(t) && s.source.as_deref() == Some(self.source_id)
                    });
                    if !inside || !same {
                        return Err(self.mismatch(format!(
                            "the offset map says partition {p} offset {k} holds tidelog offset {t}, but the partition \
                             {}: it was deleted or rewritten; remove {} to mirror afresh",
                            if inside { "holds another record there" } else { "ends before it" },
                            map.path().display()
                        )));
                    }
                    seen.remove(0);
                    seen
                }
                None => self.search_tail(p)?,
            };
            if let Some(last) = seen.last() {
                if last.source.as_deref() != Some(self.source_id) && !self.force {
                    return Err(Error::MirrorForeignSource {
                        topic: self.kafka_topic.to_string(),
                        partition: p,
                        offset: last.kafka_offset,
                        found: last.source.clone().unwrap_or_default(),
                        expected: self.source_id.to_string(),
                    });
                }
            }
            for s in &seen {
                let (Some(source), Some(offset)) = (s.source.as_deref(), s.offset) else { continue };
                if source != self.source_id {
                    continue;
                }
                if map.record(offset, p, s.kafka_offset).is_err() {
                    return Err(self.mismatch(format!(
                        "partition {p} offset {} holds tidelog offset {offset}, not after the ones before it: two \
                         mirrors of one source wrote into it",
                        s.kafka_offset
                    )));
                }
                dest.recovered += 1;
            }
            if let Some((t, _)) = map.last_in(p) {
                dest.highest.insert(p, t);
            }
        }
        Ok(dest)
    }

    /// Read back from a partition's end, in growing windows, until a record of the source is
    /// seen or the partition's start is reached; return the records read, in order.
    fn search_tail(&self, p: i32) -> Result<Vec<Seen>> {
        let (low, high) = watermarks_hint(self.consumer, self.kafka_topic, p, self.timeout);
        let mut window = FIRST_WINDOW;
        loop {
            let from = high.saturating_sub(window).max(low).max(0);
            let mut seen = Vec::new();
            let inside = read_to_end(self.consumer, self.kafka_topic, p, from, self.timeout, |m| {
                seen.push(self.seen(m));
                Ok(())
            })?;
            let found = seen.iter().any(|s| s.source.as_deref() == Some(self.source_id));
            if (inside && found) || from <= low.max(0) {
                return Ok(seen);
            }
            window = window.saturating_mul(10);
        }
    }

    fn seen(&self, m: &rdkafka::message::BorrowedMessage<'_>) -> Seen {
        let hs = headers_of(m);
        Seen {
            kafka_offset: m.offset(),
            source: last_header(hs.iter().copied(), SOURCE_HEADER).map(|v| String::from_utf8_lossy(v).into_owned()),
            offset: last_header(hs.iter().copied(), OFFSET_HEADER).and_then(parse_decimal),
        }
    }
}
