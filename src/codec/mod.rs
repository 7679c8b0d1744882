//! Typed values to bytes and back. This module is the only place bincode is used: every
//! structured value tidelog stores (consumer-group state changes and snapshots) goes through
//! [`encode`] and [`decode`], with bincode 2's `standard()` configuration (little-endian,
//! variable-length integers). The exact encoding is specified in `docs/format.md` ("Store and consumer-group files").
//!
//! The public side, for applications that store typed events:
//! - [`event_codec`]: the [`EventCodec`] trait and its two implementations, [`BincodeCodec`]
//!   (through [`encode`] and [`decode`] here) and [`JsonCodec`] (serde_json).
//! - [`typed`]: the [`Event`] trait (type name, schema version, upcasting) and the reserved
//!   headers that carry them in a record; decoding errors located by log and offset.
//!
//! Decoding never trusts a length read from the input: a decode limit bounds the memory any
//! declared length may claim, so damaged or hostile bytes give [`Error::Codec`], never an
//! allocation failure or a panic.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

mod event_codec;
mod typed;

pub use event_codec::{BincodeCodec, EventCodec, JsonCodec};
pub use typed::{decode_event, Event, EventDecodeError, CODEC_HEADER, EVENT_TYPE_HEADER, SCHEMA_VERSION_HEADER};
pub(crate) use typed::{parse_schema_version, EncodedEvent};

/// Encode `value` with bincode's standard configuration.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| Error::Codec(e.to_string()))
}

/// Decode a value that must fill `bytes` exactly (trailing bytes are an error).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    // Why a limit: bincode allocates a byte buffer or string as soon as it reads its
    // declared length, before checking that the input holds that many bytes. The limit caps
    // the total it may claim. Bincode counts every decoded value at its in-memory size (a
    // one-byte varint still claims 8 bytes for a `u64`), so a legitimate value claims at
    // most 16 times its encoded size; the tier is the smallest power of two above that.
    let base = bincode::config::standard();
    match bytes.len().saturating_mul(16) {
        n if n <= 1 << 16 => decode_with(bytes, base.with_limit::<{ 1 << 16 }>()),
        n if n <= 1 << 20 => decode_with(bytes, base.with_limit::<{ 1 << 20 }>()),
        n if n <= 1 << 24 => decode_with(bytes, base.with_limit::<{ 1 << 24 }>()),
        n if n <= 1 << 28 => decode_with(bytes, base.with_limit::<{ 1 << 28 }>()),
        _ => decode_with(bytes, base.with_limit::<{ usize::MAX }>()),
    }
}

fn decode_with<T: DeserializeOwned, C: bincode::config::Config>(bytes: &[u8], config: C) -> Result<T> {
    let (value, used) =
        bincode::serde::decode_from_slice::<T, C>(bytes, config).map_err(|e| Error::Codec(e.to_string()))?;
    if used != bytes.len() {
        return Err(Error::Codec(format!("{} trailing bytes after the value", bytes.len() - used)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Sample {
        A { x: u64, s: String },
        B(Vec<u32>),
    }

    #[test]
    fn round_trip_and_exact_bytes() {
        let v = Sample::A { x: 300, s: "hi".into() };
        let b = encode(&v).unwrap();
        // variant 0, varint 300 = 251 + u16 LE, string length 2, bytes.
        assert_eq!(b, vec![0, 251, 0x2c, 0x01, 2, b'h', b'i']);
        assert_eq!(decode::<Sample>(&b).unwrap(), v);
        let v = Sample::B(vec![1, 2, 3]);
        assert_eq!(decode::<Sample>(&encode(&v).unwrap()).unwrap(), v);
    }

    #[test]
    fn trailing_truncated_and_hostile_inputs_are_errors() {
        let mut b = encode(&Sample::A { x: 1, s: "abc".into() }).unwrap();
        b.push(0);
        assert!(matches!(decode::<Sample>(&b), Err(Error::Codec(_))));
        b.pop();
        b.pop();
        assert!(matches!(decode::<Sample>(&b), Err(Error::Codec(_))));
        // A string claiming 2^60 bytes must be refused without allocating.
        let hostile = [0u8, 1, 255, 0, 0, 0, 0, 0, 0, 0, 0x10];
        assert!(matches!(decode::<Sample>(&hostile), Err(Error::Codec(_))));
        assert!(matches!(decode::<Sample>(&[]), Err(Error::Codec(_))));
        assert!(matches!(decode::<Sample>(&[7]), Err(Error::Codec(_))));
    }

    #[test]
    fn many_small_integers_fit_the_limit() {
        // Each 1-byte varint is claimed as 4 bytes (u32): 4000 of them exceed 4 KiB claimed
        // from 4 KiB of input.
        let v = Sample::B(vec![1; 4000]);
        let b = encode(&v).unwrap();
        assert_eq!(decode::<Sample>(&b).unwrap(), v);
        let v = vec![(7u64, 9u64, Some(3u8)); 5000];
        assert_eq!(decode::<Vec<(u64, u64, Option<u8>)>>(&encode(&v).unwrap()).unwrap(), v);
    }
}
