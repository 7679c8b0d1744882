//! Dead letters: one dead-letter log per group, one record per dead letter, holding the
//! original event and what happened to it. [`record`] is the format written now (metadata
//! in the record's key, out of publishers' reach); [`legacy`] the format the first release
//! wrote (metadata in headers), still read. Which one a record is in is decided by its
//! offset: the group's state records the first offset written in format 2
//! ([`GroupState::dead_letter_format_from`]), never by looking at the record.
//!
//! Layouts in `docs/format.md` ("Dead-letter records").

mod legacy;
pub(crate) mod purge;
mod record;

use std::collections::BTreeSet;
use std::path::Path;

use super::persist::{self, GroupPaths};
use super::state::{GroupState, ItemId};
use crate::error::{CorruptionKind, Error, Result};
use crate::store::{StoreOptions, Topic};
use crate::Log;
use crate::{Durability, Options};
use crate::{Header, OwnedRecord, Record};

/// Longest failure reason kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_REASON_BYTES: usize = 4096;

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterCause {
    /// A consumer rejected it ([`crate::Group::reject`]).
    Rejected,
    /// It was delivered `max_deliveries` times without an ack.
    MaxDeliveries,
}

impl DeadLetterCause {
    /// Lower-case name, as the CLI prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterCause::Rejected => "rejected",
            DeadLetterCause::MaxDeliveries => "max-deliveries",
        }
    }
}

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterStatus {
    /// Waiting in the dead-letter log; can be redriven.
    Parked,
    /// Redriven: delivered to the group again, not settled yet.
    Redriven,
    /// Redriven and then acknowledged, or dead-lettered again (under a new dead-letter
    /// offset whose `redrive_of` names this one).
    Settled,
}

impl DeadLetterStatus {
    /// Lower-case name, as the CLI prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterStatus::Parked => "parked",
            DeadLetterStatus::Redriven => "redriven",
            DeadLetterStatus::Settled => "settled",
        }
    }
}

/// A dead letter as listed by [`crate::Group::dead_letters`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Offset in the group's dead-letter log (what [`crate::Group::redrive`] takes).
    pub dlq_offset: u64,
    /// The topic the event came from.
    pub topic: String,
    /// The group that gave up on it.
    pub group: String,
    /// The event's offset in its topic.
    pub source_offset: u64,
    /// Deliveries made before it was dead-lettered.
    pub attempts: u32,
    /// Why it was dead-lettered.
    pub cause: DeadLetterCause,
    /// The last failure reason given (nack or reject), or a description of the last failure.
    pub reason: String,
    /// First failed delivery (µs since the Unix epoch; 0 if none was recorded).
    pub first_failure_us: u64,
    /// Last failed delivery (µs since the Unix epoch; 0 if none was recorded).
    pub last_failure_us: u64,
    /// When it was written to the dead-letter log (µs since the Unix epoch).
    pub dead_lettered_us: u64,
    /// If this event had been redriven before and failed again: the earlier dead letter.
    pub redrive_of: Option<u64>,
    /// Parked, redriven or settled.
    pub status: DeadLetterStatus,
    /// The original event: offset and timestamp as in the topic, key, headers and payload
    /// as published.
    pub record: OwnedRecord,
}

/// What goes into a dead-letter record besides the event.
pub(crate) struct DeadLetterMeta<'a> {
    pub topic: &'a str,
    pub group: &'a str,
    pub attempts: u32,
    pub cause: DeadLetterCause,
    pub reason: &'a str,
    pub first_failure_us: u64,
    pub last_failure_us: u64,
    pub redrive_of: Option<u64>,
}

/// Cut `reason` to at most [`MAX_REASON_BYTES`] at a character boundary.
pub(crate) fn clip_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON_BYTES {
        return reason.to_owned();
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Append the dead-letter record for `event` to `log` (format 2); returns its dead-letter
/// offset.
pub(crate) fn append(log: &Log, event: &OwnedRecord, meta: &DeadLetterMeta<'_>) -> Result<u64> {
    let key = record::encode(event, meta, &clip_reason(meta.reason));
    let headers: Vec<Header<'_>> = event.headers.iter().map(|(n, v)| Header { name: n, value: v }).collect();
    log.append(Record::new(&event.payload).key(&key).headers(&headers))
}

/// Decode the dead-letter record `rec` read from the log in `dir`. `format_2_from` is the
/// first offset written in format 2 (`None`: every record is in format 1). Malformed
/// metadata is [`Error::Corruption`] naming the dead-letter log and the record's offset.
pub(crate) fn decode(rec: OwnedRecord, format_2_from: Option<u64>, dir: &Path) -> Result<DeadLetter> {
    let at = rec.offset;
    let decoded = match format_2_from {
        Some(from) if at >= from => record::decode(rec),
        _ => legacy::decode(rec),
    };
    decoded.map_err(|field| Error::corrupt_record(dir, at, CorruptionKind::BadField(field)))
}

/// Options of a group's dead-letter log in a store opened with `store`.
pub(crate) fn log_options(store: &StoreOptions) -> Options {
    // Room for the event plus its metadata.
    let max = store.topic.max_record_bytes.saturating_add(64 << 10).min(crate::MAX_SEGMENT_BYTES / 2);
    Options::default()
        .segment_bytes(store.dead_letter_segment_bytes)
        .max_record_bytes(max)
        .durability(Durability::Always)
}

/// The next offset of a group's dead-letter log (0 if it has none), read without its lock.
pub(crate) fn next_offset(paths: &GroupPaths, store: &StoreOptions) -> Result<u64> {
    match Log::open_read_only(&paths.dead_letters, log_options(store)) {
        Ok(dl) => Ok(dl.next_offset()),
        Err(Error::NotFound { .. }) => Ok(0),
        Err(e) => Err(e),
    }
}

/// What a group's state says about its dead letters, taken at one moment, to decode each and
/// tell its status.
pub(crate) struct View {
    format_2_from: Option<u64>,
    parked: BTreeSet<u64>,
    redriving: BTreeSet<u64>,
    /// Records at or after this offset are not reflected in the state yet (written just
    /// before a crash): they are parked.
    reflected_below: u64,
    /// Records below this offset were purged: not listed.
    purged_below: u64,
}

impl View {
    pub(crate) fn of(s: &GroupState) -> View {
        let redriving = s
            .entries
            .keys()
            .filter_map(|id| match id {
                ItemId::Redrive(d) => Some(*d),
                ItemId::Topic(_) => None,
            })
            .collect();
        View {
            format_2_from: s.dead_letter_format_from,
            parked: s.parked.clone(),
            redriving,
            reflected_below: s.dlq_next,
            purged_below: s.dlq_purged_below,
        }
    }

    fn status(&self, dlq_offset: u64) -> DeadLetterStatus {
        if self.parked.contains(&dlq_offset) || dlq_offset >= self.reflected_below {
            DeadLetterStatus::Parked
        } else if self.redriving.contains(&dlq_offset) {
            DeadLetterStatus::Redriven
        } else {
            DeadLetterStatus::Settled
        }
    }
}

/// Every dead letter in `dl` not purged, oldest first, with its status.
pub(crate) fn list(dl: &Log, view: &View) -> Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for rec in dl.iter(dl.first_offset().max(view.purged_below)) {
        let mut d = decode(rec?, view.format_2_from, dl.dir())?;
        d.status = view.status(d.dlq_offset);
        out.push(d);
    }
    Ok(out)
}

/// Dead letters of a group that is not open in this process.
pub(crate) fn persisted(topic: &Topic, group: &str) -> Result<Vec<DeadLetter>> {
    persisted_in(&GroupPaths::new(topic, group), topic.store().options())
}

/// Dead letters of the group whose files are `paths`, as its persisted state says.
pub(crate) fn persisted_in(paths: &GroupPaths, opts: &StoreOptions) -> Result<Vec<DeadLetter>> {
    if !paths.dir.is_dir() {
        return Err(Error::NotFound { path: paths.dir.clone() });
    }
    let s = persist::load_view(&paths.dir, &persist::state_log_options(opts, None))?;
    let dl = match Log::open_read_only(&paths.dead_letters, log_options(opts)) {
        Ok(dl) => dl,
        Err(Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    list(&dl, &View::of(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_char_boundaries() {
        let s = "é".repeat(MAX_REASON_BYTES);
        let c = clip_reason(&s);
        assert!(c.len() <= MAX_REASON_BYTES && c.len() >= MAX_REASON_BYTES - 1);
        assert_eq!(clip_reason("short"), "short");
    }

    fn event(key: Option<&[u8]>, headers: &[(&str, &[u8])]) -> OwnedRecord {
        OwnedRecord {
            offset: 41,
            timestamp_us: 7,
            key: key.map(<[u8]>::to_vec),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
            payload: b"payload".to_vec(),
            // One case of the round trip is a tombstone: its flag must survive.
            tombstone: key.is_some_and(<[u8]>::is_empty),
        }
    }

    fn meta(redrive_of: Option<u64>) -> DeadLetterMeta<'static> {
        DeadLetterMeta {
            topic: "orders",
            group: "billing",
            attempts: 3,
            cause: DeadLetterCause::MaxDeliveries,
            reason: "db down",
            first_failure_us: 10,
            last_failure_us: 20,
            redrive_of,
        }
    }

    /// The dead-letter record as `append` stores it, read back at offset `at`.
    fn stored(ev: &OwnedRecord, m: &DeadLetterMeta<'_>, at: u64) -> OwnedRecord {
        let key = record::encode(ev, m, &clip_reason(m.reason));
        OwnedRecord {
            offset: at,
            timestamp_us: 99,
            key: Some(key),
            headers: ev.headers.clone(),
            payload: ev.payload.clone(),
            tombstone: false,
        }
    }

    #[test]
    fn format_2_round_trips_and_keeps_the_event_as_published() {
        let forged: &[(&str, &[u8])] =
            &[("tidelog.dlq.original-headers", b"0"), ("tidelog.dlq.offset", b"999999999999"), ("x", b"")];
        for (key, redrive_of) in [(Some(&b"k"[..]), None), (None, Some(5)), (Some(&b""[..]), Some(0))] {
            let ev = event(key, forged);
            let d = decode(stored(&ev, &meta(redrive_of), 3), Some(0), Path::new("dl")).unwrap();
            assert_eq!((d.dlq_offset, d.source_offset, d.attempts, d.redrive_of), (3, 41, 3, redrive_of));
            assert_eq!((d.topic.as_str(), d.group.as_str(), d.reason.as_str()), ("orders", "billing", "db down"));
            assert_eq!(
                (d.cause, d.first_failure_us, d.last_failure_us, d.dead_lettered_us),
                (DeadLetterCause::MaxDeliveries, 10, 20, 99)
            );
            assert_eq!(d.record, ev);
        }
    }

    #[test]
    fn format_2_damage_is_located_corruption_never_a_panic() {
        let good = stored(&event(Some(b"key"), &[]), &meta(Some(1)), 8);
        let key = good.key.clone().unwrap();
        for n in 0..key.len() {
            let mut r = good.clone();
            r.key = Some(key[..n].to_vec());
            let e = decode(r, Some(0), Path::new("dl")).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Corruption {
                        location: crate::error::Location::Log { offset: 8, .. },
                        kind: CorruptionKind::BadField(_)
                    }
                ),
                "{e}"
            );
        }
        for i in 0..key.len() {
            for bit in [0x01, 0x80] {
                let mut r = good.clone();
                let mut k = key.clone();
                k[i] ^= bit;
                r.key = Some(k);
                // Decodes to other values or fails cleanly.
                let _ = decode(r, Some(0), Path::new("dl"));
            }
        }
        let mut none = good.clone();
        none.key = None;
        assert!(decode(none, Some(0), Path::new("dl")).is_err());
    }

    #[test]
    fn the_format_is_chosen_by_offset_not_by_content() {
        let ev = event(None, &[]);
        let r = stored(&ev, &meta(None), 5);
        assert!(decode(r.clone(), Some(5), Path::new("dl")).is_ok());
        // Below the boundary (or with no boundary) it is read as format 1 and refused.
        assert!(decode(r.clone(), Some(6), Path::new("dl")).is_err());
        assert!(decode(r, None, Path::new("dl")).is_err());
    }

    proptest::proptest! {
        /// Arbitrary keys and headers never panic either decoder: they decode or give a
        /// located error.
        #[test]
        fn decoders_never_panic(
            key in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..200)),
            names in proptest::collection::vec(0usize..12, 0..14),
        ) {
            let mut rec = event(None, &[]);
            rec.key = key.clone();
            rec.headers = names.iter().map(|&i| {
                let name = ["tidelog.dlq.original-headers", "tidelog.dlq.redrive-of", "x"][i % 3];
                (name.to_string(), i.to_string().into_bytes())
            }).collect();
            let _ = decode(rec.clone(), Some(0), Path::new("dl"));
            let _ = decode(rec, None, Path::new("dl"));
            // A valid fixed part in front of arbitrary bytes.
            let mut framed = stored(&event(None, &[]), &meta(None), 1);
            if let Some(k) = framed.key.as_mut() {
                k.truncate(68);
                k.extend_from_slice(&key.unwrap_or_default());
            }
            let _ = decode(framed, Some(0), Path::new("dl"));
        }
    }
}
