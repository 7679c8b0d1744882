//! A store: one directory holding named topics, each a [`Log`]. Consumer groups
//! (`src/consumer/`) are built on top of it; the store knows where their files go, not what
//! is in them.
//!
//! ```text
//! DIR/
//!   topics/<topic>/                 the topic's log (see docs/format.md)
//!   groups/<topic>/<group>/         one consumer group's files (src/consumer/)
//! ```
//!
//! Names are checked by [`validate_name`] before any path is built from them, so nothing is
//! ever created outside the store directory.
//!
//! Writers and readers. A topic's log has one writer at a time (its `LOCK`). A [`Topic`]
//! handle takes the writer lazily, at the first publish (or retention run), so a process that
//! only consumes never takes it and another process can publish. Until then, reads go
//! through a read-only follower of the log.

mod attached;
mod backup;
mod delete;
mod names;
mod options;
mod signal;
mod topic;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::Log;

pub use backup::StoreBackupReport;
pub(crate) use names::ensure_dir;
pub(crate) use names::list_names;
pub use names::{validate_name, MAX_NAME_LEN};
pub use options::StoreOptions;
pub(crate) use signal::instant_after;
pub use topic::Topic;
use topic::TopicInner;

const TOPICS_DIR: &str = "topics";
const GROUPS_DIR: &str = "groups";
const VIEWS_DIR: &str = "views";

pub(crate) struct StoreShared {
    dir: PathBuf,
    opts: StoreOptions,
    topics: Mutex<HashMap<String, Weak<TopicInner>>>,
}

impl StoreShared {
    pub(crate) fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// `DIR/groups/<topic>`: where the groups of `topic` keep their files.
    pub(crate) fn groups_dir(&self, topic: &str) -> PathBuf {
        self.dir.join(GROUPS_DIR).join(topic)
    }

    /// `DIR/views/<topic>`: where the read views of `topic` keep their files.
    pub(crate) fn views_dir(&self, topic: &str) -> PathBuf {
        self.dir.join(VIEWS_DIR).join(topic)
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

impl Store {
    /// Open the store in `dir`, creating it if missing (unless
    /// [`StoreOptions::create_if_missing`] is false: then a missing directory is
    /// [`Error::NotFound`]). Opening takes no lock: any number of processes may open the same
    /// store; topics and groups have their own single-writer locks.
    pub fn open(dir: impl AsRef<Path>, opts: StoreOptions) -> Result<Store> {
        opts.validate()?;
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
        Ok(Store { shared: Arc::new(StoreShared { dir, opts, topics: Mutex::new(HashMap::new()) }) })
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
            return Ok(Topic::from_inner(inner));
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
        let topic = Topic::new(self.shared.clone(), name, dir);
        topics.insert(name.to_owned(), topic.downgrade());
        Ok(topic)
    }

    /// Names of the topics in the store, sorted.
    pub fn topic_names(&self) -> Result<Vec<String>> {
        names::list_names(&self.shared.dir.join(TOPICS_DIR))
    }

    /// Names of the consumer groups of `topic`, sorted.
    pub fn group_names(&self, topic: &str) -> Result<Vec<String>> {
        validate_name("topic", topic)?;
        names::list_names(&self.shared.groups_dir(topic))
    }
}

impl Store {
    /// `DIR/views/<topic>`: where the read views of `topic` keep their files (see
    /// [`Views::for_topic`](crate::Views::for_topic)).
    pub fn views_dir(&self, topic: &str) -> PathBuf {
        self.shared.views_dir(topic)
    }
}
