//! Removing the records a predicate picks from every segment of a log, the active one
//! included: the active segment is rolled (and sealed) first, then each sealed segment that
//! holds such a record is rewritten without it and swapped in, as compaction does. The records
//! concerned are those appended before the erasure began; appends continue meanwhile, and a
//! record of the key appended during the erasure may stay (erase again once they stop).

use crate::compaction::rewrite_segment;
use crate::error::Result;
use crate::format::SEGMENT_HEADER_LEN;
use crate::log::Log;
use crate::record::RecordView;
use crate::segment::Segment;

/// Rounds before giving up (an error, never a silent success). Two are enough unless a roll
/// keeps coming between the seal of a round and its rewrites.
const MAX_ROUNDS: usize = 8;

/// Remove the records appended before the call for which `pred` is true. Returns how many,
/// the number of segments rewritten and the lowest offset removed.
///
/// Each round covers the segments from `covered` on: it rolls the active segment if that
/// holds a match, then rewrites every segment before the (new) active one. A segment whose
/// seal was deferred by a roll that came in between is left for the next round, which starts
/// there; the erasure ends when no segment from `covered` on holds a match.
pub(crate) fn erase_where(log: &Log, pred: impl Fn(&RecordView<'_>) -> bool) -> Result<(u64, usize, Option<u64>)> {
    let _running = log.compaction_guard();
    let end = log.next_offset();
    let pred = |r: &RecordView<'_>| r.offset() < end && pred(r);
    let (mut erased, mut rewritten, mut first) = (0u64, 0usize, None::<u64>);
    let holds = |seg: &Segment| {
        seg.records_from(SEGMENT_HEADER_LEN, seg.base_offset).any(|r| r.map(|(rec, _)| pred(&rec)).unwrap_or(true))
    };
    let mut covered = 0u64;
    for round in 0..MAX_ROUNDS {
        let list = log.segment_list();
        let from = list.iter().position(|s| s.base_offset >= covered).unwrap_or(list.len());
        if round > 0 && !list[from..].iter().any(|s| holds(s)) {
            return Ok((erased, rewritten, first));
        }
        if list.last().is_some_and(|s| holds(s)) {
            log.roll_active()?;
        }
        // Seals a full segment whose seal `Durability::None` deferred: only sealed segments
        // are rewritten.
        log.sync()?;
        log.seal_pending()?;
        let list = log.segment_list();
        let mut next_covered = list.last().map_or(covered, |s| s.base_offset);
        for seg in list.iter().take(list.len().saturating_sub(1)).filter(|s| s.base_offset >= covered) {
            if log.awaiting_seal(seg) {
                // A roll came after the seal above: the next round takes it.
                next_covered = next_covered.min(seg.base_offset);
                continue;
            }
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
        covered = next_covered;
    }
    Err(crate::error::Error::Internal(
        "the erasure did not finish: rolls kept deferring the seal of a segment holding the key; run it again",
    ))
}
