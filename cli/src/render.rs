//! How every command shows things, in one place: counts (with plurals), sizes, durations,
//! rates, byte strings, and records (one human line, one JSON shape). A command never formats
//! these itself, so `dump`, `tail` and `dlq list` show a record the same way and a size means
//! the same thing everywhere.
//!
//! The conventions:
//! * Byte strings (keys, header values, payloads) for humans: UTF-8 text with control
//!   characters escaped, otherwise `hex:` and lower-case hex (`base64:` when asked for).
//! * Byte strings in JSON: a string if UTF-8, otherwise `{"hex": "..."}` (or
//!   `{"base64": "..."}` when asked for). The same rule for key, header values and payload.
//! * Sizes in binary units (`1.5 MiB`); JSON carries the exact byte count.
//! * Durations with the unit that fits (`850 µs`, `12.3 ms`, `1.42 s`).

use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tidelog::{Header, OwnedRecord, RecordView};

use crate::error::{CliError, CliResult};
use crate::time::format_time_us;

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` things with the noun in the right number: `1 segment`, `2 segments`, `1,024 records`.
/// `noun` is the singular; the plural adds `s`.
pub fn plural(n: u64, noun: &str) -> String {
    plural_of(n, noun, &format!("{noun}s"))
}

/// Like [`plural`], for a noun whose plural is not the singular plus `s`.
pub fn plural_of(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", count(n))
    }
}

/// A size in binary units: `512 B`, `1.5 MiB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A rate such as `1.23 M`, for records per second.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}")
    }
}

/// A duration with the unit that fits: `850 µs`, `12.3 ms`, `1.42 s`.
pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `n / seconds`, or 0 for a zero duration.
pub fn per_sec(n: f64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n / s
    } else {
        0.0
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(b.len().div_ceil(3) * 4);
    base64_into(&mut out, b);
    // Only ASCII from the alphabet was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Append standard base64 with padding (RFC 4648) of `b` to `out`.
pub fn base64_into(out: &mut Vec<u8>, b: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.reserve(b.len().div_ceil(3) * 4);
    let mut chunks = b.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[ALPHABET[(n >> 18) as usize & 63], ALPHABET[(n >> 12) as usize & 63], b'=', b'=']);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// A byte string given on the command line (see [`parse_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

/// A byte string given on the command line, in the form every command shows them: `hex:`
/// and hex digits for bytes, anything else as its UTF-8 text.
pub fn parse_bytes(s: &str) -> Result<Bytes, String> {
    parse_byte_string(s).map(Bytes)
}

fn parse_byte_string(s: &str) -> Result<Vec<u8>, String> {
    let Some(digits) = s.strip_prefix("hex:") else {
        return Ok(s.as_bytes().to_vec());
    };
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("`{s}`: after `hex:` only hex digits are allowed"));
    }
    if digits.len() % 2 != 0 {
        return Err(format!("`{s}`: hex needs an even number of digits"));
    }
    let nibble = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
    Ok(digits.as_bytes().chunks_exact(2).map(|p| nibble(p[0]) << 4 | nibble(p[1])).collect())
}

/// A `NAME=VALUE` header filter or header given on the command line; VALUE as
/// [`parse_bytes`] reads it.
pub fn parse_header(s: &str) -> Result<(String, Vec<u8>), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), parse_byte_string(value)?)),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

/// Text with control characters escaped (`\n`, `\u{1b}`), for one-line human output.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// How payloads are shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadFormat {
    /// UTF-8 text if the payload is valid UTF-8, hex otherwise.
    #[default]
    Auto,
    /// UTF-8 text, invalid sequences replaced by U+FFFD.
    Text,
    /// Lower-case hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// A byte string for humans: escaped text if it is UTF-8, `hex:...` otherwise.
pub fn bytes_text(b: &[u8]) -> String {
    payload_text(b, PayloadFormat::Auto)
}

/// A byte string in JSON: a string if it is UTF-8, `{"hex": "..."}` otherwise.
pub fn bytes_json(b: &[u8]) -> Value {
    payload_json(b, PayloadFormat::Auto)
}

fn payload_text(p: &[u8], fmt: PayloadFormat) -> String {
    match (fmt, std::str::from_utf8(p)) {
        (PayloadFormat::Auto, Ok(s)) => escape(s),
        (PayloadFormat::Text, _) => escape(&String::from_utf8_lossy(p)),
        (PayloadFormat::Auto | PayloadFormat::Hex, _) => format!("hex:{}", hex(p)),
        (PayloadFormat::Base64, _) => format!("base64:{}", base64(p)),
    }
}

fn payload_json(p: &[u8], fmt: PayloadFormat) -> Value {
    match (fmt, std::str::from_utf8(p)) {
        (PayloadFormat::Auto, Ok(s)) => Value::String(s.to_owned()),
        (PayloadFormat::Text, _) => Value::String(String::from_utf8_lossy(p).into_owned()),
        (PayloadFormat::Auto | PayloadFormat::Hex, _) => json!({ "hex": hex(p) }),
        (PayloadFormat::Base64, _) => json!({ "base64": base64(p) }),
    }
}

/// Payload characters shown per record in human output unless whole payloads are asked for.
pub const PAYLOAD_SHOWN_CHARS: usize = 160;

/// How a record is shown.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordStyle {
    /// How the payload is encoded.
    pub payload: PayloadFormat,
    /// Human output: cut payloads after [`PAYLOAD_SHOWN_CHARS`] characters.
    pub cut_payload: bool,
}

/// A record from the log (a [`RecordView`]) or copied out of it (an [`OwnedRecord`]), as the
/// renderers see it.
pub struct RecordRef<'a> {
    offset: u64,
    timestamp_us: u64,
    key: Option<&'a [u8]>,
    headers: Vec<Header<'a>>,
    payload: &'a [u8],
}

impl<'a> From<&RecordView<'a>> for RecordRef<'a> {
    fn from(r: &RecordView<'a>) -> RecordRef<'a> {
        RecordRef {
            offset: r.offset(),
            timestamp_us: r.timestamp_us(),
            key: r.key(),
            headers: r.headers().collect(),
            payload: r.payload(),
        }
    }
}

impl<'a> From<&'a OwnedRecord> for RecordRef<'a> {
    fn from(r: &'a OwnedRecord) -> RecordRef<'a> {
        RecordRef {
            offset: r.offset(),
            timestamp_us: r.timestamp_us(),
            key: r.key(),
            headers: r.headers().collect(),
            payload: r.payload(),
        }
    }
}

/// One record on one line: `offset  time  key=K  name=value ...  payload`, or `(no key)`.
pub fn record_line(r: &RecordRef<'_>, style: RecordStyle) -> String {
    let key = r.key.map_or_else(|| "(no key)".to_owned(), |k| format!("key={}", bytes_text(k)));
    let mut line = format!("{:>10}  {}  {key}", r.offset, format_time_us(r.timestamp_us));
    if !r.headers.is_empty() {
        let headers: Vec<String> =
            r.headers.iter().map(|h| format!("{}={}", escape(h.name), bytes_text(h.value))).collect();
        line.push_str("  ");
        line.push_str(&headers.join(" "));
    }
    let mut payload = payload_text(r.payload, style.payload);
    if style.cut_payload {
        if let Some((cut, _)) = payload.char_indices().nth(PAYLOAD_SHOWN_CHARS) {
            payload.truncate(cut);
            payload.push_str(&format!("… ({})", plural(r.payload.len() as u64, "byte")));
        }
    }
    line.push_str("  ");
    line.push_str(&payload);
    line
}

/// The JSON shape of a record, the same in every command.
pub fn record_json(r: &RecordRef<'_>, style: RecordStyle) -> Value {
    json!({
        "offset": r.offset,
        "timestamp_us": r.timestamp_us,
        "time": format_time_us(r.timestamp_us),
        "key": r.key.map(bytes_json),
        "headers": r.headers.iter().map(|h| json!({ "name": h.name, "value": bytes_json(h.value) })).collect::<Vec<_>>(),
        "payload": payload_json(r.payload, style.payload),
        "payload_bytes": r.payload.len(),
    })
}

/// Labelled values, one per line, the labels aligned after `indent`: `  file      /x/y`. The
/// labels are the field names of the same object in the command's JSON output.
pub fn fields(out: &mut impl Write, indent: &str, fields: &[(&str, String)]) -> CliResult {
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in fields {
        writeln!(out, "{indent}{name:<width$}  {value}")?;
    }
    Ok(())
}

/// Write `value` as pretty JSON followed by a newline.
pub fn print_json(out: &mut impl Write, value: &impl Serialize) -> CliResult {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| CliError::Output(e.into()))?;
    writeln!(out)?;
    Ok(())
}

/// Write `value` as one line of JSON (JSON Lines, for streams).
pub fn print_json_line(out: &mut impl Write, value: &impl Serialize) -> CliResult {
    serde_json::to_writer(&mut *out, value).map_err(|e| CliError::Output(e.into()))?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoders_match_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
    }

    #[test]
    fn counts_take_the_noun_in_the_right_number() {
        assert_eq!(plural(0, "segment"), "0 segments");
        assert_eq!(plural(1, "segment"), "1 segment");
        assert_eq!(plural(1_024, "record"), "1,024 records");
    }

    #[test]
    fn fields_align_their_labels() {
        let mut out = Vec::new();
        fields(&mut out, "  ", &[("file", "a".to_owned()), ("position", "byte 8".to_owned())]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "  file      a\n  position  byte 8\n");
    }

    #[test]
    fn durations_pick_the_unit_that_fits() {
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_300)), "12.3 ms");
        assert_eq!(duration(Duration::from_millis(1_420)), "1.42 s");
    }

    #[test]
    fn binary_is_hex_for_humans_and_a_hex_object_in_json_for_every_field() {
        assert_eq!(bytes_text(&[0x80, 0x01]), "hex:8001");
        assert_eq!(bytes_text(b"a\nb"), "a\\nb");
        assert_eq!(bytes_json(&[0x80, 0x01]), json!({ "hex": "8001" }));
        assert_eq!(bytes_json(b"ok"), json!("ok"));
        assert_eq!(payload_json(b"ok", PayloadFormat::Base64), json!({ "base64": "b2s=" }));
        assert_eq!(payload_text(b"ok", PayloadFormat::Hex), "hex:6f6b");
    }

    #[test]
    fn bytes_on_the_command_line_are_text_or_hex_as_shown() {
        assert_eq!(parse_bytes("abc"), Ok(Bytes(b"abc".to_vec())));
        assert_eq!(parse_bytes("hex:00ff"), Ok(Bytes(vec![0, 0xff])));
        assert_eq!(parse_bytes(&format!("hex:{}", hex(&[1, 0x80]))), Ok(Bytes(vec![1, 0x80])));
        for bad in ["hex:0", "hex:zz", "hex:é0"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_header("a=hex:01"), Ok(("a".to_owned(), vec![1])));
        assert!(parse_header("=x").is_err());
    }

    #[test]
    fn base64_matches_rfc_4648_for_every_length() {
        for (input, want) in
            [(&b"fooba"[..], "Zm9vYmE="), (b"foob", "Zm9vYg=="), (b"foo", "Zm9v"), (&[0xff, 0xfe, 0xfd, 0], "//79AA==")]
        {
            assert_eq!(base64(input), want);
        }
    }
}
