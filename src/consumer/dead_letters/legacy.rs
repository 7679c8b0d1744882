//! The dead-letter record, format 1, as the first release wrote it: the original key,
//! headers and payload, with the metadata appended as `tidelog.dlq.*` headers (ASCII text,
//! decimal numbers). Only read, never written.
//!
//! The engine appended its headers after the original ones, always the same names in the
//! same order, so they are the *last* ten (eleven with `redrive-of`) headers of the record.
//! They are read from there, with every name checked: headers a publisher put on the event
//! (even ones named `tidelog.dlq.*`) come before and are kept as the event's own.

use super::{DeadLetter, DeadLetterCause, DeadLetterStatus};
use crate::OwnedRecord;

const ORIGINAL_HEADERS: &str = "tidelog.dlq.original-headers";
const REDRIVE_OF: &str = "tidelog.dlq.redrive-of";
/// The metadata headers in the order the first release wrote them (`redrive-of` last, when
/// present).
const NAMES: [&str; 10] = [
    ORIGINAL_HEADERS,
    "tidelog.dlq.topic",
    "tidelog.dlq.offset",
    "tidelog.dlq.timestamp-us",
    "tidelog.dlq.group",
    "tidelog.dlq.attempts",
    "tidelog.dlq.cause",
    "tidelog.dlq.reason",
    "tidelog.dlq.first-failure-us",
    "tidelog.dlq.last-failure-us",
];

/// Where the engine's headers start: `n` such that `headers[n..]` are exactly the metadata
/// headers, in order, and `headers[n]` (`original-headers`) says `n`.
fn metadata_start(headers: &[(String, Vec<u8>)]) -> Option<(usize, bool)> {
    for with_redrive in [true, false] {
        let k = NAMES.len() + usize::from(with_redrive);
        let Some(n) = headers.len().checked_sub(k) else { continue };
        let names_match = headers[n..]
            .iter()
            .map(|(name, _)| name.as_str())
            .eq(NAMES.iter().copied().chain(with_redrive.then_some(REDRIVE_OF)));
        if names_match && headers[n].1 == n.to_string().as_bytes() {
            return Some((n, with_redrive));
        }
    }
    None
}

/// Decode a format-1 dead-letter record; on failure, the name of the field that is wrong.
pub(crate) fn decode(rec: OwnedRecord) -> Result<DeadLetter, &'static str> {
    let (n, with_redrive) = metadata_start(&rec.headers).ok_or(ORIGINAL_HEADERS)?;
    let mut headers = rec.headers;
    let meta = headers.split_off(n);
    let text = |i: usize| std::str::from_utf8(&meta[i].1).map_err(|_| NAMES[i]);
    let number = |i: usize| text(i)?.parse::<u64>().map_err(|_| NAMES[i]);
    let cause = match text(6)? {
        "rejected" => DeadLetterCause::Rejected,
        "max-deliveries" => DeadLetterCause::MaxDeliveries,
        _ => return Err(NAMES[6]),
    };
    let redrive_of = match with_redrive {
        true => Some(std::str::from_utf8(&meta[10].1).ok().and_then(|s| s.parse().ok()).ok_or(REDRIVE_OF)?),
        false => None,
    };
    let source_offset = number(2)?;
    Ok(DeadLetter {
        dlq_offset: rec.offset,
        topic: text(1)?.to_owned(),
        group: text(4)?.to_owned(),
        source_offset,
        attempts: u32::try_from(number(5)?).map_err(|_| NAMES[5])?,
        cause,
        reason: text(7)?.to_owned(),
        first_failure_us: number(8)?,
        last_failure_us: number(9)?,
        dead_lettered_us: rec.timestamp_us,
        redrive_of,
        status: DeadLetterStatus::Parked,
        record: OwnedRecord {
            offset: source_offset,
            timestamp_us: number(3)?,
            key: rec.key,
            headers,
            payload: rec.payload,
            // Format 1 predates tombstones.
            tombstone: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(headers: &[(&str, &str)]) -> OwnedRecord {
        OwnedRecord {
            offset: 4,
            timestamp_us: 9,
            key: None,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect(),
            payload: b"p".to_vec(),
            tombstone: false,
        }
    }

    fn engine(n: usize, offset: &str) -> Vec<(&'static str, String)> {
        let values = [n.to_string(), "t".into(), offset.into(), "7".into(), "g".into(), "2".into()];
        let rest = ["rejected", "why", "1", "2"].map(String::from);
        NAMES.iter().copied().zip(values.into_iter().chain(rest)).collect()
    }

    #[test]
    fn records_without_metadata_are_refused() {
        assert!(decode(rec(&[])).is_err());
        assert!(decode(rec(&[(ORIGINAL_HEADERS, "0")])).is_err());
    }

    /// A publisher's headers named like the metadata come before the engine's and stay the
    /// event's own: the metadata is the engine's, read from the end.
    #[test]
    fn user_headers_named_like_metadata_are_kept_and_never_read_as_metadata() {
        let forged: Vec<(&str, String)> = engine(0, "99999999999");
        let mut all: Vec<(&str, String)> = forged.clone();
        all.push(("trace", "x".into()));
        let n = all.len();
        all.extend(engine(n, "4"));
        let pairs: Vec<(&str, &str)> = all.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let d = decode(rec(&pairs)).unwrap();
        assert_eq!((d.source_offset, d.record.offset, d.record.timestamp_us), (4, 4, 7));
        assert_eq!(d.record.headers.len(), n);
        assert_eq!(d.record.headers[0].0, ORIGINAL_HEADERS);
        assert_eq!(d.record.headers[n - 1], ("trace".to_string(), b"x".to_vec()));
    }
}
