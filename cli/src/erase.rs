//! `tidelog erase DIR TOPIC KEY`: erase every record of a key from a store's topic (its
//! segments, index files and the dead letters of its groups), after a confirmation.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;

use serde_json::json;
use tidelog::EraseReport;

use crate::error::{CliError, CliResult};
use crate::locate::{open_store, open_topic};
use crate::render::{bytes_text, plural};
use crate::Ctx;

/// Arguments of `tidelog erase`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    pub dir: PathBuf,
    /// The topic.
    pub topic: String,
    /// The key: text, or `hex:` followed by hex digits.
    pub key: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

/// The key's bytes: `hex:...` decoded, anything else as UTF-8 text.
pub fn parse_key(s: &str) -> CliResult<Vec<u8>> {
    let Some(h) = s.strip_prefix("hex:") else { return Ok(s.as_bytes().to_vec()) };
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if h.len() % 2 != 0 {
        return Err(CliError::Usage(format!("the key {s:?} has an odd number of hex digits")));
    }
    h.as_bytes()
        .chunks(2)
        .map(|p| match (digit(p[0]), digit(p[1])) {
            (Some(a), Some(b)) => Ok(a << 4 | b),
            _ => Err(CliError::Usage(format!("the key {s:?} is not hex after `hex:`"))),
        })
        .collect()
}

/// Erase what `args` names.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let key = parse_key(&args.key)?;
    let store = open_store(&args.dir)?;
    let topic = open_topic(&store, &args.topic)?;
    if !args.yes {
        if ctx.json {
            return Err(CliError::Usage("with --json, confirm the erasure with --yes".into()));
        }
        eprint!(
            "Erase every record of key {} from topic {} (and its groups' dead letters)? This cannot be undone. [y/N] ",
            bytes_text(&key),
            args.topic
        );
        let _ = io::stderr().flush();
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer).map_err(CliError::io("stdin"))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
            return Err(CliError::Usage("erasure not confirmed: nothing was changed".into()));
        }
    }
    let report = topic.erase(&key).map_err(CliError::log(format!("erasing a key from {}", args.topic)))?;
    print(ctx, &key, &report)
}

fn print(ctx: Ctx, key: &[u8], r: &EraseReport) -> CliResult {
    let mut out = io::stdout().lock();
    if ctx.json {
        let v = json!({
            "records_erased": r.records_erased,
            "segments_rewritten": r.segments_rewritten,
            "first_erased_offset": r.first_erased_offset,
            "dead_letters_erased": r.dead_letters_erased,
            "marker_offset": r.marker_offset,
        });
        return writeln!(out, "{v}").map_err(CliError::Output);
    }
    writeln!(
        out,
        "erased {} of key {} ({} rewritten), {}; marker at offset {}",
        plural(r.records_erased, "record"),
        bytes_text(key),
        plural(r.segments_rewritten as u64, "segment"),
        plural(r.dead_letters_erased, "dead letter"),
        r.marker_offset.map_or_else(|| "-".to_owned(), |o| o.to_string()),
    )
    .map_err(CliError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_text_or_hex() {
        assert_eq!(parse_key("alice").unwrap(), b"alice");
        assert_eq!(parse_key("hex:00ff41").unwrap(), vec![0, 255, b'A']);
        assert!(parse_key("hex:0").is_err());
        assert!(parse_key("hex:zz").is_err());
    }
}
