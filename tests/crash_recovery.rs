//! Crash recovery, proven by damage rather than argued.
//!
//! Each test builds a real log, damages a copy of its files the way a crash or failing media
//! would (truncation at every byte of the last records, a bit flip at every byte, lost or
//! garbled checkpoint and index files, a stale frame at the wrong place), reopens the copy
//! and checks the promises of the recovery policy:
//!
//! * every record before the damage reads back exactly as written;
//! * no damaged record is ever returned: a read yields the record written at that offset or
//!   a located `Error::Corruption`, never other bytes;
//! * a torn tail (invalid bytes with nothing valid after them) is cut away, appends continue
//!   at the next offset, and a further reopen works;
//! * damage followed by valid records, or a file cut short below the durable point (the
//!   checkpoint position), fails the open with `Error::Corruption` naming the file and a
//!   position at or before the damage, and `RecoveryMode::ReadOnlyUpToDamage` then opens the
//!   log read-only up to it;
//! * bytes a clean checkpoint vouches for are not rescanned on open (the design trades that
//!   scan for a fast clean start); damage there is found by `Log::verify` and by reads.
//!
//! "Unclean" logs are leaked with `std::mem::forget` so that no close runs: the files then
//! look exactly as after `kill -9` (the page cache holds every written byte).

mod common;

use std::fs::{self, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{append, assert_same, copy_of, le_u64, parse_frames, segment_files, FrameAt, Rng, Want, HEADER_LEN};
use tidelog::{CorruptionKind, Durability, Error, Location, Log, Options, Record, RecordView, RecoveryMode};

const SEGMENT_BYTES: u64 = 64 * 1024;

fn opts() -> Options {
    Options::default().segment_bytes(SEGMENT_BYTES).index_interval_bytes(512)
}

// ---- what was written --------------------------------------------------------------------

/// The deterministic record for offset `i`: keys absent, empty or present; zero to two
/// headers; a payload of up to `max_payload` bytes whose content depends on `i`.
fn want(i: u64, max_payload: u64) -> Want {
    let key = match i % 4 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("key-{}", i % 13).into_bytes()),
    };
    let headers = (0..i % 3).map(|h| (format!("h{h}"), format!("v{i}-{h}").into_bytes())).collect();
    let len = (i.wrapping_mul(2_654_435_761) % max_payload) as usize;
    let payload = (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect();
    Want { key, headers, payload }
}

fn assert_view(got: &RecordView<'_>, offset: u64, want: &Want, ctx: &str) {
    assert_same(&got.to_owned(), offset, want, ctx);
}

// ---- the file layout, read independently of the library ---------------------------------

/// The checkpoint's (segment base, position), parsed from its documented layout: one 64-byte
/// slot (format version 1) or two, of which the one with the higher sequence (at 48) is
/// current.
fn checkpoint_position(dir: &Path) -> Option<(u64, u64)> {
    let b = fs::read(dir.join("checkpoint")).ok()?;
    let slots: Vec<&[u8]> = b.chunks(64).filter(|s| s.len() == 64 && &s[..8] == b"TDLGCKP\0").collect();
    let current = slots.into_iter().max_by_key(|s| le_u64(s, 48))?;
    Some((le_u64(current, 16), le_u64(current, 24)))
}

fn base_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

// ---- building logs -----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    /// `close()`: a clean checkpoint vouches for every byte.
    Clean,
    /// Leaked: the checkpoint points at the start of the active segment.
    Unclean,
    /// Leaked after a flush wrote a checkpoint in the middle of the swept tail.
    UncleanMidCheckpoint,
    /// Leaked, every append flushed (`Durability::Always`): each batch after the first carries
    /// a durable mark vouching for the records before it.
    UncleanDurable,
}

/// A pristine log image and everything known about it.
struct Built {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    wants: Vec<Want>,
    /// File name of the active segment.
    active: PathBuf,
    /// Frames of the active segment.
    frames: Vec<FrameAt>,
    /// Bytes of the active segment vouched for by the checkpoint (not rescanned on open).
    trusted_pos: u64,
    /// For `UncleanMidCheckpoint`: the checkpoint file written in the middle of the tail.
    mid_checkpoint: Option<Vec<u8>>,
}

/// Batch sizes of the swept tail: single records and batches, with small payloads so that a
/// sweep over every byte stays fast.
const TAIL: [usize; 4] = [1, 3, 1, 2];
const TAIL_RECORDS: usize = 7;

fn build(shutdown: Shutdown) -> Built {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let durability = if shutdown == Shutdown::UncleanDurable { Durability::Always } else { Durability::None };
    let log = Log::open(&dir, opts().durability(durability)).unwrap();
    let mut wants: Vec<Want> = Vec::new();
    let mut step = 0u64;
    // Two sealed segments and a non-trivial active one.
    while log.segments().len() < 3 || log.next_offset() - log.segments().last().unwrap().base_offset < 20 {
        let n = if step % 5 == 4 { 1 + step % 4 } else { 1 };
        let batch: Vec<Want> = (0..n).map(|k| want(wants.len() as u64 + k, 300)).collect();
        assert_eq!(append(&log, &batch).start, wants.len() as u64);
        wants.extend(batch);
        step += 1;
    }
    let mut mid_checkpoint = None;
    for (i, &n) in TAIL.iter().enumerate() {
        if i == 2 && shutdown == Shutdown::UncleanMidCheckpoint {
            // `sync` writes a checkpoint for what it flushed; a flush writes the active index
            // files with it at most once a second (log/sync.rs CHECKPOINT_EVERY), and only
            // then does the open check just the last index interval before the checkpoint
            // (records before that stretch are trusted: the `Trusted` outcome).
            std::thread::sleep(Duration::from_millis(1100));
            log.sync().unwrap();
            mid_checkpoint = Some(fs::read(dir.join("checkpoint")).unwrap());
        }
        let batch: Vec<Want> = (0..n as u64).map(|k| want(wants.len() as u64 + k, 48)).collect();
        assert_eq!(append(&log, &batch).start, wants.len() as u64);
        wants.extend(batch);
    }
    match shutdown {
        Shutdown::Clean => log.close().unwrap(),
        Shutdown::Unclean | Shutdown::UncleanMidCheckpoint | Shutdown::UncleanDurable => std::mem::forget(log),
    }
    let active_path = segment_files(&dir).pop().unwrap();
    let frames = parse_frames(&fs::read(&active_path).unwrap());
    assert_eq!(frames.last().unwrap().offset + 1, wants.len() as u64, "frames parsed from the file");
    let trusted_pos = match checkpoint_position(&dir) {
        Some((base, pos)) if base == base_of(&active_path) => pos,
        _ => HEADER_LEN,
    };
    match shutdown {
        Shutdown::Clean => assert_eq!(trusted_pos, frames.last().map(|f| (f.pos + f.len + 7) & !7).unwrap()),
        Shutdown::Unclean => assert_eq!(trusted_pos, HEADER_LEN),
        Shutdown::UncleanMidCheckpoint => {
            let tail = &frames[frames.len() - TAIL_RECORDS..];
            assert!(trusted_pos > tail[0].pos && trusted_pos < tail[TAIL_RECORDS - 1].pos, "checkpoint mid-tail");
        }
        // A flush writes a checkpoint once a second at most: it may land anywhere.
        Shutdown::UncleanDurable => {}
    }
    let active = PathBuf::from(active_path.file_name().unwrap());
    Built { _tmp: tmp, dir, wants, active, frames, trusted_pos, mid_checkpoint }
}

impl Built {
    fn n(&self) -> u64 {
        self.wants.len() as u64
    }

    /// Byte positions swept: every byte of the last records, plus a few past the end.
    fn sweep(&self) -> Range<u64> {
        let first = self.frames[self.frames.len() - TAIL_RECORDS].pos;
        let last = self.frames.last().unwrap();
        first..((last.pos + last.len + 7) & !7) + 16
    }

    /// The frame of the active segment whose bytes (padding excluded) contain `p`.
    fn frame_at(&self, p: u64) -> Option<FrameAt> {
        self.frames.iter().copied().find(|f| f.pos <= p && p < f.pos + f.len)
    }
}

// ---- checks ------------------------------------------------------------------------------

/// Records `0..upto` read back intact through a cursor, and the cursor then ends.
fn check_prefix(log: &Log, wants: &[Want], upto: u64, ctx: &str) {
    let mut c = log.cursor(0);
    for o in 0..upto {
        match c.next() {
            Ok(Some(r)) => assert_view(&r, o, &wants[o as usize], ctx),
            Ok(None) => panic!("{ctx}: cursor ended at {o}, expected records up to {upto}"),
            Err(e) => panic!("{ctx}: cursor failed at {o}: {e}"),
        }
    }
    assert!(c.next().unwrap().is_none(), "{ctx}: cursor went past {upto}");
}

/// After an open that must have kept exactly the records before `keep`: they read back
/// intact, nothing past them is returned, `verify` finds nothing, the next append gets
/// `keep`, and the log reopens with it.
fn check_recovered(log: Log, dir: &Path, wants: &[Want], keep: u64, ctx: &str) {
    assert!(!log.is_read_only(), "{ctx}");
    assert_eq!(log.next_offset(), keep, "{ctx}: next offset after recovery");
    check_prefix(&log, wants, keep, ctx);
    assert!(matches!(log.read(keep), Err(Error::OffsetOutOfRange { .. })), "{ctx}: read past the end");
    let v = log.verify(|_| {});
    assert!(v.damage.is_empty(), "{ctx}: verify after recovery: {:?}", v.damage);
    assert_eq!(v.records, keep, "{ctx}");
    let marker = want(1_000_003, 40);
    assert_eq!(append(&log, std::slice::from_ref(&marker)).start, keep, "{ctx}: next append");
    drop(log);
    let log = Log::open(dir, opts()).unwrap_or_else(|e| panic!("{ctx}: second reopen: {e}"));
    assert_eq!(log.next_offset(), keep + 1, "{ctx}: after second reopen");
    assert_same(&log.read(keep).unwrap(), keep, &marker, ctx);
    if keep > 0 {
        assert_same(&log.read(keep - 1).unwrap(), keep - 1, &wants[keep as usize - 1], ctx);
    }
}

/// Truncate the active segment at `p`. Past the durable point (the checkpoint position) that
/// is a torn tail; before it, acknowledged records are gone, which is damage.
fn truncation_case(b: &Built, p: u64) -> Outcome {
    let ctx = format!("truncated at byte {p}");
    let (_tmp, dir) = copy_of(&b.dir);
    let active = dir.join(&b.active);
    OpenOptions::new().write(true).open(&active).unwrap().set_len(p).unwrap();
    // The first batch not wholly before `p` is lost, with every later record.
    let keep = b.frames.iter().find(|f| f.pos + f.len > p).map_or(b.n(), |f| f.batch_start_off);
    if p >= b.trusted_pos {
        let log = Log::open(&dir, opts()).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
        check_recovered(log, &dir, &b.wants, keep, &ctx);
        return Outcome::TornTail;
    }
    let missing = |r: tidelog::Result<Log>, mode: &str| match r {
        Err(Error::Corruption {
            location: Location::File { path: file, position },
            kind: CorruptionKind::MissingData,
        }) => {
            assert_eq!((file, position), (active.clone(), p), "{ctx}: {mode}");
        }
        other => panic!("{ctx}: {mode}: a file cut below the durable point gave {other:?}"),
    };
    missing(Log::open(&dir, opts()), "writer");
    missing(Log::open_read_only(&dir, opts()), "read-only");
    let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage))
        .unwrap_or_else(|e| panic!("{ctx}: read-only open up to the damage: {e}"));
    assert!(ro.is_read_only(), "{ctx}");
    assert_eq!(ro.open_report().damage, Some((active.clone(), p)), "{ctx}");
    assert_eq!(ro.next_offset(), keep, "{ctx}");
    check_prefix(&ro, &b.wants, keep, &ctx);
    assert!(matches!(ro.read(keep), Err(Error::OffsetOutOfRange { .. })), "{ctx}: read past the damage");
    assert!(matches!(ro.append(Record::new(b"x")), Err(Error::ReadOnly)), "{ctx}");
    drop(ro);
    assert_eq!(fs::metadata(&active).unwrap().len(), p, "{ctx}: the damaged file was modified");
    Outcome::Damage
}

/// Which branch of the recovery policy a damaged case exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// No record was damaged (alignment padding, or bytes past the end).
    Undamaged,
    /// The damage lies in bytes the checkpoint vouches for, before the stretch the open
    /// checks: found by reads and `verify`.
    Trusted,
    /// The damage lies in the last stretch the checkpoint vouches for (from the last index
    /// entry before the checkpoint position to that position), which the open validates
    /// before trusting the checkpoint: the open fails with the damage located.
    CheckedAtOpen,
    /// A torn tail (the damaged record was the last one, or the file was cut past the
    /// durable point): cut away, and the log goes on.
    TornTail,
    /// Damage (followed by valid records, or records the checkpoint vouches for missing):
    /// the open failed with a located `Corruption`; read-only open up to it.
    Damage,
}

fn flip_case(b: &Built, p: u64, bit: u32) -> Outcome {
    let ctx = format!("bit {bit} flipped at byte {p}");
    let (_tmp, dir) = copy_of(&b.dir);
    let active = dir.join(&b.active);
    let mut bytes = fs::read(&active).unwrap();
    bytes[p as usize] ^= 1 << bit;
    fs::write(&active, &bytes).unwrap();
    let n = b.n();
    match b.frame_at(p) {
        // Alignment padding or past the end: no record is damaged.
        None => {
            let log = Log::open(&dir, opts()).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
            check_recovered(log, &dir, &b.wants, n, &ctx);
            Outcome::Undamaged
        }
        // Bytes the checkpoint vouches for are not rescanned; reads and verify find the damage.
        Some(f) if f.pos < b.trusted_pos => {
            let log = match Log::open(&dir, opts()) {
                Ok(log) => log,
                Err(Error::Corruption { location: Location::File { path: file, position }, .. }) => {
                    assert_eq!(file, active, "{ctx}");
                    assert_eq!(position, f.pos, "{ctx}");
                    return Outcome::CheckedAtOpen;
                }
                Err(e) => panic!("{ctx}: open: {e}"),
            };
            assert_eq!(log.next_offset(), n, "{ctx}");
            let mut c = log.cursor(0);
            for o in 0..f.offset {
                assert_view(&c.next().unwrap().unwrap(), o, &b.wants[o as usize], &ctx);
            }
            match c.next() {
                Err(Error::Corruption { location: Location::File { path: file, position }, .. }) => {
                    assert_eq!(file, active, "{ctx}");
                    assert_eq!(position, f.pos, "{ctx}");
                }
                other => panic!("{ctx}: cursor over the damaged record gave {other:?}"),
            }
            match log.read(f.offset) {
                Err(Error::Corruption { location: Location::File { path: file, position }, .. }) => {
                    assert_eq!(file, active, "{ctx}");
                    assert_eq!(position, f.pos, "{ctx}");
                }
                other => panic!("{ctx}: read of the damaged record gave {other:?}"),
            }
            for o in 0..n {
                match log.read(o) {
                    Ok(r) => assert_same(&r, o, &b.wants[o as usize], &ctx),
                    Err(Error::Corruption { .. }) if o >= f.offset => {}
                    Err(e) => panic!("{ctx}: read({o}): {e}"),
                }
            }
            let v = log.verify(|_| {});
            assert_eq!(v.damage.len(), 1, "{ctx}: {:?}", v.damage);
            assert_eq!(v.damage[0].file, active, "{ctx}");
            assert!(v.damage[0].position >= f.batch_start_pos && v.damage[0].position <= p, "{ctx}: {:?}", v.damage);
            assert_eq!(append(&log, &[want(7, 10)]).start, n, "{ctx}: append after the last record");
            Outcome::Trusted
        }
        Some(f) => {
            // Past the checkpoint, only a later frame's durable mark proves that the damaged
            // record had been made durable; without one, the damage lies past the durable
            // point and is a torn write (whatever valid records follow it).
            let proven = b.frames.iter().any(|g| g.offset > f.offset && g.durable_mark.is_some_and(|m| m > f.offset));
            match Log::open(&dir, opts()) {
                Ok(log) => {
                    assert!(!proven, "{ctx}: damage to records proven durable was accepted as a torn tail");
                    check_recovered(log, &dir, &b.wants, f.batch_start_off, &ctx);
                    Outcome::TornTail
                }
                Err(Error::Corruption { location: Location::File { path: file, position }, kind }) => {
                    assert!(proven, "{ctx}: a torn tail past the durable point was reported as damage ({kind})");
                    assert_eq!(file, active, "{ctx}");
                    assert!(position >= f.batch_start_pos && position <= p, "{ctx}: reported at {position}");
                    let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage))
                        .unwrap_or_else(|e| panic!("{ctx}: read-only open up to the damage: {e}"));
                    assert!(ro.is_read_only(), "{ctx}");
                    assert_eq!(ro.open_report().damage, Some((active.clone(), position)), "{ctx}");
                    assert_eq!(ro.next_offset(), f.batch_start_off, "{ctx}");
                    check_prefix(&ro, &b.wants, f.batch_start_off, &ctx);
                    assert!(matches!(ro.append(Record::new(b"x")), Err(Error::ReadOnly)), "{ctx}");
                    Outcome::Damage
                }
                Err(e) => panic!("{ctx}: open failed with a non-corruption error: {e}"),
            }
        }
    }
}

/// Truncate at every swept byte; returns which outcomes occurred.
fn sweep_truncations(shutdown: Shutdown) -> std::collections::BTreeSet<Outcome> {
    let b = build(shutdown);
    b.sweep().map(|p| truncation_case(&b, p)).collect()
}

/// Flip one bit at every swept byte (the bit varies with the position); returns which
/// outcomes occurred, so that each sweep proves it exercised the branches it should.
fn sweep_flips(shutdown: Shutdown) -> std::collections::BTreeSet<Outcome> {
    let b = build(shutdown);
    b.sweep().map(|p| flip_case(&b, p, ((p * 5 + shutdown as u64) % 8) as u32)).collect()
}

// ---- the sweeps --------------------------------------------------------------------------

/// A cleanly closed log, truncated at every byte of its last seven records (and a little
/// past the end). The clean checkpoint vouches for every record, so a cut before its position
/// loses acknowledged records: damage, reported as `MissingData` at the new end of the file,
/// and readable up to it read-only; a cut past it (in the zeros after the end) is harmless.
///
/// Regression: open used to trust that checkpoint (it only checked the position against the
/// reservation, which it had just restored with zeros), so the log claimed records that
/// were zeros: reads of them failed with `MissingData`, and the next append went after the
/// hole, leaving offsets that no record would ever fill.
#[test]
fn truncation_at_every_byte_of_the_tail_after_clean_close() {
    assert_eq!(sweep_truncations(Shutdown::Clean), [Outcome::TornTail, Outcome::Damage].into());
}

/// As after `kill -9`: the whole active segment is validated, and a truncation anywhere in the
/// last records keeps exactly the whole batches before it.
#[test]
fn truncation_at_every_byte_of_the_tail_after_crash() {
    assert_eq!(sweep_truncations(Shutdown::Unclean), [Outcome::TornTail].into());
}

/// A crash with a checkpoint in the middle of the tail: cuts before it are damage (records it
/// vouches for are gone), cuts after it are a torn tail.
#[test]
fn truncation_at_every_byte_of_the_tail_around_a_checkpoint() {
    assert_eq!(sweep_truncations(Shutdown::UncleanMidCheckpoint), [Outcome::TornTail, Outcome::Damage].into());
}

/// A bit flip in any byte of the last records of a cleanly closed log: the open checks the
/// last stretch the checkpoint vouches for (one index interval) and reports damage there,
/// located; damage before that stretch is found by reads and `verify`. Never returned as data.
#[test]
fn bit_flip_at_every_byte_of_the_tail_after_clean_close() {
    let seen = sweep_flips(Shutdown::Clean);
    assert_eq!(seen, [Outcome::Undamaged, Outcome::Trusted, Outcome::CheckedAtOpen].into());
}

/// A bit flip in any byte of the last records after a crash in which nothing was made durable:
/// every damaged record lies past the durable point, so each is a torn write (a power loss
/// that keeps a later page but not an earlier one looks just like this), cut with everything
/// after it, and the default mode opens.
///
/// Regression: damage followed by valid records used to fail the open even when none of them
/// had ever been made durable, so after such a power loss the user needed `Salvage`.
#[test]
fn bit_flip_at_every_byte_of_the_tail_after_crash() {
    let seen = sweep_flips(Shutdown::Unclean);
    assert_eq!(seen, [Outcome::Undamaged, Outcome::TornTail].into());
}

/// Bit flips on both sides of a mid-tail checkpoint: before it, found at open or by reads;
/// after it, nothing proves the records durable, so a torn tail.
#[test]
fn bit_flip_at_every_byte_of_the_tail_around_a_checkpoint() {
    let seen = sweep_flips(Shutdown::UncleanMidCheckpoint);
    assert_eq!(seen, [Outcome::Undamaged, Outcome::Trusted, Outcome::CheckedAtOpen, Outcome::TornTail].into());
}

/// Every append flushed: a later frame's durable mark proves each damaged record durable, so
/// the damage is reported, located, and readable up to read-only; only the last batch, which
/// no later frame vouches for, is a torn tail.
#[test]
fn bit_flip_at_every_byte_of_the_tail_after_durable_appends() {
    let seen = sweep_flips(Shutdown::UncleanDurable);
    assert!(seen.contains(&Outcome::Damage) && seen.contains(&Outcome::TornTail), "{seen:?}");
}

// ---- batches -----------------------------------------------------------------------------

/// A batch cut short by a crash is not applied: truncating the file anywhere inside the last
/// batch, including exactly between two of its records, removes every record of it.
#[test]
fn truncated_batch_is_not_applied_at_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts()).unwrap();
    let wants: Vec<Want> = (0..30).map(|i| want(i, 100)).collect();
    for w in &wants[..24] {
        append(&log, std::slice::from_ref(w));
    }
    assert_eq!(append(&log, &wants[24..30]), 24..30);
    std::mem::forget(log);
    let active = segment_files(&dir).pop().unwrap();
    let frames = parse_frames(&fs::read(&active).unwrap());
    let batch = &frames[24..30];
    assert!(batch.iter().all(|f| f.batch_start_off == 24));
    let mut cuts: Vec<u64> = Vec::new();
    for f in batch {
        cuts.extend([f.pos, f.pos + 3, f.pos + 20, f.pos + f.len / 2, f.pos + f.len - 1, f.pos + f.len]);
    }
    cuts.pop(); // the end of the last record is a complete batch
    for p in cuts {
        let ctx = format!("batch cut at byte {p}");
        let (_t, copy) = copy_of(&dir);
        OpenOptions::new().write(true).open(copy.join(active.file_name().unwrap())).unwrap().set_len(p).unwrap();
        let log = Log::open(&copy, opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(log.open_report().torn_bytes_zeroed > 0 || p == batch[0].pos, "{ctx}: {:?}", log.open_report());
        for o in 24..30 {
            assert!(matches!(log.read(o), Err(Error::OffsetOutOfRange { .. })), "{ctx}: record {o} of the batch");
        }
        check_recovered(log, &copy, &wants, 24, &ctx);
    }
}

// ---- sealed segments ---------------------------------------------------------------------

/// A bit flip inside a sealed segment (trusted on open through its sealed index) is reported
/// by `verify` with the file and position, and reading the damaged offset fails with
/// `Corruption`; no read anywhere returns other bytes. Without its index files the segment
/// is rescanned on open, and the same damage then fails the open, or opens read-only up to it.
#[test]
fn damage_in_a_sealed_segment_is_located_and_never_read() {
    let b = build(Shutdown::Clean);
    let sealed = segment_files(&b.dir)[1].clone();
    let frames = parse_frames(&fs::read(&sealed).unwrap());
    let f = frames[frames.len() / 2];
    let p = f.pos + f.len - 1; // the last payload byte
    let (_tmp, dir) = copy_of(&b.dir);
    let seg = dir.join(sealed.file_name().unwrap());
    let mut bytes = fs::read(&seg).unwrap();
    bytes[p as usize] ^= 0x10;
    fs::write(&seg, &bytes).unwrap();

    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(log.next_offset(), b.n());
    let v = log.verify(|_| {});
    assert_eq!(v.damage.len(), 1, "{:?}", v.damage);
    assert_eq!(v.damage[0].file, seg);
    assert!(v.damage[0].position >= f.batch_start_pos && v.damage[0].position <= p, "{:?}", v.damage[0]);
    assert!(matches!(v.damage[0].kind, CorruptionKind::ChecksumMismatch { .. }), "{:?}", v.damage[0]);
    match log.read(f.offset) {
        Err(Error::Corruption {
            location: Location::File { path: file, position },
            kind: CorruptionKind::ChecksumMismatch { .. },
        }) => {
            assert_eq!(file, seg);
            assert_eq!(position, f.pos);
        }
        other => panic!("read of the damaged record gave {other:?}"),
    }
    let seg_end = frames.last().unwrap().offset + 1;
    for o in 0..b.n() {
        match log.read(o) {
            Ok(r) => assert_same(&r, o, &b.wants[o as usize], "sealed damage"),
            Err(Error::Corruption { .. }) if o >= f.offset && o < seg_end => {}
            Err(e) => panic!("read({o}): {e}"),
        }
    }
    let mut c = log.cursor(0);
    for o in 0..f.offset {
        assert_view(&c.next().unwrap().unwrap(), o, &b.wants[o as usize], "cursor before the damage");
    }
    assert!(matches!(c.next(), Err(Error::Corruption { .. })));
    drop(c);
    log.close().unwrap();

    // Without the sealed index, open rescans the segment and meets the damage.
    fs::remove_file(seg.with_extension("index")).unwrap();
    match Log::open(&dir, opts()) {
        Err(Error::Corruption { location: Location::File { path: file, position }, .. }) => {
            assert_eq!(file, seg);
            assert!(position >= f.batch_start_pos && position <= p, "{position}");
        }
        other => panic!("open with a damaged unindexed sealed segment gave {other:?}"),
    }
    let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.next_offset(), f.batch_start_off);
    assert_eq!(ro.open_report().damage.as_ref().map(|d| &d.0), Some(&seg));
    check_prefix(&ro, &b.wants, f.batch_start_off, "read-only up to sealed damage");
    assert!(matches!(ro.append(Record::new(b"x")), Err(Error::ReadOnly)));
}

// ---- checkpoint --------------------------------------------------------------------------

fn check_everything_recovered(b: &Built, dir: &Path, ctx: &str) {
    let log = Log::open(dir, opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert!(!log.open_report().clean_shutdown, "{ctx}: {:?}", log.open_report());
    check_recovered(log, dir, &b.wants, b.n(), ctx);
}

/// The checkpoint only saves work: deleting it after a clean close or a crash loses nothing.
#[test]
fn deleted_checkpoint_recovers_everything() {
    for shutdown in [Shutdown::Clean, Shutdown::Unclean] {
        let b = build(shutdown);
        let (_tmp, dir) = copy_of(&b.dir);
        fs::remove_file(dir.join("checkpoint")).unwrap();
        let log = Log::open(&dir, opts()).unwrap();
        assert!(log.open_report().scanned_bytes > 0, "{:?}", log.open_report());
        drop(log);
        let (_tmp, dir) = copy_of(&b.dir);
        fs::remove_file(dir.join("checkpoint")).unwrap();
        check_everything_recovered(&b, &dir, &format!("{shutdown:?}, checkpoint deleted"));
    }
}

/// A checkpoint with a flipped bit, garbage, a short or an empty file fails its checksum and
/// is ignored: the active segment is scanned from its start and nothing is lost.
#[test]
fn corrupted_checkpoint_recovers_everything() {
    let b = build(Shutdown::Clean);
    let good = fs::read(b.dir.join("checkpoint")).unwrap();
    let mut rng = Rng::new(7);
    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for at in [0usize, 9, 13, 17, 25, 33, 41, 60, 63] {
        let mut c = good.clone();
        c[at] ^= 0x04;
        variants.push((format!("bit flip at {at}"), c));
    }
    variants.push(("garbage".into(), (0..64).map(|_| rng.next_u64() as u8).collect()));
    variants.push(("truncated".into(), good[..10].to_vec()));
    variants.push(("empty".into(), Vec::new()));
    variants.push(("too long".into(), [good.clone(), vec![0; 8]].concat()));
    for (name, bytes) in variants {
        let (_tmp, dir) = copy_of(&b.dir);
        fs::write(dir.join("checkpoint"), bytes).unwrap();
        check_everything_recovered(&b, &dir, &format!("checkpoint {name}"));
    }
}

/// An older checkpoint (left behind by a lost rename, or restored from a backup) points
/// before the end: recovery scans forward from it and finds every later record.
#[test]
fn stale_checkpoint_recovers_everything() {
    let b = build(Shutdown::UncleanMidCheckpoint);
    let (_tmp, dir) = copy_of(&b.dir);
    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(log.next_offset(), b.n());
    log.close().unwrap();
    fs::write(dir.join("checkpoint"), b.mid_checkpoint.as_ref().unwrap()).unwrap();
    check_everything_recovered(&b, &dir, "mid-tail checkpoint restored after a clean close");

    // A checkpoint naming an older segment is not trusted for the active one.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts()).unwrap();
    append(&log, &[want(0, 100)]);
    let first = fs::read(dir.join("checkpoint")).unwrap();
    let wants: Vec<Want> = (0..1200).map(|i| want(i, 200)).collect();
    for w in &wants[1..] {
        append(&log, std::slice::from_ref(w));
    }
    assert!(log.segments().len() >= 3);
    log.close().unwrap();
    fs::write(dir.join("checkpoint"), first).unwrap();
    let log = Log::open(&dir, opts()).unwrap();
    check_recovered(log, &dir, &wants, wants.len() as u64, "checkpoint of the first segment");
}

// ---- index files -------------------------------------------------------------------------

fn index_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "index" || e == "timeindex"))
        .collect();
    v.sort();
    v
}

/// Every record by offset, through a cursor, and every distinct timestamp through
/// `offset_for_time`, compared with what a plain scan says.
fn check_all_reads(log: &Log, wants: &[Want], ctx: &str) {
    let n = wants.len() as u64;
    assert_eq!(log.next_offset(), n, "{ctx}");
    let mut stamps = Vec::with_capacity(wants.len());
    for o in 0..n {
        let r = log.read(o).unwrap_or_else(|e| panic!("{ctx}: read({o}): {e}"));
        assert_same(&r, o, &wants[o as usize], ctx);
        stamps.push(r.timestamp_us);
    }
    check_prefix(log, wants, n, ctx);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{ctx}: timestamps decrease");
    for (o, &t) in stamps.iter().enumerate() {
        if o == 0 || stamps[o - 1] != t {
            assert_eq!(log.offset_for_time(t).unwrap(), Some(o as u64), "{ctx}: offset_for_time({t})");
        }
        if o == 0 || stamps[o - 1] + 1 < t {
            assert_eq!(log.offset_for_time(t - 1).unwrap(), Some(o as u64), "{ctx}: offset_for_time({})", t - 1);
        }
    }
    assert_eq!(log.offset_for_time(stamps[stamps.len() - 1] + 1).unwrap(), None, "{ctx}");
}

/// A log whose timestamps spread over time, so that time lookups have something to find.
fn build_spread(dir: &Path) -> Vec<Want> {
    let log = Log::open(dir, opts()).unwrap();
    let wants: Vec<Want> = (0..1600).map(|i| want(i, 200)).collect();
    for (i, w) in wants.iter().enumerate() {
        append(&log, std::slice::from_ref(w));
        if i % 40 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(log.segments().len() >= 4);
    log.close().unwrap();
    wants
}

/// Missing, garbled and truncated index files are derived data: open rebuilds the sealed
/// ones (and says so), and every read and time lookup gives the same answers as before.
#[test]
fn damaged_index_files_are_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("log");
    let wants = build_spread(&src);
    let sealed = segment_files(&src).len() as u32 - 1;
    let log = Log::open(&src, opts()).unwrap();
    check_all_reads(&log, &wants, "intact");
    drop(log);

    let mut rng = Rng::new(11);
    type Damage = fn(&Path, &mut Rng);
    let damages: [(&str, Damage); 5] = [
        ("deleted", |p, _| fs::remove_file(p).unwrap()),
        ("garbage", |p, rng| {
            let n = fs::metadata(p).unwrap().len();
            fs::write(p, (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()).unwrap();
        }),
        ("truncated to half", |p, _| {
            let n = fs::metadata(p).unwrap().len();
            OpenOptions::new().write(true).open(p).unwrap().set_len(n / 2).unwrap();
        }),
        ("header bit flip", |p, _| {
            let mut b = fs::read(p).unwrap();
            b[20] ^= 1;
            fs::write(p, b).unwrap();
        }),
        ("empty", |p, _| fs::write(p, b"").unwrap()),
    ];
    for (name, damage) in damages {
        let (_t, dir) = copy_of(&src);
        for p in index_files(&dir) {
            damage(&p, &mut rng);
        }
        let ctx = format!("index files {name}");
        let log = Log::open(&dir, opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(log.open_report().indexes_rebuilt, sealed, "{ctx}: {:?}", log.open_report());
        check_all_reads(&log, &wants, &ctx);
        drop(log);
        let log = Log::open(&dir, opts()).unwrap();
        assert_eq!(log.open_report().indexes_rebuilt, 0, "{ctx}: rebuilt indexes were not kept");
        check_all_reads(&log, &wants, &format!("{ctx}, reopened"));
    }
}

/// Index entries garbled behind an intact header (so the sealed index is trusted): a lookup
/// that lands on the wrong bytes falls back to a scan, and neither reads nor time lookups
/// change their answers.
///
/// Regression: `Segment::find_time` trusted the time index's floor entry; with its timestamps
/// zeroed it started the search at the last entry and returned a later offset than the first
/// record at or after the time. The record at the floor entry must now be older than the
/// time sought, else the search starts from the segment's first record.
#[test]
fn garbled_index_entries_never_change_a_read() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("log");
    let wants = build_spread(&src);
    let mut rng = Rng::new(5);
    let kinds: [&[&str]; 3] = [&["index", "timeindex"], &["timeindex"], &["index"]];
    for (variant, kind) in ["zeros", "random", "ones"].into_iter().flat_map(|v| kinds.map(|k| (v, k))) {
        let (_t, dir) = copy_of(&src);
        for p in index_files(&dir).into_iter().filter(|p| kind.contains(&p.extension().unwrap().to_str().unwrap())) {
            let mut b = fs::read(&p).unwrap();
            for x in &mut b[64..] {
                *x = match variant {
                    "zeros" => 0,
                    "ones" => 0xff,
                    _ => rng.next_u64() as u8,
                };
            }
            fs::write(&p, b).unwrap();
        }
        let ctx = format!("{kind:?} entries garbled ({variant})");
        let log = Log::open(&dir, opts()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        check_all_reads(&log, &wants, &ctx);
    }
}

// ---- stale frames ------------------------------------------------------------------------

/// A log of identical-size records, so a frame can be copied over another. Every append is
/// flushed (`Durability::Always`), so each frame carries the durable mark that proves the
/// records before it durable: damage among them is damage, not a torn write.
fn build_uniform(dir: &Path) -> (Vec<Want>, PathBuf, Vec<FrameAt>) {
    let log = Log::open(dir, opts().durability(Durability::Always)).unwrap();
    let wants: Vec<Want> =
        (0..900u64).map(|i| Want { key: None, headers: Vec::new(), payload: vec![i as u8; 100] }).collect();
    for w in &wants {
        append(&log, std::slice::from_ref(w));
    }
    assert!(log.segments().len() >= 2);
    std::mem::forget(log);
    let active = segment_files(dir).pop().unwrap();
    let frames = parse_frames(&fs::read(&active).unwrap());
    (wants, active, frames)
}

fn copy_frame(file: &Path, from: FrameAt, to_pos: u64) {
    let mut b = fs::read(file).unwrap();
    let frame = b[from.pos as usize..(from.pos + from.len) as usize].to_vec();
    b[to_pos as usize..to_pos as usize + frame.len()].copy_from_slice(&frame);
    fs::write(file, b).unwrap();
}

/// A valid frame at the wrong place (a stale copy of an earlier record, as a recycled page
/// or a misdirected write would leave) fails the offset check: over a record in the middle it
/// is damage, located and classified as `OffsetMismatch`; past the end it is a torn tail and
/// never becomes a record.
#[test]
fn stale_frame_at_the_wrong_position_is_rejected() {
    let tmp = common::scratch_dir();
    let src = tmp.path().join("log");
    let (wants, active, frames) = build_uniform(&src);
    let n = wants.len() as u64;
    let name = active.file_name().unwrap();
    let (k, m) = (frames[3], frames[frames.len() - 5]);
    assert_eq!(k.len, m.len);

    // Over a record in the middle of the active segment after a crash: the open fails there.
    let (_t, dir) = copy_of(&src);
    copy_frame(&dir.join(name), k, m.pos);
    match Log::open(&dir, opts()) {
        Err(Error::Corruption { location: Location::File { path: file, position }, kind }) => {
            assert_eq!(file, dir.join(name));
            assert_eq!(position, m.pos);
            assert_eq!(kind, CorruptionKind::OffsetMismatch { got: k.offset, expected: m.offset });
        }
        other => panic!("stale frame mid-segment: {other:?}"),
    }
    let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
    assert_eq!(ro.next_offset(), m.offset);
    check_prefix(&ro, &wants, m.offset, "read-only before the stale frame");
    drop(ro);

    // The same after a clean close: the open trusts the checkpoint, the read refuses.
    let (_t, dir) = copy_of(&src);
    Log::open(&dir, opts()).unwrap().close().unwrap();
    copy_frame(&dir.join(name), k, m.pos);
    let log = Log::open(&dir, opts()).unwrap();
    match log.read(m.offset) {
        Err(Error::Corruption {
            location: Location::File { position, .. },
            kind: CorruptionKind::OffsetMismatch { got, expected },
        }) => {
            assert_eq!((position, got, expected), (m.pos, k.offset, m.offset));
        }
        other => panic!("read of the stale frame gave {other:?}"),
    }
    let v = log.verify(|_| {});
    assert_eq!(v.damage.len(), 1, "{:?}", v.damage);
    assert_eq!((v.damage[0].position, v.damage[0].offset), (m.pos, m.offset));
    drop(log);

    // Past the end: a stale frame where the next record would go is cut away.
    let (_t, dir) = copy_of(&src);
    let end = frames.last().map(|f| f.pos + ((f.len + 7) & !7)).unwrap();
    copy_frame(&dir.join(name), frames[frames.len() - 1], end);
    let log = Log::open(&dir, opts()).unwrap();
    assert!(log.open_report().torn_bytes_zeroed > 0, "{:?}", log.open_report());
    check_recovered(log, &dir, &wants, n, "stale frame past the end");

    // In a sealed segment: a frame of another segment copied over one of its records.
    let (_t, dir) = copy_of(&src);
    Log::open(&dir, opts()).unwrap().close().unwrap();
    let segs = segment_files(&dir);
    let donor = parse_frames(&fs::read(&active).unwrap())[0];
    let victim_frames = parse_frames(&fs::read(&segs[0]).unwrap());
    let victim = victim_frames[victim_frames.len() / 2];
    let mut b = fs::read(&segs[0]).unwrap();
    let donor_bytes = fs::read(dir.join(name)).unwrap()[donor.pos as usize..(donor.pos + donor.len) as usize].to_vec();
    b[victim.pos as usize..(victim.pos + donor.len) as usize].copy_from_slice(&donor_bytes);
    fs::write(&segs[0], b).unwrap();
    let log = Log::open(&dir, opts()).unwrap();
    match log.read(victim.offset) {
        Err(Error::Corruption {
            location: Location::File { path: file, .. },
            kind: CorruptionKind::OffsetMismatch { got, expected },
        }) => {
            assert_eq!(file, segs[0]);
            assert_eq!((got, expected), (donor.offset, victim.offset));
        }
        other => panic!("read of a foreign frame in a sealed segment gave {other:?}"),
    }
    assert_eq!(log.verify(|_| {}).damage.len(), 1);
}

/// Stale frames past a clean end (bytes no checkpoint vouches for, left by media damage or a
/// foreign write) never become records, and never stop a later open.
///
/// Regression, found by the `open_log` fuzz target: a clean open does not zero stray bytes
/// past the end, and an append overwrote only the bytes of its own frames. When the new last
/// frame ended exactly where a stale frame began, the next open's scan accepted the stale
/// frame (its offset matched) as a record that was never written in this log's history; when
/// it ended inside one, the stale frames beyond looked like damage followed by valid records
/// and the open failed. An append now stores a zero frame length right after its last frame,
/// so a later scan ends there.
#[test]
fn stale_frames_past_a_clean_end_never_become_records() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("a");
    let wants: Vec<Want> =
        (0..20).map(|i| Want { key: None, headers: Vec::new(), payload: want(i, 90).payload }).collect();
    let log = Log::open(&src, opts()).unwrap();
    for w in &wants {
        append(&log, std::slice::from_ref(w));
    }
    log.close().unwrap();
    // The same log with five more records: the stale future.
    let (_b, future) = copy_of(&src);
    let log = Log::open(&future, opts()).unwrap();
    for i in 20..25 {
        log.append(Record::new(format!("stale {i}").as_bytes())).unwrap();
    }
    log.close().unwrap();
    let name = segment_files(&src).pop().unwrap().file_name().unwrap().to_owned();
    let stale = fs::read(future.join(&name)).unwrap();
    let frames = parse_frames(&stale);
    let (f20, last) = (frames[20], frames[24]);
    let (from, to) = (((f20.pos + f20.len + 7) & !7) as usize, ((last.pos + last.len + 7) & !7) as usize);

    for (case, fresh) in
        [("ending where a stale frame begins", "fresh 20"), ("ending inside a stale frame", "fresh twenty")]
    {
        let ctx = format!("a fresh record {case}");
        let (_t, dir) = copy_of(&src);
        // Stale frames 21..25 past the clean end; the end slot itself stays zero.
        let mut bytes = fs::read(dir.join(&name)).unwrap();
        bytes[from..to].copy_from_slice(&stale[from..to]);
        fs::write(dir.join(&name), bytes).unwrap();
        let log = Log::open(&dir, opts()).unwrap();
        assert_eq!(log.next_offset(), 20, "{ctx}");
        assert_eq!(log.append(Record::new(fresh.as_bytes())).unwrap(), 20, "{ctx}");
        log.close().unwrap();
        let log = Log::open(&dir, opts()).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
        assert_eq!(log.next_offset(), 21, "{ctx}: stale frames became records");
        assert_eq!(log.read(20).unwrap().payload, fresh.as_bytes(), "{ctx}");
        check_prefix(
            &log,
            &[&wants[..], &[Want { key: None, headers: Vec::new(), payload: fresh.into() }]].concat(),
            21,
            &ctx,
        );
        assert!(log.verify(|_| {}).damage.is_empty(), "{ctx}");
    }
}

/// A segment file cut inside the alignment padding after its last record still holds every
/// record: the writer and read-only opens give them all back.
///
/// Regression: a validating scan steps over a frame's padding, so it ended past the end of a
/// file cut inside the padding, and publishing that end tripped a debug assertion in the map
/// (`end <= len`): a panic on open, in debug builds, for a sealed segment rebuilt without its
/// index and for read-only opens. The published end is clamped to the map instead.
#[test]
fn segment_cut_inside_the_padding_of_its_last_record_opens() {
    let b = build(Shutdown::Clean);
    let sealed = segment_files(&b.dir)[1].clone();
    let frames = parse_frames(&fs::read(&sealed).unwrap());
    let (last, end) = (frames.last().unwrap(), |f: &FrameAt| f.pos + f.len);
    assert_ne!(end(last) % 8, 0, "the last record of the segment must have padding");
    let (_tmp, dir) = copy_of(&b.dir);
    let seg = dir.join(sealed.file_name().unwrap());
    // Cut right after the last frame's bytes: its padding is gone.
    OpenOptions::new().write(true).open(&seg).unwrap().set_len(end(last)).unwrap();
    fs::remove_file(seg.with_extension("index")).unwrap();
    let ro = Log::open_read_only(&dir, opts()).unwrap();
    check_prefix(&ro, &b.wants, b.n(), "read-only, sealed segment cut in its padding");
    drop(ro);
    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(log.open_report().indexes_rebuilt, 1);
    check_recovered(log, &dir, &b.wants, b.n(), "sealed segment cut in its padding");
}
