//! # tidelog
//!
//! An embedded, persistent event log: a segmented, memory-mapped append log with dense
//! offsets, crash recovery, durable group commit, and readers that never block the writer.
//!
//! ```
//! use tidelog::{Durability, Header, Log, Options, Record};
//!
//! # fn main() -> Result<(), tidelog::Error> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path().join("events");
//! let log = Log::open(&dir, Options::default().segment_bytes(1 << 20).durability(Durability::Always))?;
//!
//! // Append one record, then an atomic batch.
//! let headers = [Header { name: "type", value: b"deposit" }];
//! let first = log.append(Record::new(b"{\"amount\":10}").key(b"acct-7").headers(&headers))?;
//! let batch = log.append_batch(&[Record::new(b"a"), Record::new(b"b")])?;
//! assert_eq!(batch, first + 1..first + 3);
//!
//! // Read one record by offset, then replay everything without copying.
//! assert_eq!(log.read(first)?.header("type"), Some(&b"deposit"[..]));
//! let mut cursor = log.cursor(log.first_offset());
//! let mut n = 0;
//! while let Some(rec) = cursor.next()? {
//!     n += rec.payload().len();
//! }
//! assert_eq!(n, 13 + 2);
//!
//! // Find records by time, then close cleanly (the next open scans nothing).
//! assert_eq!(log.offset_for_time(0)?, Some(first));
//! log.close()?;
//! # Ok(()) }
//! ```
//!
//! On top of the log, a [`Store`] holds named topics read by consumer groups ([`Group`]):
//! at-least-once delivery with leases, acks in any order, persisted retries, dead letters and
//! redrive, per-key ordering, lag and retention; see `docs/consumers.md`.
//!
//! A [`Projection`] folds a log into state; a [`ProjectionRunner`] keeps it current and writes
//! snapshots, so that a restart replays only what follows the newest one, and [`state_as_of`]
//! gives the state as of an older offset.
//!
//! Event-carried state transfer: [`Log::publish_state`] appends a key's new state as an
//! [`Envelope`] whose `before` the engine fills from the key's latest state (found through
//! the key index), [`Log::delete_state`] a tombstone carrying the last state; subscribers
//! decode both states with [`Envelope::decode`]. See `docs/event-sourcing.md`.
//! Event sourcing: each key's events form a stream with versions ([`Log::append_to_stream`]),
//! events can be typed ([`Event`], [`EventCodec`]: [`BincodeCodec`], [`JsonCodec`]), and an
//! [`AggregateStore`] loads an [`Aggregate`] from its newest snapshot plus the stream's events
//! after it, appends a command's events with the version it loaded, and answers a state as
//! of an earlier version, offset or time; see `docs/event-sourcing.md`.
//! [`Views`] keeps named read views of a log or topic current (asynchronously, or inline before
//! an append returns): aggregates per group and user folds, queried with their position and a
//! freshness bound, rebuilt beside themselves when their definition changes; see
//! `docs/views.md`.
//!
//! With the `kafka` feature, the `kafka` module mirrors a topic into a Kafka topic exactly once
//! across crashes, hands consumer groups over, and imports Kafka topics; see
//! `docs/scaling.md`.
//!
//! The byte-level format is specified in `docs/format.md`, the durability contract in
//! `docs/durability.md`, and how data flows between writer and readers in
//! `docs/architecture.md`.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod aggregate;
mod codec;
mod compaction;
mod consumer;
mod erase;
mod error;
mod format;
mod io;
// The Kafka bridge (the `kafka` feature); documented in src/kafka/mod.rs.
#[cfg(feature = "kafka")]
pub mod kafka;
mod log;
mod options;
mod projection;
mod record;
mod segment;
mod state_transfer;
mod store;
mod stream;
#[doc(hidden)]
pub mod testing;
mod time;
mod view;

pub use crate::aggregate::{
    Aggregate, AggregateOptions, AggregateStore, AsOf, Executed, HistoryEntry, Loaded, SnapshotPolicy, SnapshotTaken,
};
pub use crate::codec::{
    decode_event, BincodeCodec, Event, EventCodec, EventDecodeError, JsonCodec, CODEC_HEADER, EVENT_TYPE_HEADER,
    SCHEMA_VERSION_HEADER,
};
pub use crate::compaction::{BackgroundCompaction, CleanupPolicy, CompactOptions, CompactReport, CompactionHandle};
pub use crate::consumer::Role;
pub use crate::consumer::{
    AckMode, Backoff, DeadLetter, DeadLetterCause, DeadLetterStatus, Delivery, DeliveryOrder, Group, GroupLag,
    GroupOptions, RetentionPolicy, RetentionReport, StartFrom, MAX_REASON_BYTES, MAX_RETRY_DELAY,
};
pub use crate::consumer::{KeptDeadLetters, Pending, PendingState, PurgeDeadLetters, PurgeReport};
pub use crate::erase::{erasure_marker_key, EraseOptions, EraseReport, ERASURE_MARKER_PREFIX};
pub use crate::error::{CorruptionKind, Error, Location, Result};
pub use crate::format::frame::RECORD_HEADER_LEN;
pub use crate::format::segment_header::SEGMENT_HEADER_LEN;
pub use crate::format::FORMAT_VERSION;
pub use crate::log::BackupReport;
pub use crate::log::{Cursor, Damage, Iter, Log, OpenReport, SegmentInfo, TornTail, VerifyReport};
pub use crate::options::{Durability, Options, RecoveryMode, MAX_SEGMENT_BYTES};
pub use crate::projection::{
    fingerprint_of, load_snapshot, state_as_of, BoxError, Projection, ProjectionHandle, ProjectionRunner, Queried,
    RestoreReport, Restored, RunnerOptions, SkipReason, SkippedSnapshot, SnapshotDir, SnapshotInfo, SnapshotRetention,
    SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAX_NAME_LEN,
};
pub use crate::record::{AsRecord, Header, HeaderIter, OwnedRecord, Record, RecordView};
pub use crate::state_transfer::{
    Before, Envelope, LatestState, Op, Published, ENVELOPE_HEADER_LEN, ENVELOPE_MAGIC, ENVELOPE_VERSION,
};
pub use crate::store::StoreBackupReport;
pub use crate::store::{validate_name, Store, StoreOptions, Topic, MAX_NAME_LEN};
pub use crate::stream::{ExpectedVersion, StreamEvent, EVENT_ID_HEADER};
pub use crate::view::index::{IndexHit, IndexOptions, IndexReport, IndexView};
#[cfg(feature = "sqlite")]
pub use crate::view::sqlite::{SqlProjection, SqliteOptions, SqliteView, POSITION_TABLE};
pub use crate::view::{
    AggregateState, AggregateView, GroupBy, GroupFn, GroupStats, RebuildReport, StoredView, ValueFn, ValueOf, View,
    ViewAnswer, ViewDefinition, ViewHandle, ViewKind, ViewLag, ViewMode, ViewOptions, ViewStatus, Views,
    VIEW_CHECKPOINT_EVERY_RECORDS, VIEW_DEFINITION_VERSION, VIEW_MAX_FIELD_LEN, VIEW_MAX_NAME_LEN,
};
/// The SQLite bindings [`SqlProjection`] is written against (the `sqlite` feature), so that
/// an application uses the same version.
#[cfg(feature = "sqlite")]
pub use rusqlite;

/// Decode the record frame at `pos` in `bytes`, as recovery and readers do. Exposed for
/// fuzzing and tools: returns the record or a classified error, and never panics.
pub fn decode_record(bytes: &[u8], pos: usize) -> std::result::Result<Option<OwnedRecord>, CorruptionKind> {
    match format::decode_frame(bytes, pos, None) {
        format::Frame::Record(h) => {
            let frame = &bytes[pos..pos + h.frame_len as usize];
            Ok(Some(RecordView::from_frame(frame, &h).to_owned()))
        }
        format::Frame::End => Ok(None),
        format::Frame::Invalid(k) => Err(k),
    }
}

/// README.md's code blocks, compiled and run as doctests so that the README cannot show code
/// that does not build.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// docs/event-sourcing.md's code blocks, compiled and run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../docs/event-sourcing.md")]
pub struct EventSourcingDoctests;

/// docs/views.md's code blocks, compiled and run as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../docs/views.md")]
pub struct ViewsDoctests;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<crate::Log>();
        assert_send_sync::<crate::Cursor>();
        assert_send_sync::<crate::Error>();
    }
}
