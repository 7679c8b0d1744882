//! Just enough JSON to read one field of a payload by a dotted path (`"customer.id"`),
//! without building a document: the payload is scanned once, values that are not on the
//! path are skipped. Malformed input answers `None` (no field), never a panic.

/// A field's value as found in the payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonValue<'a> {
    /// A string's contents, unescaped only if it held no escape (`Err(raw)` otherwise is
    /// not needed: escapes are decoded into an owned copy).
    Str(std::borrow::Cow<'a, str>),
    /// The literal text of a number.
    Number(&'a str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object or an array (its text).
    Composite(&'a str),
}

/// Longest nesting a scan follows before it gives up (stack depth stays bounded).
const MAX_DEPTH: usize = 64;

/// The value at `path` (dot-separated field names) in the JSON object `bytes`.
pub(crate) fn field<'a>(bytes: &'a [u8], path: &str) -> Option<JsonValue<'a>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut p = Parser { s: text, i: 0 };
    let mut parts = path.split('.');
    let mut want = parts.next()?;
    loop {
        p.ws();
        p.eat(b'{')?;
        let found = loop {
            p.ws();
            if p.peek()? == b'}' {
                return None;
            }
            let key = p.string()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            if key == want {
                break true;
            }
            p.skip_value(0)?;
            p.ws();
            match p.next_byte()? {
                b',' => continue,
                _ => return None,
            }
        };
        debug_assert!(found);
        match parts.next() {
            Some(next) => want = next,
            None => return p.value(),
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next_byte()? == b).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let mut escaped = false;
        loop {
            match self.next_byte()? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.next_byte()?;
                }
                _ => {}
            }
        }
        let raw = self.s.get(start..self.i - 1)?;
        if !escaped {
            return Some(std::borrow::Cow::Borrowed(raw));
        }
        unescape(raw).map(std::borrow::Cow::Owned)
    }

    fn literal(&mut self) -> Option<&'a str> {
        let start = self.i;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    fn value(&mut self) -> Option<JsonValue<'a>> {
        match self.peek()? {
            b'"' => self.string().map(JsonValue::Str),
            b'{' | b'[' => {
                let start = self.i;
                self.skip_value(0)?;
                Some(JsonValue::Composite(&self.s[start..self.i]))
            }
            _ => match self.literal()? {
                "true" => Some(JsonValue::Bool(true)),
                "false" => Some(JsonValue::Bool(false)),
                "null" => Some(JsonValue::Null),
                n if n.parse::<f64>().is_ok() => Some(JsonValue::Number(n)),
                _ => None,
            },
        }
    }

    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek()? == close {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.next_byte()? {
                        b',' => continue,
                        b if b == close => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => self.literal().map(|_| ()),
        }
    }
}

fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                // Surrogate pairs are not combined: such a key or value does not match.
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_dotted_path_past_other_values() {
        let doc = br#" {"skip": [1, {"a": "}"}, "x\"y"], "n": -12.5e1, "o": {"id": "c-7", "t": true},
                     "s": "a\nb", "z": null} "#;
        assert_eq!(field(doc, "n"), Some(JsonValue::Number("-12.5e1")));
        assert_eq!(field(doc, "o.id"), Some(JsonValue::Str("c-7".into())));
        assert_eq!(field(doc, "o.t"), Some(JsonValue::Bool(true)));
        assert_eq!(field(doc, "s"), Some(JsonValue::Str("a\nb".into())));
        assert_eq!(field(doc, "z"), Some(JsonValue::Null));
        assert_eq!(field(doc, "o.missing"), None);
        assert_eq!(field(doc, "n.deeper"), None);
        assert!(matches!(field(doc, "skip"), Some(JsonValue::Composite(_))));
    }

    #[test]
    fn malformed_payloads_have_no_fields() {
        for bad in [&b""[..], b"[1]", b"{", b"{\"a\"", b"{\"a\":}", b"\xff\xfe", b"{\"b\":1,", b"{\"a\" 1}"] {
            assert_eq!(field(bad, "a"), None, "{bad:?}");
        }
        // The scan stops at the field: what follows it is not read.
        assert_eq!(field(b"{\"a\":1,", "a"), Some(JsonValue::Number("1")));
        let deep = format!("{{\"b\":{}1{}, \"a\": 1}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(field(deep.as_bytes(), "a"), None);
    }
}
