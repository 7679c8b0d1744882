//! Temporal queries and audit: an aggregate's state as of an earlier point (the nearest
//! snapshot at or before it, then the stream's events up to it), and a stream's history.

use crate::aggregate::{Aggregate, AggregateStore, Loaded};
use crate::codec::{decode_event, parse_schema_version, EventCodec, EVENT_TYPE_HEADER, SCHEMA_VERSION_HEADER};
use crate::error::{Error, Result};
use crate::stream::{StreamEvent, EVENT_ID_HEADER};

/// A point in an aggregate's past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AsOf {
    /// After the stream's first `n` events (stream version `n`).
    Version(u64),
    /// After every event of the stream at an offset below this one.
    BelowOffset(u64),
    /// After every event of the stream appended at or before this time (µs since the Unix
    /// epoch; record timestamps never decrease along the log).
    Time(u64),
}

/// One event of a stream's history.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HistoryEntry<E> {
    /// The event's version (its number in the stream, from 0).
    pub version: u64,
    /// Its offset in the log.
    pub offset: u64,
    /// When it was appended, µs since the Unix epoch.
    pub timestamp_us: u64,
    /// Its type, as its header names it.
    pub event_type: String,
    /// The schema version it was written at (it is upcast to the current one in `event`).
    pub schema_version: u32,
    /// Its event id, if it was appended with one.
    pub event_id: Option<Vec<u8>>,
    /// The event, decoded.
    pub event: E,
}

impl<A: Aggregate, C: EventCodec> AggregateStore<A, C> {
    /// The state of `key` as of `at`: the nearest usable snapshot at or before it, then the
    /// stream's events up to it. Reads only (no snapshot is written). A point past the
    /// stream's end gives the current state.
    pub fn state_as_of(&self, key: &[u8], at: AsOf) -> Result<Loaded<A>> {
        match at {
            AsOf::BelowOffset(o) => self.rebuild(key, o, |e| e.record.offset >= o),
            AsOf::Version(v) => {
                // A snapshot covers versions below `v` if it ends at or before event `v`.
                let bound = self.log.read_stream(key, v, 1)?.first().map_or(u64::MAX, |e| e.record.offset);
                self.rebuild(key, bound, |e| e.version >= v)
            }
            AsOf::Time(t) => {
                // Timestamps never decrease along the log: the first record after `t` bounds
                // the snapshots that may be used.
                let bound = match t.checked_add(1) {
                    Some(after) => self.log.offset_for_time(after)?.unwrap_or(u64::MAX),
                    None => u64::MAX,
                };
                self.rebuild(key, bound, |e| e.record.timestamp_us > t)
            }
        }
    }

    /// Up to `max` events of the stream `key` from version `from` on, oldest first, decoded
    /// (older schema versions upcast), with their offsets, times, types and ids: an audit
    /// trail. Through the key index, one record read per event.
    pub fn history(&self, key: &[u8], from: u64, max: usize) -> Result<Vec<HistoryEntry<A::Event>>> {
        self.log.read_stream(key, from, max)?.iter().map(|e| self.entry(e)).collect()
    }

    fn entry(&self, e: &StreamEvent) -> Result<HistoryEntry<A::Event>> {
        let event = decode_event(&self.codec, self.log.dir(), &e.record)?;
        let r = &e.record;
        // decode_event checked both headers.
        let event_type = r.header(EVENT_TYPE_HEADER).map(|t| String::from_utf8_lossy(t).into_owned());
        let schema_version = r.header(SCHEMA_VERSION_HEADER).and_then(parse_schema_version);
        let (Some(event_type), Some(schema_version)) = (event_type, schema_version) else {
            return Err(Error::Internal("a decoded event lacks its type or version header"));
        };
        Ok(HistoryEntry {
            version: e.version,
            offset: r.offset,
            timestamp_us: r.timestamp_us,
            event_type,
            schema_version,
            event_id: r.header(EVENT_ID_HEADER).map(<[u8]>::to_vec),
            event,
        })
    }
}
