//! Records as JSON Lines, fast: the document `render::record_json` builds, written straight
//! into a byte buffer with no intermediate `serde_json::Value`, for commands that stream
//! millions of records (`replay`). Field names and encodings are the ones every command uses
//! (`render`); a test checks that both agree.

use tidelog::RecordView;

use crate::render::base64_into;
use crate::time::format_time_us;

/// How a payload is written in a JSON line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum JsonPayload {
    /// A JSON string if the payload is UTF-8, `{"base64": "..."}` otherwise.
    #[default]
    Auto,
    /// A JSON string; a payload that is not UTF-8 is an error (nothing is replaced).
    Text,
    /// Always `{"base64": "..."}`.
    Base64,
}

/// A payload that `--payload text` cannot write: it is not UTF-8.
#[derive(Debug)]
pub struct NotText {
    /// The record's offset.
    pub offset: u64,
}

/// Writes records as JSON lines into a reusable buffer.
#[derive(Debug, Default)]
pub struct JsonLines {
    /// The `YYYY-MM-DDTHH:MM:SS` of the last second formatted, and that second.
    second: Option<(u64, String)>,
    /// The last timestamp written and its fields (`"timestamp_us":...,"time":"..."`): the
    /// records of a batch share their timestamp.
    stamp: Option<(u64, Vec<u8>)>,
}

impl JsonLines {
    /// Append `rec` as one JSON object and a newline to `out`.
    pub fn write(&mut self, out: &mut Vec<u8>, rec: &RecordView<'_>, payload: JsonPayload) -> Result<(), NotText> {
        let payload_bytes = rec.payload();
        let text = std::str::from_utf8(payload_bytes).ok();
        if payload == JsonPayload::Text && text.is_none() {
            return Err(NotText { offset: rec.offset() });
        }
        out.extend_from_slice(b"{\"offset\":");
        push_u64(out, rec.offset());
        let ts = rec.timestamp_us();
        if self.stamp.as_ref().is_none_or(|(t, _)| *t != ts) {
            let mut fields = Vec::with_capacity(64);
            fields.extend_from_slice(b",\"timestamp_us\":");
            push_u64(&mut fields, ts);
            fields.extend_from_slice(b",\"time\":\"");
            self.push_time(&mut fields, ts);
            fields.extend_from_slice(b"\",\"key\":");
            self.stamp = Some((ts, fields));
        }
        if let Some((_, fields)) = &self.stamp {
            out.extend_from_slice(fields);
        }
        match rec.key() {
            None => out.extend_from_slice(b"null"),
            Some(k) => push_bytes(out, k),
        }
        out.extend_from_slice(b",\"headers\":[");
        for (i, h) in rec.headers().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"name\":");
            push_str(out, h.name);
            out.extend_from_slice(b",\"value\":");
            push_bytes(out, h.value);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"payload\":");
        match (payload, text) {
            (JsonPayload::Auto | JsonPayload::Text, Some(s)) => push_str(out, s),
            _ => {
                out.extend_from_slice(b"{\"base64\":\"");
                base64_into(out, payload_bytes);
                out.extend_from_slice(b"\"}");
            }
        }
        out.extend_from_slice(b",\"payload_bytes\":");
        push_u64(out, payload_bytes.len() as u64);
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    /// RFC 3339 with microseconds, as `format_time_us`; the seconds part is formatted once
    /// per second.
    fn push_time(&mut self, out: &mut Vec<u8>, us: u64) {
        let sec = us / 1_000_000;
        let prefix = match &self.second {
            Some((s, p)) if *s == sec => p,
            _ => {
                let full = format_time_us(sec * 1_000_000);
                // `format_time_us` ends in `.000000Z`: keep what precedes the dot.
                let p = full.split('.').next().unwrap_or_default().to_owned();
                &self.second.insert((sec, p)).1
            }
        };
        out.extend_from_slice(prefix.as_bytes());
        out.push(b'.');
        let micros = us % 1_000_000;
        let mut digits = [b'0'; 6];
        let mut m = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (m % 10) as u8;
            m /= 10;
        }
        out.extend_from_slice(&digits);
        out.push(b'Z');
    }
}

/// Decimal digits of `n`.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A byte string as every command writes it in JSON: a string if UTF-8, `{"hex": "..."}`
/// otherwise (`render::bytes_json`).
fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => push_str(out, s),
        Err(_) => {
            out.extend_from_slice(b"{\"hex\":\"");
            out.extend_from_slice(crate::render::hex(b).as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
}

/// A JSON string, escaped as `serde_json` escapes it: `"`, `\` and control characters
/// below U+0020.
fn push_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Most strings need no escape: skip them 8 bytes at a time.
    let clean = clean_prefix(bytes);
    out.extend_from_slice(&bytes[..clean]);
    start += clean;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The length of the longest prefix of `bytes`, in whole 8-byte words, in which no byte
/// needs an escape (`"`, `\\`, below 0x20).
fn clean_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut n = 0;
    for word in bytes.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let v = u64::from_le_bytes(w);
        // A byte below 0x20, or equal to `"` or `\`.
        let below = v.wrapping_sub(ONES * 0x20) & !v & HIGH;
        if below | has_zero(v ^ (ONES * u64::from(b'"'))) | has_zero(v ^ (ONES * u64::from(b'\\'))) != 0 {
            break;
        }
        n += 8;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{record_json, PayloadFormat, RecordRef, RecordStyle};
    use tidelog::{Header, Log, Options, Record};

    /// Every shape a record can take: with and without key, binary key and header value,
    /// escapes, non-UTF-8 payload, empty payload.
    fn sample_log(dir: &std::path::Path) -> Log {
        let log = Log::open(dir, Options::default().segment_bytes(64 * 1024)).unwrap();
        let headers = [Header { name: "n\"ame", value: b"v\x01\n" }, Header { name: "bin", value: &[0xff, 0] }];
        log.append(Record::new(b"plain")).unwrap();
        log.append(Record::new(b"quote \" back \\ tab \t bell \x07 \xc3\xa9").key(b"k").headers(&headers)).unwrap();
        log.append(Record::new(&[0x80, 0x00, 0xfe]).key(&[0xff, 0x10])).unwrap();
        log.append(Record::new(b"")).unwrap();
        log
    }

    #[test]
    fn json_lines_are_the_same_documents_every_command_prints() {
        let tmp = tempfile::tempdir().unwrap();
        let log = sample_log(tmp.path());
        let mut lines = JsonLines::default();
        let mut cursor = log.cursor(0);
        while let Some(rec) = cursor.next().unwrap() {
            for (mode, style) in [(JsonPayload::Auto, None), (JsonPayload::Base64, Some(PayloadFormat::Base64))] {
                let mut out = Vec::new();
                lines.write(&mut out, &rec, mode).unwrap();
                assert_eq!(out.last(), Some(&b'\n'));
                let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
                let utf8 = std::str::from_utf8(rec.payload()).is_ok();
                let payload = style.unwrap_or(if utf8 { PayloadFormat::Auto } else { PayloadFormat::Base64 });
                let want = record_json(&RecordRef::from(&rec), RecordStyle { payload, cut_payload: false });
                assert_eq!(got, want, "{}", String::from_utf8_lossy(&out));
            }
        }
    }

    #[test]
    fn text_payloads_refuse_bytes_that_are_not_utf8() {
        let tmp = tempfile::tempdir().unwrap();
        let log = sample_log(tmp.path());
        let mut out = Vec::new();
        log.read_with(2, |r| {
            assert_eq!(JsonLines::default().write(&mut out, &r, JsonPayload::Text).unwrap_err().offset, 2)
        })
        .unwrap();
        assert!(out.is_empty(), "nothing is written for a refused record");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_wherever_the_escape_falls() {
        let mut s = String::new();
        for c in ['a', '"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '~', 'é', '\u{7f}', '\t', '\u{8}', '\u{c}'] {
            for pad in 0..17 {
                s.clear();
                s.push_str(&"x".repeat(pad));
                s.push(c);
                s.push_str(&"y".repeat(17 - pad));
                let mut out = Vec::new();
                push_str(&mut out, &s);
                assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
            }
        }
    }

    #[test]
    fn times_match_the_formatter_across_seconds() {
        let mut lines = JsonLines::default();
        for us in [0, 999_999, 1_000_000, 1_795_672_800_123_456, 1_795_672_801_000_001] {
            let mut out = Vec::new();
            lines.push_time(&mut out, us);
            assert_eq!(String::from_utf8(out).unwrap(), format_time_us(us));
        }
    }
}
