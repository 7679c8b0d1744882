//! Codecs for typed events and aggregate states: the [`EventCodec`] trait, the default
//! [`BincodeCodec`] and the human-readable [`JsonCodec`]. A codec's [`name`](EventCodec::name)
//! travels with every event it encodes (the header `tidelog.codec`), so a reader never
//! decodes bytes with a codec that did not write them.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::projection::BoxError;

/// Turns typed values into bytes and back: event payloads and aggregate snapshot states.
///
/// `decode` must never panic, whatever the bytes: damaged or hostile input is an error. The
/// [`name`](EventCodec::name) is stored beside what a codec encodes and compared when it is
/// read; two codecs that do not read each other's bytes must have different names.
pub trait EventCodec: Send + Sync {
    /// The codec's name: short, ASCII, at most 255 bytes (stored in the header `tidelog.codec`
    /// and in aggregate snapshots, whose writes fail for a longer one).
    fn name(&self) -> &'static str;

    /// Encode `value`.
    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, BoxError>;

    /// Decode a value that fills `bytes` exactly.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError>;
}

/// The default codec: bincode 2's standard configuration (compact, little-endian, variable
/// length integers), named `bincode`. Decoding bounds the memory a declared length may
/// claim, so hostile bytes are an error, never an allocation failure. Field names are not
/// stored: adding, removing or reordering fields changes the schema (bump the event's
/// [`schema_version`](crate::Event::schema_version) and upcast).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BincodeCodec;

impl EventCodec for BincodeCodec {
    fn name(&self) -> &'static str {
        "bincode"
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(super::encode(value)?)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(super::decode(bytes)?)
    }
}

/// JSON through serde_json, named `json`: larger and slower than [`BincodeCodec`], but
/// readable by any tool and tolerant of added optional fields (`#[serde(default)]`).
/// serde_json limits nesting to 128 levels, so hostile input cannot exhaust the stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonCodec;

impl EventCodec for JsonCodec {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value)?)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, BoxError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Deposit {
        account: String,
        cents: i64,
    }

    #[test]
    fn both_codecs_round_trip_and_refuse_garbage() {
        let v = Deposit { account: "a-1".into(), cents: -5 };
        let b = BincodeCodec.encode(&v).unwrap();
        assert_eq!(BincodeCodec.decode::<Deposit>(&b).unwrap(), v);
        let j = JsonCodec.encode(&v).unwrap();
        assert_eq!(j, br#"{"account":"a-1","cents":-5}"#);
        assert_eq!(JsonCodec.decode::<Deposit>(&j).unwrap(), v);
        assert!(BincodeCodec.decode::<Deposit>(&j).is_err());
        assert!(JsonCodec.decode::<Deposit>(&b).is_err());
        // 10,000 nested arrays: an error, not a stack overflow.
        let deep = "[".repeat(10_000);
        assert!(JsonCodec.decode::<serde_json::Value>(deep.as_bytes()).is_err());
    }
}
