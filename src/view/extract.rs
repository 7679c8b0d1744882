//! The built-in extractors: a record's group ([`GroupBy`]) and numeric value ([`ValueOf`]).

use std::borrow::Cow;

use crate::projection::BoxError;
use crate::record::RecordView;
use crate::view::definition::{GroupBy, ValueOf};
use crate::view::json::{self, JsonValue};

/// The record's group, or `None` if it belongs to none (it is then passed over).
pub(crate) fn group_of<'r>(by: &GroupBy, rec: &RecordView<'r>) -> Option<Cow<'r, [u8]>> {
    match by {
        GroupBy::All => Some(Cow::Borrowed(&[])),
        GroupBy::Key => rec.key().map(Cow::Borrowed),
        GroupBy::Header(name) => rec.header(name).map(Cow::Borrowed),
        GroupBy::JsonField(path) => match json::field(rec.payload(), path)? {
            JsonValue::Str(Cow::Borrowed(s)) => Some(Cow::Borrowed(s.as_bytes())),
            JsonValue::Str(Cow::Owned(s)) => Some(Cow::Owned(s.into_bytes())),
            JsonValue::Number(n) => Some(Cow::Borrowed(n.as_bytes())),
            JsonValue::Bool(b) => Some(Cow::Borrowed(if b { b"true" } else { b"false" })),
            JsonValue::Null => Some(Cow::Borrowed(b"null")),
            JsonValue::Composite(_) => None,
        },
        GroupBy::Function { f, .. } => f(rec).map(Cow::Owned),
    }
}

/// Why a built-in extractor refused a record's value.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not a number: {text:?}")]
struct NotANumber {
    what: String,
    text: String,
}

/// The record's value: `Ok(None)` if it has none (it only counts), an error if it has one
/// that is not a finite number.
pub(crate) fn value_of(of: &ValueOf, rec: &RecordView<'_>) -> Result<Option<f64>, BoxError> {
    // `what` names the value only when it is refused: formatting it per record cost more
    // than the rest of an aggregate's update.
    let parsed = |what: &dyn Fn() -> String, text: &[u8]| -> Result<Option<f64>, BoxError> {
        match parse_number(text) {
            Some(v) => Ok(Some(v)),
            None => Err(Box::new(NotANumber {
                what: what(),
                text: String::from_utf8_lossy(text).chars().take(64).collect(),
            })),
        }
    };
    match of {
        ValueOf::Nothing => Ok(None),
        ValueOf::Header(name) => match rec.header(name) {
            None => Ok(None),
            Some(v) => parsed(&|| format!("header {name:?}"), v),
        },
        ValueOf::JsonField(path) => match json::field(rec.payload(), path) {
            None | Some(JsonValue::Null) => Ok(None),
            Some(JsonValue::Number(n)) => parsed(&|| format!("field {path:?}"), n.as_bytes()),
            Some(other) => Err(Box::new(NotANumber { what: format!("field {path:?}"), text: format!("{other:?}") })),
        },
        ValueOf::Function { f, .. } => match f(rec)? {
            Some(v) if !v.is_finite() => Err(Box::new(NotANumber { what: "the value".into(), text: v.to_string() })),
            v => Ok(v),
        },
    }
}

/// A finite decimal number (surrounding ASCII spaces allowed). Plain integers of up to 15
/// digits, the common case, are read without the floating-point parser.
fn parse_number(text: &[u8]) -> Option<f64> {
    let t = text.trim_ascii();
    let (neg, digits) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64;
        return Some(if neg { -n } else { n });
    }
    std::str::from_utf8(t).ok()?.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_parse_with_and_without_the_integer_shortcut() {
        for (text, want) in [
            (&b"12"[..], Some(12.0)),
            (b" -3 ", Some(-3.0)),
            (b"-0", Some(-0.0)),
            (b"1.5e3", Some(1500.0)),
            (b"123456789012345", Some(123_456_789_012_345.0)),
            (b"1234567890123456789", Some(1_234_567_890_123_456_789.0)),
            (b"", None),
            (b"-", None),
            (b"1e999", None),
            (b"NaN", None),
            (b"twelve", None),
            (b"\xff1", None),
        ] {
            assert_eq!(super::parse_number(text), want, "{text:?}");
        }
    }
}
