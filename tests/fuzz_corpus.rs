//! The fuzz targets' code paths on every `cargo test`, without a fuzzer.
//!
//! `fuzz/` holds two cargo-fuzz targets (`decode_record`, `open_log`) whose per-input logic
//! lives in `tests/support/fuzz_inputs.rs`. Here the checked-in corpus
//! (`fuzz/corpus/seeds/`) and any crash artifacts a fuzzer left in `fuzz/artifacts/` are
//! replayed through that same logic, followed by a few hundred deterministic mutations of the
//! seeds, so that a regression shows up in an ordinary test run even where no nightly
//! toolchain or libFuzzer is available. See `fuzz/README.md`.

mod common;
#[allow(dead_code)]
#[path = "support/fuzz_inputs.rs"]
mod fuzz_inputs;

use std::fs;
use std::path::{Path, PathBuf};

use common::{parse_frames, Rng};
use fuzz_inputs::{FLAG_CUT_FILE, FLAG_NO_CHECKPOINT, FLAG_NO_INDEX, FLAG_SEALED, FLAG_UNALIGNED};
use tidelog::{Durability, Header, Log, Options, Record};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `dir` (recursively), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    files_under(&fuzz_dir().join("corpus/seeds"))
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), fs::read(&p).unwrap()))
        .collect()
}

/// Every checked-in seed, and every crash artifact a fuzzer left behind, goes through both
/// targets without a panic or a broken invariant.
#[test]
fn replay_corpus_through_both_targets() {
    let seeds = seeds();
    assert!(seeds.len() >= 10, "the seed corpus is missing: {} files", seeds.len());
    for (name, data) in &seeds {
        fuzz_inputs::decode_record(data);
        fuzz_inputs::open_log(data);
        let _ = name;
    }
    for path in files_under(&fuzz_dir().join("artifacts")) {
        let data = fs::read(&path).unwrap();
        eprintln!("replaying fuzz artifact {}", path.display());
        fuzz_inputs::decode_record(&data);
        fuzz_inputs::open_log(&data);
    }
}

/// The seeds are what their names say: valid frames decode, damaged ones do not, a log body
/// of valid frames opens with its records, damage followed by valid records that prove it
/// durable fails the open.
/// If the format changes, this fails and the seeds must be regenerated (see `fuzz/README.md`).
#[test]
fn seed_corpus_covers_valid_and_damaged_inputs() {
    let seeds = seeds();
    let find = |name: &str| &seeds.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("seed {name}")).1;
    assert!(fuzz_inputs::decode_record(find("valid-records")).is_some());
    assert!(fuzz_inputs::decode_record(find("valid-records-decode-second")).is_some());
    for bad in [
        "crafted-reserved",
        "crafted-flags",
        "crafted-mark-too-short",
        "crafted-key-len-without-key",
        "crafted-lengths-overflow",
    ] {
        assert!(fuzz_inputs::decode_record(find(bad)).is_none(), "{bad}");
        assert!(tidelog::decode_record(&find(bad)[2..], 0).is_err(), "{bad}: a valid checksum over bad fields");
    }
    assert!(tidelog::decode_record(&find("crafted-headers-not-utf8")[2..], 0).is_err());
    assert!(tidelog::decode_record(&find("crafted-valid")[2..], 0).unwrap().is_some());
    let valid = fuzz_inputs::open_log(find("valid-records"));
    assert!(valid.opened && valid.committed >= 5, "{valid:?}");
    let torn = fuzz_inputs::open_log(find("torn-batch"));
    assert!(torn.opened && torn.committed < valid.committed, "{torn:?}");
    let damaged = fuzz_inputs::open_log(find("bit-flip-then-valid"));
    assert!(!damaged.opened && damaged.corruption, "{damaged:?}");
}

/// A few hundred deterministic mutations of the seeds (bit flips, byte overwrites, cuts,
/// splices, flag changes): a pocket fuzzer that runs everywhere.
#[test]
fn mutated_seeds_never_panic() {
    let seeds = seeds();
    let mut rng = Rng::new(0xF022);
    for round in 0..300 {
        let (_, base) = &seeds[rng.range(0, seeds.len() as u64) as usize];
        let mut data = base.clone();
        for _ in 0..rng.range(1, 4) {
            if data.len() < 3 {
                data.resize(3, 0);
            }
            let at = rng.range(0, data.len() as u64) as usize;
            match rng.range(0, 6) {
                0 => data[at] ^= 1 << rng.range(0, 8),
                1 => data[at] = rng.next_u64() as u8,
                2 => data.truncate(at.max(2)),
                3 => {
                    let (_, other) = &seeds[rng.range(0, seeds.len() as u64) as usize];
                    let from = rng.range(0, other.len() as u64) as usize;
                    data.extend_from_slice(&other[from..]);
                }
                4 => data[0] = rng.next_u64() as u8,
                _ => {
                    // Overwrite a 4-byte field at an aligned body position with an extreme value.
                    let at = 2 + (at / 8) * 8;
                    if at + 4 <= data.len() {
                        let v = [0u32, 1, 39, 40, 41, u32::MAX, 1 << 31][rng.range(0, 7) as usize];
                        data[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        let _ = round;
        fuzz_inputs::decode_record(&data);
        fuzz_inputs::open_log(&data);
    }
}

// ---- generating the seeds ----------------------------------------------------------------

/// CRC-32 (IEEE), bitwise: enough to craft frames with valid checksums over invalid fields.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = !0u32;
    for part in parts {
        for &b in *part {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
            }
        }
    }
    !c
}

/// A frame with the given fields and a valid checksum (layout in src/format/frame.rs).
fn craft_frame(offset: u64, key_len: u32, headers_len: u32, flags: u16, reserved: u16, body: &[u8]) -> Vec<u8> {
    let len = 40 + body.len();
    let mut f = vec![0u8; len];
    f[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    f[8..16].copy_from_slice(&offset.to_le_bytes());
    f[16..24].copy_from_slice(&1_700_000_000_000_000u64.to_le_bytes());
    f[28..32].copy_from_slice(&key_len.to_le_bytes());
    f[32..36].copy_from_slice(&headers_len.to_le_bytes());
    f[36..38].copy_from_slice(&flags.to_le_bytes());
    f[38..40].copy_from_slice(&reserved.to_le_bytes());
    f[40..].copy_from_slice(body);
    let crc = crc32(&[&f[0..4], &f[8..]]);
    f[4..8].copy_from_slice(&crc.to_le_bytes());
    f.resize((len + 7) & !7, 0);
    f
}

fn seed(flags: u8, sel: u8, body: &[u8]) -> Vec<u8> {
    [&[flags, sel][..], body].concat()
}

/// Regenerates `fuzz/corpus/seeds/` from a real log. Run it after a format change:
/// `TIDELOG_WRITE_SEEDS=1 cargo test --test fuzz_corpus -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes fuzz/corpus/seeds; run with TIDELOG_WRITE_SEEDS=1 after a format change"]
fn write_seed_corpus() {
    if std::env::var_os("TIDELOG_WRITE_SEEDS").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    // Every append flushed: frames after the first carry durable marks, so damage before a
    // later frame is provably damage to durable records (the `bit-flip-then-valid` seed).
    let opts = Options::default().segment_bytes(fuzz_inputs::SEGMENT_BYTES).durability(Durability::Always);
    let log = Log::open(&dir, opts).unwrap();
    let h = [Header { name: "type", value: b"deposit" }, Header { name: "v", value: b"" }];
    log.append(Record::new(b"first").key(b"acct-7").headers(&h)).unwrap();
    log.append(Record::new(b"")).unwrap();
    log.append(Record::new(b"empty key").key(b"")).unwrap();
    log.append_batch(&[Record::new(b"batch a"), Record::new(b"batch b").key(b"k"), Record::new(b"batch c")]).unwrap();
    log.append(Record::new(&[0xAB; 200])).unwrap();
    log.close().unwrap();
    let seg = fs::read(dir.join(format!("{:020}.log", 0))).unwrap();
    let frames = parse_frames(&seg);
    let end = frames.last().map(|f| ((f.pos + f.len + 7) & !7) as usize).unwrap();
    let body = &seg[64..end];
    let at = |i: usize| frames[i].pos as usize - 64;

    let mut out: Vec<(&str, Vec<u8>)> = vec![
        ("valid-records", seed(0, 0, body)),
        ("valid-records-decode-second", seed(0, (at(1) / 8) as u8, body)),
        ("valid-records-no-checkpoint-cut-file", seed(FLAG_NO_CHECKPOINT | FLAG_CUT_FILE, 0, body)),
        ("sealed-valid-records", seed(FLAG_SEALED, 0, body)),
        ("sealed-valid-records-no-index", seed(FLAG_SEALED | FLAG_NO_INDEX, 0, body)),
        ("truncated-frame", seed(FLAG_CUT_FILE, 0, &body[..at(2) + 20])),
        ("cut-inside-padding", seed(FLAG_CUT_FILE, 0, &body[..at(0) + frames[0].len as usize])),
        ("torn-batch", seed(0, 0, &body[..at(4) + 10])),
        ("unaligned-decode", seed(FLAG_UNALIGNED, 3, body)),
        ("zeros", seed(0, 0, &[0u8; 256])),
        ("huge-length", seed(0, 0, &[&u32::MAX.to_le_bytes()[..], &[0u8; 60]].concat())),
        ("frame-length-below-header", seed(0, 0, &[&39u32.to_le_bytes()[..], &[0u8; 60]].concat())),
    ];
    let mut flipped = body.to_vec();
    flipped[at(0) + frames[0].len as usize - 1] ^= 0x08;
    out.push(("bit-flip-then-valid", seed(FLAG_NO_CHECKPOINT, 0, &flipped)));
    let stale = [body, &body[..at(1)]].concat();
    out.push(("stale-frame-past-the-end", seed(0, 0, &stale)));
    let mut rng = Rng::new(1);
    let garbage: Vec<u8> = (0..512).map(|_| rng.next_u64() as u8).collect();
    out.push(("garbage", seed(0, 0, &garbage)));
    out.push(("garbage-sealed", seed(FLAG_SEALED | FLAG_NO_INDEX, 0, &garbage)));
    // Valid checksums over invalid fields: only the field checks can reject these.
    out.push(("crafted-valid", seed(0, 0, &craft_frame(0, 1, 0, 1, 0, b"kpayload"))));
    out.push(("crafted-reserved", seed(0, 0, &craft_frame(0, 0, 0, 0, 1, b"payload"))));
    out.push(("crafted-flags", seed(0, 0, &craft_frame(0, 0, 0, 8, 0, b"payload"))));
    // The durable-mark flag on a frame too short to hold the mark.
    out.push(("crafted-mark-too-short", seed(0, 0, &craft_frame(0, 0, 0, 2, 0, b"mark"))));
    out.push(("crafted-key-len-without-key", seed(0, 0, &craft_frame(0, 3, 0, 0, 0, b"payload"))));
    out.push(("crafted-lengths-overflow", seed(0, 0, &craft_frame(0, u32::MAX, 9, 1, 0, b"payload"))));
    // A header entry: name_len 2, name bytes not UTF-8, value_len 1, value.
    let hdr = [&2u16.to_le_bytes()[..], &[0xFF, 0xFE], &1u32.to_le_bytes(), b"v"].concat();
    let crafted = craft_frame(0, 0, hdr.len() as u32, 0, 0, &[&hdr[..], b"payload"].concat());
    out.push(("crafted-headers-not-utf8", seed(0, 0, &crafted)));

    let seeds_dir = fuzz_dir().join("corpus/seeds");
    fs::create_dir_all(&seeds_dir).unwrap();
    for (name, bytes) in out {
        fs::write(seeds_dir.join(name), bytes).unwrap();
    }
}
