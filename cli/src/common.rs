//! Shared pieces of the commands: the CLI error type and its exit codes, output helpers,
//! progress bars, time and byte formatting.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Serialize;
use tidelog::{Log, Options};

/// Exit code: everything went well.
pub const EXIT_OK: u8 = 0;
/// Exit code: damage was found (verify failed, or a command hit corrupted bytes).
pub const EXIT_DAMAGE: u8 = 1;
/// Exit code: bad usage or an I/O error (missing directory, not a log, ...).
pub const EXIT_USAGE: u8 = 2;

/// Settings every command sees.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// Print one JSON document on stdout instead of human-readable text.
    pub json: bool,
}

/// Why a command failed. `main` prints it (as text on stderr, or as JSON on stdout with
/// `--json`) and exits with [`CliError::exit_code`].
#[derive(Debug)]
pub enum CliError {
    /// A tidelog operation failed; `doing` says what the command was doing.
    Log { doing: String, error: tidelog::Error },
    /// An argument that clap accepted but that makes no sense (e.g. an unparsable time).
    Usage(String),
    /// An I/O error outside the log itself (the demo directory, the bench baseline file).
    Io { path: PathBuf, source: io::Error },
    /// Writing the command's output failed (e.g. stdout closed).
    Output(io::Error),
    /// The demo or the bench read back something other than what it wrote.
    Mismatch(String),
    /// The command already printed its report (e.g. verify found damage); exit with this code.
    Reported(u8),
}

impl CliError {
    /// Wrap a tidelog error with what the command was doing.
    pub fn log(doing: impl Into<String>) -> impl FnOnce(tidelog::Error) -> CliError {
        let doing = doing.into();
        move |error| CliError::Log { doing, error }
    }

    /// Wrap an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io { path, source }
    }

    /// 1 for damage, 2 for usage and I/O problems.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Log { error, .. } if error.is_corruption() => EXIT_DAMAGE,
            CliError::Mismatch(_) => EXIT_DAMAGE,
            CliError::Reported(code) => *code,
            _ => EXIT_USAGE,
        }
    }

    /// True if stdout went away (a reader like `head` exited): not worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// A machine-readable form of the error.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "error": self.kind_name(),
            "message": self.to_string(),
            "exit_code": self.exit_code(),
        });
        if let CliError::Log { error: tidelog::Error::Corruption { file, position, kind }, .. } = self {
            v["file"] = serde_json::json!(file.display().to_string());
            v["position"] = serde_json::json!(position);
            v["detail"] = serde_json::json!(kind.to_string());
        }
        v
    }

    fn kind_name(&self) -> &'static str {
        match self {
            CliError::Log { error, .. } => match error {
                tidelog::Error::Corruption { .. } => "corruption",
                tidelog::Error::NotFound { .. } => "not_found",
                tidelog::Error::NotADirectory { .. } => "not_a_directory",
                tidelog::Error::Locked { .. } => "locked",
                tidelog::Error::Io { .. } => "io",
                tidelog::Error::OffsetOutOfRange { .. } => "offset_out_of_range",
                tidelog::Error::InvalidOptions(_) => "invalid_options",
                _ => "log",
            },
            CliError::Usage(_) => "usage",
            CliError::Io { .. } => "io",
            CliError::Output(_) => "output",
            CliError::Mismatch(_) => "mismatch",
            CliError::Reported(_) => "reported",
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Log { doing, error } => {
                write!(f, "{doing}: ")?;
                match error {
                    // Spelled out rather than `Display` so that paths print without quotes
                    // and the hint says what the directory should hold.
                    tidelog::Error::Corruption { file, position, kind } => {
                        write!(f, "corruption in {} at byte {position}: {kind}", file.display())
                    }
                    tidelog::Error::NotFound { path } => write!(
                        f,
                        "no log at {} (the directory does not exist or holds no segment files)",
                        path.display()
                    ),
                    tidelog::Error::NotADirectory { path } => {
                        write!(f, "{} is not a directory (expected a log directory)", path.display())
                    }
                    tidelog::Error::Locked { path } => {
                        write!(f, "the log at {} is in use by another writer", path.display())
                    }
                    tidelog::Error::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
                    other => write!(f, "{other}"),
                }
            }
            CliError::Usage(msg) => write!(f, "{msg}"),
            CliError::Io { path, source } => write!(f, "I/O error on {}: {source}", path.display()),
            CliError::Output(e) => write!(f, "cannot write output: {e}"),
            CliError::Mismatch(msg) => write!(f, "read-back check failed: {msg}"),
            CliError::Reported(code) => write!(f, "failed (exit code {code})"),
        }
    }
}

impl From<io::Error> for CliError {
    /// Bare I/O errors in the commands come from writing their output.
    fn from(e: io::Error) -> CliError {
        CliError::Output(e)
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Open an existing log read-only, mapping errors to located messages.
pub fn open_read_only(dir: &Path) -> CliResult<Log> {
    Log::open_read_only(dir, Options::default()).map_err(CliError::log(format!("opening {}", dir.display())))
}

/// Write `value` as pretty JSON followed by a newline.
pub fn print_json(out: &mut impl Write, value: &impl Serialize) -> CliResult {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| CliError::Output(e.into()))?;
    writeln!(out)?;
    Ok(())
}

/// True if progress bars may be drawn: stderr is a terminal and the output is not JSON.
pub fn progress_visible(ctx: Ctx) -> bool {
    !ctx.json && io::stderr().is_terminal()
}

/// A progress bar on stderr, hidden unless [`progress_visible`]. `bytes` picks the units.
pub fn progress_bar(ctx: Ctx, len: u64, bytes: bool, what: &str) -> ProgressBar {
    if !progress_visible(ctx) {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta})"
    } else {
        "{msg:>10} [{bar:40}] {human_pos}/{human_len} ({rate}/s, {eta})"
    };
    // `{per_sec}` prints four decimals; `rate` reads better ("1.23 M/s").
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).with_key(
        "rate",
        |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", rate(s.per_sec()));
        },
    );
    let bar =
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style.progress_chars("=> "));
    bar.set_message(what.to_owned());
    bar
}

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

/// Bytes in binary units: `1.5 MiB`.
pub fn bytes(n: u64) -> String {
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

/// A short duration: `850 µs`, `12.3 ms`, `1.42 s`.
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
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
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
    fn encoders_match_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
    }
}
