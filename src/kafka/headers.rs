//! The headers the bridge adds to the records it copies, and how their values are written:
//! numbers as ASCII decimal, so that any Kafka tool shows them as they are.

/// Mirror: the source's identity (UTF-8), a header of every mirrored Kafka record.
pub const SOURCE_HEADER: &str = "tidelog.source";
/// Mirror: the record's tidelog offset, ASCII decimal (`"12345"`).
pub const OFFSET_HEADER: &str = "tidelog.offset";
/// Mirror: the record's tidelog timestamp in µs since the Unix epoch, ASCII decimal (the Kafka
/// timestamp holds it in milliseconds only).
pub const TIMESTAMP_HEADER: &str = "tidelog.timestamp-us";
/// Import: the Kafka topic a record was read from.
pub const IMPORT_TOPIC_HEADER: &str = "tidelog.kafka.topic";
/// Import: the Kafka partition, ASCII decimal.
pub const IMPORT_PARTITION_HEADER: &str = "tidelog.kafka.partition";
/// Import: the Kafka offset, ASCII decimal.
pub const IMPORT_OFFSET_HEADER: &str = "tidelog.kafka.offset";
/// Import: the Kafka record's timestamp in milliseconds, ASCII decimal (absent when the
/// Kafka record has none).
pub const IMPORT_TIMESTAMP_HEADER: &str = "tidelog.kafka.timestamp-ms";

/// A number as ASCII decimal.
pub(crate) fn decimal(n: impl std::fmt::Display) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// ASCII decimal back to a number; `None` for anything else (empty, sign, spaces, overflow).
pub(crate) fn parse_decimal<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The value of the LAST header named `name`: the bridge appends its headers after the
/// record's own, so a record published with a header of the same name cannot pass for
/// another source or offset.
pub(crate) fn last_header<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>, name: &str) -> Option<&'a [u8]> {
    headers.filter(|(n, _)| *n == name).map(|(_, v)| v).last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_and_reject_anything_else() {
        assert_eq!(parse_decimal::<u64>(&decimal(18_446_744_073_709_551_615u64)), Some(u64::MAX));
        assert_eq!(parse_decimal::<u64>(b"0"), Some(0));
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1a", b"18446744073709551616"] {
            assert_eq!(parse_decimal::<u64>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_last_header_of_a_name_wins() {
        let hs = [("tidelog.offset", &b"1"[..]), ("x", b"y"), ("tidelog.offset", b"7")];
        assert_eq!(last_header(hs.iter().copied(), OFFSET_HEADER), Some(&b"7"[..]));
        assert_eq!(last_header(hs.iter().copied(), SOURCE_HEADER), None);
    }
}
