//! `tidelog stream`: one key's events with versions and offsets, read from a log or a store
//! topic; state envelopes decoded (op, before, after); a damaged envelope located and exit 1.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tidelog::{Log, Options, Record, Store, StoreOptions};

fn tidelog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidelog")).args(args).output().expect("run the tidelog binary")
}

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Run with `--json`, check the exit code, parse each stdout line as JSON.
fn json_lines(args: &[&str], code: i32) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tidelog(&all);
    assert_eq!(o.status.code(), Some(code), "{args:?}\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// A log where `sku-1` went 10 → 7 → deleted → 4, among other keys' records.
fn state_log(dir: &Path) {
    let log = Log::open(dir, Options::default().segment_bytes(1 << 20)).unwrap();
    log.publish_state(b"sku-1", b"10").unwrap();
    log.append(Record::new(b"plain").key(b"other")).unwrap();
    log.publish_state(b"sku-1", b"7").unwrap();
    log.delete_state(b"sku-1").unwrap();
    log.publish_state(b"sku-1", b"4").unwrap();
}

fn ops(lines: &[Value]) -> Vec<(u64, u64, String)> {
    lines
        .iter()
        .map(|l| (l["version"].as_u64().unwrap(), l["offset"].as_u64().unwrap(), l["envelope"]["op"].to_string()))
        .collect()
}

#[test]
fn stream_shows_versions_offsets_and_each_envelopes_before_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    state_log(tmp.path());
    let lines = json_lines(&["stream", p(tmp.path()), "sku-1"], 0);
    assert_eq!(
        ops(&lines),
        [
            (0, 0, "\"create\"".to_owned()),
            (1, 2, "\"update\"".to_owned()),
            (2, 3, "\"delete\"".to_owned()),
            (3, 4, "\"create\"".to_owned())
        ]
    );
    assert_eq!(
        (&lines[1]["envelope"]["before"], &lines[1]["envelope"]["after"]),
        (&Value::from("10"), &Value::from("7"))
    );
    assert_eq!(lines[2]["tombstone"], Value::Bool(true));
    assert_eq!(lines[2]["envelope"]["after"], Value::Null);

    let o = tidelog(&["stream", p(tmp.path()), "sku-1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in ["version 4", "update  10 -> 7", "delete  7 -> -  (tombstone)", "-- 4 events shown"] {
        assert!(out.contains(want), "{want:?} in:\n{out}");
    }
    // A key of ordinary records is shown as records, without an envelope.
    let plain = json_lines(&["stream", p(tmp.path()), "other"], 0);
    assert_eq!((plain.len(), &plain[0]["envelope"], &plain[0]["payload"]), (1, &Value::Null, &Value::from("plain")));
}

#[test]
fn from_backward_and_max_choose_the_events() {
    let tmp = tempfile::tempdir().unwrap();
    state_log(tmp.path());
    let dir = p(tmp.path());
    let versions =
        |args: &[&str]| -> Vec<u64> { json_lines(args, 0).iter().map(|l| l["version"].as_u64().unwrap()).collect() };
    assert_eq!(versions(&["stream", dir, "sku-1", "--from", "2"]), [2, 3]);
    assert_eq!(versions(&["stream", dir, "sku-1", "--from", "1", "--max", "2"]), [1, 2]);
    assert_eq!(versions(&["stream", dir, "sku-1", "--backward"]), [3, 2, 1, 0]);
    assert_eq!(versions(&["stream", dir, "sku-1", "--backward", "--max", "1"]), [3]);
    assert_eq!(versions(&["stream", dir, "sku-1", "--backward", "--from", "2", "--max", "2"]), [2, 1]);
    assert_eq!(versions(&["stream", dir, "no-such-key"]), Vec::<u64>::new());
    assert_eq!(versions(&["stream", dir, "736b752d31", "--key-hex", "--max", "1"]), [0], "hex of sku-1");
}

#[test]
fn stream_reads_a_store_topic_and_names_the_wrong_kind_of_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store"), StoreOptions::default()).unwrap();
    let topic = store.topic("stock").unwrap();
    topic.publish_state(b"sku-9", b"1").unwrap();
    topic.publish_state(b"sku-9", b"2").unwrap();
    drop(topic);
    drop(store);
    let store_dir = tmp.path().join("store");
    let lines = json_lines(&["stream", p(&store_dir), "stock", "sku-9"], 0);
    assert_eq!(lines[1]["envelope"]["before"], Value::from("1"));

    // A store given one name, a log given two: each says what the directory is.
    let o = tidelog(&["stream", p(&store_dir), "sku-9"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a store"), "{}", text(&o));
    let log_dir = tmp.path().join("log");
    state_log(&log_dir);
    let o = tidelog(&["stream", p(&log_dir), "stock", "sku-1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a log"), "{}", text(&o));
    let o = tidelog(&["stream", p(&store_dir), "no-topic", "k"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn a_damaged_envelope_is_located_and_exits_1_after_every_event_is_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default().segment_bytes(1 << 20)).unwrap();
    log.publish_state(b"k", b"1").unwrap();
    // Starts like an envelope, but its lengths do not add up.
    let mut bad = b"TLSE\x01\x02\x03\x00".to_vec();
    bad.extend_from_slice(&[0xff; 12]);
    log.append(Record::new(&bad).key(b"k")).unwrap();
    log.append(Record::new(b"after").key(b"k")).unwrap();
    drop(log);
    let lines = json_lines(&["stream", p(tmp.path()), "k"], 1);
    assert_eq!(lines.len(), 3, "every event is shown");
    let err = &lines[1]["envelope_error"];
    assert_eq!(
        (err["offset"].as_u64(), err["position"].as_u64(), err["corruption"].as_str()),
        (Some(1), Some(8), Some("bad_length"))
    );
    let o = tidelog(&["stream", p(tmp.path()), "k"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("damaged envelope"), "{}", text(&o));
}
