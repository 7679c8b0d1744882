//! A group's life outside an open [`crate::Group`]: listing the groups of a topic, deleting
//! a group, and resetting a group or purging its dead letters while no process has it open.
//!
//! Deleting is crash-safe: the group's directory is renamed, in one step, to a name no group
//! can have (`#deleting.<group>`; `#` is not allowed in names), the parent directory is
//! fsynced, and only then are the files removed. A crash before the rename leaves the group
//! whole; after it the group is gone (it is not listed, and no longer holds back retention),
//! and the leftover directory is removed by the next delete in the topic.

use std::path::{Path, PathBuf};

use super::group::Group;
use super::lag::{self, GroupLag};
use super::options::{GroupOptions, StartFrom};
use super::persist::{self, GroupPaths};
use super::position;
use crate::error::{Error, IoContext, Result};
use crate::io::storage;
use crate::io::DirLock;
use crate::store::{validate_name, Store, Topic};

/// Prefix of a group directory being deleted.
pub(super) const DELETING_PREFIX: &str = "#deleting.";

impl Topic {
    /// [`Error::GroupOpen`] for group `name`.
    fn group_open(&self, name: &str, paths: &GroupPaths) -> Error {
        Error::GroupOpen { group: format!("{}/{name}", self.name()), path: paths.dir.clone() }
    }

    /// [`Error::GroupOpen`] if group `name` is open in this process.
    fn check_closed_here(&self, name: &str, paths: &GroupPaths) -> Result<()> {
        match self.live_group(name) {
            Some(_) => Err(self.group_open(name, paths)),
            None => Ok(()),
        }
    }

    /// Paths of the existing group `name`; [`Error::NotFound`] if it does not exist.
    fn existing_group_paths(&self, name: &str) -> Result<GroupPaths> {
        validate_name("group", name)?;
        let paths = GroupPaths::new(self, name);
        if !paths.dir.is_dir() {
            return Err(Error::NotFound { path: paths.dir });
        }
        Ok(paths)
    }

    /// Open the existing group `name`, which must not be open anywhere, to change it.
    fn open_closed_group(&self, name: &str) -> Result<Group> {
        let paths = self.existing_group_paths(name)?;
        self.check_closed_here(name, &paths)?;
        self.group(name, GroupOptions::default()).map_err(|e| match e {
            Error::Locked { .. } => self.group_open(name, &paths),
            e => e,
        })
    }

    /// Delete the consumer group `name`: its state, snapshots and dead letters. Refused with
    /// [`Error::GroupOpen`] while the group is open (in this process or another: its lock is
    /// taken for the delete). Afterwards the group no longer holds back retention, and a group
    /// opened under the same name is a new group. Crash-safe: the group is either whole or
    /// gone (see the module documentation). [`Topic::delete_group_keeping_dead_letters`]
    /// keeps the dead letters.
    pub fn delete_group(&self, name: &str) -> Result<()> {
        let tomb = self.retire_group(name, &format!("{DELETING_PREFIX}{name}"))?;
        remove_deleting(&tomb)
    }

    /// Take group `name` out of the topic in one durable step: with its lock held, rename
    /// its directory to `new_name` (a name no group can have) in the same parent and fsync
    /// the parent. Returns the new path. Leftovers of interrupted deletes go first.
    pub(super) fn retire_group(&self, name: &str, new_name: &str) -> Result<PathBuf> {
        let paths = self.existing_group_paths(name)?;
        self.check_closed_here(name, &paths)?;
        let groups_dir = self.store().groups_dir(self.name());
        remove_leftovers(&groups_dir)?;
        let tomb = groups_dir.join(new_name);
        {
            // The state log's lock is the group's lock: held across the rename, so no process
            // opens the group meanwhile. A group without a state log yet has nobody to lock.
            let _lock = match paths.state.is_dir() {
                true => Some(DirLock::acquire(&paths.state).map_err(|e| match e {
                    Error::Locked { .. } => self.group_open(name, &paths),
                    e => e,
                })?),
                false => None,
            };
            storage::rename(&paths.dir, &tomb)?;
            // IMPORTANT: the rename is durable before any file goes: after a crash the group
            // is whole or gone, never half-deleted.
            storage::fsync_dir(&groups_dir)?;
        }
        Ok(tomb)
    }

    /// Every group of this topic with its position and lag (see [`crate::Store::lag`]).
    pub fn groups(&self) -> Result<Vec<GroupLag>> {
        self.group_names()?.iter().map(|g| self.group_lag(g)).collect()
    }

    /// Reset group `name`, which no process has open, to `to` (see [`Group::reset`]);
    /// returns the offset it resolved to. [`Error::GroupOpen`] while it is open: an open
    /// group is reset through its handle.
    pub fn reset_group(&self, name: &str, to: StartFrom) -> Result<u64> {
        let g = self.open_closed_group(name)?;
        let at = g.reset(to);
        let closed = g.close();
        let at = at?;
        closed.map(|()| at)
    }

    /// What [`Topic::reset_group`] would do, changing nothing: the group's lag as it would be
    /// right after the reset (read from its persisted state without its lock).
    pub fn preview_reset(&self, name: &str, to: StartFrom) -> Result<GroupLag> {
        let paths = self.existing_group_paths(name)?;
        let opts = self.store().options();
        let mut s = persist::load_view(&paths.dir, &persist::state_log_options(opts, None))?;
        let reader = self.fresh_reader()?;
        let (first, end) = match &reader {
            Some((log, _)) => (log.first_offset(), log.next_offset()),
            None => (0, 0),
        };
        s.reset(position::resolve(reader.as_ref().map(|(log, _)| log), to)?);
        let unrecorded = super::dead_letters::next_offset(&paths, opts)?.saturating_sub(s.dlq_next);
        Ok(GroupLag::of(
            self.name(),
            name,
            &s,
            first,
            end,
            lag::Source::Persisted { unrecorded_dead_letters: unrecorded },
        ))
    }

    /// Purge dead letters of group `name`, which no process has open (see
    /// [`Group::purge_dead_letters`]). [`Error::GroupOpen`] while it is open.
    pub fn purge_dead_letters(&self, name: &str, which: super::PurgeDeadLetters) -> Result<super::PurgeReport> {
        let g = self.open_closed_group(name)?;
        let report = g.purge_dead_letters(which);
        let closed = g.close();
        let report = report?;
        closed.map(|()| report)
    }
}

impl Store {
    /// Delete a consumer group (see [`Topic::delete_group`]).
    pub fn delete_group(&self, topic: &str, group: &str) -> Result<()> {
        self.open_topic(topic)?.delete_group(group)
    }
}

/// Remove `dir`, whose name starts with [`DELETING_PREFIX`] (so that a crash midway leaves
/// what the next delete removes), and make that durable.
pub(super) fn remove_deleting(dir: &Path) -> Result<()> {
    remove_tree(dir)?;
    match dir.parent() {
        Some(parent) => storage::fsync_dir(parent),
        None => Ok(()),
    }
}

/// Remove what deletes interrupted by a crash left in `groups_dir`.
fn remove_leftovers(groups_dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(groups_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(groups_dir, e)),
    };
    for entry in entries {
        let entry = entry.at(groups_dir)?;
        if entry.file_name().to_str().is_some_and(|n| n.starts_with(DELETING_PREFIX)) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// Remove the directory tree at `dir`, its files through the storage seam.
fn remove_tree(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let path = entry.path();
        if entry.file_type().at(&path)?.is_dir() {
            remove_tree(&path)?;
        } else {
            storage::remove(&path)?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}
