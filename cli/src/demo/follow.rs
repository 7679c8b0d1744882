//! The demo's tail phase: another thread appends while the demo follows the log.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use tidelog::{Header, Log, Record};

use super::ledger::ACCOUNTS;
use crate::error::{CliError, CliResult};
use crate::render::{self, count};
use crate::time::now_us;

/// Events the tail-follow phase appends, one every `TAIL_EVERY`.
pub const TAIL_EVENTS: u64 = 8;
pub const TAIL_EVERY: Duration = Duration::from_millis(125);
/// How long the follower waits for the tail events before giving up.
const TAIL_DEADLINE: Duration = Duration::from_secs(10);

/// One event the follower received.
#[derive(Debug, Serialize)]
pub struct TailEvent {
    pub offset: u64,
    pub key: String,
    /// From its append (its timestamp) to its delivery to the follower.
    pub latency_us: u64,
}

/// Append `TAIL_EVENTS` deposits from another thread over about a second, and print each
/// as the follower (`wait_for` + cursor) receives it, with its latency from append.
pub fn follow_tail(log: &Log, out: &mut impl Write, human: bool) -> CliResult<Vec<TailEvent>> {
    let start = log.next_offset();
    let writer = log.clone();
    let producer = thread::spawn(move || -> Result<(), tidelog::Error> {
        for i in 0..TAIL_EVENTS {
            thread::sleep(TAIL_EVERY);
            let key = format!("acct-{:06}", (i * 1231) % ACCOUNTS as u64);
            let payload = format!(
                r#"{{"event":"deposit","amount_cents":{},"account":"{key}","currency":"EUR","channel":"mobile","memo":"live tail"}}"#,
                1_000 * (i + 1)
            );
            let headers = [Header { name: "type", value: b"deposit" }, Header { name: "source", value: b"mobile" }];
            writer.append(Record::new(payload.as_bytes()).key(key.as_bytes()).headers(&headers))?;
        }
        Ok(())
    });

    let mut cursor = log.cursor(start);
    let mut seen = Vec::new();
    let deadline = Instant::now() + TAIL_DEADLINE;
    let mut failure = None;
    while (seen.len() as u64) < TAIL_EVENTS {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.wait_for(cursor.position(), left) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                failure = Some(CliError::log("waiting for new events")(e));
                break;
            }
        }
        loop {
            let rec = match cursor.next() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => return Err(CliError::log("following the tail")(e)),
            };
            let latency_us = now_us().saturating_sub(rec.timestamp_us());
            let key = String::from_utf8_lossy(rec.key().unwrap_or_default()).into_owned();
            if human {
                writeln!(
                    out,
                    "           offset {:>9}  deposit  {key}  arrived after {}",
                    count(rec.offset()),
                    render::duration(Duration::from_micros(latency_us))
                )?;
                out.flush()?;
            }
            seen.push(TailEvent { offset: rec.offset(), key, latency_us });
        }
    }
    match producer.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(CliError::log("appending from the producer thread")(e)),
        Err(_) => return Err(CliError::Mismatch("the producer thread panicked".into())),
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if seen.len() as u64 != TAIL_EVENTS {
        return Err(CliError::Mismatch(format!("the follower saw {} of {TAIL_EVENTS} new events", seen.len())));
    }
    Ok(seen)
}
