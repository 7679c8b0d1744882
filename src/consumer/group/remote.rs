//! The seam between a [`super::Group`] handle and a group owned by another process: what a
//! remote member must do (`src/consumer/members/` implements it), and the handle's role.

use std::time::{Duration, Instant};

use super::Group;
use crate::consumer::delivery::Delivery;
use crate::consumer::options::GroupOptions;
use crate::error::Result;
use crate::store::Topic;

/// Whether a [`Group`] handle holds the group's state or talks to the process that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// This process holds the group's lock and its state (and serves remote members if the
    /// group was opened with [`Topic::join_group`]).
    Owner,
    /// Another process owns the group; this handle polls and settles through it (see
    /// `docs/consumers.md`, "Competing consumers across processes").
    Member,
}

/// How deliveries are settled through the owner.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RemoteSettle<'a> {
    Ack,
    Fail { rejected: bool, delay: Option<Duration>, reason: &'a str },
    Release,
}

/// What a settle names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RemoteTargets<'a> {
    Deliveries(&'a [Delivery]),
    Offsets(&'a [u64]),
}

/// A group owned by another process, reached through it.
pub(crate) trait Remote: Send + Sync {
    fn topic(&self) -> &Topic;
    fn name(&self) -> &str;
    fn options(&self) -> &GroupOptions;
    /// The owner handle this member became by taking the group over, if it did.
    fn taken_over(&self) -> Option<Group>;
    fn poll(&self, max: usize, timeout: Duration) -> Result<Vec<Delivery>>;
    fn settle(&self, how: RemoteSettle<'_>, targets: RemoteTargets<'_>) -> Result<()>;
    fn extend_lease(&self, d: &Delivery, by: Duration) -> Result<Instant>;
    /// The committed position the owner last reported.
    fn committed(&self) -> u64;
    fn close(&self) -> Result<()>;
}
