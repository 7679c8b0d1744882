//! Dead-letter records: the original event (key, headers, payload) with what happened to it
//! appended as headers. One dead-letter log per group.
//!
//! Header values are ASCII text (decimal numbers), like Kafka Connect's `__connect.errors.*`
//! headers, so that `tidelog dump` and other tools show them as they are. Layout (see
//! `docs/format.md` ("Store and consumer-group files")): the original headers first, in order, then
//! `tidelog.dlq.original-headers` whose value is their count (and therefore its own index),
//! then the other `tidelog.dlq.*` headers.

use std::collections::BTreeSet;

use super::persist::{self, GroupPaths};
use super::state::{GroupState, ItemId};
use crate::error::{CorruptionKind, Error, Result};
use crate::log::Log;
use crate::options::{Durability, Options};
use crate::record::{Header, OwnedRecord, Record};
use crate::store::{StoreOptions, Topic};

pub(crate) const H_ORIGINAL_HEADERS: &str = "tidelog.dlq.original-headers";
pub(crate) const H_TOPIC: &str = "tidelog.dlq.topic";
pub(crate) const H_OFFSET: &str = "tidelog.dlq.offset";
pub(crate) const H_TIMESTAMP: &str = "tidelog.dlq.timestamp-us";
pub(crate) const H_GROUP: &str = "tidelog.dlq.group";
pub(crate) const H_ATTEMPTS: &str = "tidelog.dlq.attempts";
pub(crate) const H_CAUSE: &str = "tidelog.dlq.cause";
pub(crate) const H_REASON: &str = "tidelog.dlq.reason";
pub(crate) const H_FIRST_FAILURE: &str = "tidelog.dlq.first-failure-us";
pub(crate) const H_LAST_FAILURE: &str = "tidelog.dlq.last-failure-us";
pub(crate) const H_REDRIVE_OF: &str = "tidelog.dlq.redrive-of";

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
    /// The text stored in the `tidelog.dlq.cause` header.
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

/// Append the dead-letter record for `event` to `log`; returns its dead-letter offset.
pub(crate) fn append(log: &crate::Log, event: &OwnedRecord, meta: &DeadLetterMeta<'_>) -> Result<u64> {
    let texts: Vec<(&'static str, String)> = {
        let mut v = vec![
            (H_ORIGINAL_HEADERS, event.headers.len().to_string()),
            (H_TOPIC, meta.topic.to_owned()),
            (H_OFFSET, event.offset.to_string()),
            (H_TIMESTAMP, event.timestamp_us.to_string()),
            (H_GROUP, meta.group.to_owned()),
            (H_ATTEMPTS, meta.attempts.to_string()),
            (H_CAUSE, meta.cause.as_str().to_owned()),
            (H_REASON, clip_reason(meta.reason)),
            (H_FIRST_FAILURE, meta.first_failure_us.to_string()),
            (H_LAST_FAILURE, meta.last_failure_us.to_string()),
        ];
        if let Some(r) = meta.redrive_of {
            v.push((H_REDRIVE_OF, r.to_string()));
        }
        v
    };
    let mut headers: Vec<Header<'_>> = event.headers.iter().map(|(n, v)| Header { name: n, value: v }).collect();
    headers.extend(texts.iter().map(|(n, v)| Header { name: n, value: v.as_bytes() }));
    let mut rec = Record::new(&event.payload).headers(&headers);
    if let Some(k) = &event.key {
        rec = rec.key(k);
    }
    log.append(rec)
}

fn bad(field: &'static str) -> Error {
    Error::corrupt("dead-letter record", 0, CorruptionKind::BadField(field))
}

fn text<'a>(meta: &'a [(String, Vec<u8>)], name: &'static str) -> Result<&'a str> {
    let v = meta.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice()).ok_or_else(|| bad(name))?;
    std::str::from_utf8(v).map_err(|_| bad(name))
}

fn number(meta: &[(String, Vec<u8>)], name: &'static str) -> Result<u64> {
    text(meta, name)?.parse::<u64>().map_err(|_| bad(name))
}

/// Parse a dead-letter record (as read from the dead-letter log at `dlq_offset`).
/// `status` is filled in by the caller; this returns [`DeadLetterStatus::Parked`].
pub(crate) fn parse(rec: OwnedRecord) -> Result<DeadLetter> {
    let split = rec
        .headers
        .iter()
        .enumerate()
        .position(|(i, (n, v))| n == H_ORIGINAL_HEADERS && std::str::from_utf8(v).ok() == Some(i.to_string().as_str()))
        .ok_or_else(|| bad(H_ORIGINAL_HEADERS))?;
    let mut headers = rec.headers;
    let meta = headers.split_off(split);
    let cause = match text(&meta, H_CAUSE)? {
        "rejected" => DeadLetterCause::Rejected,
        "max-deliveries" => DeadLetterCause::MaxDeliveries,
        _ => return Err(bad(H_CAUSE)),
    };
    let source_offset = number(&meta, H_OFFSET)?;
    let redrive_of = match meta.iter().any(|(n, _)| n == H_REDRIVE_OF) {
        true => Some(number(&meta, H_REDRIVE_OF)?),
        false => None,
    };
    Ok(DeadLetter {
        dlq_offset: rec.offset,
        topic: text(&meta, H_TOPIC)?.to_owned(),
        group: text(&meta, H_GROUP)?.to_owned(),
        source_offset,
        attempts: u32::try_from(number(&meta, H_ATTEMPTS)?).map_err(|_| bad(H_ATTEMPTS))?,
        cause,
        reason: text(&meta, H_REASON)?.to_owned(),
        first_failure_us: number(&meta, H_FIRST_FAILURE)?,
        last_failure_us: number(&meta, H_LAST_FAILURE)?,
        dead_lettered_us: rec.timestamp_us,
        redrive_of,
        status: DeadLetterStatus::Parked,
        record: OwnedRecord {
            offset: source_offset,
            timestamp_us: number(&meta, H_TIMESTAMP)?,
            key: rec.key,
            headers,
            payload: rec.payload,
        },
    })
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

/// What a group's state says about its dead letters, taken at one moment, to tell the status
/// of each.
pub(crate) struct Statuses {
    parked: BTreeSet<u64>,
    redriving: BTreeSet<u64>,
    /// Records at or after this offset are not reflected in the state yet (written just
    /// before a crash): they are parked.
    reflected_below: u64,
}

impl Statuses {
    pub(crate) fn of(s: &GroupState) -> Statuses {
        let redriving = s
            .entries
            .keys()
            .filter_map(|id| match id {
                ItemId::Redrive(d) => Some(*d),
                ItemId::Topic(_) => None,
            })
            .collect();
        Statuses { parked: s.parked.clone(), redriving, reflected_below: s.dlq_next }
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

/// Every dead letter in `dl`, oldest first, with its status.
pub(crate) fn list(dl: &Log, statuses: &Statuses) -> Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for rec in dl.iter(dl.first_offset()) {
        let mut d = parse(rec?)?;
        d.status = statuses.status(d.dlq_offset);
        out.push(d);
    }
    Ok(out)
}

/// Dead letters of a group that is not open in this process.
pub(crate) fn persisted(topic: &Topic, group: &str) -> Result<Vec<DeadLetter>> {
    let paths = GroupPaths::new(topic, group);
    if !paths.dir.is_dir() {
        return Err(Error::NotFound { path: paths.dir });
    }
    let opts = topic.store().options();
    let s = persist::load_view(&paths.dir, &persist::state_log_options(opts, None))?;
    let dl = match Log::open_read_only(&paths.dead_letters, log_options(opts)) {
        Ok(dl) => dl,
        Err(Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    list(&dl, &Statuses::of(&s))
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

    #[test]
    fn parse_rejects_records_without_metadata() {
        let rec = OwnedRecord { offset: 0, timestamp_us: 0, key: None, headers: vec![], payload: vec![] };
        assert!(parse(rec).is_err());
        let rec = OwnedRecord {
            offset: 0,
            timestamp_us: 0,
            key: None,
            headers: vec![(H_ORIGINAL_HEADERS.into(), b"1".to_vec())],
            payload: vec![],
        };
        assert!(parse(rec).is_err());
    }
}
