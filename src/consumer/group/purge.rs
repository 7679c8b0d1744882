//! Purging a group's dead letters: the purge mark is recorded (and made durable) first, then
//! the dead-letter log's segments wholly below it are removed.

use super::GroupInner;
use crate::consumer::dead_letters;
use crate::consumer::dead_letters::purge::{self, PurgeDeadLetters, PurgeReport};
use crate::consumer::now_us;
use crate::consumer::persist::StateEvent;
use crate::consumer::state::ItemId;
use crate::error::Result;
use crate::Log;

impl GroupInner {
    pub(super) fn purge_dead_letters(&self, which: PurgeDeadLetters) -> Result<PurgeReport> {
        self.check_usable()?;
        let Some(dl) = self.dead_letter_reader()? else {
            return Ok(PurgeReport { purged: 0, purged_below: 0, segments_removed: 0 });
        };
        let wanted = purge::target(&dl, which, now_us())?;
        let first = dl.first_offset();
        drop(dl);
        // Under the group's lock throughout: dead-lettering opens the dead-letter log's
        // writer under it too, so the two never contend for that log's lock, and no redrive
        // starts meanwhile.
        let mut core = self.core.lock();
        let s = &core.state;
        // A redriven dead letter not settled yet is read from the dead-letter log when it is
        // delivered: the mark stops below the oldest one.
        let redriving = s.entries.keys().find_map(|id| match id {
            ItemId::Redrive(d) => Some(*d),
            ItemId::Topic(_) => None,
        });
        let below = wanted.min(redriving.unwrap_or(u64::MAX));
        let before = s.dlq_purged_below.max(first);
        if below <= before {
            return Ok(PurgeReport { purged: 0, purged_below: s.dlq_purged_below, segments_removed: 0 });
        }
        core.state.purge_dead_letters(below);
        self.write_events(&mut core, &[StateEvent::DeadLettersPurged { below }])?;
        // IMPORTANT: the mark is durable before any record below it is removed, whatever the
        // ack mode: a record must never be gone while a state the disk could still hold says
        // it is parked.
        self.sync()?;
        let writer = Log::open(&self.paths.dead_letters, dead_letters::log_options(self.topic.store().options()))?;
        let removed = writer.remove_segments_before(below);
        let closed = writer.close();
        let segments_removed = removed?;
        closed?;
        Ok(PurgeReport { purged: below - before, purged_below: below, segments_removed })
    }

    /// Flush the state log; a failure poisons the group.
    pub(super) fn sync(&self) -> Result<()> {
        self.state_log.flush().inspect_err(|_| self.poisoned.store(true, std::sync::atomic::Ordering::Release))
    }
}
