//! Offsets with gaps: sealed segments rewritten without some of their records (as key
//! compaction will leave them), every other record keeping its offset.
//!
//! The fixture: a log of 4 KiB segments whose record `o` is a function of `o` (fixed-size
//! frames), closed, then several sealed segments rewritten by the segment builder through
//! `tidelog::testing::rewrite_segment`: gaps at a segment's start, end and middle, a segment
//! emptied entirely, a gap running across a segment boundary, and a rewrite that keeps
//! everything (which stays dense).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{copy_of, parse_frames};
use tidelog::testing::rewrite_segment;
use tidelog::{CorruptionKind, Error, Location, Log, Options, Record, RecordView};

const RECORDS: u64 = 330;
const INTERVAL: u32 = 256;

fn opts() -> Options {
    Options::default().segment_bytes(4096).index_interval_bytes(INTERVAL)
}

fn payload_for(o: u64) -> Vec<u8> {
    let mut p = o.to_le_bytes().to_vec();
    p.extend(std::iter::repeat_n(o as u8, 92));
    p
}

fn key_for(o: u64) -> Vec<u8> {
    format!("k{}", o % 5).into_bytes()
}

fn check_record(r: &RecordView<'_>, o: u64, ctx: &str) {
    assert_eq!(r.offset(), o, "{ctx}");
    assert_eq!(r.payload(), payload_for(o).as_slice(), "{ctx}: payload of {o}");
    assert_eq!(r.key(), Some(key_for(o).as_slice()), "{ctx}: key of {o}");
    assert!(!r.is_tombstone(), "{ctx}: {o} is no tombstone");
}

/// What the fixture holds after compaction.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// Offsets whose records remain.
    kept: BTreeSet<u64>,
    /// Timestamp of every record ever appended (removed ones included).
    ts: BTreeMap<u64, u64>,
    /// Base offsets of the segments, oldest first.
    bases: Vec<u64>,
}

/// Which records of segment `k` (spanning `[base, next)`) the fixture keeps.
fn keep_rule(k: usize, base: u64, next: u64) -> Box<dyn Fn(u64) -> bool> {
    match k {
        // Gaps at the start, at the end and every seventh record in between.
        0 => Box::new(move |o| o != base && o != next - 1 && o % 7 != 3),
        // One record in three.
        1 => Box::new(|o| o % 3 == 0),
        // Emptied.
        2 => Box::new(|_| false),
        // A run in the middle, across several index entries.
        3 => Box::new(move |o| !(base + 3..base + 20).contains(&o)),
        // Everything kept: the rewrite stays dense.
        4 => Box::new(|_| true),
        // The last ten records.
        5 => Box::new(move |o| o + 10 < next),
        // A gap across the boundary of segments 6 and 7.
        6 => Box::new(move |o| o < base + 4),
        7 => Box::new(move |o| o >= base + 5),
        _ => Box::new(|_| true),
    }
}

/// A closed log of `RECORDS` records in fixed-size frames.
struct Built {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    /// Every record's timestamp.
    ts: BTreeMap<u64, u64>,
    /// Each segment's span: (base, next).
    segs: Vec<(u64, u64)>,
}

fn build_log() -> Built {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts()).unwrap();
    let mut o = 0;
    while o < RECORDS {
        // Batches of 1 to 3, so that batches straddle what compaction removes.
        let n = (o % 3 + 1).min(RECORDS - o);
        let payloads: Vec<Vec<u8>> = (o..o + n).map(payload_for).collect();
        let keys: Vec<Vec<u8>> = (o..o + n).map(key_for).collect();
        let recs: Vec<Record<'_>> = payloads.iter().zip(&keys).map(|(p, k)| Record::new(p).key(k)).collect();
        assert_eq!(log.append_batch(&recs).unwrap(), o..o + n);
        o += n;
    }
    let ts: BTreeMap<u64, u64> = (0..RECORDS).map(|o| (o, log.read(o).unwrap().timestamp_us)).collect();
    let segs: Vec<(u64, u64)> = log.segments().iter().map(|s| (s.base_offset, s.next_offset)).collect();
    assert!(segs.len() > 10, "the fixture needs at least ten segments, has {}", segs.len());
    log.close().unwrap();
    Built { tmp, dir, ts, segs }
}

fn build_fixture() -> Fixture {
    let Built { tmp, dir, ts, segs } = build_log();
    let bases: Vec<u64> = segs.iter().map(|s| s.0).collect();
    let mut kept = BTreeSet::new();
    for (k, &(base, next)) in segs.iter().enumerate() {
        if k + 1 == segs.len() {
            kept.extend(base..next);
            continue;
        }
        let rule = keep_rule(k, base, next);
        let sparse = rewrite_segment(&dir, base, INTERVAL, &rule).unwrap();
        assert_eq!(sparse, k != 4 && k < 8, "segment {k}: sparse");
        kept.extend((base..next).filter(|&o| rule(o)));
    }
    assert!(!kept.contains(&bases[0]) && !kept.contains(&(bases[1] - 1)));
    Fixture { _tmp: tmp, dir, kept, ts, bases }
}

/// Every reader API against the records that exist (`kept`, plus whatever was appended
/// since `RECORDS`): reads of kept and removed offsets, cursors from every offset, time
/// lookups for every timestamp in `probe_ts` (and around it), segment facts and verify.
fn check_readers(log: &Log, kept: &BTreeSet<u64>, probe_ts: &[u64], ctx: &str) {
    let next = log.next_offset();
    let kept_now: BTreeSet<u64> = kept.iter().copied().chain(RECORDS..next).collect();
    let next_existing = |o: u64| kept_now.range(o..).next().copied().unwrap_or(next);
    assert_eq!(log.first_offset(), 0, "{ctx}: a compacted segment keeps its base");
    for o in 0..next {
        if kept_now.contains(&o) {
            let r = log.read(o).unwrap_or_else(|e| panic!("{ctx}: read {o}: {e}"));
            assert_eq!(r.offset, o, "{ctx}");
            if o < RECORDS {
                log.read_with(o, |r| check_record(&r, o, ctx)).unwrap();
            }
        } else {
            match log.read(o) {
                Err(Error::OffsetCompacted { offset, next_existing: n }) => {
                    assert_eq!((offset, n), (o, next_existing(o)), "{ctx}: read of removed {o}");
                }
                other => panic!("{ctx}: read of removed {o}: {other:?}"),
            }
            assert!(matches!(log.read_with(o, |_| ()), Err(Error::OffsetCompacted { .. })), "{ctx}: {o}");
        }
    }
    // One cursor over everything: exactly the records kept, in order.
    let mut c = log.cursor(0);
    let mut seen = Vec::new();
    while let Some(r) = c.next().unwrap_or_else(|e| panic!("{ctx}: cursor: {e}")) {
        if r.offset() < RECORDS {
            check_record(&r, r.offset(), ctx);
        }
        let o = r.offset();
        seen.push(o);
        assert_eq!(c.position(), o + 1, "{ctx}: position after {o}");
    }
    assert_eq!(seen, kept_now.iter().copied().collect::<Vec<_>>(), "{ctx}: cursor from 0");
    assert_eq!(c.position(), next, "{ctx}");
    // A cursor placed anywhere, gaps included, starts at the next record that exists; seek
    // agrees; the iterator agrees.
    for o in 0..next {
        let mut c = log.cursor(o);
        let first = c.next().unwrap().map(|r| r.offset());
        assert_eq!(first, kept_now.range(o..).next().copied(), "{ctx}: cursor({o})");
        c.seek(o);
        assert_eq!(c.position(), o);
        assert_eq!(c.next().unwrap().map(|r| r.offset()), first, "{ctx}: seek({o})");
    }
    let from = next / 3;
    let from_iter: Vec<u64> = log.iter(from).map(|r| r.unwrap().offset).collect();
    assert_eq!(from_iter, kept_now.range(from..).copied().collect::<Vec<_>>(), "{ctx}: iter");
    // Time lookups: the first record kept at or after each timestamp.
    let kept_ts: Vec<(u64, u64)> = kept_now.iter().map(|&o| (o, log.read(o).unwrap().timestamp_us)).collect();
    let linear = |t: u64| kept_ts.iter().find(|&&(_, ts)| ts >= t).map(|&(o, _)| o);
    for t in probe_ts.iter().flat_map(|&t| [t, t + 1]).chain([0, 1, u64::MAX]) {
        assert_eq!(log.offset_for_time(t).unwrap(), linear(t), "{ctx}: offset_for_time({t})");
    }
    // Segment facts: contiguous spans, records counted.
    let segs = log.segments();
    for w in segs.windows(2) {
        assert_eq!(w[0].next_offset, w[1].base_offset, "{ctx}: segments are contiguous in offsets");
    }
    assert_eq!(segs.iter().map(|s| s.records).sum::<u64>(), kept_now.len() as u64, "{ctx}: records per segment");
    for s in &segs {
        let first = kept_now.range(s.base_offset..s.next_offset).next();
        let want = first.map_or(0, |&o| kept_ts.iter().find(|(k, _)| *k == o).map_or(0, |&(_, t)| t));
        assert_eq!(s.min_timestamp_us, want, "{ctx}: first timestamp of segment {}", s.base_offset);
    }
    let report = log.verify(|_| {});
    assert!(report.damage.is_empty(), "{ctx}: verify: {:?}", report.damage);
    assert_eq!(report.records, kept_now.len() as u64, "{ctx}: verify counts the records kept");
}

/// The generic checks, plus what the fixture's rules promise: segment spans unchanged, the
/// emptied segment without timestamps or records.
fn check_log(log: &Log, f: &Fixture, ctx: &str) {
    let probe: Vec<u64> = f.ts.values().copied().collect();
    check_readers(log, &f.kept, &probe, ctx);
    let segs = log.segments();
    assert_eq!(segs.iter().map(|s| s.base_offset).collect::<Vec<_>>()[..f.bases.len()], f.bases[..], "{ctx}");
    assert_eq!((segs[2].min_timestamp_us, segs[2].bytes, segs[2].records), (0, 64, 0), "{ctx}: the emptied segment");
    assert_eq!(segs[0].min_timestamp_us, f.ts[&(f.bases[0] + 1)], "{ctx}: first record kept");
}

/// Reads, cursors, time lookups, segment facts and verify all step over the gaps compaction
/// left in sealed segments, before and after appends and across a reopen.
#[test]
fn every_reader_steps_over_gaps_in_sealed_segments_and_a_reopen_keeps_them() {
    let f = build_fixture();
    let log = Log::open(&f.dir, opts()).unwrap();
    assert!(log.open_report().clean_shutdown);
    assert_eq!(log.open_report().indexes_rebuilt, 0, "the builder wrote sealed indexes");
    assert_eq!(log.next_offset(), RECORDS);
    check_log(&log, &f, "after compaction");
    // Appends continue after the last offset, whatever the gaps before it.
    for i in 0..40 {
        assert_eq!(log.append(Record::new(&payload_for(RECORDS + i))).unwrap(), RECORDS + i);
    }
    check_log(&log, &f, "after appends");
    log.close().unwrap();
    let log = Log::open(&f.dir, opts()).unwrap();
    assert_eq!(log.next_offset(), RECORDS + 40);
    check_log(&log, &f, "after a reopen");
}

/// A read-only handle (as a follower in another process uses) reads the gapped segments and
/// follows the writer's new appends across rolls.
#[test]
fn a_follower_reads_gapped_segments_and_follows_new_appends() {
    let f = build_fixture();
    let log = Log::open(&f.dir, opts()).unwrap();
    let follower = Log::open_read_only(&f.dir, opts()).unwrap();
    check_log(&follower, &f, "follower");
    let mut c = follower.cursor(f.bases[5]);
    let mut got: Vec<u64> = Vec::new();
    while let Some(r) = c.next().unwrap() {
        got.push(r.offset());
    }
    for i in 0..100 {
        log.append(Record::new(&payload_for(RECORDS + i))).unwrap();
    }
    assert!(follower.wait_for(RECORDS + 99, Duration::from_secs(10)).unwrap());
    while let Some(r) = c.next().unwrap() {
        got.push(r.offset());
    }
    let want: Vec<u64> = f.kept.range(f.bases[5]..).copied().chain(RECORDS..RECORDS + 100).collect();
    assert_eq!(got, want);
    check_log(&follower, &f, "follower after appends");
}

fn remove_indexes(dir: &Path, base: u64) {
    fs::remove_file(dir.join(format!("{base:020}.index"))).unwrap();
    fs::remove_file(dir.join(format!("{base:020}.timeindex"))).unwrap();
}

/// Index files are derived data: those of sparse segments, lost, are rebuilt by a scan that
/// accepts the gaps (and takes the end of the offsets from the segment header), whether the
/// open may write them (writer) or keeps them in memory (read-only).
#[test]
fn lost_index_files_of_sparse_segments_are_rebuilt_with_their_gaps() {
    let f = build_fixture();
    for k in [0, 2, 5, 6] {
        remove_indexes(&f.dir, f.bases[k]);
    }
    let (_t, copy) = copy_of(&f.dir);
    let ro = Log::open_read_only(&copy, opts()).unwrap();
    check_log(&ro, &f, "read-only, indexes in memory");
    let log = Log::open(&f.dir, opts()).unwrap();
    assert_eq!(log.open_report().indexes_rebuilt, 4);
    check_log(&log, &f, "indexes rebuilt");
    log.close().unwrap();
    let log = Log::open(&f.dir, opts()).unwrap();
    assert_eq!(log.open_report().indexes_rebuilt, 0, "the rebuilt indexes are trusted");
    check_log(&log, &f, "rebuilt indexes reopened");
}

fn segment_bytes(dir: &Path, base: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join(format!("{base:020}.log"));
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

/// A flipped byte in a record of a sparse segment is located: `verify` names the file and the
/// record's position, reading that record fails with the same corruption, and an open that
/// must rebuild the segment's index refuses with it (the default recovery mode).
#[test]
fn damage_in_a_gapped_segment_is_located() {
    let f = build_fixture();
    let base = f.bases[1];
    let (path, mut bytes) = segment_bytes(&f.dir, base);
    let frames = parse_frames(&bytes);
    let victim = frames[frames.len() / 2];
    bytes[victim.pos as usize + 60] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let log = Log::open(&f.dir, opts()).unwrap();
    let report = log.verify(|_| {});
    assert_eq!(report.damage.len(), 1, "{:?}", report.damage);
    let d = &report.damage[0];
    assert_eq!(
        (d.file.clone(), d.position, d.offset),
        (path.clone(), victim.pos, frames[frames.len() / 2 - 1].offset + 1)
    );
    assert!(matches!(d.kind, CorruptionKind::ChecksumMismatch { .. }), "{:?}", d.kind);
    match log.read(victim.offset) {
        Err(Error::Corruption { location: Location::File { path: file, position }, .. }) => {
            assert_eq!((file, position), (path.clone(), victim.pos))
        }
        other => panic!("read of the damaged record: {other:?}"),
    }
    // Its neighbours still read.
    log.read(frames[0].offset).unwrap();
    log.read(frames[frames.len() - 1].offset).unwrap();
    log.close().unwrap();

    remove_indexes(&f.dir, base);
    match Log::open(&f.dir, opts()) {
        Err(Error::Corruption { location: Location::File { path: file, position }, .. }) => {
            assert_eq!((file, position), (path, victim.pos))
        }
        other => panic!("open that must rebuild the damaged segment's index: {other:?}"),
    }
}

/// A sparse segment records where its records end: one that lost its last records (zeroed,
/// as a torn write would leave them) is missing data, not a longer gap, once its index must
/// be rebuilt.
#[test]
fn a_sparse_segment_that_lost_its_tail_is_missing_data_not_a_gap() {
    let f = build_fixture();
    let base = f.bases[3];
    let (path, mut bytes) = segment_bytes(&f.dir, base);
    let last = *parse_frames(&bytes).last().unwrap();
    bytes[last.pos as usize..].fill(0);
    fs::write(&path, &bytes).unwrap();
    remove_indexes(&f.dir, base);
    match Log::open(&f.dir, opts()) {
        Err(Error::Corruption {
            location: Location::File { path: file, position },
            kind: CorruptionKind::MissingData,
        }) => {
            assert_eq!((file, position), (path, last.pos));
        }
        other => panic!("open of a sparse segment without its tail: {other:?}"),
    }
}

/// A sparse segment's offsets may skip but never go back: an earlier record's frame copied
/// over a later one (a stale frame, valid checksum and all) is damage at its position.
#[test]
fn a_stale_frame_in_a_sparse_segment_is_rejected() {
    let f = build_fixture();
    let base = f.bases[1];
    let (path, mut bytes) = segment_bytes(&f.dir, base);
    let frames = parse_frames(&bytes);
    let (early, late) = (frames[1], frames[4]);
    assert_eq!(early.len, late.len, "the fixture's frames all have one size");
    let stale = bytes[early.pos as usize..(early.pos + early.len) as usize].to_vec();
    bytes[late.pos as usize..(late.pos + late.len) as usize].copy_from_slice(&stale);
    fs::write(&path, &bytes).unwrap();
    let log = Log::open(&f.dir, opts()).unwrap();
    let d = log.verify(|_| {}).damage;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (d[0].position, d[0].kind.clone()),
        (late.pos, CorruptionKind::OffsetMismatch { got: early.offset, expected: frames[3].offset + 1 })
    );
    assert!(log.read(late.offset).unwrap_err().is_corruption());
    log.close().unwrap();
    remove_indexes(&f.dir, base);
    assert!(
        matches!(Log::open(&f.dir, opts()), Err(Error::Corruption { location: Location::File { position, .. }, .. }) if position == late.pos)
    );
}

/// A consumer group reads a topic through a cursor: it delivers exactly the events compaction
/// kept, in order, and its committed position passes the gaps once they are acknowledged.
#[test]
fn a_consumer_group_delivers_the_records_kept_and_commits_past_gaps() {
    use tidelog::{GroupOptions, Store, StoreOptions};
    let tmp = tempfile::tempdir().unwrap();
    let store_opts = || StoreOptions::default().topic(opts()).state_segment_bytes(64 << 10);
    let topic_dir;
    let segs;
    {
        let store = Store::open(tmp.path(), store_opts()).unwrap();
        let t = store.topic("t").unwrap();
        for o in 0..200 {
            assert_eq!(t.publish(Record::new(&payload_for(o))).unwrap(), o);
        }
        topic_dir = t.dir().to_path_buf();
        segs = t.segments().unwrap();
    }
    assert!(segs.len() > 4);
    let mut kept: BTreeSet<u64> = (0..200).collect();
    for k in [0, 2] {
        let (base, next) = (segs[k].base_offset, segs[k].next_offset);
        rewrite_segment(&topic_dir, base, INTERVAL, |o| o % 2 == 1 && o + 1 != next).unwrap();
        kept.retain(|&o| !(base..next).contains(&o) || (o % 2 == 1 && o + 1 != next));
    }
    let store = Store::open(tmp.path(), store_opts()).unwrap();
    let t = store.topic("t").unwrap();
    let g = t.group("g", GroupOptions::default()).unwrap();
    let mut got = Vec::new();
    while got.len() < kept.len() {
        let ds = g.poll(64, Duration::from_secs(5)).unwrap();
        assert!(!ds.is_empty(), "delivered {} of {}", got.len(), kept.len());
        for d in ds {
            got.push(d.offset());
            assert_eq!(d.record().payload, payload_for(d.offset()));
            g.ack(&d).unwrap();
        }
    }
    assert_eq!(got, kept.iter().copied().collect::<Vec<_>>());
    assert!(g.poll(8, Duration::from_millis(50)).unwrap().is_empty());
    assert_eq!(g.committed(), 200);
    assert_eq!(g.lag().unwrap().unconsumed, 0);
    drop(g);
    drop(t);
    drop(store);
    // Replaying the group's state agrees.
    let store = Store::open(tmp.path(), store_opts()).unwrap();
    let g = store.topic("t").unwrap().group("g", GroupOptions::default()).unwrap();
    assert_eq!(g.committed(), 200);
    assert!(g.poll(8, Duration::from_millis(50)).unwrap().is_empty());
}

/// Compaction applied again and again, at random: random sealed segments rewritten keeping a
/// random share of the records they still hold (compacting compacted segments, emptying some,
/// keeping all of others), with reopens and lost index files in between. After each round
/// every reader agrees with a model of the records that exist.
#[test]
fn repeated_random_compactions_keep_every_reader_consistent() {
    for seed in 1..=4u64 {
        let Built { tmp: _tmp, dir, ts, segs } = build_log();
        let probe: Vec<u64> = ts.values().copied().collect();
        let mut rng = common::Rng::new(seed);
        let mut kept: BTreeSet<u64> = (0..RECORDS).collect();
        for round in 0..4 {
            for _ in 0..3 {
                let (base, next) = segs[rng.range(0, segs.len() as u64 - 1) as usize];
                let share = [0, 30, 70, 100][rng.range(0, 4) as usize];
                let salt = rng.next_u64();
                let keep = |o: u64| common::fnv1a(&(o ^ salt).to_le_bytes()) % 100 < share;
                rewrite_segment(&dir, base, INTERVAL, &keep).unwrap();
                kept.retain(|&o| !(base..next).contains(&o) || keep(o));
            }
            if rng.range(0, 2) == 0 {
                let (base, _) = segs[rng.range(0, segs.len() as u64 - 1) as usize];
                remove_indexes(&dir, base);
            }
            let ctx = format!("seed {seed}, round {round}");
            let ro = Log::open_read_only(&dir, opts()).unwrap();
            check_readers(&ro, &kept, &probe, &format!("{ctx}, read-only"));
            let log = Log::open(&dir, opts()).unwrap();
            check_readers(&log, &kept, &probe, &ctx);
            log.close().unwrap();
        }
    }
}

/// A build that never reached its install (a crash while writing the new files) leaves the old
/// segment in use; the next writer's open deletes the build's temporary files.
#[test]
fn a_build_interrupted_before_its_install_changes_nothing() {
    let Built { tmp: _tmp, dir, segs, .. } = build_log();
    let base = segs[1].0;
    for ext in ["log", "index", "timeindex"] {
        fs::write(dir.join(format!("{base:020}.{ext}.compact.tmp")), b"half-written").unwrap();
    }
    let log = Log::open(&dir, opts()).unwrap();
    let kept: BTreeSet<u64> = (0..RECORDS).collect();
    check_readers(&log, &kept, &[], "after an interrupted build");
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Rewriting is for sealed segments of a log no writer has open: the active segment and a
/// locked log are refused, and nothing changes.
#[test]
fn rewriting_refuses_the_active_segment_and_a_log_with_a_writer() {
    let Built { tmp: _tmp, dir, segs, .. } = build_log();
    let last = segs[segs.len() - 1].0;
    assert!(matches!(rewrite_segment(&dir, last, INTERVAL, |_| false), Err(Error::InvalidOptions(_))));
    let log = Log::open(&dir, opts()).unwrap();
    assert!(matches!(rewrite_segment(&dir, segs[0].0, INTERVAL, |_| false), Err(Error::Locked { .. })));
    let kept: BTreeSet<u64> = (0..RECORDS).collect();
    check_readers(&log, &kept, &[], "after refused rewrites");
}

/// Index files that describe the segment before its rewrite (restored from a backup, say) are
/// not trusted for the rewritten one: they are rebuilt, and every read is right.
#[test]
fn index_files_of_the_segment_before_its_rewrite_are_not_trusted() {
    let Built { tmp: _tmp, dir, ts, segs } = build_log();
    let (base, next) = segs[1];
    let names = [format!("{base:020}.index"), format!("{base:020}.timeindex")];
    let old: Vec<Vec<u8>> = names.iter().map(|n| fs::read(dir.join(n)).unwrap()).collect();
    // Only the last record goes: the rewritten segment is nearly the old one.
    rewrite_segment(&dir, base, INTERVAL, |o| o + 1 != next).unwrap();
    for (n, bytes) in names.iter().zip(&old) {
        fs::write(dir.join(n), bytes).unwrap();
    }
    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(log.open_report().indexes_rebuilt, 1);
    let kept: BTreeSet<u64> = (0..RECORDS).filter(|&o| o + 1 != next).collect();
    let probe: Vec<u64> = ts.values().copied().collect();
    check_readers(&log, &kept, &probe, "stale index files replaced");
}

/// A crash at each step of installing a rewritten segment leaves a log that opens with either
/// the old segment or the new one, whole: after step 1 (old index files removed) the old data
/// is reindexed; after step 2 (new data renamed in) the new data is, gaps and all. The
/// states are rebuilt here from the files before and after a rewrite.
#[test]
fn a_crash_at_each_step_of_an_install_leaves_the_old_or_the_new_segment() {
    let Built { tmp: _tmp, dir, ts, segs } = build_log();
    let probe: Vec<u64> = ts.values().copied().collect();
    let (base, next) = segs[2];
    let name = |ext: &str| dir.join(format!("{base:020}.{ext}"));
    let old_data = fs::read(name("log")).unwrap();
    let keep = |o: u64| o % 4 == 1;
    rewrite_segment(&dir, base, INTERVAL, keep).unwrap();
    let new_data = fs::read(name("log")).unwrap();
    let all: BTreeSet<u64> = (0..RECORDS).collect();
    let kept: BTreeSet<u64> = all.iter().copied().filter(|&o| !(base..next).contains(&o) || keep(o)).collect();
    for (step, data, want) in [(1, &old_data, &all), (2, &new_data, &kept)] {
        let (_t, copy) = copy_of(&dir);
        let at = |ext: &str| copy.join(format!("{base:020}.{ext}"));
        fs::write(at("log"), data).unwrap();
        fs::remove_file(at("index")).unwrap();
        fs::remove_file(at("timeindex")).unwrap();
        if step == 1 {
            // The built files were still under their temporary names.
            fs::write(at("log.compact.tmp"), &new_data).unwrap();
        }
        let log = Log::open(&copy, opts()).unwrap();
        assert_eq!(log.open_report().indexes_rebuilt, 1, "step {step}");
        check_readers(&log, want, &probe, &format!("crash after install step {step}"));
    }
}
