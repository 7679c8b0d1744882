//! `tidelog replay` and `tidelog publish`, driven as a user would: formats, ranges, filters,
//! following, pipes that close, and the frames round trip between the two.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::{p, text, tidelog};
use tidelog::{Header, Log, Options, Record, Store, StoreOptions};

/// Run with `input` on standard input.
fn tidelog_with_input(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the tidelog binary");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A command that fails early stops reading: a broken pipe here is its business.
    let writer = std::thread::spawn(move || drop(stdin.write_all(&input)));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn ok(args: &[&str]) -> Vec<u8> {
    let o = tidelog(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}\n{}", text(&o));
    o.stdout
}

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out).lines().map(|l| serde_json::from_str(l).expect("one JSON document per line")).collect()
}

/// A log of 50 records: key `k{i % 3}`, header `even=yes|no`, payload `event-{i}`; record 7
/// has a binary key and payload.
fn keyed_log(dir: &Path) -> Log {
    let log = Log::open(dir, Options::default().segment_bytes(4096)).unwrap();
    for i in 0..50u64 {
        let even: &[u8] = if i % 2 == 0 { b"yes" } else { b"no" };
        let headers = [Header { name: "even", value: even }];
        let payload = format!("event-{i}");
        let key = format!("k{}", i % 3);
        let rec = if i == 7 {
            Record::new(&[0xff, 0x00, b'\n']).key(&[0x80, 0x01]).headers(&headers)
        } else {
            Record::new(payload.as_bytes()).key(key.as_bytes()).headers(&headers)
        };
        log.append(rec).unwrap();
    }
    log
}

fn offsets(out: &[u8]) -> Vec<u64> {
    lines(out).iter().map(|v| v["offset"].as_u64().unwrap()).collect()
}

#[test]
fn replay_writes_json_lines_in_offset_order_within_the_half_open_range() {
    let tmp = tempfile::tempdir().unwrap();
    keyed_log(tmp.path()).close().unwrap();
    let dir = p(tmp.path());
    assert_eq!(offsets(&ok(&["replay", dir])), (0..50).collect::<Vec<_>>());
    assert_eq!(offsets(&ok(&["replay", dir, "--from", "10", "--to", "13"])), vec![10, 11, 12]);
    assert_eq!(offsets(&ok(&["replay", dir, "--from", "45", "--limit", "2"])), vec![45, 46]);
    let all = lines(&ok(&["replay", dir]));
    assert_eq!(all[3]["payload"], "event-3");
    assert_eq!(all[3]["key"], "k0");
    assert_eq!(all[3]["headers"][0]["value"], "no");
    assert_eq!(all[7]["payload"]["base64"], "/wAK", "binary payloads are base64");
    assert_eq!(all[7]["key"]["hex"], "8001", "binary keys are hex, as in every command");
}

#[test]
fn replay_time_bounds_select_by_append_time() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    log.append(Record::new(b"old")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let split = log.read(0).unwrap().timestamp_us() + 10_000;
    while tidelog_now_us() <= split {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    log.append(Record::new(b"new")).unwrap();
    log.close().unwrap();
    let at = format!("@{split}");
    let dir = p(tmp.path());
    assert_eq!(offsets(&ok(&["replay", dir, "--from", &at])), vec![1]);
    assert_eq!(offsets(&ok(&["replay", dir, "--to", &at])), vec![0]);
    assert_eq!(offsets(&ok(&["replay", dir, "--from", "-1d"])), vec![0, 1]);
    assert!(ok(&["replay", dir, "--from", "now"]).is_empty());
}

fn tidelog_now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

#[test]
fn replay_filters_by_key_and_headers_given_as_text_or_hex() {
    let tmp = tempfile::tempdir().unwrap();
    keyed_log(tmp.path()).close().unwrap();
    let dir = p(tmp.path());
    let k1 = offsets(&ok(&["replay", dir, "--key", "k1"]));
    assert_eq!(k1, (0..50).filter(|i| i % 3 == 1 && *i != 7).collect::<Vec<_>>());
    let both = offsets(&ok(&["replay", dir, "--key", "k1", "--header", "even=yes"]));
    assert_eq!(both, (0..50).filter(|i| i % 3 == 1 && i % 2 == 0).collect::<Vec<_>>());
    assert_eq!(offsets(&ok(&["replay", dir, "--key", "hex:8001"])), vec![7]);
    assert_eq!(offsets(&ok(&["replay", dir, "--header", "even=hex:6e6f", "--to", "4"])), vec![1, 3]);
}

#[test]
fn replay_raw_writes_payloads_each_followed_by_the_separator() {
    let tmp = tempfile::tempdir().unwrap();
    keyed_log(tmp.path()).close().unwrap();
    let dir = p(tmp.path());
    assert_eq!(ok(&["replay", dir, "--format", "raw", "--to", "3"]), b"event-0\nevent-1\nevent-2\n");
    assert_eq!(ok(&["replay", dir, "--format", "raw", "--to", "3", "--separator", "none"]), b"event-0event-1event-2");
    assert_eq!(ok(&["replay", dir, "--format", "raw", "--to", "2", "--separator", "nul"]), b"event-0\0event-1\0");
}

#[test]
fn replay_payload_text_refuses_a_binary_payload_and_names_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    keyed_log(tmp.path()).close().unwrap();
    let o = tidelog(&["replay", p(tmp.path()), "--payload", "text"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the payload of record 7 is not UTF-8"), "{}", text(&o));
    assert_eq!(offsets(&o.stdout), (0..7).collect::<Vec<_>>(), "the records before it were written");
    let b64 = lines(&ok(&["replay", p(tmp.path()), "--payload", "base64", "--to", "1"]));
    assert_eq!(b64[0]["payload"]["base64"], "ZXZlbnQtMA==");
}

#[test]
fn replay_frames_into_publish_framed_reproduces_binary_payloads_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let store = Store::open(&src, StoreOptions::default()).unwrap();
    let t = store.topic("bin").unwrap();
    let payloads: Vec<Vec<u8>> = (0..300u32)
        .map(|i| (0..(i * 7 % 1000)).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect())
        .chain([Vec::new(), b"\n\r\0".to_vec(), vec![0xff; 70_000]])
        .collect();
    for p in &payloads {
        t.publish(Record::new(p)).unwrap();
    }
    drop((t, store));
    let frames = ok(&["replay", p(&src), "bin", "--format", "frames"]);
    let dst = tmp.path().join("dst");
    let o = tidelog_with_input(&["--json", "publish", "--create", p(&dst), "copy", "--framed"], &frames);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["records"].as_u64(), v["first_offset"].as_u64(), v["next_offset"].as_u64()),
        (Some(303), Some(0), Some(303))
    );
    let copy = Log::open_read_only(dst.join("topics/copy"), Options::default()).unwrap();
    let got: Vec<Vec<u8>> = copy.iter(0).map(|r| r.unwrap().payload().to_vec()).collect();
    assert_eq!(got, payloads);
    assert_eq!(ok(&["replay", p(&dst), "copy", "--format", "frames"]), frames);
}

#[test]
fn publish_lines_gives_each_line_a_record_with_the_key_and_headers_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    store.topic("orders").unwrap().publish(Record::new(b"first")).unwrap();
    let o = tidelog_with_input(
        &["publish", p(tmp.path()), "orders", "--key", "hex:00ff", "--header", "src=cli"],
        b"a\n\nc d\nlast-without-newline",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "published 4 records to orders: offsets [1, 5), synced\n");
    let all = lines(&ok(&["replay", p(tmp.path()), "orders", "--from", "1"]));
    let payloads: Vec<&str> = all.iter().map(|v| v["payload"].as_str().unwrap()).collect();
    assert_eq!(payloads, ["a", "", "c d", "last-without-newline"]);
    assert!(all.iter().all(|v| v["key"]["hex"] == "00ff" && v["headers"][0]["value"] == "cli"));
}

#[test]
fn publish_refuses_a_missing_topic_unless_asked_to_create_it() {
    let tmp = tempfile::tempdir().unwrap();
    Store::open(tmp.path(), StoreOptions::default()).unwrap().topic("orders").unwrap();
    let o = tidelog_with_input(&["publish", p(tmp.path()), "ordres"], b"x\n");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no topic ordres (topics: orders)"), "{}", text(&o));
    assert!(!tmp.path().join("topics/ordres").exists());
}

#[test]
fn publish_framed_input_cut_inside_a_frame_keeps_the_complete_records_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let mut input = Vec::new();
    for p in [&b"one"[..], b"two"] {
        input.extend_from_slice(&(p.len() as u32).to_le_bytes());
        input.extend_from_slice(p);
    }
    input.extend_from_slice(&10u32.to_le_bytes());
    input.extend_from_slice(b"thr");
    let o = tidelog_with_input(&["publish", "--create", p(tmp.path()), "t", "--framed"], &input);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("inside the frame at byte 14"), "{}", text(&o));
    assert_eq!(ok(&["replay", p(tmp.path()), "t", "--format", "raw"]), b"one\ntwo\n");
}

#[test]
fn replay_into_a_pipe_closed_early_ends_quietly_with_status_0() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    let payload = [b'x'; 1000];
    for _ in 0..20 {
        log.append_batch(&vec![Record::new(&payload); 1000]).unwrap();
    }
    log.close().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["replay", p(tmp.path())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn replay_follow_writes_records_appended_after_it_started_until_to() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let t = store.topic("live").unwrap();
    t.publish(Record::new(b"before")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(["replay", "-f", p(tmp.path()), "live", "--format", "raw", "--to", "4"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line proves the replay runs before anything else is published.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 7];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"before\n");
    for i in 0..4 {
        t.publish(Record::new(format!("live-{i}").as_bytes())).unwrap();
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest, "live-0\nlive-1\nlive-2\n", "it stops before offset 4");
}

#[test]
fn replay_follow_with_idle_exit_stops_once_nothing_new_comes() {
    let tmp = tempfile::tempdir().unwrap();
    keyed_log(tmp.path()).close().unwrap();
    let out = ok(&["replay", "-f", p(tmp.path()), "--from", "48", "--format", "raw", "--idle-exit", "0.2"]);
    assert_eq!(out, b"event-48\nevent-49\n");
}
