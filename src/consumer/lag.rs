//! How far a group is behind: [`GroupLag`], built in one place from a group's state, whether
//! the group is open in this process (live) or read from its files (persisted).

use super::dead_letters;
use super::persist::{self, GroupPaths};
use super::state::{GroupState, ItemId, Status};
use crate::error::{Error, Result};
use crate::store::Topic;

/// How far a group is behind, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupLag {
    /// The topic.
    pub topic: String,
    /// The group.
    pub group: String,
    /// Committed position: every event before it is done (acked, dead-lettered, or lost to
    /// retention).
    pub committed: u64,
    /// The topic's first retained offset.
    pub first_offset: u64,
    /// The topic's end (next offset to be published).
    pub end_offset: u64,
    /// Events at or after the committed position that are not done yet (includes the
    /// in-flight, retrying and held-back ones).
    pub unconsumed: u64,
    /// Events leased to a consumer now. For a group read from its persisted state (not open
    /// in this process): events delivered and not settled since, which includes deliveries
    /// whose consumer has since died.
    pub in_flight: u64,
    /// Events waiting for their retry time after a failure.
    pub scheduled_retries: u64,
    /// Events held back behind an earlier event with the same key (per-key order; 0 when
    /// read from persisted state, which does not record keys).
    pub held_back: u64,
    /// Redriven dead letters not settled yet.
    pub redriven: u64,
    /// Dead letters parked in the group's dead-letter log.
    pub dead_letters: u64,
    /// Events that size or age retention removed before this group was done with them
    /// (counted since the group was created, including a loss the group has not yet noticed).
    pub lost_to_retention: u64,
    /// True if read from a group open in this process, false if from its persisted state.
    pub live: bool,
}

/// Where a state comes from, which decides what counts as in flight.
pub(crate) enum Source {
    /// A group open in this process: in flight means leased now.
    Live,
    /// A group's persisted state: nothing is leased, so in flight means delivered and not
    /// settled since. `unrecorded_dead_letters` are dead-letter records written after the
    /// state last recorded one (a crash in between): they are parked too.
    Persisted { unrecorded_dead_letters: u64 },
}

impl GroupLag {
    /// The lag of group `group` of `topic`, whose state is `s`, when the topic holds
    /// `[first, end)`.
    pub(crate) fn of(topic: &str, group: &str, s: &GroupState, first: u64, end: u64, source: Source) -> GroupLag {
        let persisted = matches!(source, Source::Persisted { .. });
        let (mut in_flight, mut scheduled_retries, mut held_back, mut redriven) = (0, 0, 0, 0);
        for (id, e) in &s.entries {
            if matches!(id, ItemId::Redrive(_)) {
                redriven += 1;
            }
            match e.status {
                Status::InFlight { .. } => in_flight += 1,
                _ if persisted && e.unsettled => in_flight += 1,
                Status::Scheduled { due_us } if due_us > 0 => scheduled_retries += 1,
                Status::Held if e.retry_due_us > 0 => scheduled_retries += 1,
                Status::Held => held_back += 1,
                Status::Scheduled { .. } => {}
            }
        }
        let extra = match source {
            Source::Live => 0,
            Source::Persisted { unrecorded_dead_letters } => unrecorded_dead_letters,
        };
        GroupLag {
            topic: topic.to_owned(),
            group: group.to_owned(),
            committed: s.committed(),
            first_offset: first,
            end_offset: end,
            unconsumed: s.unconsumed(end),
            in_flight,
            scheduled_retries,
            held_back,
            redriven,
            dead_letters: s.parked.len() as u64 + extra,
            lost_to_retention: s.lost_to_retention,
            live: !persisted,
        }
    }
}

/// Lag of a group that is not open in this process, from its persisted state.
pub(crate) fn persisted(topic: &Topic, group: &str) -> Result<GroupLag> {
    let paths = GroupPaths::new(topic, group);
    if !paths.dir.is_dir() {
        return Err(Error::NotFound { path: paths.dir });
    }
    let opts = topic.store().options();
    let mut s = persist::load_view(&paths.dir, &persist::state_log_options(opts, None))?;
    let (first, end) = (topic.first_offset(), topic.next_offset());
    // Events retention removed that the group has not noticed yet count as lost now: the
    // group skips them when it next runs.
    if first > s.committed() {
        s.lose_before(first);
    }
    let unrecorded_dead_letters = dead_letters::next_offset(&paths, opts)?.saturating_sub(s.dlq_next);
    Ok(GroupLag::of(topic.name(), group, &s, first, end, Source::Persisted { unrecorded_dead_letters }))
}
