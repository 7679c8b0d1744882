//! The `tidelog` binary over a compacted log (sealed segments whose offsets skip): `verify`
//! finds it intact, `info` counts the records that exist, and `dump` shows exactly the records
//! of its offset range, even when the range ends in a gap (the cursor's next record then lies
//! past the range).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use tidelog::testing::rewrite_segment;
use tidelog::{Log, Options, Record};

#[test]
fn the_cli_reads_a_compacted_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let opts = Options::default().segment_bytes(8192).index_interval_bytes(256);
    let log = Log::open(&dir, opts).unwrap();
    let mut n = 0u64;
    while log.segments().len() < 4 {
        log.append(Record::new(format!("record {n}").repeat(10).as_bytes())).unwrap();
        n += 1;
    }
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset).collect();
    let next = log.next_offset();
    log.close().unwrap();
    // Segment 1 keeps one record in three; segment 2 keeps none past its first half.
    let keep1 = |o: u64| o.is_multiple_of(3);
    let keep2 = |o: u64| o < bases[2] + (bases[3] - bases[2]) / 2;
    assert!(rewrite_segment(&dir, bases[1], 256, keep1).unwrap());
    assert!(rewrite_segment(&dir, bases[2], 256, keep2).unwrap());
    let kept: BTreeSet<u64> = (0..next)
        .filter(|&o| {
            if o >= bases[1] && o < bases[2] {
                keep1(o)
            } else if o >= bases[2] && o < bases[3] {
                keep2(o)
            } else {
                true
            }
        })
        .collect();
    let d = dir.to_str().unwrap();
    let json = |args: &[&str]| -> Value {
        let o = Command::new(env!("CARGO_BIN_EXE_tidelog")).arg("--json").args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = json(&["verify", d]);
    assert_eq!((v["intact"].as_bool(), v["records"].as_u64()), (Some(true), Some(kept.len() as u64)), "{v}");
    assert_eq!(json(&["info", d])["records"].as_u64(), Some(kept.len() as u64));
    // From segment 1 across segment 2 to a point inside its removed second half.
    let (from, to) = (bases[1], bases[3] - 3);
    let dump = json(&["dump", d, "--from", &from.to_string(), "--to", &to.to_string()]);
    let got: Vec<u64> = dump["records"].as_array().unwrap().iter().map(|r| r["offset"].as_u64().unwrap()).collect();
    assert_eq!(got, kept.range(from..to).copied().collect::<Vec<_>>());
}
