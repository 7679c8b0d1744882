//! Releasing consumed events: whole sealed segments are deleted once every group has moved
//! past them, or (which **may remove events a group has not consumed**) once the topic is
//! over a size or an age limit. A group that loses events to retention skips them and
//! reports them in [`crate::GroupLag::lost_to_retention`].

use std::time::Duration;

use crate::error::Result;
use crate::store::{Store, Topic};

/// What [`Topic::apply_retention`] may delete. Only whole sealed segments are ever deleted;
/// the active segment stays.
///
/// **`max_bytes` and `max_age` may delete events that some group has not consumed yet.**
/// Those events are lost to that group: it skips them, and its lag reports how many in
/// [`crate::GroupLag::lost_to_retention`]. Use `delete_consumed` alone to never lose one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPolicy {
    /// Delete segments whose events every group of the topic has finished (acked or
    /// dead-lettered): those before the lowest committed position. A topic without groups
    /// keeps everything under this rule.
    pub delete_consumed: bool,
    /// Delete the oldest segments while the topic's segment files (their reserved size on
    /// disk) exceed this many bytes. **May delete unconsumed events.**
    pub max_bytes: Option<u64>,
    /// Delete segments whose newest event is older than this. **May delete unconsumed
    /// events.**
    pub max_age: Option<Duration>,
}

impl RetentionPolicy {
    /// Delete only what every group has consumed.
    pub fn consumed() -> RetentionPolicy {
        RetentionPolicy { delete_consumed: true, max_bytes: None, max_age: None }
    }
    /// Set [`RetentionPolicy::delete_consumed`].
    #[must_use]
    pub fn delete_consumed(mut self, yes: bool) -> RetentionPolicy {
        self.delete_consumed = yes;
        self
    }
    /// Set [`RetentionPolicy::max_bytes`].
    #[must_use]
    pub fn max_bytes(mut self, n: Option<u64>) -> RetentionPolicy {
        self.max_bytes = n;
        self
    }
    /// Set [`RetentionPolicy::max_age`].
    #[must_use]
    pub fn max_age(mut self, age: Option<Duration>) -> RetentionPolicy {
        self.max_age = age;
        self
    }
}

/// What one retention run did to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// The topic.
    pub topic: String,
    /// Segments deleted.
    pub segments_removed: usize,
    /// Events deleted.
    pub events_removed: u64,
    /// The topic's first offset afterwards.
    pub first_offset: u64,
    /// Groups that lost events they had not finished, with how many (size or age limits).
    pub lost: Vec<(String, u64)>,
}

impl Topic {
    /// Apply `policy`: delete whole sealed segments (see [`RetentionPolicy`]). Takes the
    /// topic's writer if this handle does not hold it yet ([`crate::Error::Locked`] if
    /// another process publishes to the topic: run retention there).
    pub fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionReport> {
        let log = self.writer()?;
        let before_first = log.first_offset();
        let groups = self.group_names()?;
        let mut lost_before = Vec::with_capacity(groups.len());
        let mut min_committed: Option<u64> = None;
        for g in &groups {
            let lag = self.group_lag(g)?;
            let (committed, lost) = (lag.committed, lag.lost_to_retention);
            min_committed = Some(min_committed.map_or(committed, |m: u64| m.min(committed)));
            lost_before.push(lost);
        }
        let segs = log.segments();
        // Only sealed segments before the active one are candidates, oldest first.
        let sealed: Vec<_> = segs.iter().take(segs.len().saturating_sub(1)).take_while(|s| s.sealed).collect();
        let mut cut = before_first;
        if policy.delete_consumed {
            if let Some(m) = min_committed {
                cut = cut.max(m);
            }
        }
        if let Some(max) = policy.max_bytes {
            let mut total: u64 = segs.iter().map(|s| s.capacity).sum();
            for s in &sealed {
                if total <= max {
                    break;
                }
                total = total.saturating_sub(s.capacity);
                cut = cut.max(s.next_offset);
            }
        }
        if let Some(age) = policy.max_age {
            let now = crate::time::now_us();
            let oldest_kept = now.saturating_sub(age.as_micros().min(u64::MAX as u128) as u64);
            for s in &sealed {
                if s.max_timestamp_us >= oldest_kept {
                    break;
                }
                cut = cut.max(s.next_offset);
            }
        }
        let removed = log.remove_segments_before(cut)?;
        let first = log.first_offset();
        let mut lost = Vec::new();
        if first > before_first {
            for (g, before) in groups.iter().zip(lost_before) {
                let after = self.group_lag(g)?.lost_to_retention;
                if after > before {
                    lost.push((g.clone(), after - before));
                }
            }
        }
        Ok(RetentionReport {
            topic: self.name().to_owned(),
            segments_removed: removed,
            events_removed: first - before_first,
            first_offset: first,
            lost,
        })
    }
}

impl Store {
    /// Apply `policy` to every topic (see [`Topic::apply_retention`]).
    pub fn apply_retention(&self, policy: &RetentionPolicy) -> Result<Vec<RetentionReport>> {
        let mut out = Vec::new();
        for t in self.topic_names()? {
            out.push(self.open_topic(&t)?.apply_retention(policy)?);
        }
        Ok(out)
    }
}
