//! A store: one directory holding named topics, each a [`Log`], and the consumer groups that
//! read them (`src/consumer/`).
//!
//! ```text
//! DIR/
//!   topics/<topic>/                 the topic's log (see docs/format.md)
//!   groups/<topic>/<group>/state/   the group's state log (docs/format.md)
//!   groups/<topic>/<group>/snapshot the group's state snapshot
//!   groups/<topic>/<group>/dead-letters/  the group's dead-letter log
//! ```
//!
//! Names are checked by [`validate_name`] before any path is built from them, so nothing is
//! ever created outside the store directory.
//!
//! Writers and readers. A topic's log has one writer at a time (its `LOCK`). A [`Topic`]
//! handle takes the writer lazily, at the first publish (or retention run), so a process that
//! only consumes never takes it and another process can publish. Until then, reads go
//! through a read-only follower of the log.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::consumer::{self, Group, GroupInner, GroupLag, GroupOptions, RetentionPolicy, RetentionReport};
use crate::error::{Error, IoContext, Result};
use crate::io::fs as fsutil;
use crate::log::{Iter, Log, SegmentInfo};
use crate::options::Options;
use crate::record::{OwnedRecord, Record};
use crate::DeadLetter;

/// Longest topic or group name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

const TOPICS_DIR: &str = "topics";
const GROUPS_DIR: &str = "groups";

/// Check a topic or group name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`, `_` or
/// `-`, and not `.` or `..`. `kind` names what is being named in the error
/// ([`Error::InvalidName`]).
///
/// ```
/// use tidelog::validate_name;
/// assert!(validate_name("topic", "orders.eu-west_1").is_ok());
/// for bad in ["", ".", "..", "a/b", "a/../b", "a\0b", "café", &"x".repeat(201)] {
///     assert!(validate_name("topic", bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let err = |reason| Err(Error::InvalidName { kind, name: name.to_owned(), reason });
    if name.is_empty() {
        return err("must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return err("longer than 200 bytes");
    }
    if name == "." || name == ".." {
        return err("`.` and `..` are reserved");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return err("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

/// Options for [`Store::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Options of every topic log. Default: [`Options::default`] with 32 MiB segments.
    pub topic: Options,
    /// Segment size of each group's state log. Default 2 MiB.
    pub state_segment_bytes: u64,
    /// Segment size of each group's dead-letter log. Default 1 MiB.
    pub dead_letter_segment_bytes: u64,
    /// Create the store directory if it does not exist. Default true.
    pub create_if_missing: bool,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            topic: Options::default().segment_bytes(32 << 20),
            state_segment_bytes: 2 << 20,
            dead_letter_segment_bytes: 1 << 20,
            create_if_missing: true,
        }
    }
}

impl StoreOptions {
    /// Set [`StoreOptions::topic`].
    #[must_use]
    pub fn topic(mut self, opts: Options) -> StoreOptions {
        self.topic = opts;
        self
    }
    /// Set [`StoreOptions::state_segment_bytes`].
    #[must_use]
    pub fn state_segment_bytes(mut self, n: u64) -> StoreOptions {
        self.state_segment_bytes = n;
        self
    }
    /// Set [`StoreOptions::dead_letter_segment_bytes`].
    #[must_use]
    pub fn dead_letter_segment_bytes(mut self, n: u64) -> StoreOptions {
        self.dead_letter_segment_bytes = n;
        self
    }
    /// Set [`StoreOptions::create_if_missing`].
    #[must_use]
    pub fn create_if_missing(mut self, yes: bool) -> StoreOptions {
        self.create_if_missing = yes;
        self
    }

    pub(crate) fn state_options(&self, flush_every: Option<Duration>) -> Options {
        consumer::persist::state_log_options(self.state_segment_bytes, flush_every)
    }

    pub(crate) fn dead_letter_options(&self) -> Options {
        // Room for the event plus its `tidelog.dlq.*` headers.
        let max = self.topic.max_record_bytes.saturating_add(64 << 10).min(crate::MAX_SEGMENT_BYTES / 2);
        Options::default()
            .segment_bytes(self.dead_letter_segment_bytes)
            .max_record_bytes(max)
            .durability(crate::Durability::Always)
    }
}

/// Wakes blocked pollers: bumped on every in-process publish and on every group change that
/// can make an event deliverable (nack, redrive, a key released, capacity freed). A waiter
/// reads the generation *before* checking for work, then sleeps only while it is unchanged,
/// so no wake-up is lost between the check and the sleep.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    generation: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Signal {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn notify(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Pairs with the SeqCst increment in `wait_until`: either the waiter sees the new
        // generation, or we see the waiter.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Sleep until the generation differs from `seen` or `deadline` passes.
    pub(crate) fn wait_until(&self, seen: u64, deadline: Instant) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock.lock();
        while self.generation.load(Ordering::SeqCst) == seen {
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        drop(g);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) struct StoreShared {
    pub(crate) dir: PathBuf,
    pub(crate) opts: StoreOptions,
    topics: Mutex<HashMap<String, Weak<TopicInner>>>,
    pub(crate) groups: Mutex<HashMap<(String, String), Weak<GroupInner>>>,
}

impl StoreShared {
    pub(crate) fn groups_root(&self) -> PathBuf {
        self.dir.join(GROUPS_DIR)
    }
}

/// A store of named topics and their consumer groups. Cheap to clone, `Send + Sync`.
///
/// ```
/// use std::time::Duration;
/// use tidelog::{GroupOptions, Record, Store, StoreOptions};
/// # fn main() -> tidelog::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let store = Store::open(tmp.path().join("store"), StoreOptions::default())?;
/// let likes = store.topic("likes")?;
/// let counter = likes.group("counter", GroupOptions::default())?;
/// likes.publish(Record::new(b"post-1").key(b"post-1"))?;
/// for d in counter.poll(100, Duration::from_secs(1))? {
///     assert_eq!(d.payload(), b"post-1");
///     counter.ack(&d)?;
/// }
/// assert_eq!(counter.lag()?.committed, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Store {
    shared: Arc<StoreShared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.shared.dir).finish()
    }
}

fn list_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.at(dir)?;
        if !entry.file_type().at(dir)?.is_dir() {
            continue;
        }
        if let Some(name) = entry.file_name().to_str() {
            if validate_name("topic", name).is_ok() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).at(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsutil::fsync_dir(parent)?;
        }
    }
    Ok(())
}

impl Store {
    /// Open the store in `dir`, creating it if missing (unless
    /// [`StoreOptions::create_if_missing`] is false: then a missing directory is
    /// [`Error::NotFound`]). Opening takes no lock: any number of processes may open the same
    /// store; topics and groups have their own single-writer locks.
    pub fn open(dir: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        opts.topic.validate()?;
        opts.state_options(None).validate()?;
        opts.dead_letter_options().validate()?;
        let dir = dir.as_ref().to_path_buf();
        match std::fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => return Err(Error::NotADirectory { path: dir }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !opts.create_if_missing => {
                return Err(Error::NotFound { path: dir });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ensure_dir(&dir)?,
            Err(e) => return Err(Error::io(&dir, e)),
        }
        if opts.create_if_missing {
            ensure_dir(&dir.join(TOPICS_DIR))?;
            ensure_dir(&dir.join(GROUPS_DIR))?;
        }
        Ok(Store {
            shared: Arc::new(StoreShared {
                dir,
                opts,
                topics: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.shared.opts
    }

    /// The topic `name`, created (empty) if it does not exist. Handles to the same topic in
    /// one store share their writer and wake-ups.
    pub fn topic(&self, name: &str) -> Result<Topic> {
        self.topic_impl(name, true)
    }

    /// The existing topic `name`; [`Error::NotFound`] if it does not exist. Creates nothing.
    pub fn open_topic(&self, name: &str) -> Result<Topic> {
        self.topic_impl(name, false)
    }

    fn topic_impl(&self, name: &str, create: bool) -> Result<Topic> {
        validate_name("topic", name)?;
        let mut topics = self.shared.topics.lock();
        if let Some(inner) = topics.get(name).and_then(Weak::upgrade) {
            return Ok(Topic { inner });
        }
        let dir = self.shared.dir.join(TOPICS_DIR).join(name);
        match Log::open_read_only(&dir, self.shared.opts.topic.clone()) {
            Ok(_) => {}
            Err(Error::NotFound { .. }) if create => {
                ensure_dir(&self.shared.dir.join(TOPICS_DIR))?;
                // Create the log, then let go of its writer lock: a process that only consumes
                // must not keep a publisher in another process out.
                match Log::open(&dir, self.shared.opts.topic.clone()) {
                    Ok(log) => log.close()?,
                    // Someone else is creating it right now.
                    Err(Error::Locked { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        let inner = Arc::new(TopicInner {
            store: self.shared.clone(),
            name: name.to_owned(),
            dir,
            writer: RwLock::new(None),
            follower: Mutex::new(None),
            signal: Signal::default(),
        });
        topics.insert(name.to_owned(), Arc::downgrade(&inner));
        Ok(Topic { inner })
    }

    /// Names of the topics in the store, sorted.
    pub fn topic_names(&self) -> Result<Vec<String>> {
        list_names(&self.shared.dir.join(TOPICS_DIR))
    }

    /// Names of the consumer groups of `topic`, sorted.
    pub fn group_names(&self, topic: &str) -> Result<Vec<String>> {
        validate_name("topic", topic)?;
        list_names(&self.shared.groups_root().join(topic))
    }

    /// Lag of every group of every topic. Groups open in this process report their live
    /// state; the others (closed, or open in another process) what their persisted state
    /// says, read without taking their lock.
    pub fn lag(&self) -> Result<Vec<GroupLag>> {
        let mut out = Vec::new();
        for t in self.topic_names()? {
            for g in self.group_names(&t)? {
                out.push(self.group_lag(&t, &g)?);
            }
        }
        Ok(out)
    }

    /// Lag of one group (see [`Store::lag`]).
    pub fn group_lag(&self, topic: &str, group: &str) -> Result<GroupLag> {
        let t = self.open_topic(topic)?;
        validate_name("group", group)?;
        if let Some(g) = t.live_group(group) {
            return g.lag();
        }
        consumer::persisted_lag(&t, group)
    }

    /// The dead letters of a group, read without taking its lock (see
    /// [`Group::dead_letters`]).
    pub fn dead_letters(&self, topic: &str, group: &str) -> Result<Vec<DeadLetter>> {
        let t = self.open_topic(topic)?;
        validate_name("group", group)?;
        if let Some(g) = t.live_group(group) {
            return g.dead_letters();
        }
        consumer::persisted_dead_letters(&t, group)
    }

    /// Apply `policy` to every topic (see [`Topic::apply_retention`]).
    pub fn apply_retention(&self, policy: &RetentionPolicy) -> Result<Vec<RetentionReport>> {
        let mut out = Vec::new();
        for t in self.topic_names()? {
            out.push(self.open_topic(&t)?.apply_retention(policy)?);
        }
        Ok(out)
    }
}

pub(crate) struct TopicInner {
    pub(crate) store: Arc<StoreShared>,
    pub(crate) name: String,
    dir: PathBuf,
    writer: RwLock<Option<Log>>,
    follower: Mutex<Option<Log>>,
    pub(crate) signal: Signal,
}

/// A named topic: a log of events that any number of consumer groups read independently.
/// Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Topic {
    pub(crate) inner: Arc<TopicInner>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.inner.name).field("next_offset", &self.next_offset()).finish()
    }
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic's log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The writable log, opened at first use. [`Error::Locked`] if another process (or
    /// another store in this process) publishes to this topic.
    fn writer(&self) -> Result<Log> {
        if let Some(w) = self.inner.writer.read().as_ref() {
            return Ok(w.clone());
        }
        let mut g = self.inner.writer.write();
        if let Some(w) = g.as_ref() {
            return Ok(w.clone());
        }
        let log = Log::open(&self.inner.dir, self.inner.store.opts.topic.clone())?;
        *g = Some(log.clone());
        Ok(log)
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
        match Log::open_read_only(&self.inner.dir, self.inner.store.opts.topic.clone()) {
            Ok(l) => {
                *f = Some(l.clone());
                Ok(Some((l, true)))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True if this handle holds the topic's writer (it has published, or run retention).
    pub fn is_writer(&self) -> bool {
        self.inner.writer.read().is_some()
    }

    /// Publish one event; returns its offset. Blocked pollers of every group of this topic
    /// in this process wake at once.
    pub fn publish(&self, record: Record<'_>) -> Result<u64> {
        Ok(self.publish_batch(std::slice::from_ref(&record))?.start)
    }

    /// Publish a batch atomically (all or nothing after a crash); returns its offsets.
    pub fn publish_batch(&self, records: &[Record<'_>]) -> Result<Range<u64>> {
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

    /// Read the event at `offset`.
    pub fn read(&self, offset: u64) -> Result<OwnedRecord> {
        match self.reader()? {
            Some((log, _)) => log.read(offset),
            None => Err(Error::OffsetOutOfRange { offset, first: 0, next: 0 }),
        }
    }

    /// Copies of the events from `offset` to the current end.
    pub fn iter(&self, offset: u64) -> Result<Iter> {
        match self.reader()? {
            Some((log, follower)) => {
                if follower {
                    log.refresh()?;
                }
                Ok(log.iter(offset))
            }
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
    /// does. Publishes in this process wake the caller at once; a follower of a writer in
    /// another process polls (50 µs rising to 1 ms, see `docs/consumers.md`).
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool> {
        let deadline = consumer::instant_after(Instant::now(), timeout);
        let mut nap = Duration::from_micros(50);
        loop {
            let seen = self.inner.signal.generation();
            let follower = match self.reader()? {
                Some((log, follower)) => {
                    if follower {
                        log.refresh()?;
                    }
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
            let until = if follower { deadline.min(consumer::instant_after(now, nap)) } else { deadline };
            nap = (nap * 2).min(Duration::from_millis(1));
            self.inner.signal.wait_until(seen, until);
        }
    }

    /// Open the consumer group `name` of this topic, creating it if new. In one process, all
    /// handles to a group share one state (consumers share its work); opening a group that is
    /// already open in this process returns it, with the options it was first opened with.
    /// [`Error::Locked`] if another process has the group open.
    pub fn group(&self, name: &str, opts: GroupOptions) -> Result<Group> {
        validate_name("group", name)?;
        opts.validate()?;
        let key = (self.inner.name.clone(), name.to_owned());
        let mut groups = self.inner.store.groups.lock();
        if let Some(inner) = groups.get(&key).and_then(Weak::upgrade) {
            if !inner.is_closed() {
                return Ok(Group { inner });
            }
        }
        let inner = GroupInner::open(self.clone(), name, opts)?;
        groups.insert(key, Arc::downgrade(&inner));
        Ok(Group { inner })
    }

    /// The group `name` if it is open in this process.
    pub(crate) fn live_group(&self, name: &str) -> Option<Group> {
        let key = (self.inner.name.clone(), name.to_owned());
        let groups = self.inner.store.groups.lock();
        let inner = groups.get(&key).and_then(Weak::upgrade)?;
        (!inner.is_closed()).then_some(Group { inner })
    }

    /// Names of this topic's consumer groups, sorted.
    pub fn group_names(&self) -> Result<Vec<String>> {
        list_names(&self.inner.store.groups_root().join(&self.inner.name))
    }

    /// The writable log, for retention.
    pub(crate) fn writer_for_retention(&self) -> Result<Log> {
        self.writer()
    }

    pub(crate) fn store(&self) -> &Arc<StoreShared> {
        &self.inner.store
    }
}
