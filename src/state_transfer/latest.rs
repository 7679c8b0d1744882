//! A key's latest state: the `after` of the newest record of its stream, found through the
//! key index (`Log::read_stream_backward`), never by a scan of the log.

use std::path::Path;

use super::envelope::{decode_payload, Envelope};
use crate::error::{Error, Result};
use crate::log::Log;

/// What the log knows of a key's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LatestState {
    /// The key has no state: it never had an event, or its latest envelope (or a tombstone
    /// without one) deleted it.
    Absent,
    /// The key's state: the `after` of its latest envelope, the record at `offset`.
    Present {
        /// Offset of the envelope that set the state.
        offset: u64,
        /// The state's bytes.
        state: Vec<u8>,
    },
    /// The key had events, but retention removed every one of them: its state is not known.
    Unknown,
}

impl LatestState {
    /// The state's bytes, if the key has a known state.
    pub fn state(&self) -> Option<&[u8]> {
        match self {
            LatestState::Present { state, .. } => Some(state),
            LatestState::Absent | LatestState::Unknown => None,
        }
    }
}

/// The latest state of `key` and the version of its stream that this answer is about (the
/// expected version of an append that must come right after it).
pub(crate) fn read_latest(log: &Log, key: &[u8]) -> Result<(LatestState, u64)> {
    // The common case, a key with events in the log: one key-index lookup, one record read.
    if let Some(found) = newest(log, key)? {
        return Ok(found);
    }
    // No event in the log. IMPORTANT: the version first, then the events again: an event
    // appended between them is seen by the second read (which then answers), so a version
    // counting events that the answer does not show is never returned. A stale version only
    // makes the caller's checked append fail and retry.
    let version = log.stream_version(key)?;
    if let Some(found) = newest(log, key)? {
        return Ok(found);
    }
    Ok((if version == 0 { LatestState::Absent } else { LatestState::Unknown }, version))
}

/// The state set by the newest event of `key`'s stream, and the stream's version after it.
fn newest(log: &Log, key: &[u8]) -> Result<Option<(LatestState, u64)>> {
    let Some(event) = log.read_stream_backward(key, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let rec = &event.record;
    // A tombstone deletes its key whatever it carries: one written by other means than
    // `delete_state` (without an envelope) leaves the key without a state too.
    if rec.tombstone && !Envelope::looks_like_envelope(&rec.payload) {
        return Ok(Some((LatestState::Absent, event.version + 1)));
    }
    let env =
        decode_payload(rec.offset, &rec.payload).map_err(|(at, kind)| located(log.dir(), rec.offset, at, kind))?;
    let state = match env.after() {
        Some(s) => LatestState::Present { offset: rec.offset, state: s.to_vec() },
        None => LatestState::Absent,
    };
    Ok(Some((state, event.version + 1)))
}

/// The error for a bad envelope found in the log at `dir`.
fn located(dir: &Path, offset: u64, position: u64, kind: crate::error::CorruptionKind) -> Error {
    Error::InvalidEnvelope { log: Some(dir.to_path_buf()), offset, position, kind }
}
