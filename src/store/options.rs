//! Options for opening a store.

use std::collections::BTreeMap;

use crate::compaction::CleanupPolicy;
use crate::error::Result;
use crate::Options;

/// Options for [`crate::Store::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Options of every topic log. Default: [`Options::default`] with 32 MiB segments.
    pub topic: Options,
    /// Segment size of a group's state log once the group has filled the log's first
    /// segment, which is 64 KiB (or this, if smaller): a group reserves 64 KiB of disk until
    /// it is busy, then segments of this size (preallocated whole), which keep segment rolls
    /// rare. Default 2 MiB.
    pub state_segment_bytes: u64,
    /// Segment size of each group's dead-letter log, created at the group's first dead
    /// letter. Default 1 MiB.
    pub dead_letter_segment_bytes: u64,
    /// Create the store directory if it does not exist. Default true.
    pub create_if_missing: bool,
    /// Cleanup policy of topics not named in [`StoreOptions::topic_cleanup`]. Default
    /// [`CleanupPolicy::Delete`].
    pub cleanup_policy: CleanupPolicy,
    /// Cleanup policy of particular topics, by name.
    pub topic_cleanup: BTreeMap<String, CleanupPolicy>,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            topic: Options::default().segment_bytes(32 << 20),
            state_segment_bytes: 2 << 20,
            dead_letter_segment_bytes: 1 << 20,
            create_if_missing: true,
            cleanup_policy: CleanupPolicy::Delete,
            topic_cleanup: BTreeMap::new(),
        }
    }
}

impl StoreOptions {
    /// Set [`StoreOptions::topic`].
    #[must_use]
    pub fn topic(mut self, opts: Options) -> StoreOptions {
        self.topic = opts;
        self
    }
    /// Set [`StoreOptions::state_segment_bytes`].
    #[must_use]
    pub fn state_segment_bytes(mut self, n: u64) -> StoreOptions {
        self.state_segment_bytes = n;
        self
    }
    /// Set [`StoreOptions::dead_letter_segment_bytes`].
    #[must_use]
    pub fn dead_letter_segment_bytes(mut self, n: u64) -> StoreOptions {
        self.dead_letter_segment_bytes = n;
        self
    }
    /// Set [`StoreOptions::create_if_missing`].
    #[must_use]
    pub fn create_if_missing(mut self, yes: bool) -> StoreOptions {
        self.create_if_missing = yes;
        self
    }

    /// Set [`StoreOptions::cleanup_policy`].
    #[must_use]
    pub fn cleanup_policy(mut self, policy: CleanupPolicy) -> StoreOptions {
        self.cleanup_policy = policy;
        self
    }
    /// Set the cleanup policy of topic `name` ([`StoreOptions::topic_cleanup`]).
    #[must_use]
    pub fn cleanup_policy_for(mut self, name: &str, policy: CleanupPolicy) -> StoreOptions {
        self.topic_cleanup.insert(name.to_owned(), policy);
        self
    }
    /// The cleanup policy of topic `name`.
    pub(crate) fn cleanup_of(&self, name: &str) -> CleanupPolicy {
        self.topic_cleanup.get(name).copied().unwrap_or(self.cleanup_policy)
    }

    /// Every log of the store gets a valid configuration: the topic options as given, the
    /// state and dead-letter logs with their segment sizes.
    pub(crate) fn validate(&self) -> Result<()> {
        self.topic.validate()?;
        Options::default().segment_bytes(self.state_segment_bytes).validate()?;
        Options::default().segment_bytes(self.dead_letter_segment_bytes).validate()
    }
}
