//! `tidelog publish DIR TOPIC`: records from standard input, appended to a store's topic in
//! batches and synced at the end; prints the offsets they got.
//!
//! Input: one record per line (the default; the newline ends a record and is not part of
//! it; a last line without a newline is a record too), or, with `--framed`, frames as
//! `tidelog replay --format frames` writes them: a `u32` little-endian payload length, then
//! the payload, for arbitrary bytes. Input that ends inside a frame is an error after the
//! complete records before it were published and synced (the message says how many).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::Range;
use std::path::PathBuf;

use serde_json::json;
use tidelog::{Header, Record, Store, StoreOptions, Topic};

use crate::error::{CliError, CliResult};
use crate::locate::{open_store, open_topic};
use crate::render::{self, parse_bytes, parse_header, plural, Bytes};
use crate::Ctx;

/// Records per appended batch, at most.
const BATCH_RECORDS: usize = 4096;
/// Payload bytes per appended batch, at most (a larger record goes alone).
const BATCH_BYTES: usize = 1 << 20;

/// Arguments of `tidelog publish`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory.
    pub dir: PathBuf,
    /// The topic.
    pub topic: String,
    /// Read frames (u32 little-endian length, then the payload) instead of lines.
    #[arg(long)]
    pub framed: bool,
    /// Give every record this key (text, or hex:... for bytes).
    #[arg(long, value_name = "KEY", value_parser = parse_bytes)]
    pub key: Option<Bytes>,
    /// Give every record this header (repeatable; VALUE as for --key).
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, Vec<u8>)>,
    /// Create the store and the topic if they do not exist.
    #[arg(long)]
    pub create: bool,
}

/// Payloads gathered for one batch, in one buffer.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn push(&mut self, payload: &[u8]) {
        self.bytes.extend_from_slice(payload);
        self.ends.push(self.bytes.len());
    }

    fn full(&self) -> bool {
        self.ends.len() >= BATCH_RECORDS || self.bytes.len() >= BATCH_BYTES
    }

    fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(a, b)| &self.bytes[a..b])
    }
}

/// Appends batches to the topic and keeps the offset range.
struct Publisher<'a> {
    topic: &'a Topic,
    key: Option<&'a [u8]>,
    headers: Vec<Header<'a>>,
    range: Option<Range<u64>>,
}

impl Publisher<'_> {
    fn flush(&mut self, batch: &mut Batch) -> CliResult {
        if batch.ends.is_empty() {
            return Ok(());
        }
        let records: Vec<Record<'_>> = batch
            .payloads()
            .map(|p| {
                let r = Record::new(p).headers(&self.headers);
                match self.key {
                    Some(k) => r.key(k),
                    None => r,
                }
            })
            .collect();
        let name = self.topic.name();
        let got = self.topic.publish_batch(&records).map_err(CliError::log(format!("publishing to {name}")))?;
        self.range = Some(match self.range.take() {
            Some(r) => r.start..got.end,
            None => got,
        });
        batch.bytes.clear();
        batch.ends.clear();
        Ok(())
    }
}

/// Read frames from `input` into batches; `Err` with the byte position where the input
/// ended inside a frame.
fn read_frames(input: &mut impl Read, mut each: impl FnMut(&[u8]) -> CliResult, max: u64) -> CliResult<Option<u64>> {
    let mut pos = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut len = [0u8; 4];
        let got = read_full(input, &mut len)?;
        if got == 0 {
            return Ok(None);
        }
        if got < 4 {
            return Ok(Some(pos));
        }
        let n = u32::from_le_bytes(len);
        if u64::from(n) > max {
            return Err(CliError::Usage(format!(
                "the frame at byte {pos} of standard input holds {} (the topic takes records of at most {})",
                plural(u64::from(n), "byte"),
                render::size(max)
            )));
        }
        payload.resize(n as usize, 0);
        if read_full(input, &mut payload)? < payload.len() {
            return Ok(Some(pos));
        }
        each(&payload)?;
        pos += 4 + u64::from(n);
    }
}

/// Fill `buf` unless the input ends first; how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> CliResult<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CliError::io("standard input")(e)),
        }
    }
    Ok(got)
}

/// Run `tidelog publish`.
pub fn run(ctx: Ctx, args: &Args) -> CliResult {
    let store = if args.create {
        Store::open(&args.dir, StoreOptions::default())
            .map_err(CliError::log(format!("opening the store {}", args.dir.display())))?
    } else {
        open_store(&args.dir)?
    };
    let topic = if args.create {
        store.topic(&args.topic).map_err(CliError::log(format!("creating topic {}", args.topic)))?
    } else {
        open_topic(&store, &args.topic)?
    };
    let max_record = store.options().topic.max_record_bytes;
    let headers = args.headers.iter().map(|(n, v)| Header { name: n, value: v }).collect();
    let mut publisher =
        Publisher { topic: &topic, key: args.key.as_ref().map(|k| k.0.as_slice()), headers, range: None };
    let mut batch = Batch::default();
    let mut input = BufReader::with_capacity(1 << 20, io::stdin().lock());
    let mut each = |payload: &[u8]| -> CliResult {
        batch.push(payload);
        if batch.full() {
            publisher.flush(&mut batch)?;
        }
        Ok(())
    };
    let cut_at = if args.framed {
        read_frames(&mut input, &mut each, max_record)?
    } else {
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).map_err(CliError::io("standard input"))? == 0 {
                break;
            }
            let payload = line.strip_suffix(b"\n").unwrap_or(&line);
            each(payload)?;
        }
        None
    };
    publisher.flush(&mut batch)?;
    topic.sync().map_err(CliError::log(format!("syncing topic {}", args.topic)))?;
    let end = topic.next_offset();
    let range = publisher.range.clone().unwrap_or(end..end);
    let records = range.end - range.start;
    let mut out = io::stdout().lock();
    if ctx.json {
        render::print_json(
            &mut out,
            &json!({ "topic": args.topic, "records": records, "first_offset": range.start, "next_offset": range.end }),
        )?;
    } else {
        writeln!(
            out,
            "published {} to {}: offsets [{}, {}), synced",
            plural(records, "record"),
            args.topic,
            range.start,
            range.end
        )?;
    }
    match cut_at {
        None => Ok(()),
        Some(pos) => Err(CliError::Usage(format!(
            "standard input ended inside the frame at byte {pos}: that frame was not published \
             (the {} before it were)",
            plural(records, "record")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in payloads {
            v.extend_from_slice(&(p.len() as u32).to_le_bytes());
            v.extend_from_slice(p);
        }
        v
    }

    #[test]
    fn frames_are_read_whole_and_a_cut_one_is_located() {
        let input = frames(&[b"a", b"", &[0xff, b'\n', 0]]);
        let mut seen = Vec::new();
        let cut = read_frames(
            &mut &input[..],
            |p| {
                seen.push(p.to_vec());
                Ok(())
            },
            100,
        )
        .unwrap();
        assert_eq!(cut, None);
        assert_eq!(seen, vec![b"a".to_vec(), vec![], vec![0xff, b'\n', 0]]);
        for cut_len in [input.len() - 1, 6, 2] {
            let cut = read_frames(&mut &input[..cut_len], |_| Ok(()), 100).unwrap();
            assert!(cut.is_some(), "{cut_len}");
        }
        let too_big = frames(&[&[0; 11]]);
        assert!(read_frames(&mut &too_big[..], |_| Ok(()), 10).is_err());
    }
}
