//! Erasure through a store topic: the topic's log (as [`Log::erase_with`], with the state
//! directories of the topic's read views added to the snapshot directories to clean), then
//! the dead letters of every group of the topic whose event had the key. Group state (its state log and
//! its snapshots) holds offsets and delivery bookkeeping, never an event's key or payload, so
//! it is left as it is.

use super::dead_letters;
use super::{EraseOptions, EraseReport};
use crate::error::Result;
use crate::store::Topic;

impl Topic {
    /// Erase every record of `key` appended before the call from the topic (see
    /// `docs/erasure.md`): its log (all
    /// segments, the active one included, and their index files), the dead letters of its
    /// groups, and an erasure marker appended. Takes the topic's writer. Every group of the
    /// topic must be closed ([`crate::Error::Locked`] otherwise: its dead-letter log is in use).
    pub fn erase(&self, key: &[u8]) -> Result<EraseReport> {
        self.erase_with(key, &EraseOptions::default())
    }

    /// [`Topic::erase`] with options (snapshot directories of projections of the topic).
    /// The topic's read views (`Store::views_dir`) are cleaned too: their snapshots past the
    /// first erased record are removed, and each rebuilds what it lost from the log when it
    /// is next opened. A view open in any process holds its state's lock, and the erasure is
    /// refused ([`crate::Error::Locked`], nothing changed) until it is closed.
    pub fn erase_with(&self, key: &[u8], opts: &EraseOptions) -> Result<EraseReport> {
        let log = self.writer()?;
        let mut opts = opts.clone();
        opts.snapshot_dirs.extend(crate::view::state_dirs(&self.views_dir())?);
        let opts = &opts;
        // Refuse before anything changes if a projection or view holds one of them (the log's
        // erasure takes these locks again, after the dead letters).
        drop(super::snapshots::lock_all(&opts.snapshot_dirs)?);
        let mut dead = 0;
        // The dead letters first: the group must be closed, and a failure here leaves the
        // topic's records for a retry rather than half the erasure done.
        for group in self.group_names()? {
            dead += dead_letters::erase_key(self, &group, key)?;
        }
        let mut report = log.erase_with(key, opts)?;
        report.dead_letters_erased = dead;
        Ok(report)
    }
}
