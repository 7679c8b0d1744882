//! `tidelog compact` and `tidelog erase`, driven as a user would.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tidelog::{Log, Options, Record, Store, StoreOptions};

fn tidelog(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidelog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the tidelog binary");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json(args: &[&str], code: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = tidelog(&all, "");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(code), "{args:?}\nstdout: {out}\nstderr: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn updates(log: &Log) {
    for round in 0..10 {
        for k in 0..50 {
            let payload = format!("value {round} of key {k}").repeat(4);
            log.append(Record::new(payload.as_bytes()).key(format!("k{k}").as_bytes())).unwrap();
        }
    }
}

#[test]
fn compact_reports_the_bytes_before_and_after_and_the_records_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default().segment_bytes(16 << 10)).unwrap();
    updates(&log);
    log.close().unwrap();
    let v = json(&["compact", p(tmp.path()), "--roll"], 0);
    assert_eq!(v["records_removed"], 450, "{v}");
    assert!(v["bytes_after"].as_u64().unwrap() < v["bytes_before"].as_u64().unwrap(), "{v}");
    let text = tidelog(&["compact", p(tmp.path())], "");
    assert_eq!(text.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&text.stdout).contains("0 records removed"), "{text:?}");
    let log = Log::open_read_only(tmp.path(), Options::default()).unwrap();
    assert_eq!(log.iter(0).count(), 50);
}

#[test]
fn compact_takes_a_store_topic_and_refuses_a_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        let t = store.topic("table").unwrap();
        for i in 0..300u32 {
            t.publish(Record::new(&i.to_le_bytes()).key(format!("k{}", i % 3).as_bytes())).unwrap();
        }
    }
    let v = json(&["compact", p(tmp.path()), "table", "--roll"], 0);
    assert_eq!(v["topic"], "table");
    assert_eq!(v["records_removed"], 297);
    let v = json(&["compact", p(tmp.path())], 0);
    assert_eq!(v["topics"].as_array().unwrap().len(), 1);
    json(&["compact", p(tmp.path()), "nope"], 2);
}

#[test]
fn erase_asks_first_and_takes_hex_keys() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        let t = store.topic("people").unwrap();
        for i in 0..100u32 {
            let key: &[u8] = if i % 4 == 0 { b"\x00secret" } else { b"bob" };
            t.publish(Record::new(format!("payload {i}").as_bytes()).key(key)).unwrap();
        }
    }
    // Not confirmed: nothing changes.
    let o = tidelog(&["erase", p(tmp.path()), "people", "bob"], "n\n");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("[y/N]"));
    // --json needs --yes.
    json(&["erase", p(tmp.path()), "people", "bob"], 2);
    // Confirmed at the prompt.
    let o = tidelog(&["erase", p(tmp.path()), "people", "bob"], "y\n");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("erased 75 records"), "{o:?}");
    let v = json(&["erase", p(tmp.path()), "people", "hex:00736563726574", "--yes"], 0);
    assert_eq!(v["records_erased"], 25);
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let keys: Vec<_> = store.topic("people").unwrap().iter(0).unwrap().map(|r| r.unwrap().key.unwrap()).collect();
    assert_eq!(keys.len(), 2, "only the two markers are left");
}
