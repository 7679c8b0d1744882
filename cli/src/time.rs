//! Times on the command line: RFC 3339 in and out, microseconds since the Unix epoch inside.

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) to days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch as RFC 3339 UTC: `2026-11-26T06:00:00.123456Z`.
pub fn format_time_us(us: u64) -> String {
    let secs = (us / 1_000_000) as i64;
    let micros = us % 1_000_000;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parse a time given on the command line: raw microseconds since the Unix epoch
/// (`1795500000000000`), an RFC 3339 time (`2026-11-26T06:00:00Z`,
/// `2026-11-26T07:00:00.5+01:00`; a space may replace the `T`), or a date (`2026-11-26`,
/// midnight UTC).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("time `{s}` is out of range"));
    }
    parse_rfc3339(s).ok_or_else(|| {
        format!("cannot parse time `{s}`: expected microseconds since the epoch or RFC 3339 like 2026-11-26T06:00:00Z")
    })
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    fn num(s: &str) -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    }
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (y, mo, d) = (num(parts.next()?)?, num(parts.next()?)?, num(parts.next()?)?);
    if parts.next().is_some() || !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let mut secs = days * 86_400;
    let mut micros = 0i64;
    if let Some(rest) = rest {
        // Split off the zone: `Z`, or `+HH:MM` / `-HH:MM`.
        let (clock, zone_secs) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
            (c, 0i64)
        } else {
            let i = rest.rfind(['+', '-'])?;
            let (zh, zm) = rest[i + 1..].split_once(':')?;
            let (zh, zm) = (num(zh)?, num(zm)?);
            if zh > 23 || zm > 59 {
                return None;
            }
            let z = i64::from(zh * 3600 + zm * 60);
            (&rest[..i], if rest.as_bytes()[i] == b'+' { z } else { -z })
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((hms, frac)) => (hms, Some(frac)),
            None => (clock, None),
        };
        let mut f = hms.split(':');
        let (h, mi, sec) = (num(f.next()?)?, num(f.next()?)?, num(f.next()?)?);
        if f.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        if let Some(frac) = frac {
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Microsecond precision: keep six digits, pad shorter fractions.
            let six: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
            micros = six.parse().ok()?;
        }
        secs += i64::from(h * 3600 + mi * 60 + sec) - zone_secs;
    }
    let us = secs.checked_mul(1_000_000)?.checked_add(micros)?;
    u64::try_from(us).ok()
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parse a number of seconds given on the command line: finite and not negative
/// (`0.5`, `3`); `-1`, `nan` and `inf` are refused.
pub fn parse_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a number of seconds ≥ 0"));
    }
    std::time::Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` seconds is too long"))
}

/// Where a range starts or stops: an offset, or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A record offset.
    Offset(u64),
    /// Microseconds since the Unix epoch.
    Time(u64),
}

/// Parse a range bound given on the command line: a bare number is an offset; otherwise a
/// time, absolute (RFC 3339 or a date, as [`parse_time`] reads them; `@US` for microseconds
/// since the epoch), relative to now (`-90s`, `-15m`, `-2h`, `-7d`), or `now`.
pub fn parse_bound(s: &str) -> Result<Bound, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Bound::Offset).map_err(|_| format!("offset `{s}` is out of range"));
    }
    if s == "now" {
        return Ok(Bound::Time(now_us()));
    }
    if let Some(us) = s.strip_prefix('@') {
        return parse_time(us).map(Bound::Time);
    }
    if let Some(ago) = s.strip_prefix('-') {
        let (n, unit) = ago.split_at(ago.find(|c: char| !c.is_ascii_digit()).unwrap_or(ago.len()));
        let secs: u64 = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("cannot parse `{s}`: a relative time is -N followed by s, m, h or d (like -15m)")),
        };
        let n: u64 = n.parse().map_err(|_| format!("cannot parse `{s}`: expected a number after `-`"))?;
        let back = n.checked_mul(secs * 1_000_000).ok_or_else(|| format!("`{s}` is too far back"))?;
        return Ok(Bound::Time(now_us().saturating_sub(back)));
    }
    parse_rfc3339(s).map(Bound::Time).ok_or_else(|| {
        format!(
            "cannot parse `{s}`: expected an offset (a number), a time in RFC 3339 like 2026-11-26T06:00:00Z, \
             @MICROSECONDS, -15m (relative: s, m, h, d) or now"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats_and_parses_round_trip() {
        assert_eq!(format_time_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(parse_time("2026-11-26T06:00:00Z"), Ok(1_795_672_800_000_000));
        let t = parse_time("2026-11-26T06:00:00.25Z").unwrap();
        assert_eq!(format_time_us(t), "2026-11-26T06:00:00.250000Z");
        assert_eq!(parse_time("2026-11-26T07:00:00+01:00"), parse_time("2026-11-26T06:00:00Z"));
        assert_eq!(parse_time("2024-02-29"), parse_time("2024-02-29T00:00:00Z"));
        assert_eq!(parse_time("12345"), Ok(12345));
        for bad in ["", "2026-13-01", "2023-02-29", "2026-11-26T25:00:00Z", "yesterday", "2026-11-26T06:00:00"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        for us in [1, 951_782_400_000_000, 4_102_444_799_999_999] {
            assert_eq!(parse_time(&format_time_us(us)), Ok(us));
        }
    }

    #[test]
    fn seconds_must_be_a_finite_number_not_below_zero() {
        assert_eq!(parse_seconds("0.5"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(parse_seconds("0"), Ok(std::time::Duration::ZERO));
        for bad in ["-1", "-0.1", "nan", "NaN", "inf", "-inf", "", "soon", "1e300"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_are_offsets_when_bare_numbers_and_times_otherwise() {
        assert_eq!(parse_bound("42"), Ok(Bound::Offset(42)));
        assert_eq!(parse_bound("2026-11-26T06:00:00Z"), Ok(Bound::Time(1_795_672_800_000_000)));
        assert_eq!(parse_bound("@12345"), Ok(Bound::Time(12345)));
        let before = now_us();
        let Ok(Bound::Time(t)) = parse_bound("-15m") else { panic!("relative time") };
        assert!(t <= before.saturating_sub(15 * 60 * 1_000_000) + 60_000_000 && t >= before - 16 * 60 * 1_000_000);
        for bad in ["", "-15", "-15y", "-m", "yesterday", "99999999999999999999999"] {
            assert!(parse_bound(bad).is_err(), "{bad}");
        }
    }
}
