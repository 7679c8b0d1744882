//! Dead letters kept when their group is deleted ([`Topic::delete_group_keeping_dead_letters`]).
//!
//! The group's whole directory is renamed, in one durable step, to `#kept.<group>.<µs>`
//! beside the groups of its topic: a name no group can have, so it is not listed, holds back
//! no retention, and is never opened as a group. Its state log and snapshot stay with the
//! dead letters because they say which dead letters were purged and in which format each
//! record is; they are only read.

use std::path::PathBuf;

use super::dead_letters::{self, DeadLetter};
use super::lifecycle::{remove_deleting, DELETING_PREFIX};
use super::persist::GroupPaths;
use crate::error::{Error, IoContext, Result};
use crate::io::storage;
use crate::store::{validate_name, Topic};

/// Prefix of a directory of kept dead letters.
const KEPT_PREFIX: &str = "#kept.";

/// The dead letters of a deleted group, kept on request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeptDeadLetters {
    /// The group they came from.
    pub group: String,
    /// When the group was deleted (µs since the Unix epoch).
    pub deleted_us: u64,
    /// Their directory: `groups/<topic>/#kept.<group>.<deleted_us>` in the store.
    pub dir: PathBuf,
}

impl KeptDeadLetters {
    fn parse(dir: PathBuf) -> Option<KeptDeadLetters> {
        let name = dir.file_name()?.to_str()?;
        let (group, us) = name.strip_prefix(KEPT_PREFIX)?.rsplit_once('.')?;
        validate_name("group", group).ok()?;
        let deleted_us = us.parse().ok().filter(|_| us.bytes().all(|b| b.is_ascii_digit()))?;
        Some(KeptDeadLetters { group: group.to_owned(), deleted_us, dir })
    }
}

impl Topic {
    /// Delete the consumer group `name` like [`Topic::delete_group`], but keep its dead
    /// letters: they stay readable ([`Topic::read_kept_dead_letters`]) until discarded
    /// ([`Topic::discard_kept_dead_letters`]), and are no longer the group's (a group opened
    /// under the same name starts without them). The group's position, pending events and
    /// retries are gone, and it no longer holds back retention. One durable rename: after a
    /// crash the group is whole, or gone with its dead letters kept.
    pub fn delete_group_keeping_dead_letters(&self, name: &str) -> Result<KeptDeadLetters> {
        let deleted_us = crate::time::now_us();
        let dir = self.retire_group(name, &format!("{KEPT_PREFIX}{name}.{deleted_us}"))?;
        Ok(KeptDeadLetters { group: name.to_owned(), deleted_us, dir })
    }

    /// Every set of dead letters kept from a deleted group of this topic, oldest deletion
    /// first.
    pub fn kept_dead_letters(&self) -> Result<Vec<KeptDeadLetters>> {
        let groups_dir = self.store().groups_dir(self.name());
        let entries = match std::fs::read_dir(&groups_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(groups_dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            if let Some(k) = KeptDeadLetters::parse(entry.at(&groups_dir)?.path()) {
                out.push(k);
            }
        }
        out.sort_by(|a, b| (a.deleted_us, &a.group).cmp(&(b.deleted_us, &b.group)));
        Ok(out)
    }

    /// The kept dead letters, oldest first, with the status they had when their group was
    /// deleted (a redriven one never settled stays `Redriven`). Purged ones are not listed.
    pub fn read_kept_dead_letters(&self, kept: &KeptDeadLetters) -> Result<Vec<DeadLetter>> {
        dead_letters::persisted_in(&GroupPaths::in_dir(self.kept_dir(kept)?), self.store().options())
    }

    /// Remove kept dead letters for good (crash-safe, as a delete).
    pub fn discard_kept_dead_letters(&self, kept: &KeptDeadLetters) -> Result<()> {
        let dir = self.kept_dir(kept)?;
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let tomb = dir.with_file_name(format!("{DELETING_PREFIX}{name}"));
        storage::rename(&dir, &tomb)?;
        remove_deleting(&tomb)
    }

    /// The directory of `kept`, which must be one of this topic's.
    fn kept_dir(&self, kept: &KeptDeadLetters) -> Result<PathBuf> {
        validate_name("group", &kept.group)?;
        let dir = self.store().groups_dir(self.name()).join(format!("{KEPT_PREFIX}{}.{}", kept.group, kept.deleted_us));
        if !dir.is_dir() {
            return Err(Error::NotFound { path: dir });
        }
        Ok(dir)
    }
}
