//! Deleting a topic with its consumer groups, crash-safely.
//!
//! A topic is removed in steps that each leave the store consistent:
//!
//! 1. take the writer lock of the topic's log and of every log under its groups' directory
//!    (a group's state log holds the group's lock): if anyone holds one, nothing changes and
//!    the answer is [`Error::TopicInUse`];
//! 2. rename `groups/<topic>` to the tombstone `groups/<topic>~deleted`, fsync `groups/`,
//!    then the same for the topic's read views, `views/<topic>`;
//! 3. rename `topics/<topic>` to `topics/<topic>~deleted`, fsync `topics/`: from here on the
//!    topic does not exist;
//! 4. remove the tombstones' contents.
//!
//! `~` is not allowed in names ([`validate_name`]), so a tombstone is never listed as a topic
//! or a group, and a topic created again under the same name starts empty. A crash after
//! step 2 leaves the topic without its groups or views (as if they had been deleted first), never
//! groups or views without their topic that a new topic of the same name would inherit. Tombstones
//! a crash left behind are removed by the next deletion, before it renames anything.

use std::path::{Path, PathBuf};

use super::{validate_name, Store, GROUPS_DIR, TOPICS_DIR, VIEWS_DIR};
use crate::error::{Error, Result};
use crate::io::{storage, DirLock};

/// The suffix of a tombstone: what a deletion renames a directory to before removing it.
const TOMBSTONE_SUFFIX: &str = "~deleted";

impl Store {
    /// Delete topic `name`: its log and every consumer group of it, crash-safely (see
    /// `docs/format.md`, "Deleting a topic"). [`Error::NotFound`] if there is no such topic;
    /// [`Error::TopicInUse`] if a writer of the topic or an open consumer group of it holds a
    /// lock, in this process or another (nothing is changed then). Handles to the topic that
    /// this store gave out stop seeing it.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        validate_name("topic", name)?;
        let topic_dir = self.shared.dir.join(TOPICS_DIR).join(name);
        if !topic_dir.is_dir() {
            return Err(Error::NotFound { path: topic_dir });
        }
        let groups_dir = self.shared.groups_dir(name);
        let _locks = lock_all(name, &topic_dir, &groups_dir)?;

        sweep_tombstones(&self.shared.dir.join(GROUPS_DIR))?;
        sweep_tombstones(&self.shared.dir.join(TOPICS_DIR))?;
        sweep_tombstones(&self.shared.dir.join(VIEWS_DIR))?;
        // The read views go with the topic (they are derived from it); a view kept current
        // holds the topic's writer, so the locks above already refuse a deletion under one.
        let views_dir = self.shared.views_dir(name);
        let mut tombstones = Vec::new();
        for dir in [&groups_dir, &views_dir, &topic_dir] {
            if dir.is_dir() {
                let tomb = tombstone(dir);
                storage::rename(dir, &tomb)?;
                if let Some(parent) = dir.parent() {
                    storage::fsync_dir(parent)?;
                }
                tombstones.push(tomb);
            }
        }
        self.shared.topics.lock().remove(name);
        drop(_locks);
        for tomb in &tombstones {
            remove_tree(tomb)?;
        }
        Ok(())
    }
}

/// `dir` with the tombstone suffix.
fn tombstone(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(TOMBSTONE_SUFFIX);
    PathBuf::from(s)
}

/// The writer locks of the topic's log and of every log under its groups' directory (up to
/// two levels down: `<group>/` and `<group>/<log>/`), or [`Error::TopicInUse`].
fn lock_all(topic: &str, topic_dir: &Path, groups_dir: &Path) -> Result<Vec<DirLock>> {
    let mut dirs = vec![topic_dir.to_path_buf()];
    for group in subdirs(groups_dir)? {
        dirs.extend(subdirs(&group)?.into_iter().filter(|d| d.join("LOCK").exists()));
        if group.join("LOCK").exists() {
            dirs.push(group);
        }
    }
    let mut locks = Vec::with_capacity(dirs.len());
    for dir in dirs {
        match DirLock::acquire(&dir) {
            Ok(l) => locks.push(l),
            Err(Error::Locked { path }) => {
                let holder = match path.strip_prefix(groups_dir) {
                    Ok(rel) => format!(
                        "consumer group {}",
                        rel.iter().next().map_or_else(String::new, |g| g.to_string_lossy().into_owned())
                    ),
                    Err(_) => "a writer".to_owned(),
                };
                return Err(Error::TopicInUse { topic: topic.to_owned(), holder, path });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(locks)
}

/// The subdirectories of `dir`; none if it does not exist.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_type().map_err(|e| Error::io(entry.path(), e))?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Remove the tombstones a crash left in `dir`.
fn sweep_tombstones(dir: &Path) -> Result<()> {
    for sub in subdirs(dir)? {
        if sub.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(TOMBSTONE_SUFFIX)) {
            remove_tree(&sub)?;
        }
    }
    Ok(())
}

/// Remove `dir` and everything in it; already gone is fine (another deletion swept it).
fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GroupOptions, Record, StoreOptions};

    fn store(dir: &Path) -> Store {
        Store::open(dir, StoreOptions::default().topic(crate::Options::default().segment_bytes(64 << 10))).unwrap()
    }

    #[test]
    fn a_deleted_topic_and_its_groups_are_gone_and_the_name_starts_empty_again() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let t = s.topic("orders").unwrap();
        t.publish(Record::new(b"x")).unwrap();
        t.group("billing", GroupOptions::default()).unwrap().close().unwrap();
        s.topic("other").unwrap();
        // A read view's files (derived from the topic) go with it.
        let views = s.views_dir("orders").join("revenue");
        std::fs::create_dir_all(&views).unwrap();
        std::fs::write(views.join("view.def"), b"x").unwrap();
        drop(t);
        // The writer is held by the handle the store caches until every clone is dropped.
        s.delete_topic("orders").unwrap();
        assert!(
            !s.views_dir("orders").exists()
                && s.views_dir("orders").parent().unwrap().read_dir().unwrap().next().is_none()
        );
        assert_eq!(s.topic_names().unwrap(), ["other"]);
        assert!(s.group_names("orders").unwrap().is_empty());
        assert!(!tmp.path().join("topics/orders~deleted").exists());
        assert!(matches!(s.open_topic("orders"), Err(Error::NotFound { .. })));
        let again = s.topic("orders").unwrap();
        assert_eq!(again.next_offset(), 0);
        assert!(again.group_names().unwrap().is_empty());
    }

    #[test]
    fn a_topic_with_a_writer_or_an_open_group_is_not_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let t = s.topic("orders").unwrap();
        t.publish(Record::new(b"x")).unwrap();
        let err = s.delete_topic("orders").unwrap_err();
        assert!(matches!(&err, Error::TopicInUse { holder, .. } if holder == "a writer"), "{err}");
        drop(t);
        let g = s.topic("orders").unwrap().group("billing", GroupOptions::default()).unwrap();
        let err = s.delete_topic("orders").unwrap_err();
        assert!(matches!(&err, Error::TopicInUse { holder, .. } if holder == "consumer group billing"), "{err}");
        assert_eq!(s.topic_names().unwrap(), ["orders"], "nothing changed");
        g.close().unwrap();
        s.delete_topic("orders").unwrap();
        assert!(matches!(s.delete_topic("orders"), Err(Error::NotFound { .. })));
    }

    /// A crash between the renames and the removal leaves tombstones; they are never listed,
    /// and the next deletion removes them first.
    #[test]
    fn tombstones_left_by_a_crash_are_not_topics_and_are_swept_by_the_next_deletion() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        s.topic("a").unwrap();
        s.topic("b").unwrap();
        let left = tmp.path().join("topics").join("a~deleted");
        std::fs::rename(tmp.path().join("topics/a"), &left).unwrap();
        assert_eq!(s.topic_names().unwrap(), ["b"]);
        s.delete_topic("b").unwrap();
        assert!(!left.exists());
        assert!(s.topic_names().unwrap().is_empty());
    }
}
