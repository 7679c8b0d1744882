//! Typed events in records: the [`Event`] trait, the reserved headers that carry an event's
//! type, schema version and codec, and decoding with upcasting. Header values are specified
//! in `docs/format.md` ("Typed event headers").

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::EventCodec;
use crate::error::{Error, Location, Result};
use crate::projection::BoxError;
use crate::record::{Header, OwnedRecord};

/// The reserved header naming an event's type (UTF-8, [`Event::event_type`]).
pub const EVENT_TYPE_HEADER: &str = "tidelog.event-type";
/// The reserved header carrying the schema version an event was written with (decimal
/// ASCII digits, 1 to 4294967295).
pub const SCHEMA_VERSION_HEADER: &str = "tidelog.schema-version";
/// The reserved header naming the codec of the payload ([`EventCodec::name`]).
pub const CODEC_HEADER: &str = "tidelog.codec";

/// A typed event: a value stored as a record's payload, with its type name and schema
/// version in the record's headers.
///
/// **Schema versions.** Bump [`schema_version`](Event::schema_version) whenever the encoded
/// form changes (a field added, removed, renamed or retyped, with bincode; a field removed
/// or retyped, with JSON), and teach [`upcast`](Event::upcast) to read the older versions:
/// events are never rewritten, so every version ever written must stay readable. An event of
/// a version above the current one (written by newer code) is refused, never guessed at.
pub trait Event: Serialize + DeserializeOwned {
    /// The type name of this value (for an enum, typically the variant: `"Deposited"`), a
    /// short UTF-8 name. Written in the header `tidelog.event-type`; a record whose header
    /// names another type than the decoded value has is refused.
    fn event_type(&self) -> &'static str;

    /// The current schema version (1 or more). Default 1.
    fn schema_version() -> u32 {
        1
    }

    /// Build the current type from the payload of an event of type `event_type` written at
    /// the older schema version `version`, encoded with `codec`. Typically: decode the old
    /// type (`codec.decode::<DepositedV1>(payload)`) and convert it. The default refuses
    /// every older version.
    fn upcast<C: EventCodec>(event_type: &str, version: u32, payload: &[u8], codec: &C) -> Result<Self, BoxError> {
        let _ = (payload, codec);
        Err(format!("no upcaster for {event_type:?} at schema version {version}").into())
    }
}

/// Why a record could not be read as a typed event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventDecodeError {
    /// A reserved header is missing (the record was not written as a typed event).
    MissingHeader {
        /// The header's name.
        header: &'static str,
    },
    /// The payload was written with another codec.
    WrongCodec {
        /// The codec named in the record (lossy UTF-8).
        found: String,
        /// The codec reading it.
        expected: &'static str,
    },
    /// The schema-version header is not a decimal number from 1 to 4294967295.
    BadSchemaVersion {
        /// The header's value (lossy UTF-8).
        found: String,
    },
    /// The event was written at a schema version above the current one (by newer code).
    UnknownVersion {
        /// The version in the record.
        found: u32,
        /// The current version ([`Event::schema_version`]).
        current: u32,
    },
    /// The payload decodes, but as another type than the record's header names.
    WrongType {
        /// The type named in the record (lossy UTF-8).
        found: String,
        /// The type of the decoded value.
        decoded: &'static str,
    },
    /// The codec refused the payload (damaged, or not this type's encoding).
    BadPayload {
        /// The codec's message.
        reason: String,
    },
    /// [`Event::upcast`] refused an older version's payload.
    UpcastFailed {
        /// The version in the record.
        version: u32,
        /// The upcaster's message.
        reason: String,
    },
}

impl fmt::Display for EventDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventDecodeError::MissingHeader { header } => write!(f, "header {header} is missing"),
            EventDecodeError::WrongCodec { found, expected } => {
                write!(f, "payload written with codec {found:?}, read with {expected:?}")
            }
            EventDecodeError::BadSchemaVersion { found } => write!(f, "bad schema version {found:?}"),
            EventDecodeError::UnknownVersion { found, current } => {
                write!(f, "schema version {found} is newer than the current version {current}")
            }
            EventDecodeError::WrongType { found, decoded } => {
                write!(f, "record names event type {found:?}, its payload decodes as {decoded:?}")
            }
            EventDecodeError::BadPayload { reason } => write!(f, "payload does not decode: {reason}"),
            EventDecodeError::UpcastFailed { version, reason } => {
                write!(f, "upcasting from schema version {version} failed: {reason}")
            }
        }
    }
}

/// An event encoded for a record: its payload and the values of its reserved headers.
pub(crate) struct EncodedEvent {
    pub event_type: &'static str,
    pub schema_version: String,
    pub codec: &'static str,
    pub payload: Vec<u8>,
}

impl EncodedEvent {
    /// Encode `event` with `codec`.
    pub fn new<E: Event, C: EventCodec>(codec: &C, event: &E) -> std::result::Result<EncodedEvent, BoxError> {
        Ok(EncodedEvent {
            event_type: event.event_type(),
            schema_version: E::schema_version().to_string(),
            codec: codec.name(),
            payload: codec.encode(event)?,
        })
    }

    /// The reserved headers, to put in a record.
    pub fn headers(&self) -> [Header<'_>; 3] {
        [
            Header { name: EVENT_TYPE_HEADER, value: self.event_type.as_bytes() },
            Header { name: SCHEMA_VERSION_HEADER, value: self.schema_version.as_bytes() },
            Header { name: CODEC_HEADER, value: self.codec.as_bytes() },
        ]
    }
}

/// Parse a schema-version header value: decimal ASCII, no sign, no leading zero, 1 or more.
pub(crate) fn parse_schema_version(value: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Decode the typed event in `record`, a record of the log in `log_dir` (for the error's
/// location), with `codec`: the codec header must name `codec`, an event of an older schema
/// version goes through [`Event::upcast`], and a current one must decode as the type its
/// header names. Every failure is [`Error::EventDecode`] located by log and offset; nothing
/// panics, whatever the record holds.
pub fn decode_event<E: Event, C: EventCodec>(codec: &C, log_dir: &Path, record: &OwnedRecord) -> Result<E> {
    decode_in(codec, record).map_err(|kind| Error::EventDecode {
        location: Location::Log { dir: log_dir.to_path_buf(), offset: record.offset },
        kind,
    })
}

fn decode_in<E: Event, C: EventCodec>(codec: &C, record: &OwnedRecord) -> std::result::Result<E, EventDecodeError> {
    let header = |header: &'static str| record.header(header).ok_or(EventDecodeError::MissingHeader { header });
    let found_codec = header(CODEC_HEADER)?;
    if found_codec != codec.name().as_bytes() {
        let found = String::from_utf8_lossy(found_codec).into_owned();
        return Err(EventDecodeError::WrongCodec { found, expected: codec.name() });
    }
    let found_type = String::from_utf8_lossy(header(EVENT_TYPE_HEADER)?).into_owned();
    let raw_version = header(SCHEMA_VERSION_HEADER)?;
    let version = parse_schema_version(raw_version).ok_or_else(|| EventDecodeError::BadSchemaVersion {
        found: String::from_utf8_lossy(raw_version).into_owned(),
    })?;
    let current = E::schema_version();
    if version > current {
        return Err(EventDecodeError::UnknownVersion { found: version, current });
    }
    if version < current {
        return E::upcast(&found_type, version, record.payload(), codec)
            .map_err(|e| EventDecodeError::UpcastFailed { version, reason: e.to_string() });
    }
    let event: E =
        codec.decode(record.payload()).map_err(|e| EventDecodeError::BadPayload { reason: e.to_string() })?;
    if event.event_type() != found_type {
        return Err(EventDecodeError::WrongType { found: found_type, decoded: event.event_type() });
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::parse_schema_version;

    #[test]
    fn schema_versions_are_plain_decimal_numbers() {
        assert_eq!(parse_schema_version(b"1"), Some(1));
        assert_eq!(parse_schema_version(b"4294967295"), Some(u32::MAX));
        for bad in [&b""[..], b"0", b"01", b"+1", b"-1", b"1 ", b"4294967296", b"\xff"] {
            assert_eq!(parse_schema_version(bad), None, "{bad:?}");
        }
    }
}
