//! Benchmark workloads (in a directory so that cargo does not take this file for a bench
//! target of its own), shared by the criterion bench (`benches/log.rs`) and by a test that
//! runs every one of them tiny (`tests/bench_workloads.rs`), so that the benchmark code cannot
//! rot (STYLE.md, habit 11).
//!
//! Conventions:
//! * Every payload is at least 8 bytes and starts with a *stamp*, a little-endian `u64`. For a
//!   log with one writer the stamp is the offset the record is expected to get, so a reader
//!   can check that what it sees is exactly what was appended.
//! * Setup (opening a log, creating a file or a map) is a separate function from the work, so
//!   the bench can keep it out of the timed region.
//! * The two baselines write the very bytes a log frame occupies (a 40-byte header, the
//!   payload, padding to 8 bytes), so their throughput compares like with like.
// Each user of this module uses a different subset of it.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use memmap2::MmapMut;
use tidelog::{Durability, Log, Options, Record, RECORD_HEADER_LEN};

/// The small payload of the targets.
pub const PAYLOAD_SMALL: usize = 100;
/// The large payload.
pub const PAYLOAD_LARGE: usize = 1024;
/// Bytes of the stamp at the start of every payload.
pub const STAMP_LEN: usize = 8;
/// Buffer of the buffered-file baseline.
pub const BUFWRITER_BYTES: usize = 64 << 10;

/// Bytes a record with a payload of `payload_len` bytes (no key, no headers) occupies in a
/// segment: the fixed header, the payload, padding to 8 bytes.
pub fn frame_bytes(payload_len: usize) -> usize {
    (RECORD_HEADER_LEN + payload_len + 7) & !7
}

/// Options for throughput runs: the defaults (128 MiB segments, `Durability::None`).
pub fn append_options() -> Options {
    Options::default().durability(Durability::None)
}

/// A payload template: `payload_len` bytes of a repeating pattern.
pub fn payload_template(payload_len: usize) -> Vec<u8> {
    assert!(payload_len >= STAMP_LEN, "payloads carry an 8-byte stamp");
    (0..payload_len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Write `stamp` into the first 8 bytes of `payload`.
#[inline]
pub fn stamp(payload: &mut [u8], stamp: u64) {
    payload[..STAMP_LEN].copy_from_slice(&stamp.to_le_bytes());
}

/// The stamp of a payload (0 if it is shorter than a stamp).
#[inline]
pub fn stamp_of(payload: &[u8]) -> u64 {
    match payload.get(..STAMP_LEN) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
        None => 0,
    }
}

/// Order-sensitive checksum step over what a reader saw of one record.
#[inline]
pub fn fold(h: u64, offset: u64, payload: &[u8]) -> u64 {
    let x = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stamp_of(payload).rotate_left(17) ^ payload.len() as u64;
    h.rotate_left(5) ^ x
}

/// The checksum [`replay_all`] must return for `n` records starting at `first`, each with a
/// payload of `payload_len` bytes stamped with its own offset.
pub fn expected_checksum(first: u64, n: u64, payload_len: usize) -> u64 {
    let mut p = vec![0u8; payload_len];
    let mut h = 0u64;
    for o in first..first + n {
        stamp(&mut p, o);
        h = fold(h, o, &p);
    }
    h
}

#[path = "../../tests/support/rng.rs"]
mod rng;
pub use rng::Rng;

// ---- appends -----------------------------------------------------------------------------

/// Append `n` records of `payload_len` bytes in batches of `batch` (the last batch may be
/// shorter), each stamped with the offset it is expected to get (this must be the only
/// writer). Returns the number of records appended.
pub fn append_n(log: &Log, n: u64, payload_len: usize, batch: usize) -> tidelog::Result<u64> {
    assert!(batch >= 1);
    let mut next = log.next_offset();
    let mut left = n;
    if batch == 1 {
        let mut p = payload_template(payload_len);
        while left > 0 {
            stamp(&mut p, next);
            log.append(Record::new(&p))?;
            next += 1;
            left -= 1;
        }
        return Ok(n);
    }
    let mut buf = payload_template(payload_len).repeat(batch);
    while left > 0 {
        let k = (batch as u64).min(left) as usize;
        for (i, p) in buf.chunks_exact_mut(payload_len).take(k).enumerate() {
            stamp(p, next + i as u64);
        }
        let records: Vec<Record<'_>> = buf.chunks_exact(payload_len).take(k).map(Record::new).collect();
        let r = log.append_batch(&records)?;
        debug_assert_eq!(r.start, next);
        next += k as u64;
        left -= k as u64;
    }
    Ok(n)
}

/// Open a fresh log in `dir` and append `n` stamped records of `payload_len` bytes in batches
/// of `batch`. Returns the open log.
pub fn fill_log(dir: &Path, n: u64, payload_len: usize, batch: usize, opts: Options) -> tidelog::Result<Log> {
    let log = Log::open(dir, opts)?;
    append_n(&log, n, payload_len, batch)?;
    Ok(log)
}

/// Build a log of at least `bytes` bytes of records (payloads of `payload_len` bytes, batches
/// of 64) in `dir` and close it cleanly. Returns the number of records.
pub fn build_clean_log(dir: &Path, bytes: u64, payload_len: usize, opts: Options) -> tidelog::Result<u64> {
    let n = bytes.div_ceil(frame_bytes(payload_len) as u64);
    let log = fill_log(dir, n, payload_len, 64, opts)?;
    log.close()?;
    Ok(n)
}

/// Open a log (the timed part of the clean-open benchmark).
pub fn clean_open(dir: &Path, opts: Options) -> tidelog::Result<Log> {
    Log::open(dir, opts)
}

/// Options for the durable-append benchmark: `Durability::Always`, 64 MiB segments.
pub fn durable_options() -> Options {
    Options::default().segment_bytes(64 << 20).durability(Durability::Always)
}

/// `threads` threads append `n` records between them (one at a time, `payload_len` bytes) to
/// a log opened with `Durability::Always`: each append returns only once its record is on
/// stable storage, and concurrent appenders share flushes (group commit). Thread `t` stamps
/// its `i`-th record `(t << 32) | i`. Returns the number of records appended.
pub fn durable_append(log: &Log, threads: usize, n: u64, payload_len: usize) -> tidelog::Result<u64> {
    assert!(threads >= 1);
    let per = n / threads as u64;
    let extra = n % threads as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = per + u64::from((t as u64) < extra);
                s.spawn(move || -> tidelog::Result<u64> {
                    let mut p = payload_template(payload_len);
                    for i in 0..count {
                        stamp(&mut p, ((t as u64) << 32) | i);
                        log.append(Record::new(&p))?;
                    }
                    Ok(count)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?;
        }
        Ok(total)
    })
}

// ---- reads -------------------------------------------------------------------------------

/// Replay the whole log with a cursor (which verifies every record's checksum). Returns the
/// number of records seen and a checksum of what was seen (see [`expected_checksum`]).
pub fn replay_all(log: &Log) -> tidelog::Result<(u64, u64)> {
    let mut cursor = log.cursor(log.first_offset());
    let mut count = 0u64;
    let mut h = 0u64;
    while let Some(r) = cursor.next()? {
        h = fold(h, r.offset(), r.payload());
        count += 1;
    }
    Ok((count, h))
}

/// `n` reads of uniformly random offsets with `read_with` (zero-copy). Returns how many of
/// them held a payload stamped with the offset asked for (all of them, for a log built by
/// [`append_n`]).
pub fn random_reads(log: &Log, n: u64, seed: u64) -> tidelog::Result<u64> {
    let (first, end) = (log.first_offset(), log.next_offset());
    let mut rng = Rng::new(seed);
    let mut ok = 0u64;
    for _ in 0..n {
        let off = rng.range(first, end);
        ok += u64::from(log.read_with(off, |r| stamp_of(r.payload()) == off && r.offset() == off)?);
    }
    Ok(ok)
}

/// `n` timestamps, each the timestamp of a uniformly random record (setup for
/// [`time_lookups`]).
pub fn sample_times(log: &Log, n: u64, seed: u64) -> tidelog::Result<Vec<u64>> {
    let (first, end) = (log.first_offset(), log.next_offset());
    let mut rng = Rng::new(seed);
    (0..n).map(|_| log.read_with(rng.range(first, end), |r| r.timestamp_us())).collect()
}

/// Look each time up with `offset_for_time`. Returns how many lookups found a record.
pub fn time_lookups(log: &Log, times: &[u64]) -> tidelog::Result<u64> {
    let mut found = 0;
    for &t in times {
        found += u64::from(log.offset_for_time(t)?.is_some());
    }
    Ok(found)
}

// ---- baselines ---------------------------------------------------------------------------

/// A frame image of a record with `payload_len` bytes: what the baselines copy per record.
pub fn frame_template(payload_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; frame_bytes(payload_len)];
    f[..4].copy_from_slice(&((RECORD_HEADER_LEN + payload_len) as u32).to_le_bytes());
    f[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload_len].copy_from_slice(&payload_template(payload_len));
    f
}

/// Setup for [`baseline_buffered_file_write`]: a new file behind a 64 KiB `BufWriter`.
pub fn baseline_file(path: &Path) -> io::Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(BUFWRITER_BYTES, File::create(path)?))
}

/// Baseline: write `n` frames (the bytes a log with `payload_len`-byte payloads writes)
/// through a buffered file, then flush to the kernel (no fsync, like `Durability::None`).
/// Returns the bytes written.
pub fn baseline_buffered_file_write(w: &mut BufWriter<File>, n: u64, payload_len: usize) -> io::Result<u64> {
    let mut frame = frame_template(payload_len);
    for i in 0..n {
        stamp(&mut frame[RECORD_HEADER_LEN..], i);
        w.write_all(&frame)?;
    }
    w.flush()?;
    Ok(n * frame.len() as u64)
}

/// Setup for [`baseline_mmap_copy`] over a file: a new file at `path` with room for `n`
/// frames reserved with `fallocate` (as the log reserves its segments), mapped shared.
pub fn baseline_mmap_file(path: &Path, n: u64, payload_len: usize) -> io::Result<MmapMut> {
    let len = (n as usize * frame_bytes(payload_len)).max(1);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len as u64)?;
    // SAFETY: the file was just created by this process under a private temporary directory;
    // nothing truncates or rewrites it while the map lives (the map owns no other invariant).
    let map = unsafe { MmapMut::map_mut(&file)? };
    Ok(map)
}

/// Setup for [`baseline_mmap_copy`] over anonymous memory: no file system involved.
pub fn baseline_mmap_anon(n: u64, payload_len: usize) -> io::Result<MmapMut> {
    MmapMut::map_anon((n as usize * frame_bytes(payload_len)).max(1))
}

/// Baseline: copy `n` frames into a map with `copy_from_slice`, one after another — the
/// least work a memory-mapped log could do per record (no checksum, no index, no lock).
/// Returns the bytes copied.
pub fn baseline_mmap_copy(map: &mut [u8], n: u64, payload_len: usize) -> u64 {
    let mut frame = frame_template(payload_len);
    let step = frame.len();
    assert!(map.len() >= n as usize * step, "map too small");
    for (i, dst) in map.chunks_exact_mut(step).take(n as usize).enumerate() {
        stamp(&mut frame[RECORD_HEADER_LEN..], i as u64);
        dst.copy_from_slice(&frame);
    }
    n * step as u64
}
