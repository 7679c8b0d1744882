//! Removing the records a predicate picks from every segment of a log, the active one
//! included: the active segment is rolled (and sealed) first, then each sealed segment that
//! holds such a record is rewritten without it and swapped in, as compaction does. Records
//! appended meanwhile that match are caught by rolling again, until none is left.

use crate::compaction::rewrite_segment;
use crate::error::Result;
use crate::format::SEGMENT_HEADER_LEN;
use crate::log::Log;
use crate::record::RecordView;

/// How many times the active segment is rolled to catch matching records appended during the
/// erasure before giving up on them (they are then reported as an error, never left silently).
const MAX_ROUNDS: usize = 8;

/// Remove the records for which `pred` is true. Returns how many, the number of segments
/// rewritten and the lowest offset removed.
pub(crate) fn erase_where(log: &Log, pred: impl Fn(&RecordView<'_>) -> bool) -> Result<(u64, usize, Option<u64>)> {
    let _running = log.compaction_guard();
    let (mut erased, mut rewritten, mut first) = (0u64, 0usize, None::<u64>);
    let in_active = |log: &Log| {
        let list = log.segment_list();
        list.last().is_some_and(|seg| {
            seg.records_from(SEGMENT_HEADER_LEN, seg.base_offset).any(|r| r.map(|(rec, _)| pred(&rec)).unwrap_or(true))
        })
    };
    for round in 0..MAX_ROUNDS {
        if in_active(log) {
            log.roll_active()?;
        } else if round > 0 {
            return Ok((erased, rewritten, first));
        }
        // Seals a full segment whose seal `Durability::None` deferred: only sealed segments
        // are rewritten.
        log.sync()?;
        log.seal_pending()?;
        let list = log.segment_list();
        for seg in list.iter().take(list.len().saturating_sub(1)) {
            let mut low = None;
            let keep = |r: &RecordView<'_>| {
                let hit = pred(r);
                if hit && low.is_none() {
                    low = Some(r.offset());
                }
                !hit
            };
            if let Some(rw) = rewrite_segment(log.dir(), seg, log.options().index_interval_bytes, keep)? {
                let n = rw.removed;
                if log.swap_rewritten(seg, rw.built)? {
                    erased += n;
                    rewritten += 1;
                    first = match (first, low) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
        }
    }
    Err(crate::error::Error::InvalidOptions(
        "records of the key kept being appended while it was erased: erase again once they stop".into(),
    ))
}
