//! Publishing a key's new state (or its deletion) as an envelope whose `before` the engine
//! fills from the key's latest state.
//!
//! Reading the latest state and appending are one atomic step by an optimistic check: the
//! append is a stream append expecting the version the read saw (`Log::append_to_stream`,
//! checked under the writer lock). If another append to the key came between the read and
//! the append, the check fails, nothing is written, and the publish reads again and retries.
//! So two publishers of one key never both write the same `before`. A retry happens only
//! because another append to the key succeeded, so the publishers together always progress;
//! uncontended, a publish costs one key-index lookup and one record read besides the append.

use super::envelope::{encode, Before, Op};
use super::latest::{read_latest, LatestState};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::record::Record;
use crate::stream::ExpectedVersion;

/// What a publish of a state (or of a deletion) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Published {
    /// An envelope was appended at `offset`.
    Written {
        /// The envelope's offset.
        offset: u64,
        /// What it records.
        op: Op,
    },
    /// Nothing was written: the new state equals the key's latest state (set by the
    /// envelope at `offset`).
    Unchanged {
        /// Offset of the envelope that set the state.
        offset: u64,
    },
    /// Nothing was written: a delete of a key that has no state.
    NoState,
}

impl Published {
    /// The offset of the envelope written, if one was.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Published::Written { offset, .. } => Some(*offset),
            Published::Unchanged { .. } | Published::NoState => None,
        }
    }
}

/// The change a publish makes, decided from the latest state.
enum Change<'a> {
    Write(Op, Before<'a>),
    Skip(Published),
}

impl Log {
    /// Publish `state` as the new state of `key`: appends an envelope (op create or update)
    /// whose `before` is the key's latest state, read through the key index. If `state`
    /// equals the latest state nothing is written ([`Published::Unchanged`]). If retention
    /// removed every earlier event of the key, `before` is marked unknown. See
    /// `docs/event-sourcing.md` ("Event-carried state transfer").
    pub fn publish_state(&self, key: &[u8], state: &[u8]) -> Result<Published> {
        self.change_state(key, Some(state))
    }

    /// Delete the state of `key`: appends a delete envelope carrying the latest state as
    /// `before`, as a tombstone record (so that key compaction can drop the key later). A key
    /// without a state writes nothing ([`Published::NoState`]); one whose state is unknown
    /// (retention removed its events) is deleted with `before` marked unknown.
    pub fn delete_state(&self, key: &[u8]) -> Result<Published> {
        self.change_state(key, None)
    }

    /// The latest state of `key`, through the key index: one lookup and one record read.
    pub fn latest_state(&self, key: &[u8]) -> Result<LatestState> {
        Ok(read_latest(self, key)?.0)
    }

    fn change_state(&self, key: &[u8], after: Option<&[u8]>) -> Result<Published> {
        loop {
            let (latest, version) = read_latest(self, key)?;
            let (op, before) = match decide(&latest, after) {
                Change::Write(op, before) => (op, before),
                Change::Skip(outcome) => return Ok(outcome),
            };
            let payload = encode(op, before, after)?;
            let record = Record::new(&payload).key(key);
            let record = if op == Op::Delete { record.tombstone() } else { record };
            match self.append_to_stream(key, ExpectedVersion::Exact(version), &[record]) {
                Ok(range) => return Ok(Published::Written { offset: range.start, op }),
                // Another append to the key came between the read and this append: read again.
                Err(Error::WrongExpectedVersion { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// What to write for the new state `after` (`None`: a delete) given the latest state.
fn decide<'a>(latest: &'a LatestState, after: Option<&[u8]>) -> Change<'a> {
    match (latest, after) {
        (LatestState::Absent, Some(_)) => Change::Write(Op::Create, Before::Absent),
        (LatestState::Absent, None) => Change::Skip(Published::NoState),
        (LatestState::Present { offset, state }, Some(new)) if state.as_slice() == new => {
            Change::Skip(Published::Unchanged { offset: *offset })
        }
        (LatestState::Present { state, .. }, Some(_)) => Change::Write(Op::Update, Before::State(state)),
        (LatestState::Present { state, .. }, None) => Change::Write(Op::Delete, Before::State(state)),
        (LatestState::Unknown, Some(_)) => Change::Write(Op::Update, Before::Unknown),
        (LatestState::Unknown, None) => Change::Write(Op::Delete, Before::Unknown),
    }
}
