//! A topic's cleanup: compaction and retention as its [`CleanupPolicy`] says.

use crate::compaction::{CleanupPolicy, CompactOptions, CompactReport};
use crate::consumer::{RetentionPolicy, RetentionReport};
use crate::error::Result;
use crate::store::Topic;

impl Topic {
    /// The topic's cleanup policy ([`crate::StoreOptions::cleanup_policy_for`]).
    pub fn cleanup_policy(&self) -> CleanupPolicy {
        self.store().options().cleanup_of(self.name())
    }

    /// Compact the topic's log (see [`crate::Log::compact`]), whatever its cleanup policy.
    /// Takes the topic's writer.
    pub fn compact(&self, opts: &CompactOptions) -> Result<CompactReport> {
        self.writer()?.compact(opts)
    }

    /// Clean the topic as its policy says: compact (with `compact`) if it compacts, then apply
    /// `retention` if it deletes.
    pub fn apply_cleanup(
        &self,
        compact: &CompactOptions,
        retention: &RetentionPolicy,
    ) -> Result<(Option<CompactReport>, Option<RetentionReport>)> {
        let policy = self.cleanup_policy();
        let c = if policy.compacts() { Some(self.compact(compact)?) } else { None };
        let r = if policy.deletes() { Some(self.apply_retention(retention)?) } else { None };
        Ok((c, r))
    }
}
