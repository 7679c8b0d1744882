//! The `tidelog` binary, driven as a user would: every command on logs written through the
//! library, exit codes, JSON output, and damage that must be located.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use tidelog::{Header, Log, Options, Record, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

fn tidelog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidelog")).args(args).output().expect("run the tidelog binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run with `--json`, check the exit code, parse stdout as one JSON document.
fn json(args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tidelog(&all);
    assert_eq!(o.status.code(), Some(code), "{args:?}\nstdout: {}\nstderr: {}", stdout(&o), stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&o)))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Payload bytes of every record in [`fixed_log`]: all frames have the same length.
const FIXED_PAYLOAD: usize = 100;

/// A log of `n` key-less, header-less records of `FIXED_PAYLOAD` bytes, in segments small
/// enough that several are sealed.
fn fixed_log(dir: &Path, n: u64) -> Log {
    let log = Log::open(dir, Options::default().segment_bytes(16 * 1024).index_interval_bytes(512)).unwrap();
    for i in 0..n {
        let payload = format!("{i:0width$}", width = FIXED_PAYLOAD);
        assert_eq!(log.append(Record::new(payload.as_bytes())).unwrap(), i);
    }
    assert!(log.segments().iter().filter(|s| s.sealed).count() >= 2, "{:?}", log.segments());
    log
}

/// A log of 200 records: keys `k0`..`k4` (by `i % 5`), header `parity=even|odd`, header
/// `region=eu` on every third record, payload `event-{i}`.
fn keyed_log(dir: &Path) -> Log {
    let log = Log::open(dir, Options::default().segment_bytes(8 * 1024)).unwrap();
    for i in 0..200u64 {
        let key = format!("k{}", i % 5);
        let payload = format!("event-{i}");
        let parity: &[u8] = if i % 2 == 0 { b"even" } else { b"odd" };
        let mut headers = vec![Header { name: "parity", value: parity }];
        if i % 3 == 0 {
            headers.push(Header { name: "region", value: b"eu" });
        }
        log.append(Record::new(payload.as_bytes()).key(key.as_bytes()).headers(&headers)).unwrap();
    }
    log
}

fn offsets(dump: &Value) -> Vec<u64> {
    dump["records"].as_array().expect("records array").iter().map(|r| r["offset"].as_u64().unwrap()).collect()
}

#[test]
fn demo_with_few_events_succeeds_prints_the_summary_and_reruns_over_its_own_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    for run in 0..2 {
        let o = tidelog(&["demo", "--dir", path_str(&dir), "--events", "3000"]);
        assert_eq!(o.status.code(), Some(0), "run {run}: {}\n{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        for want in ["all 10,000 account balances match", "summary", "scanned 0 bytes", "3,008 in", "tail latency"] {
            assert!(out.contains(want), "run {run}: missing {want:?} in\n{out}");
        }
        assert!(stderr(&o).is_empty(), "run {run}: {}", stderr(&o));
    }
    // What the demo left behind is a valid log with the events it announced.
    let log = Log::open_read_only(dir.join("ledger"), Options::default()).unwrap();
    assert_eq!(log.next_offset(), 3008);
}

#[test]
fn demo_json_reports_a_clean_reopen_that_scanned_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let v = json(&["demo", "--dir", path_str(&dir), "--events", "500"], 0);
    assert_eq!(v["events"], 508);
    assert_eq!(v["reopen"]["clean_shutdown"], true);
    assert_eq!(v["reopen"]["scanned_bytes"], 0);
    assert_eq!(v["tail"].as_array().unwrap().len(), 8);
    assert!(v["append"]["records_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn demo_refuses_to_remove_a_directory_that_is_not_a_demo_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("precious");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("app.log"), b"not a tidelog segment").unwrap();
    let o = tidelog(&["demo", "--dir", path_str(&dir), "--events", "10"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("does not look like a tidelog demo log"), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.join("app.log")).unwrap(), b"not a tidelog segment");
}

/// `tidelog demo --dir X` used to remove X whenever it held nothing but tidelog files, so a
/// real log passed by mistake was replaced by the demo's. The demo now deletes only a
/// directory that carries the marker it writes, and leaves a real log untouched.
#[test]
fn demo_refuses_a_directory_holding_a_real_log_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("precious-log");
    fixed_log(&dir, 400).close().unwrap();
    let before = files_with_contents(&dir);
    let o = tidelog(&["demo", "--dir", path_str(&dir), "--events", "10"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("no .tidelog-demo marker"), "{}", stderr(&o));
    assert_eq!(files_with_contents(&dir), before, "the demo changed a log it did not create");
}

/// A previous demo's directory is replaced only if it holds nothing but what the demo put
/// there: a file the user added makes the demo refuse, deleting nothing.
#[test]
fn demo_refuses_its_own_directory_once_it_holds_something_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = tidelog(&["demo", "--dir", path_str(&dir), "--events", "10"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(dir.join(".tidelog-demo").is_file());
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let before = files_with_contents(&dir);
    let o = tidelog(&["demo", "--dir", path_str(&dir), "--events", "10"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("besides the demo's files it holds notes.txt"), "{}", stderr(&o));
    assert_eq!(files_with_contents(&dir), before);
}

/// Every file under `dir` (relative path) with its contents.
fn files_with_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push((path.strip_prefix(base).unwrap().to_path_buf(), std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The demo used to leave only a log, so `tail`, `consumers` and `dlq` had nothing to show.
/// It now leaves a store with a topic, two groups, a scheduled retry and a dead letter, and
/// prints commands that run as printed.
#[test]
fn demo_leaves_a_store_to_explore_and_prints_commands_that_work_as_typed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    // Started as an installed binary (cargo sets CARGO for what it runs).
    let o = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["demo", "--dir", path_str(&dir), "--events", "2000"])
        .env_remove("CARGO")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let commands: Vec<Vec<String>> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  tidelog "))
        .map(|c| c.split_whitespace().map(str::to_owned).collect())
        .collect();
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, ["info", "dump", "verify", "consumers", "tail", "dlq", "dlq"], "{out}");
    for cmd in &commands {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let o = tidelog(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}\n{}{}", stdout(&o), stderr(&o));
        assert!(!stdout(&o).trim().is_empty(), "{args:?} printed nothing");
    }
    // The redrive at the end of the list found the dead letter to redrive.
    assert_eq!(commands.last().unwrap()[1], "redrive");

    let store = dir.join("store");
    let v = json(&["consumers", path_str(&store)], 0);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[1]["group"], "shipping");
    assert_eq!(groups[1]["unconsumed"], 40);
    assert_eq!(
        json(&["dlq", "list", path_str(&store), "orders", "billing"], 0)["dead_letters"][0]["source_offset"],
        42
    );

    // Started through cargo, it says `cargo run` and how to install the binary.
    let o = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["demo", "--dir", path_str(&dir), "--events", "100"])
        .env("CARGO", "cargo")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(out.contains(&format!("  cargo run --release -- info {}", path_str(&dir.join("ledger")))), "{out}");
    assert!(out.contains("cargo install --locked --path cli"), "{out}");
}

/// The demo's summary counts what is on disk the way `du` does: segments are preallocated.
#[test]
fn demo_reports_the_ledger_size_on_disk_as_du_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let v = json(&["demo", "--dir", path_str(&dir), "--events", "100", "--segment-bytes", "1048576"], 0);
    let du = Command::new("du").args(["-s", "--block-size=1", path_str(&dir.join("ledger"))]).output().unwrap();
    let du_bytes: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(v["bytes_on_disk"], du_bytes);
    assert!((1 << 20..2 << 20).contains(&du_bytes), "a 1 MiB segment, preallocated: {du_bytes}");
    assert_eq!(v["store"]["topic"], "orders");
}

#[test]
fn info_lists_every_segment_with_offsets_sizes_and_totals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = fixed_log(&dir, 1000);
    let segs = log.segments();
    log.close().unwrap();

    let v = json(&["info", path_str(&dir)], 0);
    assert_eq!(v["records"], 1000);
    assert_eq!(v["next_offset"], 1000);
    assert_eq!(v["closed_cleanly"], true);
    let rows = v["segments"].as_array().unwrap();
    assert_eq!(rows.len(), segs.len());
    for (row, seg) in rows.iter().zip(&segs) {
        assert_eq!(row["base_offset"], seg.base_offset);
        assert_eq!(row["next_offset"], seg.next_offset);
        assert_eq!(row["bytes_used"], seg.bytes);
        assert_eq!(row["sealed"], seg.sealed);
        assert!(row["first_time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(v["bytes_used"], segs.iter().map(|s| s.bytes).sum::<u64>());

    let o = tidelog(&["info", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("1,000 records in"), "{out}");
    for seg in &segs {
        assert!(out.contains(seg.path.file_name().unwrap().to_str().unwrap()), "{out}");
    }
    assert_eq!(out.matches("sealed").count(), segs.len() - 1, "{out}");
    assert_eq!(out.matches("active").count(), 1, "{out}");
}

#[test]
fn dump_key_filter_returns_only_that_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(keyed_log(&dir));
    let v = json(&["dump", path_str(&dir), "--key", "k3"], 0);
    let got = offsets(&v);
    assert_eq!(got, (0..200).filter(|i| i % 5 == 3).collect::<Vec<u64>>());
    assert!(v["records"].as_array().unwrap().iter().all(|r| r["key"] == "k3"));
    assert_eq!(v["scanned"], 200);

    let o = tidelog(&["dump", path_str(&dir), "--key", "k3"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<String> = stdout(&o).lines().filter(|l| !l.starts_with("--")).map(str::to_owned).collect();
    assert_eq!(lines.len(), 40);
    assert!(lines.iter().all(|l| l.contains("key=k3") && !l.contains("key=k1")), "{lines:?}");
}

#[test]
fn dump_header_filters_must_all_match() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(keyed_log(&dir));
    let v = json(&["dump", path_str(&dir), "--header", "parity=odd", "--header", "region=eu"], 0);
    assert_eq!(offsets(&v), (0..200).filter(|i| i % 2 == 1 && i % 3 == 0).collect::<Vec<u64>>());
    for r in v["records"].as_array().unwrap() {
        let headers = r["headers"].as_array().unwrap();
        assert!(headers.iter().any(|h| h["name"] == "parity" && h["value"] == "odd"), "{r}");
    }
    let v = json(&["dump", path_str(&dir), "--header", "parity=none"], 0);
    assert_eq!(v["matched"], 0);
}

#[test]
fn dump_offset_range_is_half_open_and_limit_stops_early() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(keyed_log(&dir));
    let v = json(&["dump", path_str(&dir), "--from", "10", "--to", "20"], 0);
    assert_eq!(offsets(&v), (10..20).collect::<Vec<u64>>());
    assert_eq!(v["records"][0]["payload"], "event-10");
    let v = json(&["dump", path_str(&dir), "--from", "150", "--limit", "3"], 0);
    assert_eq!(offsets(&v), vec![150, 151, 152]);
    let v = json(&["dump", path_str(&dir), "--from", "150", "--key", "k0", "--limit", "2"], 0);
    assert_eq!(offsets(&v), vec![150, 155]);
    // Past the end: nothing, and no error.
    let v = json(&["dump", path_str(&dir), "--from", "5000"], 0);
    assert_eq!(v["matched"], 0);
}

#[test]
fn dump_time_range_selects_by_append_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, Options::default().segment_bytes(8 * 1024)).unwrap();
    for i in 0..100u64 {
        log.append(Record::new(format!("early-{i}").as_bytes())).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let split = log.read(99).unwrap().timestamp_us + 10_000;
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..100u64 {
        log.append(Record::new(format!("late-{i}").as_bytes())).unwrap();
    }
    drop(log);
    let split = split.to_string();
    let v = json(&["dump", path_str(&dir), "--since", &split], 0);
    assert_eq!(offsets(&v), (100..200).collect::<Vec<u64>>());
    let v = json(&["dump", path_str(&dir), "--until", &split], 0);
    assert_eq!(offsets(&v), (0..100).collect::<Vec<u64>>());
    // RFC 3339 bounds: everything is after 1970 and nothing is before 2000.
    let v = json(&["dump", path_str(&dir), "--since", "1970-01-01T00:00:00Z", "--limit", "1"], 0);
    assert_eq!(offsets(&v), vec![0]);
    let v = json(&["dump", path_str(&dir), "--until", "2000-01-01T00:00:00Z"], 0);
    assert_eq!(v["matched"], 0);
}

#[test]
fn dump_shows_binary_payloads_as_hex_or_base64() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, Options::default().segment_bytes(8 * 1024)).unwrap();
    log.append(Record::new(&[0xff, 0x00, 0x01]).key(&[0x80])).unwrap();
    drop(log);
    let o = tidelog(&["dump", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(0));
    // Binary is `hex:` for humans and `{"hex": ...}` in JSON, for keys and payloads alike.
    assert!(stdout(&o).contains("key=hex:80"), "{}", stdout(&o));
    assert!(stdout(&o).contains("hex:ff0001"), "{}", stdout(&o));
    let v = json(&["dump", path_str(&dir)], 0);
    assert_eq!(v["records"][0]["payload"]["hex"], "ff0001");
    assert_eq!(v["records"][0]["payload_bytes"], 3);
    let v = json(&["dump", path_str(&dir), "--payload", "base64"], 0);
    assert_eq!(v["records"][0]["payload"]["base64"], "/wAB");
    assert_eq!(v["records"][0]["key"]["hex"], "80");
}

#[test]
fn verify_passes_an_intact_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = fixed_log(&dir, 1000);
    let nsegs = log.segments().len() as u64;
    drop(log);
    let o = tidelog(&["verify", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).starts_with("ok: "), "{}", stdout(&o));
    let v = json(&["verify", path_str(&dir)], 0);
    assert_eq!(v["intact"], true);
    assert_eq!(v["records"], 1000);
    assert_eq!(v["segments"], nsegs);
    assert_eq!(v["damage"].as_array().unwrap().len(), 0);
}

/// Byte position of record `offset` in the data file of the segment starting at `base`,
/// for a log from [`fixed_log`]; checked by decoding the record there.
fn fixed_record_position(bytes: &[u8], base: u64, offset: u64) -> usize {
    let frame = (RECORD_HEADER_LEN + FIXED_PAYLOAD).next_multiple_of(8);
    let pos = SEGMENT_HEADER_LEN + (offset - base) as usize * frame;
    let rec = tidelog::decode_record(bytes, pos).unwrap().unwrap();
    assert_eq!(rec.offset, offset, "the record layout assumed by this test is wrong");
    pos
}

/// Flip one payload byte of record `base + 3` in the first sealed segment; returns the
/// segment's file and the record's byte position.
fn damage_first_sealed_segment(dir: &Path) -> (PathBuf, u64) {
    let log = fixed_log(dir, 1000);
    let seg = log.segments().into_iter().find(|s| s.sealed).unwrap();
    log.close().unwrap();
    let mut bytes = std::fs::read(&seg.path).unwrap();
    let pos = fixed_record_position(&bytes, seg.base_offset, seg.base_offset + 3);
    bytes[pos + RECORD_HEADER_LEN + 10] ^= 0x20;
    std::fs::write(&seg.path, &bytes).unwrap();
    (seg.path, pos as u64)
}

#[test]
fn verify_exits_1_and_names_the_file_and_position_of_a_flipped_byte_in_a_sealed_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (file, pos) = damage_first_sealed_segment(&dir);

    let o = tidelog(&["verify", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("DAMAGED"), "{out}");
    assert!(out.contains(path_str(&file)), "{out}");
    assert!(out.contains(&format!("byte {pos}")), "{out}");
    assert!(out.contains("checksum mismatch"), "{out}");

    let v = json(&["verify", path_str(&dir)], 1);
    assert_eq!(v["intact"], false);
    let damage = v["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 1);
    assert_eq!(damage[0]["file"], path_str(&file));
    assert_eq!(damage[0]["position"], pos);
    assert_eq!(damage[0]["offset"], 3);
    assert_eq!(damage[0]["kind"], "checksum_mismatch");
}

#[test]
fn dump_stops_at_damage_with_a_located_error_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (file, pos) = damage_first_sealed_segment(&dir);
    let o = tidelog(&["dump", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    // The records before the damage are printed, then the error names file and position.
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    assert!(stderr(&o).contains(&format!("{} at byte {pos}", file.display())), "{}", stderr(&o));

    let v = json(&["dump", path_str(&dir)], 1);
    assert_eq!(offsets(&v), vec![0, 1, 2]);
    assert_eq!(v["error"]["error"], "corruption");
    assert_eq!(v["error"]["position"], pos);
}

#[test]
fn verify_reports_damage_found_while_opening_as_a_located_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (file, pos) = damage_first_sealed_segment(&dir);
    // Without its index the sealed segment is validated while opening, which finds the damage.
    let index = file.with_extension("index");
    std::fs::remove_file(&index).unwrap();
    let o = tidelog(&["verify", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("corruption in {} at byte {pos}", file.display())), "{}", stderr(&o));
    let v = json(&["verify", path_str(&dir)], 1);
    assert_eq!(v["error"], "corruption");
    assert_eq!(v["file"], path_str(&file));
    assert_eq!(v["position"], pos);
}

#[test]
fn missing_directory_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    for cmd in ["info", "dump", "verify"] {
        let o = tidelog(&[cmd, path_str(&missing)]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        assert!(stderr(&o).contains(&format!("no log at {}", missing.display())), "{cmd}: {}", stderr(&o));
        let v = json(&[cmd, path_str(&missing)], 2);
        assert_eq!(v["error"], "not_found", "{cmd}");
    }
    // Opening read-only must not have created anything.
    assert!(!missing.exists());
}

#[test]
fn plain_file_or_empty_directory_exits_2_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file.txt");
    std::fs::write(&file, b"hello").unwrap();
    for cmd in ["info", "dump", "verify"] {
        let o = tidelog(&[cmd, path_str(&file)]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        assert!(stderr(&o).contains("is not a directory"), "{cmd}: {}", stderr(&o));
        let o = tidelog(&[cmd, path_str(tmp.path())]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        assert!(stderr(&o).contains("no log at"), "{cmd}: {}", stderr(&o));
    }
}

#[test]
fn usage_errors_exit_2_and_are_json_with_the_json_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(keyed_log(&dir));
    let o = tidelog(&["dump", path_str(&dir), "--since", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot parse time"), "{}", stderr(&o));
    let o = tidelog(&["dump", path_str(&dir), "--header", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    let v = json(&["dump", path_str(&dir), "--since", "yesterday"], 2);
    assert_eq!(v["error"], "usage");
    assert_eq!(tidelog(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(tidelog(&["--help"]).status.code(), Some(0));
}

#[test]
fn bench_runs_tiny_prints_every_row_and_removes_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let o = tidelog(&["bench", "--dir", path_str(tmp.path()), "--records", "300", "--payload", "32"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    for row in [
        "baseline: buffered File write",
        "append, batch 1",
        "append, batch 64",
        "replay, checksums verified",
        "random read by offset",
        "durable append, 1 thread",
        "durable append, 4 threads",
    ] {
        assert!(out.contains(row), "missing {row:?} in\n{out}");
    }
    let v = json(&["bench", "--dir", path_str(tmp.path()), "--records", "300", "--payload", "32"], 0);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[0]["vs_baseline"], 1.0);
    assert!(rows.iter().all(|r| r["records"].as_u64().unwrap() > 0 && r["records_per_sec"].as_f64().unwrap() > 0.0));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "bench left files behind");
}

/// `info` used to say "did not close cleanly" for a checkpoint that was garbage or missing,
/// as if a writer had crashed. It says what it found: a writer that did not close, no
/// checkpoint, or a damaged one.
#[test]
fn info_says_whether_the_checkpoint_is_damaged_missing_or_left_by_an_open_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = fixed_log(&dir, 400);
    log.sync().unwrap();
    // The writer is still open: a valid checkpoint without the clean mark.
    let v = json(&["info", path_str(&dir)], 0);
    assert_eq!((v["closed_cleanly"].as_bool(), v["shutdown"].as_str()), (Some(false), Some("not_closed")));
    log.close().unwrap();
    assert_eq!(json(&["info", path_str(&dir)], 0)["shutdown"], "clean");

    let checkpoint = dir.join("checkpoint");
    std::fs::write(&checkpoint, b"garbage").unwrap();
    let v = json(&["info", path_str(&dir)], 0);
    assert_eq!((v["closed_cleanly"].as_bool(), v["shutdown"].as_str()), (Some(false), Some("checkpoint_damaged")));
    let out = stdout(&tidelog(&["info", path_str(&dir)]));
    assert!(out.contains("the checkpoint file is damaged (not a valid checkpoint)"), "{out}");
    assert!(!out.contains("did not close cleanly"), "{out}");

    let mut bytes = vec![0u8; 64];
    bytes[..8].copy_from_slice(b"TDLGCKP\0");
    std::fs::write(&checkpoint, &bytes).unwrap();
    let out = stdout(&tidelog(&["info", path_str(&dir)]));
    assert!(out.contains("the checkpoint file is damaged"), "{out}");

    std::fs::remove_file(&checkpoint).unwrap();
    let v = json(&["info", path_str(&dir)], 0);
    assert_eq!(v["shutdown"], "checkpoint_missing");
    assert!(stdout(&tidelog(&["info", path_str(&dir)])).contains("no checkpoint file"));
}

/// The size on disk that `info` reports is what `du` counts (allocated blocks: segments are
/// preallocated), not the bytes the records use.
#[test]
fn info_size_on_disk_agrees_with_du() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fixed_log(&dir, 1000).close().unwrap();
    let v = json(&["info", path_str(&dir)], 0);
    let du = Command::new("du").args(["-s", "--block-size=1", path_str(&dir)]).output().expect("run du");
    let du_bytes: u64 = String::from_utf8_lossy(&du.stdout).split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(v["bytes_on_disk"], du_bytes);
    assert!(v["bytes_used"].as_u64().unwrap() < du_bytes, "{v}");
}

/// Counts take the noun in the right number ("1 segment", not "1 segments").
#[test]
fn a_log_of_one_segment_is_one_segment_not_one_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, Options::default().segment_bytes(1 << 20)).unwrap();
    log.append(Record::new(b"only")).unwrap();
    log.close().unwrap();
    let verify = stdout(&tidelog(&["verify", path_str(&dir)]));
    assert!(verify.contains(": 1 segment, 1 record,"), "{verify}");
    let info = stdout(&tidelog(&["info", path_str(&dir)]));
    assert!(info.contains("1 record in 1 segment,"), "{info}");
}

/// The `info` table's headings are the field names of the JSON segment rows.
#[test]
fn info_table_headings_are_json_field_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fixed_log(&dir, 400).close().unwrap();
    let v = json(&["info", path_str(&dir)], 0);
    let row = v["segments"][0].as_object().unwrap();
    let out = stdout(&tidelog(&["info", path_str(&dir)]));
    let heading = out.lines().find(|l| l.starts_with("file")).expect("a table heading");
    for h in heading.split_whitespace() {
        assert!(row.contains_key(h), "heading {h} is not a JSON field: {heading}");
    }
}

/// The `bench` table's headings are the field names of its JSON rows.
#[test]
fn bench_table_headings_are_json_field_names() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["bench", "--dir", path_str(tmp.path()), "--records", "200", "--payload", "16"];
    let v = json(&args, 0);
    let row = v["rows"][0].as_object().unwrap();
    let out = stdout(&tidelog(&args));
    let heading = out.lines().find(|l| l.starts_with("workload")).expect("a table heading");
    let headings: Vec<&str> = heading.split_whitespace().collect();
    assert_eq!(headings.len(), row.len(), "{heading}");
    for h in headings {
        assert!(row.contains_key(h), "heading {h} is not a JSON field: {heading}");
    }
}

/// The files of every segment of the closed log in `dir`, oldest first: (base, data file).
fn segment_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let log = Log::open_read_only(dir, Options::default()).unwrap();
    log.segments().into_iter().map(|s| (s.base_offset, s.path)).collect()
}

/// Flip one payload byte of record `offset` of the segment (`base`, `file`) of a log from
/// [`fixed_log`]; returns the record's byte position.
fn flip_record(file: &Path, base: u64, offset: u64) -> u64 {
    let mut bytes = std::fs::read(file).unwrap();
    let pos = fixed_record_position(&bytes, base, offset);
    bytes[pos + RECORD_HEADER_LEN + 10] ^= 0x20;
    std::fs::write(file, &bytes).unwrap();
    pos as u64
}

/// `verify` used to stop at the first damage in a segment. It resumes at the next valid
/// record and reports each damaged stretch with its extent, and counts the records after it.
#[test]
fn verify_reports_each_damaged_stretch_of_a_segment_with_its_extent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fixed_log(&dir, 1000).close().unwrap();
    let (base, file) = segment_files(&dir)[1].clone();
    let first = flip_record(&file, base, base + 3);
    let second = flip_record(&file, base, base + 20);
    let frame = (RECORD_HEADER_LEN + FIXED_PAYLOAD).next_multiple_of(8) as u64;

    let v = json(&["verify", path_str(&dir)], 1);
    assert_eq!(v["intact"], false);
    assert_eq!(v["records"], 998, "the records after each damaged stretch are verified too");
    let damage = v["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 2, "{v}");
    for (d, (pos, offset)) in damage.iter().zip([(first, base + 3), (second, base + 20)]) {
        assert_eq!(d["file"], path_str(&file));
        assert_eq!(d["position"], pos);
        assert_eq!(d["end"], pos + frame, "valid records resume at the next frame");
        assert_eq!(d["offset"], offset);
        assert_eq!(d["kind"], "checksum_mismatch");
    }
    assert_eq!(v["missing"].as_array().unwrap().len(), 0);

    let o = tidelog(&["verify", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.starts_with("DAMAGED: 2 damaged places"), "{out}");
    assert!(out.contains(&format!("byte {}", second + frame)), "{out}");
    // Every label of the human report is a field name of the JSON damage rows.
    let row = damage[0].as_object().unwrap();
    let damage_blocks = out.lines().take_while(|l| !l.starts_with("indexes_to_rebuild"));
    for line in damage_blocks.filter(|l| l.starts_with("  ")) {
        let label = line.split_whitespace().next().unwrap();
        assert!(row.contains_key(label), "label {label} is not a JSON field: {line}");
    }
}

/// A crash leaves records past the durable point half written: `verify` reports the torn tail
/// (its bytes and the records a repair would drop) and still passes, since the next writer's
/// open cuts it without losing anything acknowledged as durable.
#[test]
fn verify_reports_a_torn_tail_and_the_records_its_repair_drops_without_failing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = fixed_log(&dir, 1000);
    let active = log.segments().pop().unwrap();
    // A crash: no sync, no close.
    std::mem::forget(log);
    let pos = flip_record(&active.path, active.base_offset, 999);

    let v = json(&["verify", path_str(&dir)], 0);
    assert_eq!(v["intact"], true);
    assert_eq!(v["records"], 999);
    let torn = &v["torn_tail"];
    assert_eq!(torn["file"], path_str(&active.path));
    assert_eq!(torn["position"], pos);
    assert!(torn["bytes"].as_u64().unwrap() > 0, "{v}");
    assert_eq!((torn["dropped_from"].as_u64(), torn["dropped_to"].as_u64()), (Some(999), Some(1000)));
    assert_eq!(torn["dropped_records"], 1);

    let o = tidelog(&["verify", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.contains("torn tail: not a failure"), "{out}");
    assert!(out.contains("1 record, offsets [999, 1000)"), "{out}");
}

/// A sealed segment's index file is derived data: `verify` lists it for rebuilding and passes.
#[test]
fn verify_lists_a_deleted_index_file_for_rebuilding_without_failing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fixed_log(&dir, 1000).close().unwrap();
    let index = segment_files(&dir)[0].1.with_extension("index");
    std::fs::remove_file(&index).unwrap();

    let v = json(&["verify", path_str(&dir)], 0);
    assert_eq!(v["intact"], true);
    assert_eq!(v["records"], 1000);
    let rebuild: Vec<&str> = v["indexes_to_rebuild"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(rebuild.contains(&path_str(&index)), "{v}");
    let out = stdout(&tidelog(&["verify", path_str(&dir)]));
    assert!(out.contains("indexes_to_rebuild: not a failure"), "{out}");
    assert!(out.contains(path_str(&index)), "{out}");
}

/// A deleted last segment used to go unnoticed (`verify` said intact). The default open now
/// refuses it with a located error; `verify` and `info` say so, open the log up to the
/// missing records, show what is there and exit 1.
#[test]
fn verify_and_info_report_a_deleted_last_segment_as_missing_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fixed_log(&dir, 1000).close().unwrap();
    let (base, file) = segment_files(&dir).pop().unwrap();
    for ext in ["log", "index", "timeindex"] {
        let _ = std::fs::remove_file(file.with_extension(ext));
    }

    let v = json(&["verify", path_str(&dir)], 1);
    assert_eq!(v["intact"], false);
    assert_eq!(v["opened"], "read_only_up_to_damage");
    assert_eq!(v["error"], "corruption");
    assert_eq!(v["records"], base, "every record before the missing segment is verified");
    let missing = v["missing"].as_array().unwrap();
    assert_eq!(missing[0]["offset"], base, "{v}");
    let o = tidelog(&["verify", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("corruption in the log {} at offset {base}", dir.display())),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("range of records missing"), "{}", stdout(&o));

    let v = json(&["info", path_str(&dir)], 1);
    assert_eq!(v["next_offset"], base);
    assert_eq!(v["missing"][0]["offset"], base);
    let out = stdout(&tidelog(&["info", path_str(&dir)]));
    assert!(out.contains(&format!("records missing from offset {base} on")), "{out}");
}

/// One flipped byte in a sealed segment's header made the whole log unopenable, so `info`,
/// `verify` and `dump` showed nothing of the records before it. They now report the located
/// damage, show everything before it and exit 1.
#[test]
fn info_verify_and_dump_show_what_precedes_a_damaged_segment_header() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fixed_log(&dir, 1000).close().unwrap();
    let (base, file) = segment_files(&dir)[1].clone();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[2] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    for cmd in ["info", "verify", "dump"] {
        let o = tidelog(&[cmd, path_str(&dir)]);
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains(&format!("corruption in {}", file.display())), "{cmd}: {}", stderr(&o));
        assert!(stderr(&o).contains("opened read-only up to the damage"), "{cmd}: {}", stderr(&o));
    }
    let v = json(&["info", path_str(&dir)], 1);
    assert_eq!(v["opened"], "read_only_up_to_damage");
    assert_eq!((v["first_offset"].as_u64(), v["next_offset"].as_u64()), (Some(0), Some(base)));
    assert_eq!(v["records"], base);
    assert_eq!(v["damage"][0]["file"], path_str(&file));
    let v = json(&["verify", path_str(&dir)], 1);
    assert_eq!(v["records"], base);
    assert_eq!(v["damage"][0]["file"], path_str(&file));
    assert_eq!(v["file"], path_str(&file), "the open's located error");
    let v = json(&["dump", path_str(&dir)], 1);
    assert_eq!(offsets(&v), (0..base).collect::<Vec<_>>());
    assert_eq!(v["error"]["error"], "corruption");
}

/// A zero-length segment between two others (what a crash in the middle of creating one can
/// leave) no longer hides the segments before it.
#[test]
fn info_shows_the_segments_before_a_zero_length_middle_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fixed_log(&dir, 1000).close().unwrap();
    let (base, file) = segment_files(&dir)[1].clone();
    std::fs::File::create(&file).unwrap();

    let v = json(&["info", path_str(&dir)], 1);
    assert_eq!(v["opened"], "read_only_up_to_damage");
    assert_eq!(v["next_offset"], base);
    assert_eq!(v["segments"].as_array().unwrap().len(), 1);
    let v = json(&["verify", path_str(&dir)], 1);
    assert_eq!(v["intact"], false);
    assert_eq!(v["records"], base);
}

/// The demo folds per-account balances with a projection that writes snapshots: a restart
/// replays only the records after the newest snapshot, and a balance as of an earlier offset
/// starts from the nearest snapshot at or before it.
#[test]
fn demo_rebuilds_balances_with_a_projection_restarts_from_a_snapshot_and_answers_as_of_an_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let v = json(&["demo", "--dir", path_str(&dir), "--events", "20000"], 0);
    let p = &v["projection"];
    let events = v["events"].as_u64().unwrap();
    assert_eq!(p["records_without_snapshot"], events, "{p}");
    assert!(p["snapshots"].as_u64().unwrap() >= 2, "{p}");
    let snap = p["snapshot_position"].as_u64().expect("the restart used a snapshot");
    assert!(snap > 0 && snap < events, "{p}");
    assert_eq!(p["records_with_snapshot"], events - snap, "the restart replays only what follows it");

    let a = &p["as_of"];
    let offset = a["offset"].as_u64().unwrap();
    assert!(offset < events, "{a}");
    let from = a["snapshot_position"].as_u64().expect("a snapshot at or before the offset");
    assert!(from <= offset, "{a}");
    assert_eq!(a["records_replayed"], offset - from, "{a}");
    assert!(a["account"].as_str().unwrap().starts_with("acct-"), "{a}");
    assert!(dir.join("balances").is_dir());

    let out = stdout(&tidelog(&["demo", "--dir", path_str(&dir), "--events", "20000"]));
    assert!(out.contains("  project  balances as a projection: rebuilt from 20,008 records"), "{out}");
    assert!(out.contains("replayed") && out.contains("as of offset"), "{out}");
}
