//! Key compaction, as Kafka's log cleaner does it: sealed segments are rewritten so that only
//! the newest record of each key remains. Records without a key are kept; every record kept
//! keeps its offset (readers, cursors and consumer groups step over the gaps); a tombstone
//! ([`crate::Record::tombstone`]) hides its key and is itself removed once it is older (by
//! its timestamp) than [`CompactOptions::delete_retention`], so that a slow reader still sees
//! the deletion.
//!
//! | file            | job                                                              |
//! |-----------------|------------------------------------------------------------------|
//! | `plan`          | the newest record of each key, what each segment would lose, the dirty ratio |
//! | `rewrite`       | one sealed segment rewritten beside the old one, no lock held    |
//! | `background`    | a thread compacting whenever the dirty ratio passes a threshold |
//!
//! The swap of a rewritten segment (under the writer lock) is the log's own
//! (`log/compact_swap.rs`); the order of its renames and what a crash leaves are in
//! `docs/format.md` and `docs/durability.md`.
//!
//! The active segment is never rewritten; [`CompactOptions::roll_active`] rolls it first, so
//! that everything appended before the call can be compacted. Records appended during a
//! compaction are not looked at by it (the plan ends where the log ended when it began).
//!
//! What compaction does to streams: a stream's version counts its events in the log (and
//! those retention removed); compaction removes events, so the version of a compacted key
//! drops to the number of its records left (usually 1). A compacted topic is a table of
//! latest states (`docs/event-sourcing.md`): use `ExpectedVersion::Any` on it. Key index files
//! of rewritten segments are removed with the old segment and built again from the new
//! records when first needed.

mod background;
mod plan;
mod rewrite;

use std::time::Duration;

pub use background::{BackgroundCompaction, CompactionHandle};
pub(crate) use plan::key_digest;
pub(crate) use rewrite::rewrite as rewrite_segment;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::time::now_us;

/// What a topic's old records become (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CleanupPolicy {
    /// Whole segments are deleted by retention (the default; [`crate::RetentionPolicy`]).
    #[default]
    Delete,
    /// Records superseded by a newer record of their key are removed by compaction;
    /// retention deletes nothing.
    Compact,
    /// Both: compaction, then retention.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// True if the policy compacts.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete)
    }
    /// True if the policy deletes whole segments by retention.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete)
    }
}

/// How to compact.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CompactOptions {
    /// A tombstone is removed once its timestamp is this much in the past (Kafka's
    /// `delete.retention.ms`). Default 24 hours.
    pub delete_retention: Duration,
    /// Roll the active segment first, so that the records in it can be compacted too.
    /// Default false (as Kafka, the newest records wait for their segment to fill).
    pub roll_active: bool,
    /// Compact only if at least this share of the sealed segments' bytes can be removed
    /// (Kafka's `min.cleanable.dirty.ratio`, measured here as removable bytes over sealed
    /// bytes). Default 0: an explicit compaction always runs; the background one defaults
    /// to 0.5.
    pub min_dirty_ratio: f64,
}

impl Default for CompactOptions {
    fn default() -> CompactOptions {
        CompactOptions { delete_retention: Duration::from_secs(24 * 3600), roll_active: false, min_dirty_ratio: 0.0 }
    }
}

impl CompactOptions {
    /// Set [`CompactOptions::delete_retention`].
    #[must_use]
    pub fn delete_retention(mut self, d: Duration) -> CompactOptions {
        self.delete_retention = d;
        self
    }
    /// Set [`CompactOptions::roll_active`].
    #[must_use]
    pub fn roll_active(mut self, yes: bool) -> CompactOptions {
        self.roll_active = yes;
        self
    }
    /// Set [`CompactOptions::min_dirty_ratio`].
    #[must_use]
    pub fn min_dirty_ratio(mut self, r: f64) -> CompactOptions {
        self.min_dirty_ratio = r;
        self
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CompactReport {
    /// The dirty ratio found before compacting (removable bytes over sealed bytes).
    pub dirty_ratio: f64,
    /// Sealed segments rewritten.
    pub segments_rewritten: usize,
    /// Records removed (superseded records and expired tombstones).
    pub records_removed: u64,
    /// Expired tombstones among them.
    pub tombstones_removed: u64,
    /// Bytes of the log's segment files before (sealed segments as written, the active one
    /// as reserved).
    pub bytes_before: u64,
    /// The same, after.
    pub bytes_after: u64,
}

impl Log {
    /// Compact the log's sealed segments, as Kafka's log cleaner does: only the newest record
    /// of each key remains; records without a key are kept; every record kept keeps its
    /// offset (readers, cursors and consumer groups step over the gaps); a tombstone hides
    /// its key and is removed itself once older than [`CompactOptions::delete_retention`].
    /// The active segment is rewritten only if [`CompactOptions::roll_active`] rolls it first.
    /// Appends continue meanwhile: the writer lock is taken only to swap each rewritten
    /// segment in (`docs/architecture.md`, "Compaction and erasure").
    ///
    /// The log is flushed first (`sync`, and the seal of a full segment `Durability::None`
    /// deferred): a record is removed only because of a newer record that is on stable
    /// storage, so a power loss cannot take both.
    pub fn compact(&self, opts: &CompactOptions) -> Result<CompactReport> {
        self.compact_with_progress(opts, &mut |_, _| {})
    }

    /// [`Log::compact`], calling `progress(done, total)` with the sealed bytes examined so
    /// far, after each segment.
    pub fn compact_with_progress(
        &self,
        opts: &CompactOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<CompactReport> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        if !(0.0..=1.0).contains(&opts.min_dirty_ratio) {
            return Err(Error::InvalidOptions(format!("min_dirty_ratio {} is not within 0..=1", opts.min_dirty_ratio)));
        }
        let _running = self.compaction_guard();
        if opts.roll_active {
            self.roll_active()?;
        }
        let end = self.next_offset();
        // IMPORTANT: what supersedes a record must be durable before the record goes (this
        // also seals a full segment whose seal `Durability::None` deferred).
        self.sync()?;
        self.seal_pending()?;
        let bytes_before = self.file_bytes();
        let cutoff = now_us().saturating_sub(opts.delete_retention.as_micros().min(u64::MAX as u128) as u64);
        let list = self.segment_list();
        let plan = plan::plan(&list, end, cutoff, |s| !self.awaiting_seal(s))?;
        let mut report = CompactReport { dirty_ratio: plan.dirty_ratio(), bytes_before, ..CompactReport::default() };
        if plan.removable_bytes() == 0 || report.dirty_ratio < opts.min_dirty_ratio {
            report.bytes_after = bytes_before;
            return Ok(report);
        }
        let total: u64 = plan.sealed.iter().map(|(s, _)| s.end_pos() as u64).sum();
        let mut done = 0u64;
        let interval = self.options().index_interval_bytes;
        // IMPORTANT: oldest first, so that a tombstone is removed only after the older records
        // of its key (a crash in between leaves the tombstone, never the old value alone).
        for (seg, loss) in &plan.sealed {
            done += seg.end_pos() as u64;
            if loss.records + loss.tombstones == 0 {
                progress(done, total);
                continue;
            }
            if let Some(rw) = rewrite::rewrite(self.dir(), seg, interval, |r| plan.keeps(r))? {
                let (removed, tombstones) = (rw.removed, rw.tombstones_removed);
                if self.swap_rewritten(seg, rw.built)? {
                    report.segments_rewritten += 1;
                    report.records_removed += removed;
                    report.tombstones_removed += tombstones;
                }
            }
            progress(done, total);
        }
        report.bytes_after = self.file_bytes();
        Ok(report)
    }

    /// The share of the sealed segments' bytes a compaction with `opts` would remove now
    /// (reads the whole log).
    pub fn dirty_ratio(&self, opts: &CompactOptions) -> Result<f64> {
        let cutoff = now_us().saturating_sub(opts.delete_retention.as_micros().min(u64::MAX as u128) as u64);
        Ok(plan::plan(&self.segment_list(), self.next_offset(), cutoff, |s| !self.awaiting_seal(s))?.dirty_ratio())
    }

    /// Bytes of the log's segment files (as `segments()` reports them).
    fn file_bytes(&self) -> u64 {
        self.segments().iter().map(|s| s.capacity).sum()
    }
}
