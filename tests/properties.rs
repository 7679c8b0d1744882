//! Property tests: whatever records (keys absent, empty or long; any headers; any payloads;
//! singles and batches), the log gives them back exactly, by offset and by cursor, before and
//! after a clean close or a crash; and whatever garbage lies after the last valid record, no
//! wrong record ever comes out.

mod common;

use proptest::prelude::*;

use common::{append, assert_same, copy_of, segment_files, Want};
use tidelog::{Log, Options};

fn want_strategy() -> impl Strategy<Value = Want> {
    (
        prop::option::of(prop::collection::vec(any::<u8>(), 0..24)),
        prop::collection::vec(("[a-z\\-]{0,8}|\\PC{0,4}", prop::collection::vec(any::<u8>(), 0..24)), 0..4),
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(key, headers, payload)| Want { key, headers, payload })
}

fn batches_strategy(max_batches: usize) -> impl Strategy<Value = Vec<Vec<Want>>> {
    prop::collection::vec(prop::collection::vec(want_strategy(), 1..5), 1..max_batches)
}

fn opts(segment_bytes: u64, interval: u32) -> Options {
    Options::default().segment_bytes(segment_bytes).index_interval_bytes(interval)
}

/// Every record by offset and through a cursor, then the end.
fn check_all(log: &Log, wants: &[Want], ctx: &str) {
    assert_eq!(log.next_offset(), wants.len() as u64, "{ctx}");
    for (o, w) in wants.iter().enumerate() {
        assert_same(&log.read(o as u64).unwrap_or_else(|e| panic!("{ctx}: read({o}): {e}")), o as u64, w, ctx);
    }
    let mut c = log.cursor(0);
    for (o, w) in wants.iter().enumerate() {
        let r = c.next().unwrap().unwrap_or_else(|| panic!("{ctx}: cursor ended at {o}"));
        assert_same(&r.to_owned(), o as u64, w, ctx);
    }
    assert!(c.next().unwrap().is_none(), "{ctx}");
    assert!(log.verify(|_| {}).damage.is_empty(), "{ctx}");
}

/// Append the batches, check, then close cleanly or stop as in a crash; reopen and check.
fn round_trip(batches: &[Vec<Want>], segment_bytes: u64, interval: u32, clean: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let o = opts(segment_bytes, interval);
    let log = Log::open(&dir, o.clone()).unwrap();
    let mut wants = Vec::new();
    for b in batches {
        assert_eq!(append(&log, b), wants.len() as u64..(wants.len() + b.len()) as u64);
        wants.extend(b.iter().cloned());
    }
    check_all(&log, &wants, "before reopen");
    let (_copy, reopen_dir) = if clean {
        log.close().unwrap();
        (None, dir)
    } else {
        std::mem::forget(log);
        let (t, d) = copy_of(&dir);
        (Some(t), d)
    };
    let log = Log::open(&reopen_dir, o.clone()).unwrap();
    assert_eq!(log.open_report().clean_shutdown, clean);
    check_all(&log, &wants, "after reopen");
    drop(log);
    check_all(&Log::open_read_only(&reopen_dir, o).unwrap(), &wants, "read-only");
}

/// What to put after the last valid record.
#[derive(Debug, Clone)]
enum Garbage {
    /// Random bytes, `skip` bytes past the end.
    Random { skip: usize, bytes: Vec<u8> },
    /// A copy of record `index`'s frame (a stale frame), `skip` bytes past the end.
    StaleFrame { index: usize, skip: usize },
    /// A copy of record `index`'s frame with one bit flipped.
    FlippedFrame { index: usize, bit: usize },
}

fn garbage_strategy() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        (0usize..64, prop::collection::vec(any::<u8>(), 1..600))
            .prop_map(|(skip, bytes)| Garbage::Random { skip, bytes }),
        (any::<prop::sample::Index>(), 0usize..4)
            .prop_map(|(i, s)| Garbage::StaleFrame { index: i.index(1 << 16), skip: s * 8 }),
        (any::<prop::sample::Index>(), 0usize..4000)
            .prop_map(|(i, bit)| Garbage::FlippedFrame { index: i.index(1 << 16), bit }),
    ]
}

fn garbage_after_valid_records(batches: &[Vec<Want>], garbage: &Garbage, clean: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let o = opts(16 * 1024, 256);
    let log = Log::open(&dir, o.clone()).unwrap();
    let mut wants = Vec::new();
    for b in batches {
        append(&log, b);
        wants.extend(b.iter().cloned());
    }
    let (_copy, dir) = if clean {
        log.close().unwrap();
        (None, dir)
    } else {
        std::mem::forget(log);
        let (t, d) = copy_of(&dir);
        (Some(t), d)
    };
    let seg = segment_files(&dir).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let frames = common::parse_frames(&bytes);
    let end = frames.last().map_or(64, |f| ((f.pos + f.len + 7) & !7) as usize);
    let frame_bytes = |index: usize| {
        let f = frames[index % frames.len()];
        bytes[f.pos as usize..(f.pos + f.len) as usize].to_vec()
    };
    let (at, junk) = match garbage {
        Garbage::Random { skip, bytes } => (end + skip, bytes.clone()),
        Garbage::StaleFrame { index, skip } if !frames.is_empty() => (end + skip, frame_bytes(*index)),
        Garbage::FlippedFrame { index, bit } if !frames.is_empty() => {
            let mut f = frame_bytes(*index);
            let bit = bit % (f.len() * 8);
            f[bit / 8] ^= 1 << (bit % 8);
            (end, f)
        }
        _ => (end, vec![0xFF; 8]),
    };
    let room = bytes.len().saturating_sub(at);
    let junk = &junk[..junk.len().min(room)];
    bytes[at..at + junk.len()].copy_from_slice(junk);
    std::fs::write(&seg, &bytes).unwrap();

    let log = Log::open(&dir, o.clone()).unwrap_or_else(|e| panic!("{garbage:?}: open: {e}"));
    check_all(&log, &wants, &format!("{garbage:?}"));
    // The log goes on, and a record appended over the garbage survives a reopen.
    let extra = Want { key: Some(b"k".to_vec()), headers: Vec::new(), payload: b"after the garbage".to_vec() };
    assert_eq!(append(&log, std::slice::from_ref(&extra)).start, wants.len() as u64);
    wants.push(extra);
    log.close().unwrap();
    let log = Log::open(&dir, o).unwrap_or_else(|e| panic!("{garbage:?}: reopen: {e}"));
    check_all(&log, &wants, &format!("{garbage:?}, reopened"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Random records round-trip through append, close (or crash) and reopen, by offset and
    /// by cursor, across segment rolls and with any index density.
    #[test]
    fn random_records_round_trip(
        batches in batches_strategy(40),
        segment_bytes in prop::sample::select(vec![2048u64, 8192, 64 * 1024]),
        interval in 1u32..2048,
        clean in any::<bool>(),
    ) {
        round_trip(&batches, segment_bytes, interval, clean);
    }

    /// Garbage after the last valid record (random bytes, stale or damaged copies of earlier
    /// frames) is never returned as a record: the log opens with exactly the records written,
    /// and appends after it survive a reopen.
    #[test]
    fn garbage_after_valid_records_never_yields_a_wrong_record(
        batches in batches_strategy(12),
        garbage in garbage_strategy(),
        clean in any::<bool>(),
    ) {
        garbage_after_valid_records(&batches, &garbage, clean);
    }
}
