//! Streams: the events of one key within a log. The types of the stream API; the reads and
//! the checked append are on [`Log`](crate::Log) (`log/stream.rs`), served by each segment's
//! key index.

use crate::record::OwnedRecord;

/// The reserved header that carries an event's id. An append through
/// [`Log::append_to_stream`](crate::Log::append_to_stream) whose event ids are already in the
/// stream writes nothing and returns the original offsets. A plain
/// [`Log::append`](crate::Log::append) refuses records carrying it
/// ([`Error::InvalidEvent`](crate::Error::InvalidEvent)), so that nobody takes it for an
/// idempotent append.
pub const EVENT_ID_HEADER: &str = "tidelog.event-id";

/// What an append to a stream expects of the stream's version (the number of its events,
/// those retention removed included) at the moment of the append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No expectation: append whatever the version.
    Any,
    /// The stream has no event yet (version 0).
    NoStream,
    /// The stream has at least one event.
    StreamExists,
    /// The stream has exactly this many events.
    Exact(u64),
}

impl ExpectedVersion {
    /// True if a stream at `actual` meets this expectation.
    pub fn accepts(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::StreamExists => actual > 0,
            ExpectedVersion::Exact(n) => actual == n,
        }
    }
}

/// One event of a stream: its version (its number in the stream, from 0 for the stream's
/// first event ever; retention does not change it) and the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// The event's position in its stream, counted from 0.
    pub version: u64,
    /// The record.
    pub record: OwnedRecord,
}
