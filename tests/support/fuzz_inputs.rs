//! The per-input logic of the fuzz targets, in one place: `fuzz/fuzz_targets/*.rs` include
//! this file with `#[path]` and call it from `fuzz_target!`, and `tests/fuzz_corpus.rs`
//! replays the checked-in corpus through the very same functions on every `cargo test`.
//!
//! Uses only `std` and `tidelog`, so the fuzz crate needs no other dependency.
//!
//! # Input layout (both targets)
//!
//! | byte | meaning |
//! |------|---------|
//! | 0    | flags (below) |
//! | 1    | position selector: `decode_record` decodes at `8 * sel`, or at `sel` with flag 0x80 |
//! | 2..  | body: the bytes after a segment's 64-byte header (record frames, or anything) |
//!
//! Flags for `open_log`: 0x01 the body goes into a sealed segment (followed by an active
//! segment holding one record) instead of an empty log's active segment; 0x02 delete the checkpoint; 0x04 delete the
//! target segment's index files (a sealed one is then rescanned); 0x08 cut the file right
//! after the body instead of leaving the zeroed reservation after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use tidelog::{Error, Log, Options, OwnedRecord, Record, RecoveryMode};

pub const FLAG_SEALED: u8 = 0x01;
pub const FLAG_NO_CHECKPOINT: u8 = 0x02;
pub const FLAG_NO_INDEX: u8 = 0x04;
pub const FLAG_CUT_FILE: u8 = 0x08;
pub const FLAG_UNALIGNED: u8 = 0x80;

/// Segment size of the logs built here: small, so a fuzz input can fill one.
pub const SEGMENT_BYTES: u64 = 8192;
const HEADER_LEN: usize = 64;

fn split(data: &[u8]) -> (u8, u8, &[u8]) {
    match data {
        [flags, sel, body @ ..] => (*flags, *sel, body),
        [flags] => (*flags, 0, &[]),
        [] => (0, 0, &[]),
    }
}

/// Byte length of a record's header section as the format encodes it.
fn headers_len(r: &OwnedRecord) -> usize {
    r.headers.iter().map(|(n, v)| 2 + n.len() + 4 + v.len()).sum()
}

/// `tidelog::decode_record` on arbitrary bytes at an arbitrary position: never panics, and
/// a record it returns lies inside the input and decodes the same way twice. Returns the
/// decoded record, if any.
pub fn decode_record(data: &[u8]) -> Option<OwnedRecord> {
    let (flags, sel, body) = split(data);
    let pos = if flags & FLAG_UNALIGNED != 0 { sel as usize } else { sel as usize * 8 };
    let got = tidelog::decode_record(body, pos);
    if let Ok(Some(r)) = &got {
        // A durable mark, when the frame carries one, adds 8 bytes the record does not show.
        let len = 40 + r.key.as_ref().map_or(0, Vec::len) + headers_len(r) + r.payload.len();
        assert!(pos + len <= body.len(), "a record of {len} bytes at {pos} overruns {} bytes", body.len());
    }
    if let Ok(None) = &got {
        let end = (pos + 4).min(body.len());
        assert!(body.get(pos..end).is_none_or(|b| b.iter().all(|&x| x == 0)), "end of data at non-zero bytes");
    }
    assert_eq!(tidelog::decode_record(body, pos), got, "decoding is deterministic");
    got.ok().flatten()
}

/// The files of a small log, as bytes, to lay down fresh for each input.
struct Template {
    files: Vec<(String, Vec<u8>)>,
    /// File name of the segment whose body the input replaces.
    target: String,
}

struct Templates {
    active: Template,
    sealed: Template,
}

fn options() -> Options {
    Options::default().segment_bytes(SEGMENT_BYTES).index_interval_bytes(256)
}

/// A unique scratch directory, removed on drop. On a RAM file system when there is one
/// (every open fsyncs), else the system temporary directory; `TIDELOG_FUZZ_TMPDIR` overrides.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::var_os("TIDELOG_FUZZ_TMPDIR").map(PathBuf::from).unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
        let name = format!("tidelog-fuzz-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let path = base.join(name);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

fn templates() -> &'static Templates {
    static T: OnceLock<Templates> = OnceLock::new();
    T.get_or_init(|| {
        let scratch = Scratch::new();
        // An empty, cleanly closed log: the input becomes the active segment's body.
        let dir = scratch.0.join("active");
        Log::open(&dir, options()).unwrap().close().unwrap();
        let active = Template { files: read_files(&dir), target: format!("{:020}.log", 0) };
        // A sealed segment 0 followed by an active segment holding one record: the input
        // replaces the sealed segment's body (its sealed index claims the records that were
        // there).
        let dir = scratch.0.join("sealed");
        let log = Log::open(&dir, options()).unwrap();
        let p = [0x42u8; 100];
        while log.segments().len() < 2 {
            log.append(Record::new(&p)).unwrap();
        }
        log.close().unwrap();
        let sealed = Template { files: read_files(&dir), target: format!("{:020}.log", 0) };
        Templates { active, sealed }
    })
}

/// What an open of the fuzzed log did, for the corpus tests to check coverage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The writer opened with `TruncateTornTail`.
    pub opened: bool,
    /// Records committed by that open.
    pub committed: u64,
    /// The writer open failed with `Error::Corruption`.
    pub corruption: bool,
}

/// Write the input as a segment body, then open the log every way there is, read everything,
/// verify, append: whatever the bytes, nothing panics, every record returned carries the
/// offset asked for, and a log whose active segment was validated on open has no damage
/// in what it committed.
pub fn open_log(data: &[u8]) -> Outcome {
    let (flags, _, body) = split(data);
    let t = templates();
    let template = if flags & FLAG_SEALED != 0 { &t.sealed } else { &t.active };
    let scratch = Scratch::new();
    let dir = scratch.0.join("log");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &template.files {
        let mut bytes = bytes.clone();
        if *name == template.target {
            let room = bytes.len() - HEADER_LEN;
            let body = &body[..body.len().min(room)];
            bytes[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
            bytes[HEADER_LEN + body.len()..].fill(0);
            if flags & FLAG_CUT_FILE != 0 {
                bytes.truncate(HEADER_LEN + body.len());
            }
        }
        let is_index = name.ends_with(".index") || name.ends_with(".timeindex");
        let target_stem = template.target.trim_end_matches(".log");
        if (name == "checkpoint" && flags & FLAG_NO_CHECKPOINT != 0)
            || (is_index && name.starts_with(target_stem) && flags & FLAG_NO_INDEX != 0)
        {
            continue;
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    // Read-only first: it sees the files exactly as the input left them (a writer's open
    // restores a cut file's reservation and zeroes a torn tail).
    if let Ok(log) = Log::open_read_only(&dir, options()) {
        read_everything(&log, false);
    }
    let mut outcome = Outcome::default();
    match Log::open(&dir, options()) {
        Ok(log) => {
            outcome.opened = true;
            outcome.committed = log.next_offset() - log.first_offset();
            // Every committed record was validated by this open, unless a sealed index
            // vouched for the sealed segment's records.
            let validated = flags & FLAG_SEALED == 0 || flags & FLAG_NO_INDEX != 0;
            read_everything(&log, validated);
            let off = log.append(Record::new(b"after the fuzz").key(b"k")).expect("append after a successful open");
            assert_eq!(log.read(off).unwrap().payload, b"after the fuzz");
            log.close().unwrap();
            let log = Log::open(&dir, options()).expect("reopen after a clean close");
            assert_eq!(log.next_offset(), off + 1);
            read_everything(&log, validated);
        }
        Err(e) => {
            outcome.corruption = e.is_corruption();
            let _ = e.to_string();
        }
    }
    match Log::open(&dir, options().recovery(RecoveryMode::ReadOnlyUpToDamage)) {
        Ok(log) => {
            read_everything(&log, false);
            if log.is_read_only() {
                assert!(matches!(log.append(Record::new(b"x")), Err(Error::ReadOnly)));
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    outcome
}

/// Read every record by cursor and by offset, look up times, verify. `validated`: the open
/// validated every committed record, so none may fail.
fn read_everything(log: &Log, validated: bool) {
    let (first, next) = (log.first_offset(), log.next_offset());
    let mut cursor = log.cursor(first);
    let mut o = first;
    loop {
        match cursor.next() {
            Ok(Some(r)) => {
                assert_eq!(r.offset(), o, "cursor offsets are dense");
                assert!(o < next, "cursor past the committed end");
                let _ = r.headers().count();
                let _ = (r.key(), r.payload().len(), r.timestamp_us());
                o += 1;
            }
            Ok(None) => break,
            Err(e) => {
                assert!(!validated, "a validated record failed to read: {e}");
                break;
            }
        }
    }
    assert!(!validated || o == next, "cursor stopped at {o} of {next}");
    for o in first..next.min(first + 512) {
        match log.read(o) {
            Ok(r) => assert_eq!(r.offset, o),
            Err(e) => assert!(!validated && e.is_corruption(), "read({o}): {e}"),
        }
    }
    let _ = log.offset_for_time(0);
    let _ = log.offset_for_time(u64::MAX);
    let _ = log.segments();
    let v = log.verify(|_| {});
    assert!(!validated || v.damage.is_empty(), "damage in validated records: {:?}", v.damage);
}
