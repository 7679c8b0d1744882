//! Erasure through a store topic: the topic's log (as [`Log::erase_with`]), then the dead
//! letters of every group of the topic whose event had the key. Group state (its state log and
//! its snapshots) holds offsets and delivery bookkeeping, never an event's key or payload, so
//! it is left as it is.

use super::{EraseOptions, EraseReport};
use crate::consumer::dead_letters;
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
    pub fn erase_with(&self, key: &[u8], opts: &EraseOptions) -> Result<EraseReport> {
        let log = self.writer()?;
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
