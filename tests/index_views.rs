//! Secondary index views: a value (key, header, or a user function of the record) mapped to
//! the records that carry it. Sealed segments' entries live in files beside the segment
//! (`{base:020}.{name}.vindex`), deleted with it and rebuilt from the log when missing,
//! damaged or stale; the active segment's are in memory. Every answer equals a scan.

mod common;

use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use tidelog::{
    Error, GroupBy, Header, IndexOptions, IndexView, Log, Options, Record, RecordView, View, ViewDefinition, ViewKind,
    ViewMode, ViewStatus, Views,
};

fn opts() -> Options {
    Options::default().segment_bytes(4096).index_interval_bytes(512)
}

/// The `cat=` field of a payload like `cat=red;n=7`: what the user-function index returns.
fn category(rec: &RecordView<'_>) -> Option<Vec<u8>> {
    let p = std::str::from_utf8(rec.payload()).ok()?;
    p.split(';').find_map(|f| f.strip_prefix("cat=")).map(|c| c.as_bytes().to_vec())
}

/// An index definition and how it keeps its values.
type Def = (ViewDefinition, IndexOptions);

fn hashed() -> IndexOptions {
    IndexOptions::default()
}

fn by_key() -> Def {
    (ViewDefinition::index("by-key", 1, GroupBy::Key), hashed())
}
fn by_user() -> Def {
    (ViewDefinition::index("by-user", 1, GroupBy::Header("user".into())), hashed().ordered(true))
}
fn by_category() -> Def {
    (ViewDefinition::index("by-cat", 1, GroupBy::function("payload cat field", category)), hashed())
}

fn definitions() -> Vec<Def> {
    vec![by_key(), by_user(), by_category()]
}

fn open(log: &Log, (def, opts): Def) -> IndexView {
    IndexView::open(log, def, opts).unwrap()
}

/// What `def` indexes `rec` under, computed directly from the record.
fn value_of(def: &ViewDefinition, rec: &RecordView<'_>) -> Option<Vec<u8>> {
    let ViewKind::Index { by } = &def.kind else { unreachable!("an index") };
    match by {
        GroupBy::Key => rec.key().map(<[u8]>::to_vec),
        GroupBy::Header(h) => rec.header(h).map(<[u8]>::to_vec),
        GroupBy::Function { f, .. } => f(rec),
        _ => unreachable!("only these are used here"),
    }
}

/// (value, offset) of every record of the log that `def` indexes, by a scan.
fn scan(log: &Log, def: &ViewDefinition) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut c = log.cursor(log.first_offset());
    while let Some(r) = c.next().unwrap() {
        if let Some(v) = value_of(def, &r) {
            out.push((v, r.offset()));
        }
    }
    out
}

/// Check every query of `view` against a scan of its log, for `values`.
fn assert_matches_scan(log: &Log, view: &IndexView, values: &[Vec<u8>]) {
    let def = view.definition();
    let all = scan(log, def);
    for v in values {
        let want: Vec<u64> = all.iter().filter(|(x, _)| x == v).map(|&(_, o)| o).collect();
        assert_eq!(view.offsets(v).unwrap(), want, "{} offsets of {v:?}", def.name);
        assert_eq!(view.count(v).unwrap(), want.len() as u64, "{} count of {v:?}", def.name);
        let newest: Vec<u64> = want.iter().rev().take(3).copied().collect();
        assert_eq!(view.newest(v, 3).unwrap(), newest, "{} newest of {v:?}", def.name);
        let records = view.records(v).unwrap();
        assert_eq!(records.iter().map(|r| r.offset()).collect::<Vec<_>>(), want);
    }
    if view.options().ordered {
        let mut sorted = all.clone();
        sorted.sort();
        let (lo, hi) = (b"u1".to_vec(), b"u4".to_vec());
        let want: Vec<(Vec<u8>, u64)> = sorted.iter().filter(|(v, _)| *v >= lo && *v < hi).take(50).cloned().collect();
        let got = view.range(Bound::Included(&lo), Bound::Excluded(&hi), 50).unwrap();
        assert_eq!(got.into_iter().map(|h| (h.value, h.offset)).collect::<Vec<_>>(), want);
        let got = view.range(Bound::Unbounded, Bound::Unbounded, usize::MAX).unwrap();
        assert_eq!(got.into_iter().map(|h| (h.value, h.offset)).collect::<Vec<_>>(), sorted);
    }
    assert_eq!(view.position(), log.next_offset(), "{}: current through the log's end", def.name);
}

/// Every value the test records can carry.
fn all_values() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..6).map(|i| format!("k{i}").into_bytes()).collect();
    v.extend((0..6).map(|i| format!("u{i}").into_bytes()));
    v.extend(["red", "green", "blue", "none"].iter().map(|c| c.as_bytes().to_vec()));
    v
}

/// Append record number `i`, described by `spec` (which parts it carries).
fn append(log: &Log, i: u64, spec: u8) {
    let key = format!("k{}", spec % 6);
    let user = format!("u{}", (spec / 6) % 6);
    let cat = ["red", "green", "blue"][usize::from(spec % 3)];
    let payload = if spec & 0x40 != 0 {
        format!("n={i}")
    } else {
        format!("cat={cat};n={i};{}", "x".repeat(usize::from(spec % 40)))
    };
    let headers = [Header { name: "user", value: user.as_bytes() }];
    let mut r = Record::new(payload.as_bytes());
    if spec & 0x80 == 0 {
        r = r.key(key.as_bytes());
    }
    if spec & 0x20 == 0 {
        r = r.headers(&headers);
    }
    log.append(r).unwrap();
}

fn view_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let suffix = format!(".{name}.vindex");
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(&suffix))
        .collect();
    v.sort();
    v
}

fn open_views(log: &Log) -> Vec<IndexView> {
    definitions().into_iter().map(|d| open(log, d)).collect()
}

/// A closed log of several sealed segments with every index's files written.
fn fixture(records: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let views = open_views(&log);
    for i in 0..records {
        append(&log, i, (i * 37 % 256) as u8);
    }
    for v in &views {
        v.catch_up().unwrap();
    }
    log.close().unwrap();
    dir
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Reopen,
    RemoveBefore(u8),
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 1..60).prop_map(Op::Append),
        1 => Just(Op::Reopen),
        1 => any::<u8>().prop_map(Op::RemoveBefore),
        2 => Just(Op::Check),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random records across many segment rolls, reopens of the log and the views, and
    /// retention: every lookup equals a scan of the log.
    #[test]
    fn lookups_equal_a_brute_force_scan_across_rolls_reopen_and_retention(ops in proptest::collection::vec(op(), 1..12)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), opts()).unwrap();
        let mut views = open_views(&log);
        let mut i = 0u64;
        for op in ops {
            match op {
                Op::Append(specs) => {
                    for s in specs {
                        append(&log, i, s);
                        i += 1;
                    }
                }
                Op::Reopen => {
                    drop(views);
                    log.close().unwrap();
                    log = Log::open(dir.path(), opts()).unwrap();
                    views = open_views(&log);
                }
                Op::RemoveBefore(p) => {
                    let at = log.first_offset() + (log.next_offset() - log.first_offset()) * u64::from(p) / 256;
                    log.remove_segments_before(at).unwrap();
                }
                Op::Check => {
                    for v in &views {
                        assert_matches_scan(&log, v, &all_values());
                    }
                }
            }
        }
        for v in &views {
            assert_matches_scan(&log, v, &all_values());
        }
        // Every sealed segment has its file, and no file outlives its segment.
        let segs = log.segments();
        for v in &views {
            let files = view_files(dir.path(), &v.definition().name);
            let want: Vec<PathBuf> = segs[..segs.len() - 1]
                .iter()
                .map(|s| dir.path().join(format!("{:020}.{}.vindex", s.base_offset, v.definition().name)))
                .collect();
            prop_assert_eq!(files, want);
        }
    }
}

#[test]
fn a_query_after_an_append_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let view = open(&log, by_key());
    assert_eq!(view.count(b"k1").unwrap(), 0);
    for i in 0..300 {
        let at = log.append(Record::new(b"p").key(b"k1")).unwrap();
        assert_eq!(view.newest(b"k1", 1).unwrap(), vec![at], "record {i}");
    }
    assert_eq!(view.count(b"k1").unwrap(), 300);
    assert!(log.segments().len() > 3, "the records span several segments");
    assert_eq!(view.report().segments_in_memory, 1, "only the active segment is in memory");
}

#[test]
fn files_are_deleted_with_their_segment_by_retention() {
    let dir = fixture(400);
    let log = Log::open(dir.path(), opts()).unwrap();
    let views = open_views(&log);
    let before = view_files(dir.path(), "by-key");
    let segs = log.segments();
    assert_eq!(before.len(), segs.len() - 1, "one file per sealed segment");
    let cut = segs[3].base_offset;
    assert_eq!(log.remove_segments_before(cut).unwrap(), 3);
    for name in ["by-key", "by-user", "by-cat"] {
        let files = view_files(dir.path(), name);
        assert_eq!(files.len(), segs.len() - 4, "{name}");
        assert!(files.iter().all(|f| f.file_name().unwrap().to_str().unwrap() >= format!("{cut:020}").as_str()));
    }
    for v in &views {
        assert_matches_scan(&log, v, &all_values());
    }
}

/// A crash between retention's removal of a segment and of its index files leaves a file for
/// a segment that no longer exists: it is removed, never used.
#[test]
fn a_file_of_a_segment_that_no_longer_exists_is_removed_and_not_used() {
    let dir = fixture(400);
    let log = Log::open(dir.path(), opts()).unwrap();
    let segs = log.segments();
    let first_file = view_files(dir.path(), "by-key")[0].clone();
    let kept = fs::read(&first_file).unwrap();
    log.remove_segments_before(segs[2].base_offset).unwrap();
    fs::write(&first_file, &kept).unwrap();
    // Also a file for an offset no segment starts at, and a temporary file left by a write.
    let odd = dir.path().join(format!("{:020}.by-key.vindex", segs[3].base_offset + 1));
    fs::write(&odd, &kept).unwrap();
    let tmp = dir.path().join(format!("{:020}.by-key.vindex.1-1.tmp", segs[3].base_offset));
    fs::write(&tmp, b"partial").unwrap();
    let view = open(&log, by_key());
    assert_eq!(view.report().files_removed, 3);
    assert!(!first_file.exists() && !odd.exists() && !tmp.exists());
    assert_matches_scan(&log, &view, &all_values());
}

#[test]
fn damaged_missing_and_stale_files_are_rebuilt_from_the_log() {
    let dir = fixture(400);
    let files = view_files(dir.path(), "by-user");
    let n = files.len() as u64;
    assert!(n >= 4);
    // Damage one (a flipped bit in an entry), cut one short, remove one.
    let mut b = fs::read(&files[0]).unwrap();
    b[100] ^= 4;
    fs::write(&files[0], &b).unwrap();
    let b = fs::read(&files[1]).unwrap();
    fs::write(&files[1], &b[..b.len() - 1]).unwrap();
    fs::remove_file(&files[2]).unwrap();

    let log = Log::open(dir.path(), opts()).unwrap();
    let view = open(&log, by_user());
    let r = view.report();
    assert_eq!((r.files_used, r.files_rebuilt, r.files_written), (n - 3, 2, 3));
    assert_matches_scan(&log, &view, &all_values());
    drop(view);
    let view = open(&log, by_user());
    assert_eq!((view.report().files_used, view.report().files_written), (n, 0), "the rebuilt files are used");

    // A new version of the definition: every file is stale and built again.
    let (mut v2, opts) = by_user();
    v2.version = 2;
    let view = open(&log, (v2, opts));
    assert_eq!((view.report().files_used, view.report().files_rebuilt), (0, n));
    assert_matches_scan(&log, &view, &all_values());
}

/// A stale file must never be used: a user function changed what it returns (and its
/// version was bumped), and the answers follow the new function.
#[test]
fn a_file_built_by_an_older_definition_version_is_never_used() {
    let dir = fixture(300);
    let log = Log::open(dir.path(), opts()).unwrap();
    let upper = ViewDefinition::index(
        "by-cat",
        2,
        GroupBy::function("payload cat field", |r| category(r).map(|c| c.to_ascii_uppercase())),
    );
    let view = open(&log, (upper, hashed()));
    assert_eq!(view.count(b"red").unwrap(), 0);
    assert_eq!(
        view.count(b"RED").unwrap(),
        scan(&log, &by_category().0).iter().filter(|(v, _)| v == b"red").count() as u64
    );
}

#[test]
fn a_segment_rewritten_by_compaction_loses_its_file_and_is_indexed_again() {
    let dir = fixture(400);
    let base = Log::open(dir.path(), opts()).unwrap().segments()[1].base_offset;
    let file = dir.path().join(format!("{base:020}.by-key.vindex"));
    assert!(file.exists());
    tidelog::testing::rewrite_segment(dir.path(), base, 512, |o| o % 3 != 0).unwrap();
    assert!(!file.exists(), "the rewrite's install removes the segment's index files");
    let log = Log::open(dir.path(), opts()).unwrap();
    for v in open_views(&log) {
        assert_matches_scan(&log, &v, &all_values());
    }
    assert!(file.exists(), "written again for the new records");
}

#[test]
fn header_and_user_function_extractors_index_what_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let json = ViewDefinition::index(
        "by-customer",
        1,
        GroupBy::function("json customer", |r| {
            // A tiny extraction of `"customer":"..."` from a JSON payload.
            let p = std::str::from_utf8(r.payload()).ok()?;
            let rest = p.split("\"customer\":\"").nth(1)?;
            Some(rest.split('"').next()?.as_bytes().to_vec())
        }),
    );
    let by_type = ViewDefinition::index("by-type", 1, GroupBy::Header("type".into()));
    let by_field = ViewDefinition::index("by-field", 1, GroupBy::JsonField("customer".into()));
    let (json, by_type) = (open(&log, (json, hashed())), open(&log, (by_type, hashed())));
    let by_field = open(&log, (by_field, hashed()));
    let h = |t: &'static str| [Header { name: "type", value: t.as_bytes() }];
    let a = log.append(Record::new(br#"{"customer":"ann","total":3}"#).headers(&h("order"))).unwrap();
    let b = log.append(Record::new(br#"{"customer":"bob"}"#).headers(&h("refund"))).unwrap();
    let c = log.append(Record::new(br#"{"customer":"ann"}"#)).unwrap();
    let d = log.append(Record::new(b"not json").headers(&h("order"))).unwrap();
    assert_eq!(json.offsets(b"ann").unwrap(), vec![a, c]);
    assert_eq!(json.offsets(b"bob").unwrap(), vec![b]);
    assert_eq!(by_field.offsets(b"ann").unwrap(), vec![a, c], "the built-in JSON field extractor");
    assert_eq!(by_type.offsets(b"order").unwrap(), vec![a, d]);
    assert_eq!(by_type.offsets(b"refund").unwrap(), vec![b]);
    assert_eq!(by_type.records(b"refund").unwrap()[0].payload(), br#"{"customer":"bob"}"#);
    assert_eq!(by_type.count(b"none").unwrap(), 0);
}

#[test]
fn an_ordered_index_answers_ranges_of_values_and_an_unordered_one_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let by_day = open(&log, (ViewDefinition::index("by-day", 1, GroupBy::Key), hashed().ordered(true)));
    let mut want = Vec::new();
    for i in 0..500u64 {
        let day = format!("2026-11-{:02}", 1 + (i * 7) % 30);
        let at = log.append(Record::new(b"x").key(day.as_bytes())).unwrap();
        want.push((day.into_bytes(), at));
    }
    want.sort();
    let in_range: Vec<(Vec<u8>, u64)> =
        want.iter().filter(|(d, _)| d.as_slice() >= b"2026-11-10" && d.as_slice() <= b"2026-11-12").cloned().collect();
    let got = by_day.range(Bound::Included(b"2026-11-10"), Bound::Included(b"2026-11-12"), usize::MAX).unwrap();
    assert!(log.segments().len() > 3);
    assert_eq!(got.iter().map(|h| (h.value.clone(), h.offset)).collect::<Vec<_>>(), in_range);
    let first_five = by_day.range(Bound::Excluded(b"2026-11-10"), Bound::Unbounded, 5).unwrap();
    let want_five: Vec<_> = want.iter().filter(|(d, _)| d.as_slice() > b"2026-11-10").take(5).cloned().collect();
    assert_eq!(first_five.into_iter().map(|h| (h.value, h.offset)).collect::<Vec<_>>(), want_five);
    assert!(by_day.range(Bound::Included(b"b"), Bound::Excluded(b"a"), 10).unwrap().is_empty());

    let hashed = open(&log, by_key());
    let err = hashed.range(Bound::Unbounded, Bound::Unbounded, 10).unwrap_err();
    assert!(matches!(err, Error::IndexNotOrdered { ref index } if index == "by-key"), "{err:?}");
}

#[test]
fn a_read_only_second_open_can_query_while_a_writer_appends() {
    let dir = fixture(200);
    let writer = Log::open(dir.path(), opts()).unwrap();
    let writer_view = open(&writer, by_key());
    let reader = Log::open_read_only(dir.path(), opts()).unwrap();
    let view = open(&reader, by_key());
    let appender = {
        let writer = writer.clone();
        std::thread::spawn(move || {
            for i in 200..900u64 {
                append(&writer, i, (i * 37 % 256) as u8);
                if i % 50 == 0 {
                    // The writer's view writes the files of the segments sealed meanwhile.
                    writer_view.catch_up().unwrap();
                }
            }
        })
    };
    let mut last = 0;
    while !appender.is_finished() || last < writer.next_offset() {
        let at = view.catch_up().unwrap();
        assert!(at >= last, "the position never moves back");
        last = at;
        // Everything below the position is answered exactly (a query may catch up further
        // still, never less).
        let mut got: Vec<u64> = (0..6).flat_map(|k| view.offsets(format!("k{k}").as_bytes()).unwrap()).collect();
        got.sort_unstable();
        let now = view.position();
        assert!(got.iter().all(|&o| o < now));
        got.retain(|&o| o < at);
        let want: Vec<u64> = scan(&reader, &by_key().0).iter().map(|&(_, o)| o).filter(|&o| o < at).collect();
        assert_eq!(got, want);
        std::thread::sleep(Duration::from_millis(1));
    }
    appender.join().unwrap();
    view.catch_up().unwrap();
    assert_eq!(view.position(), writer.next_offset());
    assert_matches_scan(&reader, &view, &all_values());
    assert!(view_files(dir.path(), "by-key").len() >= reader.segments().len() - 2);
}

/// A handle over a read-only log never writes files: a damaged file is passed over and the
/// segment's entries are built in memory.
#[test]
fn a_read_only_handle_builds_a_damaged_files_entries_in_memory_without_writing() {
    let dir = fixture(300);
    let file = view_files(dir.path(), "by-key")[1].clone();
    let damaged = {
        let mut b = fs::read(&file).unwrap();
        let at = b.len() - 1;
        b[at] ^= 1;
        b
    };
    fs::write(&file, &damaged).unwrap();
    let reader = Log::open_read_only(dir.path(), opts()).unwrap();
    let view = open(&reader, by_key());
    assert_eq!(view.report().files_rebuilt, 1);
    assert_eq!(view.report().segments_in_memory, 2);
    assert_matches_scan(&reader, &view, &all_values());
    assert_eq!(fs::read(&file).unwrap(), damaged, "the file is left as it was");
}

/// An index is a view: registered in the views of its log, it is brought up to date by each
/// append made through them (inline), and a follower waits for a bound like any view.
#[test]
fn an_index_is_an_inline_view_of_the_registry_and_a_follower_waits_for_a_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("log"), opts()).unwrap();
    let views = Views::open_in(log.clone(), dir.path().join("views"));
    let index = open(&log, by_key());
    views.register(std::sync::Arc::new(index.clone())).unwrap();
    let registered = views.get("by-key").unwrap();
    assert_eq!((registered.mode(), registered.status()), (ViewMode::Inline, ViewStatus::Running));
    let at = views.append(Record::new(b"p").key(b"k1")).unwrap();
    assert_eq!(registered.position(), at + 1, "current when the append returns");
    assert_eq!(index.offsets(b"k1").unwrap(), vec![at]);

    let reader = Log::open_read_only(dir.path().join("log"), opts()).unwrap();
    let follower = open(&reader, by_key());
    assert_eq!((View::mode(&follower), View::status(&follower)), (ViewMode::ReadOnly, ViewStatus::ReadOnly));
    let later = log.append(Record::new(b"q").key(b"k1")).unwrap();
    assert!(follower.wait_for_position(later + 1, Duration::from_secs(30)).unwrap() > later);
    assert_eq!(follower.offsets(b"k1").unwrap(), vec![at, later]);
    let err = follower.wait_for_position(later + 5, Duration::from_millis(1)).unwrap_err();
    assert!(
        matches!(err, Error::ViewNotUpToBound { position, bound, .. } if position == later + 1 && bound == later + 5)
    );
}

/// Fails every storage call on a secondary index file while `broken` is set.
struct FailIndexWrites {
    broken: std::sync::atomic::AtomicBool,
}

impl tidelog::testing::FaultInjector for FailIndexWrites {
    fn before(&self, call: &tidelog::testing::IoCall<'_>) -> std::io::Result<()> {
        let name = call.path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if name.contains(".vindex") && self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("injected: the device failed"));
        }
        Ok(())
    }
}

/// A write of an index file that fails (a full disk, a failing device) is an error of the
/// catch-up that met it, naming the file; the view serves nothing half-done and reports the
/// failure as its status, and once the device works again the next query catches up and
/// writes the file.
#[test]
fn a_failed_index_file_write_is_a_located_error_and_the_next_catch_up_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let view = open(&log, by_key());
    let faults = std::sync::Arc::new(FailIndexWrites { broken: true.into() });
    let _guard = tidelog::testing::install(dir.path(), faults.clone());
    let mut i = 0;
    while log.segments().len() < 3 {
        append(&log, i, (i % 256) as u8);
        i += 1;
    }
    let err = view.catch_up().unwrap_err();
    assert!(matches!(err, Error::Io { ref path, .. } if path.to_string_lossy().contains(".by-key.vindex")), "{err:?}");
    assert!(matches!(View::status(&view), ViewStatus::Failed { .. }));
    assert!(view_files(dir.path(), "by-key").is_empty());
    assert!(
        fs::read_dir(dir.path()).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")),
        "no temporary file is left"
    );

    faults.broken.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_matches_scan(&log, &view, &all_values());
    assert_eq!(View::status(&view), ViewStatus::Running);
    assert_eq!(view_files(dir.path(), "by-key").len(), log.segments().len() - 1);
}
