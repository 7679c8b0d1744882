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
    let parsed = |what: String, text: &str| -> Result<Option<f64>, BoxError> {
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(Box::new(NotANumber { what, text: text.chars().take(64).collect() })),
        }
    };
    match of {
        ValueOf::Nothing => Ok(None),
        ValueOf::Header(name) => match rec.header(name) {
            None => Ok(None),
            Some(v) => parsed(format!("header {name:?}"), &String::from_utf8_lossy(v)),
        },
        ValueOf::JsonField(path) => match json::field(rec.payload(), path) {
            None | Some(JsonValue::Null) => Ok(None),
            Some(JsonValue::Number(n)) => parsed(format!("field {path:?}"), n),
            Some(other) => Err(Box::new(NotANumber { what: format!("field {path:?}"), text: format!("{other:?}") })),
        },
        ValueOf::Function { f, .. } => match f(rec)? {
            Some(v) if !v.is_finite() => Err(Box::new(NotANumber { what: "the value".into(), text: v.to_string() })),
            v => Ok(v),
        },
    }
}
