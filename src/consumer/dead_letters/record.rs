//! The dead-letter record, format 2: the engine's metadata in the record's key, where a
//! publisher cannot reach it; the original headers and payload unchanged.
//!
//! Layout of the key (all integers little-endian; specified in `docs/format.md`, "Dead-letter
//! records"). The record's frame checksum covers it.
//!
//! | at | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `TDLM` |
//! | 4 | 2 | version `2` |
//! | 6 | 2 | flags: bit 0 the event had a key, bit 1 `redrive_of` is set, bit 2 the event was a tombstone |
//! | 8 | 8 | source offset |
//! | 16 | 8 | source timestamp (µs) |
//! | 24 | 8 | first failure (µs) |
//! | 32 | 8 | last failure (µs) |
//! | 40 | 8 | redrive-of dead-letter offset (0 unless flag bit 1) |
//! | 48 | 4 | attempts |
//! | 52 | 1 | cause: 1 rejected, 2 max-deliveries |
//! | 53 | 1 | reserved, 0 |
//! | 54 | 2 | topic length |
//! | 56 | 2 | group length |
//! | 58 | 2 | reserved, 0 |
//! | 60 | 4 | reason length |
//! | 64 | 4 | key length |
//! | 68 | .. | topic, group, reason (UTF-8), the event's key |

use super::{DeadLetter, DeadLetterCause, DeadLetterMeta, DeadLetterStatus};
use crate::format::{le_u16, le_u32, le_u64};
use crate::OwnedRecord;

const MAGIC: [u8; 4] = *b"TDLM";
pub(crate) const VERSION: u16 = 2;
const VERSION_AT: usize = 4;
const FLAGS_AT: usize = VERSION_AT + 2;
const SOURCE_OFFSET_AT: usize = FLAGS_AT + 2;
const SOURCE_TS_AT: usize = SOURCE_OFFSET_AT + 8;
const FIRST_FAILURE_AT: usize = SOURCE_TS_AT + 8;
const LAST_FAILURE_AT: usize = FIRST_FAILURE_AT + 8;
const REDRIVE_OF_AT: usize = LAST_FAILURE_AT + 8;
const ATTEMPTS_AT: usize = REDRIVE_OF_AT + 8;
const CAUSE_AT: usize = ATTEMPTS_AT + 4;
const TOPIC_LEN_AT: usize = CAUSE_AT + 2;
const GROUP_LEN_AT: usize = TOPIC_LEN_AT + 2;
const REASON_LEN_AT: usize = GROUP_LEN_AT + 4;
const KEY_LEN_AT: usize = REASON_LEN_AT + 4;
/// Bytes before the variable-length fields.
const FIXED_LEN: usize = KEY_LEN_AT + 4;
const _: () = assert!(FIXED_LEN == 68);

const FLAG_KEY: u16 = 1;
const FLAG_REDRIVE_OF: u16 = 2;
const FLAG_TOMBSTONE: u16 = 4;

fn cause_code(c: DeadLetterCause) -> u8 {
    match c {
        DeadLetterCause::Rejected => 1,
        DeadLetterCause::MaxDeliveries => 2,
    }
}

/// The metadata block (the dead-letter record's key) for `event`. Names are at most 200
/// bytes and the reason is clipped to `MAX_REASON_BYTES`, so the lengths fit their fields.
pub(crate) fn encode(event: &OwnedRecord, meta: &DeadLetterMeta<'_>, reason: &str) -> Vec<u8> {
    let key = event.key.as_deref().unwrap_or(&[]);
    let mut flags = 0;
    if event.key.is_some() {
        flags |= FLAG_KEY;
    }
    if meta.redrive_of.is_some() {
        flags |= FLAG_REDRIVE_OF;
    }
    if event.tombstone {
        flags |= FLAG_TOMBSTONE;
    }
    let mut b = Vec::with_capacity(FIXED_LEN + meta.topic.len() + meta.group.len() + reason.len() + key.len());
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&event.offset.to_le_bytes());
    b.extend_from_slice(&event.timestamp_us.to_le_bytes());
    b.extend_from_slice(&meta.first_failure_us.to_le_bytes());
    b.extend_from_slice(&meta.last_failure_us.to_le_bytes());
    b.extend_from_slice(&meta.redrive_of.unwrap_or(0).to_le_bytes());
    b.extend_from_slice(&meta.attempts.to_le_bytes());
    b.push(cause_code(meta.cause));
    b.push(0);
    b.extend_from_slice(&(meta.topic.len() as u16).to_le_bytes());
    b.extend_from_slice(&(meta.group.len() as u16).to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(reason.len() as u32).to_le_bytes());
    b.extend_from_slice(&(key.len() as u32).to_le_bytes());
    debug_assert_eq!(b.len(), FIXED_LEN);
    b.extend_from_slice(meta.topic.as_bytes());
    b.extend_from_slice(meta.group.as_bytes());
    b.extend_from_slice(reason.as_bytes());
    b.extend_from_slice(key);
    b
}

/// Decode a format-2 dead-letter record; on failure, the name of the field that is wrong.
pub(crate) fn decode(rec: OwnedRecord) -> Result<DeadLetter, &'static str> {
    let b = rec.key.as_deref().ok_or("dead-letter metadata")?;
    if b.len() < FIXED_LEN || b[..4] != MAGIC {
        return Err("dead-letter metadata");
    }
    if le_u16(b, VERSION_AT) != VERSION {
        return Err("dead-letter metadata version");
    }
    let flags = le_u16(b, FLAGS_AT);
    if flags & !(FLAG_KEY | FLAG_REDRIVE_OF | FLAG_TOMBSTONE) != 0
        || b[CAUSE_AT + 1] != 0
        || le_u16(b, GROUP_LEN_AT + 2) != 0
    {
        return Err("dead-letter metadata flags");
    }
    let cause = match b[CAUSE_AT] {
        1 => DeadLetterCause::Rejected,
        2 => DeadLetterCause::MaxDeliveries,
        _ => return Err("dead-letter cause"),
    };
    // Lengths are checked against what is there before they are used: the four must add up
    // to exactly the bytes after the fixed part.
    let lens = [
        u64::from(le_u16(b, TOPIC_LEN_AT)),
        u64::from(le_u16(b, GROUP_LEN_AT)),
        u64::from(le_u32(b, REASON_LEN_AT)),
        u64::from(le_u32(b, KEY_LEN_AT)),
    ];
    if lens.iter().sum::<u64>() != (b.len() - FIXED_LEN) as u64 {
        return Err("dead-letter metadata lengths");
    }
    let mut at = FIXED_LEN;
    let mut take = |n: u64| {
        let s = &b[at..at + n as usize];
        at += n as usize;
        s
    };
    let text = |s: &[u8], field| std::str::from_utf8(s).map(str::to_owned).map_err(|_| field);
    let topic = text(take(lens[0]), "dead-letter topic")?;
    let group = text(take(lens[1]), "dead-letter group")?;
    let reason = text(take(lens[2]), "dead-letter reason")?;
    let key = take(lens[3]);
    let key = match flags & FLAG_KEY {
        0 if key.is_empty() => None,
        0 => return Err("dead-letter key"),
        _ => Some(key.to_vec()),
    };
    let source_offset = le_u64(b, SOURCE_OFFSET_AT);
    Ok(DeadLetter {
        dlq_offset: rec.offset,
        topic,
        group,
        source_offset,
        attempts: le_u32(b, ATTEMPTS_AT),
        cause,
        reason,
        first_failure_us: le_u64(b, FIRST_FAILURE_AT),
        last_failure_us: le_u64(b, LAST_FAILURE_AT),
        dead_lettered_us: rec.timestamp_us,
        redrive_of: (flags & FLAG_REDRIVE_OF != 0).then(|| le_u64(b, REDRIVE_OF_AT)),
        status: DeadLetterStatus::Parked,
        record: OwnedRecord {
            offset: source_offset,
            timestamp_us: le_u64(b, SOURCE_TS_AT),
            key,
            headers: rec.headers,
            payload: rec.payload,
            tombstone: flags & FLAG_TOMBSTONE != 0,
        },
    })
}
