//! Typed errors. Every failure a caller can act on has its own variant; corruption is
//! located (file, byte position) and classified so that callers can `match` on it.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout tidelog.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What exactly is wrong with bytes that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorruptionKind {
    /// A checksum did not match the bytes it covers.
    ChecksumMismatch {
        /// Checksum computed over the bytes on disk.
        got: u32,
        /// Checksum stored in the file.
        expected: u32,
    },
    /// A record carried a different offset than its position in the log implies
    /// (a stale or misplaced record).
    OffsetMismatch {
        /// Offset stored in the record header.
        got: u64,
        /// Offset the log expected at this position.
        expected: u64,
    },
    /// A length field points outside the file or below the minimum frame size.
    BadLength {
        /// The length read from disk.
        len: u64,
        /// Bytes available from the field's position to the end of the file.
        available: u64,
    },
    /// A magic number or version did not match.
    BadMagic,
    /// A field held a value the format does not allow.
    BadField(&'static str),
    /// A batch was cut short: a record announced more records in its batch than follow.
    IncompleteBatch,
    /// The log ends before an offset that must exist.
    MissingData,
}

impl CorruptionKind {
    /// A stable, machine-readable name for the kind (`"checksum_mismatch"`, ...), as the CLI
    /// prints it in JSON.
    pub fn name(&self) -> &'static str {
        match self {
            CorruptionKind::ChecksumMismatch { .. } => "checksum_mismatch",
            CorruptionKind::OffsetMismatch { .. } => "offset_mismatch",
            CorruptionKind::BadLength { .. } => "bad_length",
            CorruptionKind::BadMagic => "bad_magic",
            CorruptionKind::BadField(_) => "bad_field",
            CorruptionKind::IncompleteBatch => "incomplete_batch",
            CorruptionKind::MissingData => "missing_data",
        }
    }
}

/// Where damaged or missing data is: a byte position in a file, or, where no file holds the
/// data (a segment is missing), a record offset in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A byte position within a file.
    File {
        /// The file.
        path: PathBuf,
        /// Byte position of the damaged structure within the file.
        position: u64,
    },
    /// A record offset within a log.
    Log {
        /// The log directory.
        dir: PathBuf,
        /// The first offset concerned.
        offset: u64,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File { path, position } => write!(f, "{} at byte {position}", path.display()),
            Location::Log { dir, offset } => write!(f, "log {} at offset {offset}", dir.display()),
        }
    }
}

impl std::fmt::Display for CorruptionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorruptionKind::ChecksumMismatch { got, expected } => {
                write!(f, "checksum mismatch (computed {got:#010x}, stored {expected:#010x})")
            }
            CorruptionKind::OffsetMismatch { got, expected } => {
                write!(f, "record carries offset {got}, expected {expected}")
            }
            CorruptionKind::BadLength { len, available } => {
                write!(f, "bad length {len} ({available} bytes available)")
            }
            CorruptionKind::BadMagic => write!(f, "bad magic number or version"),
            CorruptionKind::BadField(name) => write!(f, "invalid value in field `{name}`"),
            CorruptionKind::IncompleteBatch => write!(f, "batch is incomplete"),
            CorruptionKind::MissingData => write!(f, "data missing"),
        }
    }
}

/// The error type of every fallible tidelog operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with the path it concerned where known.
    #[error("I/O error on {path:?}: {source}")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Stored bytes failed validation, or data the log vouches for is missing.
    #[error("corruption in {location}: {kind}")]
    Corruption {
        /// Where: the file and byte position, or the log and record offset.
        location: Location,
        /// What is wrong.
        kind: CorruptionKind,
    },
    /// A record (key + headers + payload) is larger than the configured maximum.
    /// Nothing was written.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Encoded size of the key, headers and payload.
        size: u64,
        /// Configured maximum (`Options::max_record_bytes`).
        max: u64,
    },
    /// A header name is longer than 65535 bytes or a header value longer than 4 GiB.
    #[error("header field too large: {0}")]
    HeaderTooLarge(&'static str),
    /// An empty batch was given where at least one record is required.
    #[error("batch is empty")]
    EmptyBatch,
    /// Another writer holds the log directory's lock (in this process or another). Reported
    /// after the lock stayed held for 200 ms: a lock held only for a moment by a process being
    /// spawned (between its `fork` and `exec`) is waited out.
    #[error("log at {path:?} is locked by another writer")]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// The path exists but is not a directory.
    #[error("{path:?} is not a directory")]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// The directory does not hold a tidelog log and opening it read-only cannot create one.
    #[error("no log at {path:?}")]
    NotFound {
        /// The directory that was opened.
        path: PathBuf,
    },
    /// The requested offset is not in the log (before the first retained offset or at/after
    /// the next offset).
    #[error("offset {offset} is out of range [{first}, {next})")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: u64,
        /// First offset still in the log.
        first: u64,
        /// Next offset to be assigned.
        next: u64,
    },
    /// Invalid options.
    #[error("invalid option: {0}")]
    InvalidOptions(String),
    /// A write was attempted on a log opened read-only (explicitly, or because recovery found
    /// damage and `RecoveryMode::ReadOnlyUpToDamage` was chosen).
    #[error("log is read-only")]
    ReadOnly,
    /// An earlier flush to stable storage failed; what reached the disk is unknown.
    /// The log refuses writes until it is reopened (which runs recovery).
    #[error("log is poisoned by an earlier failed flush; reopen it to recover")]
    Poisoned,
    /// The log has been closed.
    #[error("log is closed")]
    Closed,
    /// A segment is full and the record cannot fit even in a fresh segment.
    #[error("batch of {size} bytes does not fit in a segment of at most {max} bytes")]
    BatchTooLarge {
        /// Encoded size of the batch.
        size: u64,
        /// Largest segment size the format allows.
        max: u64,
    },
    /// Encoding or decoding a typed value failed (the codec module).
    #[error("codec error: {0}")]
    Codec(String),
    /// A topic or consumer-group name is not allowed (see `Store`). Nothing was created.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// What was being named: `"topic"` or `"group"`.
        kind: &'static str,
        /// The rejected name (lossy if it was not UTF-8).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A delivery cannot be acked, nacked or extended: it was already settled, or its lease
    /// expired and the event has been delivered again since (to this or another consumer).
    #[error("delivery of offset {offset} (attempt {attempt}) is no longer leased to this consumer")]
    LeaseLost {
        /// The event's offset in its topic.
        offset: u64,
        /// The delivery attempt the caller holds.
        attempt: u32,
    },
    /// An internal invariant of tidelog did not hold (a bug): nothing was changed by the
    /// operation that found it.
    #[error("internal invariant broken: {0}")]
    Internal(&'static str),
    /// A delivery was given to a group that did not hand it out: another group (of this or
    /// another topic), or an earlier opening of this group, closed and reopened since (its
    /// events are delivered again by the current opening). Nothing was changed.
    #[error("delivery of offset {offset} was handed out by {delivered_by} (another group or an earlier opening), not by {settled_by}")]
    ForeignDelivery {
        /// The event's offset in the topic of the group that handed it out.
        offset: u64,
        /// `topic/group` that handed the delivery out.
        delivered_by: String,
        /// `topic/group` it was given to.
        settled_by: String,
    },
    /// No dead letter at this offset of the group's dead-letter log is parked (it does not
    /// exist, or it was redriven already).
    #[error("no parked dead letter at dead-letter offset {dlq_offset}")]
    UnknownDeadLetter {
        /// The offset in the group's dead-letter log.
        dlq_offset: u64,
    },
    /// A projection's code failed: its `apply` at `offset`, or its `snapshot` of the state
    /// covering everything below `offset`. The runner stops; its state is not used again
    /// (it may hold half of the failed record) and no snapshot of it is written.
    #[error("projection {projection:?} failed at offset {offset}: {source}")]
    ProjectionFailed {
        /// The projection's name.
        projection: String,
        /// The record being applied, or the position being snapshotted.
        offset: u64,
        /// What the projection reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A projection needs records that are no longer in the log: retention removed offsets
    /// from `position` up to `first_offset`, and no usable snapshot covers them. Nothing is
    /// skipped silently; rebuild from a snapshot that covers them or from a log that keeps them.
    #[error("projection {projection:?} needs records from offset {position}, but the log starts at {first_offset}")]
    RecordsRemoved {
        /// The projection's name.
        projection: String,
        /// The next offset the projection must apply.
        position: u64,
        /// The first offset still in the log.
        first_offset: u64,
    },
    /// A background projection runner is no longer running: it was stopped, or it failed
    /// (`cause`) and its state is not served any more.
    #[error("projection {projection:?} stopped at position {position}{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    ProjectionStopped {
        /// The projection's name.
        projection: String,
        /// The next offset it would have applied.
        position: u64,
        /// Why it stopped, if it failed.
        cause: Option<String>,
    },
    /// The offset lies in a gap: compaction removed the record that had it from a sealed
    /// segment. Every other record keeps its offset; reading on from `next_existing` (or
    /// with a cursor, which steps over gaps) continues with the records that remain.
    #[error("the record at offset {offset} was removed by compaction; the next record is at {next_existing}")]
    OffsetCompacted {
        /// The requested offset.
        offset: u64,
        /// Offset of the first record after it that exists, or the log's next offset if no
        /// later record exists yet.
        next_existing: u64,
    },
    /// An append to a stream found the stream at another version than it expected: nothing
    /// was written.
    #[error("stream {key:?} is at version {actual}, the append expected {expected:?}")]
    WrongExpectedVersion {
        /// The stream's key.
        key: Vec<u8>,
        /// What the append expected.
        expected: crate::stream::ExpectedVersion,
        /// The stream's version (number of its events) when the append was checked.
        actual: u64,
    },
    /// A record of a stream append (or a record carrying the reserved event-id header) is
    /// not valid for it: nothing was written.
    #[error("record {index} of the batch: {reason}")]
    InvalidEvent {
        /// Index of the record in the batch.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record read as a state envelope (event-carried state transfer) is not one, or is
    /// damaged: located by its log (when the reader knew it), its offset and the byte of its
    /// payload where the envelope goes wrong. Nothing was written.
    #[error("record at offset {offset}{} is not a valid state envelope (payload byte {position}): {kind}", log.as_ref().map(|l| format!(" of log {}", l.display())).unwrap_or_default())]
    InvalidEnvelope {
        /// The log directory, when known (`None` from `Envelope::decode` of a bare record).
        log: Option<PathBuf>,
        /// The record's offset.
        offset: u64,
        /// Byte position within the record's payload.
        position: u64,
        /// What is wrong.
        kind: CorruptionKind,
    },
    /// A topic cannot be deleted while its writer or one of its consumer groups is open (in
    /// this process or another): nothing was changed.
    #[error("topic {topic} is in use: {holder} holds the lock of {path:?}; stop it and try again")]
    TopicInUse {
        /// The topic.
        topic: String,
        /// Who holds it: `a writer`, or `consumer group <name>`.
        holder: String,
        /// The directory whose lock is held.
        path: PathBuf,
    },
    /// A backup's destination exists and is not an empty directory: nothing was written.
    #[error("backup destination {path:?} exists and is not an empty directory")]
    BackupDestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// A group was asked to settle the topic event at `offset` by its offset, but that event
    /// is not delivered by this opening of the group now (never delivered, settled already,
    /// or its lease expired and it was delivered again since). Nothing was changed.
    #[error("topic offset {offset} is not delivered by group {group} now")]
    NotDelivered {
        /// `topic/group` asked to settle it.
        group: String,
        /// The event's offset in the topic.
        offset: u64,
    },
    /// A consumer group cannot be changed this way while it is open (in this process or
    /// another): deleting it, or resetting or purging it from outside. Close it first, or
    /// make the change through the open [`crate::Group`].
    #[error("consumer group {group} is open; close it first ({path})")]
    GroupOpen {
        /// `topic/group`.
        group: String,
        /// The group's directory.
        path: PathBuf,
    },
    /// A record could not be read as a typed event (`tidelog::decode_event`): wrong codec or
    /// type, unknown schema version, bytes that do not decode, a failed upcast.
    #[error("event in {location}: {kind}")]
    EventDecode {
        /// The record: log directory and offset.
        location: Location,
        /// What is wrong.
        kind: crate::codec::EventDecodeError,
    },
    /// An aggregate's command handler rejected a command: nothing was written. `source` is
    /// the handler's own error (downcast it to the aggregate's `Error` type).
    #[error("command on {aggregate} {:?} rejected: {source}", String::from_utf8_lossy(key))]
    CommandRejected {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate's key (its stream).
        key: Vec<u8>,
        /// The handler's error.
        source: crate::projection::BoxError,
    },
    /// An aggregate's state cannot be rebuilt: retention removed the first events of its
    /// stream and no usable snapshot covers them.
    #[error("stream {:?} of {aggregate} starts at version {first_version}: its earlier events were removed and no usable snapshot covers them", String::from_utf8_lossy(key))]
    EventsRemoved {
        /// The aggregate type.
        aggregate: &'static str,
        /// The aggregate's key (its stream).
        key: Vec<u8>,
        /// Version of the stream's oldest event still in the log.
        first_version: u64,
    },
    /// A message on a group's member socket (between the process owning the group and a
    /// remote member) is malformed: bad length, version, kind, field, or trailing bytes.
    /// The connection is dropped; no state changes.
    #[error("bad message on member socket {socket:?} at byte {position} of the connection: {reason}")]
    MemberProtocol {
        /// The group's member socket.
        socket: PathBuf,
        /// Bytes of the connection read before the bad frame.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The process owning a group failed a remote member's request with an error that has
    /// no typed form on the member socket (its text is kept).
    #[error("the owner of group {group} failed the request: {message}")]
    OwnerFailed {
        /// `topic/group`.
        group: String,
        /// The owner's error, as text.
        message: String,
    },
    /// The operation needs the group's state, which another process owns: this handle is a
    /// remote member ([`crate::Role::Member`]). Do it in the owning process.
    #[error("{operation} needs the owner of group {group}; this handle is a remote member")]
    NotGroupOwner {
        /// `topic/group`.
        group: String,
        /// The operation asked for.
        operation: &'static str,
    },
    /// A view query asked for a view at least as fresh as `bound`, and the view had not
    /// reached it when the wait was over: it reflects the records below `position` only.
    /// Nothing is wrong; ask again, wait longer, or accept an older answer.
    #[error("view {view:?} is at position {position}, not yet up to the bound {bound}")]
    ViewNotUpToBound {
        /// The view's name.
        view: String,
        /// The view's position (next offset to apply) when the wait ended.
        position: u64,
        /// The position asked for.
        bound: u64,
    },
    /// No view of this name: none is open in this registry, or none is stored in `dir`.
    #[error("no view {view:?} in {dir:?}")]
    UnknownView {
        /// The name asked for.
        view: String,
        /// The views directory searched.
        dir: PathBuf,
    },
    /// The view's definition holds a user function (a fold, or a function extracting the
    /// group or value): only the application that defines it can open or rebuild it.
    #[error("view {view:?} ({kind}) needs the application's code to be opened or rebuilt")]
    ViewNeedsApplication {
        /// The view's name.
        view: String,
        /// Its definition, described.
        kind: String,
    },
    /// A view of this name is already open in this registry (or its directory is locked by
    /// another process keeping it current).
    #[error("view {view:?} is already open")]
    ViewAlreadyOpen {
        /// The view's name.
        view: String,
    },
    /// A range of values was asked of a secondary index that keeps its values by hash: only
    /// an index declared ordered answers ranges.
    #[error("index {index:?} is not ordered: it answers lookups of one value, not ranges")]
    IndexNotOrdered {
        /// The index's name.
        index: String,
    },
    /// The SQLite database of a read model (the `sqlite` feature) failed: opening it, its
    /// schema, or a transaction. What was committed before stays, with its position.
    #[error("view {view:?}: SQLite database {path:?}: {source}")]
    ViewDatabase {
        /// The view's name.
        view: String,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The Kafka client or broker failed (the `kafka` feature): connecting, creating a topic,
    /// producing, consuming or committing. What the mirror or import had confirmed before
    /// stays confirmed; a restart resumes exactly after it.
    #[error("kafka: {operation}: {message}")]
    Kafka {
        /// What was being done, with the Kafka topic and partition concerned.
        operation: String,
        /// The client's or broker's message.
        message: String,
    },
    /// The last record of a mirror's destination partition was not written by this mirror's
    /// source (another tidelog topic or another producer wrote after it): the mirror refuses
    /// to continue into it unless forced (`MirrorOptions::force`).
    #[error(
        "kafka topic {topic:?} partition {partition} offset {offset}: written by source {found:?}, not {expected:?}"
    )]
    MirrorForeignSource {
        /// The Kafka topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The Kafka offset of the foreign record.
        offset: i64,
        /// The source it names (empty if it carries no `tidelog.source` header).
        found: String,
        /// This mirror's source id.
        expected: String,
    },
    /// A mirror's source and destination (or its offset map) disagree in a way a restart
    /// cannot settle on its own: the destination holds tidelog offsets the source never had,
    /// the source no longer retains records the destination lacks, or a consumer group is
    /// ahead of what has been mirrored.
    #[error("mirror of {topic:?} into kafka topic {kafka_topic:?}: {detail}")]
    MirrorMismatch {
        /// The tidelog topic.
        topic: String,
        /// The Kafka topic.
        kafka_topic: String,
        /// What disagrees, with the offsets concerned.
        detail: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, position: u64, kind: CorruptionKind) -> Error {
        Error::Corruption { location: Location::File { path: file.into(), position }, kind }
    }

    /// A record of the log in `dir`, at `offset`, is not what it must be (or is missing).
    pub(crate) fn corrupt_record(dir: impl Into<PathBuf>, offset: u64, kind: CorruptionKind) -> Error {
        Error::Corruption { location: Location::Log { dir: dir.into(), offset }, kind }
    }

    /// True if this error reports damaged stored bytes.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

/// Attach a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
