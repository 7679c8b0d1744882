//! Aggregates: event-sourced state, one stream per key, loaded from the newest usable
//! snapshot plus the stream's events after it, and changed by commands whose events are
//! appended with the version the load saw. See `docs/event-sourcing.md`.
//!
//! - [`Aggregate`] (this file): the definition (state that applies events, a command handler
//!   that decides them).
//! - [`options`]: [`AggregateOptions`], the snapshot policy and retention.
//! - [`key_dir`]: the directory name of a key's snapshots (keys are arbitrary bytes).
//! - [`snapshots`]: one key's snapshots, in the projection snapshot file format.
//! - [`store`]: [`AggregateStore`]: load, execute (decide and append), snapshot.
//! - [`temporal`]: a state as of an offset, a version or a time, and a stream's history.

mod key_dir;
mod options;
mod snapshots;
mod store;
mod temporal;

pub use options::{AggregateOptions, SnapshotPolicy};
pub use store::{AggregateStore, Executed, Loaded, SnapshotTaken};
pub use temporal::{AsOf, HistoryEntry};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Event;

/// An event-sourced aggregate (an account, an order): the state of one stream, rebuilt by
/// applying its events in order, and a command handler that decides new events from it.
///
/// `apply` must be deterministic and must not fail: an event is a fact that happened, so
/// every check belongs in `handle`. Snapshots rely on it: a state restored from a snapshot
/// and fed the events after it equals the state fed every event.
///
/// **Fingerprint.** A snapshot records [`state_fingerprint`](Aggregate::state_fingerprint),
/// and a snapshot whose fingerprint differs from the current code's is never used (the load
/// reports it and rebuilds from an older snapshot or from the stream). Change it whenever the
/// state's fields or `apply` change meaning: a number you bump, or
/// [`fingerprint_of`](crate::fingerprint_of) of a description of the state.
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// The events of this aggregate.
    type Event: Event;
    /// The commands it handles.
    type Command;
    /// Why `handle` rejects a command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The aggregate type's name: 1 to 200 ASCII letters, digits, `.`, `_` or `-` (it names
    /// the directory of its snapshots, and is stored in each).
    fn aggregate_type() -> &'static str;

    /// A fingerprint of the state's definition (see the trait documentation).
    fn state_fingerprint() -> u64;

    /// Decide the events a command produces from the current state, or reject it. Does not
    /// change the state: the store applies the events once they are appended.
    fn handle(&self, command: Self::Command) -> std::result::Result<Vec<Self::Event>, Self::Error>;

    /// Apply one event to the state.
    fn apply(&mut self, event: &Self::Event);
}
