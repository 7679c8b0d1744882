//! Purging dead letters: which ones a purge names. Dead letters are a log, purged from its
//! oldest end: the group's state records a mark ("purged below"), and whole segments below
//! it are then removed (retention of the dead-letter log).

use std::time::Duration;

use crate::error::Result;
use crate::Log;

/// Which dead letters [`crate::Group::purge_dead_letters`] removes. Always the oldest ones:
/// a purge moves a mark forward, so a dead letter is never purged while an older one stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PurgeDeadLetters {
    /// Every dead letter.
    All,
    /// Dead letters written to the dead-letter log more than this long ago.
    OlderThan(Duration),
    /// Dead letters written to the dead-letter log before this time (µs since the Unix
    /// epoch; compare [`crate::DeadLetter::dead_lettered_us`]).
    WrittenBefore(u64),
    /// All but the newest this many.
    KeepNewest(u64),
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Dead letters purged by this call.
    pub purged: u64,
    /// Every dead letter below this dead-letter offset is purged now.
    pub purged_below: u64,
    /// Dead-letter log segments removed (the rest of the purged records stay on disk,
    /// invisible, until their segment is whole below the mark and no longer the active one).
    pub segments_removed: usize,
}

/// The dead-letter offset below which `which` purges, in `dl`, at `now_us`.
pub(crate) fn target(dl: &Log, which: PurgeDeadLetters, now_us: u64) -> Result<u64> {
    let end = dl.next_offset();
    Ok(match which {
        PurgeDeadLetters::All => end,
        PurgeDeadLetters::KeepNewest(n) => end.saturating_sub(n),
        PurgeDeadLetters::OlderThan(age) => {
            let cutoff = now_us.saturating_sub(age.as_micros().min(u128::from(u64::MAX)) as u64);
            written_before(dl, cutoff)?
        }
        PurgeDeadLetters::WrittenBefore(us) => written_before(dl, us)?,
    })
}

/// The first dead-letter offset written at or after `us`: a dead-letter record's timestamp
/// is when it was written, and timestamps never decrease, so the log's time lookup finds it.
fn written_before(dl: &Log, us: u64) -> Result<u64> {
    Ok(dl.offset_for_time(us)?.unwrap_or(dl.next_offset()))
}
