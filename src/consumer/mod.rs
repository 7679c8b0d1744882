//! Consumer groups: at-least-once delivery with leases, acks in any order, retries with
//! persisted backoff, dead letters and redrive, per-key ordering, lag. The exact semantics
//! are in `docs/consumers.md`; the files in `docs/format.md` ("Store and consumer-group files").
//!
//! Built on the store (`src/store/`), which knows nothing of groups. Structure:
//! * [`options`]: what a group is opened with;
//! * [`pending`]: what a group holds unfinished, as listed;
//! * [`state`]: the state machine (no I/O);
//! * [`persist`]: the state log and snapshot;
//! * [`group`]: a group open in this process (hand-out, settling, journaling);
//! * [`delivery`]: one leased event;
//! * [`dead_letters`]: the dead-letter records and their listing;
//! * [`lag`]: how far a group is behind;
//! * [`lifecycle`]: listing, deleting, and changing groups no process has open;
//! * [`kept`]: dead letters kept from a deleted group;
//! * [`position`]: where a start or reset target points in a topic;
//! * [`members`]: competing consumers across processes (an owner and remote members);
//! * [`registry`]: finding and opening groups from a store or topic;
//! * [`retention`]: releasing consumed segments.

mod cleanup;
pub(crate) mod dead_letters;
pub(crate) mod delivery;
pub(crate) mod group;
pub(crate) mod kept;
pub(crate) mod lag;
pub(crate) mod lifecycle;
pub(crate) mod members;
pub(crate) mod options;
pub(crate) mod pending;
pub(crate) mod persist;
pub(crate) mod position;
pub(crate) mod registry;
pub(crate) mod retention;
pub(crate) mod state;

pub use dead_letters::purge::{PurgeDeadLetters, PurgeReport};
pub use dead_letters::{DeadLetter, DeadLetterCause, DeadLetterStatus, MAX_REASON_BYTES};
pub use delivery::Delivery;
pub use group::Group;
pub use group::Role;
pub use kept::KeptDeadLetters;
pub use lag::GroupLag;
pub use options::{AckMode, Backoff, DeliveryOrder, GroupOptions, StartFrom, MAX_RETRY_DELAY};
pub use pending::{Pending, PendingState};
pub use retention::{RetentionPolicy, RetentionReport};

use crate::time::now_us;
