//! CQRS read views: state derived from a log, kept current as records are appended,
//! persisted with the offset it covers, and queried without reading the log.
//!
//! - [`definition`]: what a view is, as data ([`ViewDefinition`], [`GroupBy`], [`ValueOf`]).
//! - [`definition_file`]: the definition's file, `view.def` (specified in `docs/format.md`).
//! - [`position`]: what every view reports: [`ViewAnswer`] (a value and the position it was
//!   computed at), [`ViewLag`], [`ViewStatus`].
//! - [`View`] (this file): a view as the registry sees it, whatever it computes.
//! - [`extract`] and [`json`]: built-in extractors (key, header, JSON field).
//! - [`aggregate`]: [`AggregateView`], count/sum/min/max/average per group, and its state.
//! - [`handle`]: [`ViewHandle`], one open view: async, inline or read-only; queries with a
//!   freshness bound, as-of queries, lag. `engine.rs` holds the three ways a generation is
//!   kept current; `follow.rs` is the async one's thread.
//! - [`layout`]: a view's directory: its definition file and one snapshot directory per
//!   generation.
//! - [`rebuild`]: building a generation beside the live one and swapping it in.
//! - [`registry`]: [`Views`], the views of one log (or topic), and the inline append path.
//! - `index/`: secondary indexes (value to offsets), views of kind
//!   [`ViewKind::Index`].
//!
//! Every view's state and the position it covers are persisted together, in one atomic step
//! (a snapshot through `projection::SnapshotDir`), so a crash never loses an update or applies
//! one twice: the view restarts from its newest snapshot and applies the records after it.

mod aggregate;
mod definition;
mod definition_file;
mod engine;
mod extract;
mod follow;
mod handle;
pub(crate) mod index;
mod json;
mod layout;
mod position;
mod rebuild;
mod registry;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use aggregate::{AggregateState, AggregateView, GroupStats};
pub use definition::{
    GroupBy, GroupFn, ValueFn, ValueOf, ViewDefinition, ViewKind, VIEW_MAX_FIELD_LEN, VIEW_MAX_NAME_LEN,
};
pub use definition_file::{StoredView, VIEW_DEFINITION_VERSION};
pub use handle::{ViewHandle, ViewMode, ViewOptions, VIEW_CHECKPOINT_EVERY_RECORDS};
pub use position::{ViewAnswer, ViewLag, ViewStatus};
pub use rebuild::RebuildReport;
pub use registry::Views;

pub(crate) use layout::state_dirs;

use std::time::Duration;

use crate::error::Result;

/// A view as the registry ([`Views`]) and the command line see it, whatever it computes:
/// its definition, how fresh it is, and a way to wait until it is fresh enough.
/// [`ViewHandle`] implements it; a secondary index implements it too.
///
/// Positions are log offsets: a view at position `p` reflects every record below `p` and
/// none at or above it.
pub trait View: Send + Sync {
    /// The view's definition.
    fn definition(&self) -> &ViewDefinition;

    /// How the view is kept current.
    fn mode(&self) -> ViewMode;

    /// The next offset the view will apply.
    fn position(&self) -> u64;

    /// Whether the view is kept current, stopped, or failed (with the offset).
    fn status(&self) -> ViewStatus;

    /// How far behind its log the view is.
    fn lag(&self) -> ViewLag;

    /// Wait until the view's position is at least `bound` (to read your own write: one past
    /// its offset), for up to `timeout`. Returns the position reached, or
    /// `Error::ViewNotUpToBound` with the view's position and the bound when the time is up,
    /// or `Error::ProjectionStopped` if the view stopped or failed.
    fn wait_for_position(&self, bound: u64, timeout: Duration) -> Result<u64>;

    /// Apply whatever the log has committed beyond the view's position, now, in the calling
    /// thread (the inline path calls it after each append). A view kept by its own thread
    /// returns its position without doing anything.
    fn catch_up(&self) -> Result<u64>;
}
