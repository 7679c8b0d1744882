//! Where a [`StartFrom`] points in a topic: the offset a new group starts at, or a reset
//! moves a group to.

use super::options::StartFrom;
use crate::error::Result;
use crate::Log;

/// The topic offset `start` names in `log` (or in an empty topic when `None`), always
/// within `[first_offset, next_offset]`.
pub(crate) fn resolve(log: Option<&Log>, start: StartFrom) -> Result<u64> {
    let Some(log) = log else { return Ok(0) };
    let (first, end) = (log.first_offset(), log.next_offset());
    let at = match start {
        StartFrom::Earliest => first,
        StartFrom::Latest => end,
        StartFrom::Offset(o) => o,
        StartFrom::Time(us) => log.offset_for_time(us)?.unwrap_or(end),
    };
    Ok(at.clamp(first, end))
}
