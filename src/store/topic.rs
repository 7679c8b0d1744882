//! A topic: a named log that this process publishes to (taking its writer lazily) or follows.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::attached::Attached;
use super::signal::{instant_after, Signal};
use super::StoreShared;
use crate::error::{Error, Result};
use crate::{AsRecord, ExpectedVersion, OwnedRecord, Record, StreamEvent};
use crate::{Iter, Log, SegmentInfo};
use crate::{LatestState, Published};

pub(crate) struct TopicInner {
    store: Arc<StoreShared>,
    name: String,
    dir: PathBuf,
    writer: RwLock<Option<Log>>,
    follower: Mutex<Option<Log>>,
    signal: Signal,
    attached: Attached,
}

/// A named topic: a log of events that any number of consumer groups read independently.
/// Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Topic {
    inner: Arc<TopicInner>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.inner.name).field("next_offset", &self.next_offset()).finish()
    }
}

impl Topic {
    pub(crate) fn new(store: Arc<StoreShared>, name: &str, dir: PathBuf) -> Topic {
        Topic {
            inner: Arc::new(TopicInner {
                store,
                name: name.to_owned(),
                signal: Signal::new(&dir),
                dir,
                writer: RwLock::new(None),
                follower: Mutex::new(None),
                attached: Attached::default(),
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<TopicInner>) -> Topic {
        Topic { inner }
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<TopicInner> {
        Arc::downgrade(&self.inner)
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic's log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The store this topic belongs to.
    pub(crate) fn store(&self) -> &StoreShared {
        &self.inner.store
    }

    /// The topic's wake-up signal.
    pub(crate) fn signal(&self) -> &Signal {
        &self.inner.signal
    }

    /// What layers above the store share per topic in this process.
    pub(crate) fn attached(&self) -> &Attached {
        &self.inner.attached
    }

    /// The writable log, opened at first use. [`Error::Locked`] if another process (or
    /// another store in this process) publishes to this topic.
    pub(crate) fn writer(&self) -> Result<Log> {
        if let Some(w) = self.inner.writer.read().as_ref() {
            return Ok(w.clone());
        }
        let mut g = self.inner.writer.write();
        if let Some(w) = g.as_ref() {
            return Ok(w.clone());
        }
        let log = Log::open(&self.inner.dir, self.inner.store.options().topic.clone())?;
        *g = Some(log.clone());
        Ok(log)
    }

    /// The topic's writable log, opened at first use (this handle becomes the topic's
    /// writer), for layers built over a [`Log`] such as
    /// [`AggregateStore::on_topic`](crate::AggregateStore::on_topic). Appends made on it
    /// directly do not wake blocked pollers at once; publish through the topic for that.
    pub fn log(&self) -> Result<Log> {
        self.writer()
    }

    /// The best handle to read with: the writer if this process has it (it sees appends at
    /// once), else a read-only follower. `None` while the log does not exist yet.
    pub(crate) fn reader(&self) -> Result<Option<(Log, bool)>> {
        if let Some(w) = self.inner.writer.read().as_ref() {
            return Ok(Some((w.clone(), false)));
        }
        let mut f = self.inner.follower.lock();
        if let Some(l) = f.as_ref() {
            return Ok(Some((l.clone(), true)));
        }
        match Log::open_read_only(&self.inner.dir, self.inner.store.options().topic.clone()) {
            Ok(l) => {
                *f = Some(l.clone());
                Ok(Some((l, true)))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The reader, brought up to date with what the writer committed (a follower refreshes).
    pub(crate) fn fresh_reader(&self) -> Result<Option<(Log, bool)>> {
        let r = self.reader()?;
        if let Some((log, true)) = &r {
            log.refresh()?;
        }
        Ok(r)
    }

    /// Names of this topic's consumer groups, sorted.
    pub fn group_names(&self) -> Result<Vec<String>> {
        super::names::list_names(&self.inner.store.groups_dir(&self.inner.name))
    }

    /// True if this handle holds the topic's writer (it has published, or run retention).
    pub fn is_writer(&self) -> bool {
        self.inner.writer.read().is_some()
    }

    /// Publish one event; returns its offset. Blocked pollers of every group of this topic
    /// in this process wake at once.
    pub fn publish(&self, record: impl AsRecord) -> Result<u64> {
        let log = self.writer()?;
        let offset = log.append(record)?;
        self.inner.signal.notify();
        Ok(offset)
    }

    /// Publish a batch atomically (all or nothing after a crash); returns its offsets. Takes
    /// anything [`AsRecord`]: [`Record`]s, owned buffers, `(key, payload)` pairs, records read
    /// from another log (see [`Log::append_batch`]).
    pub fn publish_batch<R: AsRecord>(&self, records: &[R]) -> Result<Range<u64>> {
        let log = self.writer()?;
        let r = log.append_batch(records)?;
        self.inner.signal.notify();
        Ok(r)
    }

    /// Flush every published event to stable storage (see [`Log::sync`]).
    pub fn sync(&self) -> Result<()> {
        match self.inner.writer.read().as_ref() {
            Some(w) => w.sync(),
            None => Ok(()),
        }
    }

    /// Append `records` to the stream `key` with an expected version (see
    /// [`Log::append_to_stream`]). Blocked pollers wake as for [`Topic::publish_batch`].
    pub fn append_to_stream(
        &self,
        key: &[u8],
        expected: ExpectedVersion,
        records: &[Record<'_>],
    ) -> Result<Range<u64>> {
        let log = self.writer()?;
        let r = log.append_to_stream(key, expected, records)?;
        self.inner.signal.notify();
        Ok(r)
    }

    /// The version of the stream `key` (see [`Log::stream_version`]); 0 while the topic
    /// does not exist.
    pub fn stream_version(&self, key: &[u8]) -> Result<u64> {
        match self.reader()? {
            Some((log, _)) => log.stream_version(key),
            None => Ok(0),
        }
    }

    /// Up to `max` events of the stream `key` from version `from` on (see
    /// [`Log::read_stream`]).
    pub fn read_stream(&self, key: &[u8], from: u64, max: usize) -> Result<Vec<StreamEvent>> {
        match self.reader()? {
            Some((log, _)) => log.read_stream(key, from, max),
            None => Ok(Vec::new()),
        }
    }

    /// Up to `max` events of the stream `key`, newest first (see
    /// [`Log::read_stream_backward`]).
    pub fn read_stream_backward(&self, key: &[u8], max: usize) -> Result<Vec<StreamEvent>> {
        match self.reader()? {
            Some((log, _)) => log.read_stream_backward(key, max),
            None => Ok(Vec::new()),
        }
    }

    /// Publish `state` as the new state of `key`, `before` filled from its latest state (see
    /// [`Log::publish_state`]). Blocked pollers wake as for [`Topic::publish_batch`].
    pub fn publish_state(&self, key: &[u8], state: &[u8]) -> Result<Published> {
        let r = self.writer()?.publish_state(key, state)?;
        self.inner.signal.notify();
        Ok(r)
    }

    /// Delete the state of `key` with a tombstone carrying its last state (see
    /// [`Log::delete_state`]). Blocked pollers wake as for [`Topic::publish_batch`].
    pub fn delete_state(&self, key: &[u8]) -> Result<Published> {
        let r = self.writer()?.delete_state(key)?;
        self.inner.signal.notify();
        Ok(r)
    }

    /// The latest state of `key` (see [`Log::latest_state`]); absent while the topic does not
    /// exist.
    pub fn latest_state(&self, key: &[u8]) -> Result<LatestState> {
        match self.reader()? {
            Some((log, _)) => log.latest_state(key),
            None => Ok(LatestState::Absent),
        }
    }

    /// Read the event at `offset`.
    pub fn read(&self, offset: u64) -> Result<OwnedRecord> {
        match self.reader()? {
            Some((log, _)) => log.read(offset),
            None => Err(Error::OffsetOutOfRange { offset, first: 0, next: 0 }),
        }
    }

    /// Copies of the events from `offset` to the current end.
    pub fn iter(&self, offset: u64) -> Result<Iter> {
        match self.fresh_reader()? {
            Some((log, _)) => Ok(log.iter(offset)),
            None => Err(Error::NotFound { path: self.inner.dir.clone() }),
        }
    }

    /// Offset of the first event still in the topic.
    pub fn first_offset(&self) -> u64 {
        match self.reader() {
            Ok(Some((log, _))) => log.first_offset(),
            _ => 0,
        }
    }

    /// Offset the next published event will get. For a follower this first picks up what
    /// the writer committed.
    pub fn next_offset(&self) -> u64 {
        match self.reader() {
            Ok(Some((log, follower))) => {
                if follower {
                    // A failed refresh leaves the last known end, which is still true.
                    let _ = log.refresh();
                }
                log.next_offset()
            }
            _ => 0,
        }
    }

    /// Facts about the topic's segments, oldest first.
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        match self.reader()? {
            Some((log, _)) => Ok(log.segments()),
            None => Ok(Vec::new()),
        }
    }

    /// Block until an event with offset `>= offset` exists or `timeout` passes; true if one
    /// does. Publishes in this process wake the caller at once, and so do publishes by a
    /// writer in another process, through the topic's wake file; where that is unavailable,
    /// a follower polls (50 µs rising to 1 ms, see `docs/consumers.md`).
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool> {
        let deadline = instant_after(Instant::now(), timeout);
        let mut nap = Duration::from_micros(50);
        loop {
            let watch = self.inner.signal.watch(!self.is_writer());
            let follower = match self.fresh_reader()? {
                Some((log, follower)) => {
                    if log.next_offset() > offset {
                        return Ok(true);
                    }
                    follower
                }
                None => true,
            };
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let poll = follower && !watch.wakes_across_processes();
            let until = if poll { deadline.min(instant_after(now, nap)) } else { deadline };
            nap = (nap * 2).min(Duration::from_millis(1));
            watch.wait_until(until);
        }
    }
}

impl Topic {
    /// `STORE/views/TOPIC`: where this topic's read views keep their files.
    pub(crate) fn views_dir(&self) -> PathBuf {
        self.inner.store.views_dir(&self.inner.name)
    }
}
