//! [`AggregateStore`]: aggregates of one type over a log (or a store's topic). A load is the
//! newest usable snapshot of the key plus the stream's events after it, read through the key
//! index; a command is decided on a loaded state and its events appended with the version
//! the load saw, so that of two writers that decided on the same version exactly one wins.

use std::fs;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::aggregate::key_dir::key_dir_name;
use crate::aggregate::snapshots;
use crate::aggregate::{Aggregate, AggregateOptions};
use crate::codec::{decode_event, BincodeCodec, EncodedEvent, EventCodec};
use crate::error::{Error, IoContext, Result};
use crate::io::fs as fsutil;
use crate::log::Log;
use crate::projection::{RestoreReport, SnapshotInfo};
use crate::record::{Header, Record};
use crate::store::{validate_name, Topic};
use crate::stream::{ExpectedVersion, StreamEvent, EVENT_ID_HEADER};

/// Whether an operation wrote a snapshot by the store's policy.
#[derive(Debug)]
#[non_exhaustive]
pub enum SnapshotTaken {
    /// The policy did not ask for one.
    No,
    /// One was written.
    Written(SnapshotInfo),
    /// One was due but could not be written (the operation itself succeeded; the next one
    /// tries again).
    Failed(Error),
}

/// An aggregate's state as loaded.
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream version it reflects: the number of the stream's events applied to it.
    pub version: u64,
    /// One past the offset of the last event it reflects (0 if none).
    pub position: u64,
    /// Events read from the stream and applied after the snapshot.
    pub replayed: u64,
    /// The snapshot it started from (`used`, `None` if none) and every newer one skipped,
    /// with the reason (another fingerprint, damaged, ...).
    pub report: RestoreReport,
    /// A snapshot the load wrote (policy `replayed_over`).
    pub snapshot: SnapshotTaken,
}

impl<A> Loaded<A> {
    /// The stream version of the newest snapshot of this state (used or written by this
    /// load); 0 if none.
    fn snapshot_version(&self) -> u64 {
        match &self.snapshot {
            SnapshotTaken::Written(info) => info.records,
            _ => self.report.used.as_ref().map_or(0, |u| u.records),
        }
    }
}

/// What a command did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Executed<A> {
    /// The state after the command's events.
    pub state: A,
    /// Offsets of the command's events (empty if it decided none).
    pub offsets: Range<u64>,
    /// The stream's version after them.
    pub version: u64,
    /// True if the command had been executed before (its id was found in the stream):
    /// nothing was written, `offsets` are the original events'.
    pub already_executed: bool,
    /// A snapshot written by the store's policy.
    pub snapshot: SnapshotTaken,
}

/// Aggregates of type `A` whose streams are in one log, with snapshots in a directory.
///
/// The codec `C` encodes events and snapshot states ([`BincodeCodec`] by default). Every
/// call reads the log anew: several stores (threads, processes with their own log handles)
/// can serve the same aggregates, and the expected version settles who wins.
pub struct AggregateStore<A, C = BincodeCodec> {
    pub(super) log: Log,
    topic: Option<Topic>,
    /// The snapshot directory of this aggregate type: `{root}/{aggregate type}`.
    dir: PathBuf,
    pub(super) codec: C,
    options: AggregateOptions,
    aggregate: PhantomData<fn() -> A>,
}

impl<A, C> std::fmt::Debug for AggregateStore<A, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateStore").field("log", &self.log.dir()).field("snapshots", &self.dir).finish()
    }
}

impl<A: Aggregate, C: EventCodec + Default> AggregateStore<A, C> {
    /// Aggregates over `log`, with their snapshots under `snapshots` (a directory, created if
    /// needed; each aggregate type gets a subdirectory, each key one inside it).
    ///
    /// Fails with `Error::InvalidName` if [`Aggregate::aggregate_type`] is not a valid name,
    /// `Error::InvalidOptions` for bad options.
    pub fn open(log: &Log, snapshots: impl AsRef<Path>, options: AggregateOptions) -> Result<Self> {
        validate_name("aggregate type", A::aggregate_type())?;
        options.validate()?;
        let dir = snapshots.as_ref().join(A::aggregate_type());
        if !log.is_read_only() && !dir.is_dir() {
            fs::create_dir_all(&dir).at(&dir)?;
            // IMPORTANT: the type's directory entry is durable before key directories go in.
            fsutil::fsync_dir(snapshots.as_ref())?;
        }
        Ok(AggregateStore { log: log.clone(), topic: None, dir, codec: C::default(), options, aggregate: PhantomData })
    }

    /// Aggregates over a store's topic: as [`open`](AggregateStore::open) over the topic's
    /// log (this handle becomes the topic's writer), and appends wake the topic's blocked
    /// pollers like [`Topic::publish`].
    pub fn on_topic(topic: &Topic, snapshots: impl AsRef<Path>, options: AggregateOptions) -> Result<Self> {
        let mut store = AggregateStore::open(&topic.log()?, snapshots, options)?;
        store.topic = Some(topic.clone());
        Ok(store)
    }
}

impl<A: Aggregate, C: EventCodec> AggregateStore<A, C> {
    /// The log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The directory of `key`'s snapshots.
    pub fn snapshot_dir(&self, key: &[u8]) -> PathBuf {
        self.dir.join(key_dir_name(key))
    }

    /// Load the aggregate `key`: its newest usable snapshot, then the stream's events after
    /// it (through the key index, never a scan of the log). Snapshots that cannot be used
    /// (another state fingerprint, damaged, ahead of the log) are skipped and listed in
    /// [`Loaded::report`]. A key without events loads as the default state at version 0.
    ///
    /// With the policy [`replayed_over`](crate::SnapshotPolicy::replayed_over), a load that
    /// replayed more events writes a snapshot ([`Loaded::snapshot`]).
    pub fn load(&self, key: &[u8]) -> Result<Loaded<A>> {
        let mut loaded = self.rebuild(key, u64::MAX, |_| false)?;
        if self.options.snapshots.replayed_over.is_some_and(|n| loaded.replayed > n) {
            loaded.snapshot = self.snapshot_due(key, &loaded.state, loaded.position, loaded.version);
        }
        Ok(loaded)
    }

    /// Load `key`, let the aggregate decide `command`'s events, and append them with the
    /// version the load saw (`ExpectedVersion::Exact`). If another writer appended to the
    /// stream since the load, nothing is written and the error is
    /// `Error::WrongExpectedVersion`: load and decide again. A rejected command is
    /// `Error::CommandRejected` (nothing written).
    pub fn execute(&self, key: &[u8], command: A::Command) -> Result<Executed<A>> {
        self.run(key, None, command)
    }

    /// [`execute`](AggregateStore::execute) a command identified by `command_id` (non-empty):
    /// its events carry the ids `{command_id}#0`, `#1`, ... ([`EVENT_ID_HEADER`]). If they are
    /// in the stream already (a retry after a crash or a timeout), nothing is decided or
    /// written, and the result points at the original events (`already_executed`).
    ///
    /// Finding the id reads the id of every event of the stream (one record read each), as
    /// [`Log::append_to_stream`] does for ids; ids are remembered as long as their events
    /// are in the log. A command that decided no events leaves no trace: a retry decides
    /// again.
    pub fn execute_once(&self, key: &[u8], command_id: &[u8], command: A::Command) -> Result<Executed<A>> {
        if command_id.is_empty() {
            return Err(Error::InvalidEvent { index: 0, reason: "a command id must not be empty" });
        }
        self.run(key, Some(command_id), command)
    }

    /// Write a snapshot of `key`'s current state now, whatever the policy, and prune older
    /// ones by the retention. Fails with `Error::ReadOnly` on a read-only log.
    pub fn snapshot(&self, key: &[u8]) -> Result<SnapshotInfo> {
        if self.log.is_read_only() {
            return Err(Error::ReadOnly);
        }
        let loaded = self.rebuild(key, u64::MAX, |_| false)?;
        self.save(key, &loaded.state, loaded.position, loaded.version)
    }

    /// Decide `command` on a state loaded earlier (an optimistic-concurrency form: a user
    /// saw version `loaded.version` and submits a command later) and append its events
    /// expecting that version. If the stream moved on since, nothing is written and the error
    /// is `Error::WrongExpectedVersion`. `loaded` must be a current load of `key`
    /// ([`load`](AggregateStore::load)), not a state as of an earlier point.
    pub fn execute_on(&self, key: &[u8], loaded: Loaded<A>, command: A::Command) -> Result<Executed<A>> {
        self.decide(key, loaded, None, command)
    }

    fn run(&self, key: &[u8], command_id: Option<&[u8]>, command: A::Command) -> Result<Executed<A>> {
        let loaded = self.load(key)?;
        self.decide(key, loaded, command_id, command)
    }

    fn decide(
        &self,
        key: &[u8],
        loaded: Loaded<A>,
        command_id: Option<&[u8]>,
        command: A::Command,
    ) -> Result<Executed<A>> {
        if let Some(id) = command_id {
            if let Some(offsets) = self.find_command(key, id)? {
                let (state, version) = (loaded.state, loaded.version);
                return Ok(Executed { state, offsets, version, already_executed: true, snapshot: loaded.snapshot });
            }
        }
        let events = loaded.state.handle(command).map_err(|e| Error::CommandRejected {
            aggregate: A::aggregate_type(),
            key: key.to_vec(),
            source: Box::new(e),
        })?;
        let offsets = if events.is_empty() {
            self.log.next_offset()..self.log.next_offset()
        } else {
            self.append(key, command_id, loaded.version, &events)?
        };
        let base = loaded.snapshot_version();
        let mut state = loaded.state;
        for e in &events {
            state.apply(e);
        }
        let version = loaded.version + events.len() as u64;
        let position = if events.is_empty() { loaded.position } else { offsets.end };
        let snapshot = match self.options.snapshots.every {
            Some(n) if !events.is_empty() && version - base >= n => self.snapshot_due(key, &state, position, version),
            _ => SnapshotTaken::No,
        };
        Ok(Executed { state, offsets, version, already_executed: false, snapshot })
    }

    /// Encode `events` and append them to the stream `key` expecting `version`.
    fn append(&self, key: &[u8], command_id: Option<&[u8]>, version: u64, events: &[A::Event]) -> Result<Range<u64>> {
        let encoded = events
            .iter()
            .map(|e| EncodedEvent::new(&self.codec, e))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Codec(e.to_string()))?;
        let ids: Vec<Vec<u8>> = match command_id {
            Some(id) => (0..events.len()).map(|i| event_id(id, i)).collect(),
            None => Vec::new(),
        };
        let headers: Vec<Vec<Header<'_>>> = encoded
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut h = e.headers().to_vec();
                if let Some(id) = ids.get(i) {
                    h.push(Header { name: EVENT_ID_HEADER, value: id });
                }
                h
            })
            .collect();
        let records: Vec<Record<'_>> =
            encoded.iter().zip(&headers).map(|(e, h)| Record::new(&e.payload).key(key).headers(h)).collect();
        let expected = ExpectedVersion::Exact(version);
        match &self.topic {
            Some(topic) => topic.append_to_stream(key, expected, &records),
            None => self.log.append_to_stream(key, expected, &records),
        }
    }

    /// The offsets of the events of command `id` in the stream `key`, if they are there.
    fn find_command(&self, key: &[u8], id: &[u8]) -> Result<Option<Range<u64>>> {
        let events = self.log.read_stream(key, 0, usize::MAX)?;
        let id_of = |e: &StreamEvent| e.record.header(EVENT_ID_HEADER).map(<[u8]>::to_vec);
        let first = event_id(id, 0);
        let Some(at) = events.iter().position(|e| id_of(e).as_deref() == Some(&first[..])) else {
            return Ok(None);
        };
        let n = events[at..].iter().enumerate().take_while(|(i, e)| id_of(e) == Some(event_id(id, *i))).count();
        Ok(Some(events[at].record.offset..events[at + n - 1].record.offset + 1))
    }

    /// Restore `key` from the newest usable snapshot at a position at or below `at_most`,
    /// then apply the stream's events after it until `stop` says to stop before one.
    pub(super) fn rebuild(&self, key: &[u8], at_most: u64, stop: impl Fn(&StreamEvent) -> bool) -> Result<Loaded<A>> {
        let restored = snapshots::restore::<A, C>(&self.log, &self.snapshot_dir(key), key, &self.codec, at_most)?;
        let (mut state, mut version, mut position) = (restored.state, restored.version, restored.position);
        let mut replayed = 0;
        // After a snapshot, only the key index entries from its position on are read.
        let events = if position > 0 {
            self.log.read_stream_after(key, position, version)?
        } else {
            self.log.read_stream(key, version, usize::MAX)?
        };
        let removed =
            |first_version| Error::EventsRemoved { aggregate: A::aggregate_type(), key: key.to_vec(), first_version };
        match events.first() {
            Some(first) if first.version != version => return Err(removed(first.version)),
            // Nothing left to read: retention may have removed every event of the stream.
            None if position == 0 && self.log.stream_version(key)? > 0 => {
                // An event appended since the read has version 0 only if none was removed.
                match self.log.read_stream(key, 0, 1)?.first() {
                    Some(e) if e.version == 0 => {}
                    Some(e) => return Err(removed(e.version)),
                    None => return Err(removed(self.log.stream_version(key)?)),
                }
            }
            _ => {}
        }
        for e in events.iter().take_while(|e| !stop(e)) {
            state.apply(&decode_event(&self.codec, self.log.dir(), &e.record)?);
            version = e.version + 1;
            position = e.record.offset + 1;
            replayed += 1;
        }
        Ok(Loaded { state, version, position, replayed, report: restored.report, snapshot: SnapshotTaken::No })
    }

    /// A snapshot the policy asks for: written if the log is writable, its failure reported.
    fn snapshot_due(&self, key: &[u8], state: &A, position: u64, version: u64) -> SnapshotTaken {
        if self.log.is_read_only() || version == 0 {
            return SnapshotTaken::No;
        }
        match self.save(key, state, position, version) {
            Ok(info) => SnapshotTaken::Written(info),
            Err(e) => SnapshotTaken::Failed(e),
        }
    }

    fn save(&self, key: &[u8], state: &A, position: u64, version: u64) -> Result<SnapshotInfo> {
        let dir = self.snapshot_dir(key);
        snapshots::save(&self.log, &dir, (key, &self.codec), state, (position, version), &self.options.retention)
    }
}

/// The event id of event `i` of command `id`: `{id}#{i}`. Distinct commands never share
/// one: `i` is digits only, so the last `#` splits an id back into its command and index.
fn event_id(id: &[u8], i: usize) -> Vec<u8> {
    let mut out = id.to_vec();
    out.push(b'#');
    out.extend_from_slice(i.to_string().as_bytes());
    out
}
