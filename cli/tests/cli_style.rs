//! One style across commands: a record is the same document in `dump`, `tail` and `replay`,
//! bytes are given on the command line as they are shown (`hex:`), and table headings are
//! JSON field names.

mod support;

use serde_json::Value;
use support::{json, p, tidelog};
use tidelog::{Header, Log, Options, Record, Store, StoreOptions};

#[test]
fn replay_writes_the_record_document_that_dump_and_tail_print() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let t = store.topic("mixed").unwrap();
    let headers = [Header { name: "kind", value: &[0xfe, 0x01] }, Header { name: "src", value: b"a\"b" }];
    t.publish(Record::new(b"text \"quoted\"\n").key(b"k").headers(&headers)).unwrap();
    t.publish(Record::new(&[0xff, 0x00]).key(&[0x80])).unwrap();
    let dir = t.dir().to_path_buf();
    drop((t, store));

    let dumped = json(&["dump", p(&dir), "--payload", "base64"], 0)["records"].as_array().unwrap().clone();
    let o = tidelog(&["replay", p(tmp.path()), "mixed", "--payload", "base64"]);
    let replayed: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replayed, dumped);
    // With text payloads (the default of both), the UTF-8 record is the same document too.
    let dumped = json(&["dump", p(&dir)], 0)["records"][0].clone();
    let o = tidelog(&["replay", p(&dir), "--to", "1"]);
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), dumped);
    let o = tidelog(&["--json", "tail", p(tmp.path()), "mixed", "-n", "2"]);
    let tailed: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(tailed, dumped);
}

/// `dump --key` took only text, so a binary key that `dump` shows as `key=hex:80` could not
/// be asked for; keys and header values are now given as they are shown, as in `replay`.
#[test]
fn dump_filters_take_bytes_given_as_hex_as_they_are_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default()).unwrap();
    log.append(Record::new(b"a").key(&[0x80])).unwrap();
    log.append(Record::new(b"b").key(b"hex")).unwrap();
    log.append(Record::new(b"c").key(&[0x80]).headers(&[Header { name: "h", value: &[0, 1] }])).unwrap();
    log.close().unwrap();
    let offsets = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["dump", p(tmp.path())];
        all.extend_from_slice(args);
        json(&all, 0)["records"].as_array().unwrap().iter().map(|r| r["offset"].as_u64().unwrap()).collect()
    };
    assert_eq!(offsets(&["--key", "hex:80"]), [0, 2]);
    assert_eq!(offsets(&["--key", "hex"]), [1]);
    assert_eq!(offsets(&["--header", "h=hex:0001"]), [2]);
    let o = tidelog(&["dump", p(tmp.path()), "--key", "hex:8"]);
    assert_eq!(o.status.code(), Some(2));
}
