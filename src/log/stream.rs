//! Streams: reading the events of one key and appending to it with an expected version and
//! event ids, through the segments' key indexes (`segment::keys`). See
//! `docs/event-sourcing.md`.

use std::collections::HashMap;
use std::fs;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::index::key_hash;
use crate::format::removed_streams::RemovedStreams;
use crate::format::SEGMENT_HEADER_LEN;
use crate::io::fs as fsutil;
use crate::log::{Inner, Log};
use crate::options::Durability;
use crate::record::Record;
use crate::segment::{self, SealInfo, Segment};
use crate::stream::{ExpectedVersion, StreamEvent, EVENT_ID_HEADER};

/// The file holding the events retention removed per stream (`format::removed_streams`).
pub(super) const REMOVED_STREAMS_FILE: &str = "removed-streams";

/// Read the log's removed-stream counts: none if the file is missing (nothing removed yet,
/// or a log written before versions were kept across retention). A damaged file is an
/// error: it is not derived data.
pub(super) fn load_removed_streams(dir: &Path) -> Result<RemovedStreams> {
    let path = dir.join(REMOVED_STREAMS_FILE);
    match fs::read(&path) {
        Ok(b) => RemovedStreams::decode(&b).map_err(|(at, kind)| Error::corrupt(&path, at, kind)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RemovedStreams::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Where one event of a stream is: its segment (index in the list read) and the record.
#[derive(Debug, Clone, Copy)]
struct At {
    seg: usize,
    offset: u64,
    pos: usize,
}

/// The events of one stream found in one reading of the segment list.
struct Found {
    segs: Arc<Vec<Arc<Segment>>>,
    /// The stream's events that retention removed: the version of `events[0]`.
    removed: u64,
    events: Vec<At>,
}

impl Found {
    /// The event at index `i` of the events in the log.
    fn event(&self, i: usize) -> Result<StreamEvent> {
        let at = self.events[i];
        let (rec, _) = self.segs[at.seg].decode_at(at.pos, at.offset)?;
        Ok(StreamEvent { version: self.removed + i as u64, record: rec.to_owned() })
    }

    /// The stream's version: its events removed and in the log.
    fn version(&self) -> u64 {
        self.removed + self.events.len() as u64
    }

    fn event_id(&self, at: At) -> Result<Option<Vec<u8>>> {
        let (rec, _) = self.segs[at.seg].decode_at(at.pos, at.offset)?;
        Ok(rec.header(EVENT_ID_HEADER).map(<[u8]>::to_vec))
    }
}

impl Log {
    /// The version of the stream `key`: the number of its events, those retention removed
    /// included (0 if it has none). Served by the key indexes, without scanning the log.
    pub fn stream_version(&self, key: &[u8]) -> Result<u64> {
        Ok(self.find_stream_to_read(key)?.version())
    }

    /// Up to `max` events of the stream `key`, from version `from` on (or from the first event
    /// retention left, if `from` is below it), oldest first.
    pub fn read_stream(&self, key: &[u8], from: u64, max: usize) -> Result<Vec<StreamEvent>> {
        let found = self.find_stream_to_read(key)?;
        let in_log = from.saturating_sub(found.removed);
        let start = usize::try_from(in_log).unwrap_or(usize::MAX).min(found.events.len());
        (start..found.events.len()).take(max).map(|v| found.event(v)).collect()
    }

    /// The events of the stream `key` at offsets from `from_offset` on, numbered from
    /// `first_version`: for a caller that knows the stream's version at that offset (an
    /// aggregate snapshot records both), so that only the key index entries from there on
    /// are looked at, not the whole stream's.
    pub(crate) fn read_stream_after(
        &self,
        key: &[u8],
        from_offset: u64,
        first_version: u64,
    ) -> Result<Vec<StreamEvent>> {
        let mut found = self.find_stream_from(key, from_offset)?;
        found.removed = first_version;
        (0..found.events.len()).map(|i| found.event(i)).collect()
    }

    /// Up to `max` events of the stream `key`, newest first.
    pub fn read_stream_backward(&self, key: &[u8], max: usize) -> Result<Vec<StreamEvent>> {
        let found = self.find_stream_to_read(key)?;
        (0..found.events.len()).rev().take(max).map(|v| found.event(v)).collect()
    }

    /// Append `records` to the stream `key` if the stream's version meets `expected`, as one
    /// atomic step under the writer lock: on a mismatch nothing is written and the error
    /// ([`Error::WrongExpectedVersion`]) carries the key, the expectation and the version.
    ///
    /// Every record must carry `key` (the batch is atomic, like [`Log::append_batch`]).
    /// Records may carry an event id in the header [`EVENT_ID_HEADER`]: if every id of the
    /// batch is already in the stream, in the same order and at consecutive offsets (a retried
    /// append), nothing is written and the original offsets are returned, whatever
    /// `expected` says. A batch of which only some ids are in the stream is refused
    /// ([`Error::InvalidEvent`]).
    pub fn append_to_stream(
        &self,
        key: &[u8],
        expected: ExpectedVersion,
        records: &[Record<'_>],
    ) -> Result<Range<u64>> {
        let ids = check_stream_batch(key, records)?;
        let inner = &self.inner;
        let total = inner.batch_bytes(records)?;
        let g = inner.writer.lock();
        if !ids.is_empty() {
            let found = self.find_stream(key)?;
            inner.write_rebuilt_key_indexes(&found.segs);
            if let Some(original) = find_retried(&found, &ids)? {
                drop(g);
                if inner.opts.durability == Durability::Always {
                    inner.flush_to(original.end)?;
                }
                return Ok(original);
            }
        }
        let actual = self.version_under_lock(key)?;
        if !expected.accepts(actual) {
            return Err(Error::WrongExpectedVersion { key: key.to_vec(), expected, actual });
        }
        let range = inner.append_locked(g, records, total)?;
        inner.versions.lock().set(key, actual + records.len() as u64, range.end);
        if inner.opts.durability == Durability::Always {
            inner.flush_to(range.end)?;
        }
        Ok(range)
    }

    /// The version of stream `key`, for an append (the caller holds the writer lock): from
    /// the version cache and the events appended since, or counted whole.
    fn version_under_lock(&self, key: &[u8]) -> Result<u64> {
        let cached = self.inner.versions.lock().get(key);
        let (known, from) = cached.unwrap_or((0, 0));
        let found = self.find_stream_from(key, from)?;
        if cached.is_none() {
            self.inner.write_rebuilt_key_indexes(&found.segs);
        }
        // The caller records the version after its append.
        Ok(if cached.is_some() { known + found.events.len() as u64 } else { found.version() })
    }

    /// The committed events of stream `key`, in offset order, each record's key checked.
    fn find_stream(&self, key: &[u8]) -> Result<Found> {
        self.find_stream_from(key, 0)
    }

    /// The committed events of stream `key` at offsets from `from` on.
    fn find_stream_from(&self, key: &[u8], from: u64) -> Result<Found> {
        if self.inner.read_only {
            self.refresh()?;
        }
        let next = self.next_offset();
        // IMPORTANT: the segment list first, then the removed counts (replaced before the
        // list by retention): segments the counts already cover are skipped below.
        let segs = self.inner.segments.read().clone();
        let removed_all = self.inner.removed.read().clone();
        let removed = if from == 0 { removed_all.counts.get(key).copied().unwrap_or(0) } else { 0 };
        let hash = key_hash(key);
        let mut events = Vec::new();
        let counted = |s: &Arc<Segment>| s.base_offset >= removed_all.below && s.next_offset() > from;
        for (i, seg) in segs.iter().enumerate().filter(|(_, s)| counted(s)) {
            let mut rebuilt = false;
            loop {
                let start = events.len();
                match stream_events_in(seg, i, hash, key, from..next, &mut events) {
                    Ok(()) => break,
                    // A candidate that does not validate: the key index is wrong (damaged, or
                    // for other records). Build it again from the records, once.
                    Err(e) if e.is_corruption() && !rebuilt => {
                        events.truncate(start);
                        seg.rebuild_keys()?;
                        rebuilt = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Found { segs, removed, events })
    }

    /// [`Log::find_stream`] for a read: a writer then writes the key index files it had to
    /// build (taking the writer lock, which an append holds already).
    fn find_stream_to_read(&self, key: &[u8]) -> Result<Found> {
        let found = self.find_stream(key)?;
        if !self.inner.read_only && found.segs.iter().any(|s| s.has_unwritten_key_index()) {
            let _g = self.inner.writer.lock();
            self.inner.write_rebuilt_key_indexes(&found.segs);
        }
        Ok(found)
    }
}

/// The events of segment `seg` (number `i`) whose key is `key`, at offsets in `range`.
fn stream_events_in(
    seg: &Segment,
    i: usize,
    hash: u64,
    key: &[u8],
    range: Range<u64>,
    out: &mut Vec<At>,
) -> Result<()> {
    let found = seg.key_candidates(key, hash, range.start)?;
    for (offset, pos) in found.records {
        if offset >= range.end {
            break;
        }
        // Candidates not known to carry the key are read and compared: hash collisions and
        // wrong entries never change a result.
        if found.verified || seg.decode_at(pos, offset)?.0.key() == Some(key) {
            out.push(At { seg: i, offset, pos });
        }
    }
    Ok(())
}

/// Check a stream batch; returns its event ids (empty if no record carries one).
fn check_stream_batch(key: &[u8], records: &[Record<'_>]) -> Result<Vec<Vec<u8>>> {
    let bad = |index, reason| Err(Error::InvalidEvent { index, reason });
    let mut ids: Vec<Vec<u8>> = Vec::new();
    for (index, r) in records.iter().enumerate() {
        if r.key != Some(key) {
            return bad(index, "every record of a stream append must carry the stream's key");
        }
        let mut own = r.headers.iter().filter(|h| h.name == EVENT_ID_HEADER);
        match (own.next(), own.next()) {
            (Some(_), Some(_)) => return bad(index, "the event-id header appears more than once"),
            (Some(h), None) if h.value.is_empty() => return bad(index, "an event id must not be empty"),
            (Some(h), None) if ids.iter().any(|i| i == h.value) => {
                return bad(index, "the same event id appears twice in the batch")
            }
            (Some(h), None) => ids.push(h.value.to_vec()),
            (None, _) => {}
        }
        if !ids.is_empty() && ids.len() != index + 1 {
            return bad(index, "either every record of the batch carries an event id or none does");
        }
    }
    Ok(ids)
}

/// If every id of the batch is in the stream, at consecutive offsets in the batch's order:
/// their offsets. An error if only some are.
fn find_retried(found: &Found, ids: &[Vec<u8>]) -> Result<Option<Range<u64>>> {
    let mut in_stream: HashMap<Vec<u8>, u64> = HashMap::new();
    for &at in &found.events {
        if let Some(id) = found.event_id(at)? {
            in_stream.insert(id, at.offset);
        }
    }
    let offsets: Vec<Option<u64>> = ids.iter().map(|id| in_stream.get(id).copied()).collect();
    if offsets.iter().all(Option::is_none) {
        return Ok(None);
    }
    let first = offsets[0];
    let same_batch = first.is_some_and(|f| offsets.iter().enumerate().all(|(i, o)| *o == Some(f + i as u64)));
    match (first, same_batch) {
        (Some(f), true) => Ok(Some(f..f + ids.len() as u64)),
        _ => {
            let index = offsets.iter().position(|o| o.is_some() != first.is_some()).unwrap_or(0);
            Err(Error::InvalidEvent {
                index,
                reason: "some event ids of the batch are in the stream and some are not, or in another order",
            })
        }
    }
}

/// The versions of recently appended streams, so that an append with an expected version
/// counts only the stream's events appended since (by other appends) instead of the whole
/// stream. Used under the writer lock; cleared by retention (versions count the events in
/// the log). Bounded: emptied when it would hold more than [`VersionCache::MAX_STREAMS`].
#[derive(Debug, Default)]
pub(super) struct VersionCache {
    /// Key → (version, the log's next offset when it was that).
    known: HashMap<Vec<u8>, (u64, u64)>,
}

impl VersionCache {
    const MAX_STREAMS: usize = 1 << 16;

    fn get(&self, key: &[u8]) -> Option<(u64, u64)> {
        self.known.get(key).copied()
    }

    fn set(&mut self, key: &[u8], version: u64, at: u64) {
        if let Some(v) = self.known.get_mut(key) {
            *v = (version, at);
            return;
        }
        if self.known.len() >= Self::MAX_STREAMS {
            self.known.clear();
        }
        self.known.insert(key.to_vec(), (version, at));
    }

    pub(super) fn clear(&mut self) {
        self.known.clear();
    }
}

impl Inner {
    /// Before retention removes `segs`: add their events per stream to the removed counts
    /// and write them durably, recording `below` as the first base not counted. Segments
    /// counted already (a crash came between an earlier count and the removal) are skipped.
    /// Reads every record of the removed segments, under the writer lock.
    pub(super) fn count_removed_streams(&self, segs: &[Arc<Segment>], below: u64) -> Result<()> {
        let mut next: RemovedStreams = self.removed.read().as_ref().clone();
        for seg in segs.iter().filter(|s| s.base_offset >= next.below) {
            for r in seg.records_from(SEGMENT_HEADER_LEN, seg.base_offset) {
                if let Some(key) = r?.0.key() {
                    match next.counts.get_mut(key) {
                        Some(n) => *n += 1,
                        None => {
                            next.counts.insert(key.to_vec(), 1);
                        }
                    }
                }
            }
        }
        next.below = next.below.max(below);
        fsutil::atomic_write(&self.dir.join(REMOVED_STREAMS_FILE), &next.encode())?;
        *self.removed.write() = Arc::new(next);
        Ok(())
    }

    /// A follower whose writer's retention removed segments: read the counts again (the
    /// writer wrote them before removing the segments).
    pub(super) fn reload_removed_streams(&self) -> Result<()> {
        let r = load_removed_streams(&self.dir)?;
        *self.removed.write() = Arc::new(r);
        Ok(())
    }

    /// Write the key index files that were built in memory because the file was missing or
    /// damaged (a segment written by older code, for instance). The caller holds the writer
    /// lock, so retention cannot remove a segment meanwhile. Best effort: the files are
    /// derived data, and a key index that could not be written is served from memory.
    fn write_rebuilt_key_indexes(&self, segs: &[Arc<Segment>]) {
        let current = self.segments.read().clone();
        let mut wrote = false;
        for seg in segs.iter().filter(|s| current.iter().any(|c| Arc::ptr_eq(c, s))) {
            let Some(entries) = seg.unwritten_key_index() else { continue };
            let info = SealInfo { end_pos: seg.end_pos() as u64, next_offset: seg.next_offset(), max_ts: seg.max_ts() };
            if segment::write_key_index_file(&seg.paths, seg.base_offset, &entries, info).is_ok() {
                seg.key_index_written();
                wrote = true;
            }
        }
        if wrote {
            let _ = fsutil::fsync_dir(&self.dir);
        }
    }
}
