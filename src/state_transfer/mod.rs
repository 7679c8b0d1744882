//! Event-carried state transfer: a key's new state published as an envelope carrying the
//! `op` and the states `before` and `after`, `before` filled by the engine from the key's
//! latest state (see `docs/event-sourcing.md`, "Event-carried state transfer"; the byte
//! layout is in `docs/format.md`, "The state envelope").
//!
//! * `envelope.rs`: the envelope's bytes: encode, decode, [`Envelope`], [`Op`], [`Before`].
//! * `latest.rs`: a key's latest state through the key index ([`LatestState`]).
//! * `publish.rs`: `Log::publish_state`, `Log::delete_state` and `Log::latest_state`,
//!   the read and the append made one step by a checked stream append ([`Published`]).
//!
//! This module uses the log only through its public API.

mod envelope;
mod latest;
mod publish;

pub use self::envelope::{Before, Envelope, Op, ENVELOPE_HEADER_LEN, ENVELOPE_MAGIC, ENVELOPE_VERSION};
pub use self::latest::LatestState;
pub use self::publish::Published;
